//! `ca-server`: see `ca-server --help`.

/// jemalloc serves every allocation of the process, RocksDB's included (its `malloc` replaces
/// glibc's). RocksDB's memtables and block cache allocate and free many blocks of a few
/// hundred KiB to a few MiB; glibc's per-thread arenas kept freed ones resident, so resident
/// memory crept up over a long run of issuance (bench/RESULTS.md, *Memory*). jemalloc returns
/// unused pages to the system after a few seconds (its decay), and is what RocksDB is tuned
/// and tested with.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    ca_server::cli::main()
}
