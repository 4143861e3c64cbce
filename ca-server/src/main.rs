//! `ca-server`: see `ca-server --help`.

fn main() -> std::process::ExitCode {
    ca_server::cli::main()
}
