//! `ca-server`: see `ca-server --help`.

fn main() -> std::process::ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fixed_mmap_threshold();
    ca_server::cli::main()
}

/// Makes glibc serve every allocation of 128 KiB or more from its own mapping, given back to
/// the system when freed. By default glibc raises that threshold after the first such free
/// (up to 32 MiB); RocksDB's memtable arena blocks (2 MiB) then come from the heap, and their
/// memory stays resident after each flush frees them, so the server's resident memory creeps
/// up as memtables fill and flush (bench/RESULTS.md, *Memory*). With the threshold fixed,
/// resident memory follows the memtables and the block cache, both bounded.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_mmap_threshold() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets an allocator parameter; it is called once, first thing in
    // main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}
