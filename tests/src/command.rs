//! Running the external programs the tests drive (`ca-server` subcommands, openssl, curl,
//! pkilint) with a deadline, so that a hanging program fails its test instead of the run.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a helper command (`ca-server init`, openssl, curl, ...) may run.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `command` to completion within `deadline` (killed beyond it, which fails the test),
/// its standard input empty and both outputs read as they come: `Command::output` with a
/// deadline.
pub fn output_within(command: &mut Command, deadline: Duration) -> Output {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().expect("reading stdout"),
        stderr: stderr.join().expect("reading stderr"),
    }
}

/// Runs openssl, asserting success; returns stdout.
pub fn openssl(args: &[&str]) -> String {
    let out = output_within(Command::new("openssl").args(args), COMMAND_DEADLINE);
    assert!(
        out.status.success(),
        "`openssl {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl stdout is UTF-8")
}

/// curl's `--cert`/`--key` arguments for a TLS client certificate and its private key (PEM
/// files).
pub fn curl_client_cert<'a>(cert: &'a Path, key: &'a Path) -> [&'a str; 4] {
    [
        "--cert",
        cert.to_str().expect("UTF-8 path"),
        "--key",
        key.to_str().expect("UTF-8 path"),
    ]
}
