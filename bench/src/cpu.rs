//! Where the CPU goes: CPU time by thread of a process, from Linux's per-thread scheduler
//! statistics (`/proc/PID/task/*/schedstat`, nanoseconds on a CPU). `ca-bench --server-pid`
//! samples the server and itself before and after a scenario, so that each figure comes with
//! its cost per certificate in each part: verification and signing (the `ca-worker` threads),
//! the store writer, RocksDB's background flushes and compactions, HTTP, and the client.

use std::collections::BTreeMap;
use std::time::Duration;

/// CPU time used so far by each thread of process `pid`, keyed by thread id, with its name.
pub type Sample = BTreeMap<u32, (String, Duration)>;

/// Reads the CPU time of every thread of `pid` (empty when it cannot: not Linux, no such
/// process).
pub fn sample(pid: u32) -> Sample {
    let mut out = Sample::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let read = |file: &str| std::fs::read_to_string(task.path().join(file)).ok();
        let (Some(name), Some(stat)) = (read("comm"), read("schedstat")) else {
            continue;
        };
        let Some(ns) = stat.split_whitespace().next().and_then(|n| n.parse().ok()) else {
            continue;
        };
        out.insert(tid, (name.trim().to_string(), Duration::from_nanos(ns)));
    }
    out
}

/// The CPU time all threads of this process have used so far (threads that ended are not
/// counted: sample around work done by threads that live through it).
pub fn this_process() -> Duration {
    sample(std::process::id())
        .values()
        .map(|(_, cpu)| *cpu)
        .sum()
}

/// The CPU time each group of threads used between two samples: threads are grouped by name
/// without a trailing `-N` (so `ca-worker-0` and `ca-worker-1` are `ca-worker`). A thread
/// that started in between counts from zero.
pub fn used(before: &Sample, after: &Sample) -> BTreeMap<String, Duration> {
    let mut groups = BTreeMap::new();
    for (tid, (name, total)) in after {
        let start = before.get(tid).map_or(Duration::ZERO, |(_, d)| *d);
        *groups.entry(group(name)).or_insert(Duration::ZERO) += total.saturating_sub(start);
    }
    groups
}

fn group(name: &str) -> String {
    match name.rsplit_once('-') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            base.to_string()
        }
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_numbered_threads() {
        assert_eq!(group("ca-worker-1"), "ca-worker");
        assert_eq!(group("ca-store-writer"), "ca-store-writer");
        assert_eq!(group("rocksdb:low"), "rocksdb:low");
    }

    #[test]
    fn this_process_uses_cpu() {
        let before = sample(std::process::id());
        // The kernel updates a running thread's total at scheduler ticks: spin for several.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let after = sample(std::process::id());
        let total: Duration = used(&before, &after).values().sum();
        assert!(total > Duration::ZERO, "no CPU time measured");
    }
}
