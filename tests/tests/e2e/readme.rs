//! The README's examples, run as a new user would paste them: every `sh` block from *Issue a
//! certificate* up to *Command line*, in order, in one shell with `set -euo pipefail`, in a
//! fresh directory, against a fresh server. The server's address is the one line
//! `CA=http://127.0.0.1:8080`, replaced by the test server's; any other hard-coded address
//! would reach no server and fail the run.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::prelude::*;

/// How long the examples may take together.
const DEADLINE: Duration = Duration::from_secs(180);

/// The README's `sh` blocks between two headings, joined.
fn examples(readme: &str, from: &str, to: &str) -> String {
    let start = readme.find(from).expect("the README has the first heading");
    let end = readme[start..]
        .find(to)
        .expect("the README has the last heading")
        + start;
    let mut script = String::new();
    let mut rest = &readme[start..end];
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("a closed code block");
        script.push_str(&body[..close]);
        rest = &body[close + 3..];
    }
    script
}

#[test]
fn the_readme_examples_run_in_order_against_a_fresh_server() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let script = examples(&readme, "## Issue a certificate", "## Command line");
    let assignment = "CA=http://127.0.0.1:8080\n";
    assert_eq!(
        script.matches(assignment).count(),
        1,
        "the README sets the server's address once, as {assignment:?}"
    );

    let work = tempfile::tempdir().expect("tempdir");
    // `./target/release/ca-server` as the README names it, from the directory the examples
    // run in.
    let release = work.path().join("target/release");
    std::fs::create_dir_all(&release).expect("target/release");
    std::os::unix::fs::symlink(server_bin(), release.join("ca-server")).expect("symlink");
    let s = Server::serve(&work.path().join("ca-data"));
    let script = format!(
        "set -euo pipefail\n{}",
        script.replacen(assignment, &format!("CA={}\n", s.base), 1)
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the README's examples did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert!(
        status.success(),
        "the README's examples failed ({status}):\nstdout:\n{out}\nstderr:\n{err}"
    );
    // What the comments promise.
    for promised in [
        "leaf.pem: OK",
        "leaf-der.pem: OK",
        "location: /v1/certificates/",
        "\"revoked\"",
        "Response verify OK",
        "leaf.pem: revoked",
        "friendlyName: CN=Maria Silva",
        "audit log OK",
    ] {
        assert!(
            out.contains(promised) || err.contains(promised),
            "the examples' output lacks {promised:?}:\nstdout:\n{out}\nstderr:\n{err}"
        );
    }
    s.terminate();
}

/// `ca-server completions SHELL` and `ca-server man` generate from the command line's own
/// definition, so every subcommand is in them.
#[test]
fn completions_and_the_man_page_name_every_subcommand() {
    let bash = ca_server_ok(&["completions", "bash"]);
    assert!(bash.contains("complete -F _ca__server"), "{bash}");
    let zsh = ca_server_ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef ca-server"), "{zsh}");
    // roff writes a hyphen as `\-`.
    let man = ca_server_ok(&["man"]).replace("\\-", "-");
    assert!(man.contains(".TH ca-server 1"), "{man}");
    for sub in [
        "serve", "init", "import", "token", "tls-cert", "audit", "export", "crl",
    ] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
        assert!(man.contains(sub), "the man page lacks {sub}");
    }
}
