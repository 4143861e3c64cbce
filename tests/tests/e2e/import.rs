//! Setting up a CA from the command line: `import` of an intermediate's certificate checks
//! the whole chain before writing anything and replaces an installed chain only with
//! `--force`; `init` is all or nothing.

use std::path::{Path, PathBuf};

use e2e_tests::prelude::*;

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn import(dir: &Path, cert: &Path, chain: &Path, force: bool) -> std::process::Output {
    let mut args = vec![
        "import",
        "--data-dir",
        s(dir),
        "--cert",
        s(cert),
        "--chain",
        s(chain),
    ];
    if force {
        args.push("--force");
    }
    ca_server(&args)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn import_checks_the_chain_and_replaces_only_with_force() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    ca_server_ok(&[
        "init",
        "--data-dir",
        s(&dir),
        "--intermediate",
        "--subject",
        "CN=Test Intermediate CA,O=Test",
    ]);
    // Two roots with the same name: only the signature and the key identifiers tell them apart.
    let root_a = openssl_root(tmp.path(), "root-a", "/CN=Test Parent Root/O=Test");
    let root_b = openssl_root(tmp.path(), "root-b", "/CN=Test Parent Root/O=Test");
    let unrelated = openssl_root(tmp.path(), "root-c", "/CN=Unrelated Root/O=Other");
    let signed = tmp.path().join("signed.pem");
    sign_intermediate(&dir, &root_a, &signed);
    let ca_pem = dir.join("ca.pem");

    for (chain, what) in [(&root_b.1, "root B"), (&unrelated.1, "an unrelated root")] {
        let out = import(&dir, &signed, chain, false);
        assert!(
            !out.status.success(),
            "import with the chain of {what} (which did not sign the certificate) succeeded:\n\
             stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("certificate 1") && stderr(&out).contains("--chain"),
            "the refusal names the failing link: {}",
            stderr(&out)
        );
        assert!(
            !ca_pem.exists(),
            "a refused import wrote {}",
            ca_pem.display()
        );
    }
    // The chain must end at a self-signed root.
    let out = import(&dir, &signed, &signed, false);
    assert!(!out.status.success(), "a chain of the certificate itself");
    assert!(!ca_pem.exists());

    // The right root is accepted after the refusals, with nothing to delete by hand.
    let out = import(&dir, &signed, &root_a.1, false);
    assert!(out.status.success(), "import with root A: {}", stderr(&out));
    let installed = std::fs::read_to_string(&ca_pem).expect("reading ca.pem");
    assert_eq!(pem_certs(&installed).len(), 2, "ca.pem: {installed}");
    {
        let server = Server::serve(&dir);
        let served = server.get("/ca.pem", None);
        assert_eq!(served.status, 200, "GET /ca.pem: {served}");
        assert_eq!(pem_certs(&served.text), pem_certs(&installed));
        let status = server.terminate();
        assert!(status.success(), "serve exited with {status}");
    }

    replacing_the_chain_needs_force(&dir, (&root_a, &root_b), &installed);
    Server::serve(&dir).terminate();
}

/// A second import without --force says how to replace the chain and changes nothing
/// (`installed`: the chain in ca.pem); --force does not skip the checks (`root_b` did not
/// sign), and with the right root (`root_a`) replaces the certificate.
fn replacing_the_chain_needs_force(
    dir: &Path,
    (root_a, root_b): (&(PathBuf, PathBuf), &(PathBuf, PathBuf)),
    installed: &str,
) {
    let ca_pem = dir.join("ca.pem");
    let resigned = dir.with_file_name("resigned.pem");
    sign_intermediate(dir, root_a, &resigned);
    let out = import(dir, &resigned, &root_a.1, false);
    assert!(!out.status.success(), "a second import without --force");
    assert!(
        stderr(&out).contains("--force"),
        "the refusal points to --force: {}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&ca_pem).unwrap(), installed);

    // --force does not skip the checks.
    let out = import(dir, &resigned, &root_b.1, true);
    assert!(!out.status.success(), "import --force with the wrong root");
    assert_eq!(std::fs::read_to_string(&ca_pem).unwrap(), installed);

    let out = import(dir, &resigned, &root_a.1, true);
    assert!(out.status.success(), "import --force: {}", stderr(&out));
    let replaced = std::fs::read_to_string(&ca_pem).expect("reading ca.pem");
    let resigned_der = pem_certs(&std::fs::read_to_string(&resigned).unwrap());
    assert_eq!(
        pem_certs(&replaced)[0],
        resigned_der[0],
        "ca.pem holds the new certificate"
    );
}

/// Entries of `tmp` other than `keep`: what a failed `init` left behind.
fn leftovers(tmp: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(tmp)
        .expect("reading the temporary directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

/// An existing empty directory (`tmp/ca2`) stays empty when init fails, and init then fills
/// it; nothing else appears in `tmp`, which holds `ca` already.
fn an_empty_directory_stays_empty_when_init_fails(tmp: &Path) {
    let dir2 = tmp.join("ca2");
    std::fs::create_dir(&dir2).unwrap();
    let out = ca_server(&["init", "--data-dir", s(&dir2), "--tls-name", "bad name!"]);
    assert!(
        !out.status.success(),
        "init --tls-name 'bad name!' succeeded"
    );
    assert_eq!(leftovers(&dir2, &[]), Vec::<String>::new());
    assert_eq!(leftovers(tmp, &["ca", "ca2"]), Vec::<String>::new());
    ca_server_ok(&["init", "--data-dir", s(&dir2)]);
    assert!(dir2.join("ca.pem").exists() && dir2.join("config.toml").exists());
    assert_eq!(leftovers(tmp, &["ca", "ca2"]), Vec::<String>::new());
}

#[test]
fn a_failed_init_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    let init = |tls_name: &str| {
        ca_server(&[
            "init",
            "--data-dir",
            s(&dir),
            "--subject",
            "CN=Test Root,O=Test",
            "--tls-name",
            tls_name,
        ])
    };
    let out = init("bad name!");
    assert!(
        !out.status.success(),
        "init --tls-name 'bad name!' succeeded"
    );
    assert!(
        stderr(&out).contains("bad name!"),
        "the refusal names the name: {}",
        stderr(&out)
    );
    assert!(
        !dir.exists(),
        "a failed init left {} behind: {:?}",
        dir.display(),
        std::fs::read_dir(&dir).map(|d| d.count())
    );
    assert_eq!(leftovers(tmp.path(), &[]), Vec::<String>::new());

    let out = init("ca.example.com");
    assert!(
        out.status.success(),
        "init after a failed one: {}",
        stderr(&out)
    );
    assert!(dir.join("ca.pem").exists() && dir.join("tls.pem").exists());
    assert_eq!(leftovers(tmp.path(), &["ca"]), Vec::<String>::new());

    an_empty_directory_stays_empty_when_init_fails(tmp.path());

    // A failure after everything was built (a stray tls.pem in the directory) removes what
    // was built, and a root validity out of range is refused before anything is written.
    let dir3 = tmp.path().join("ca3");
    std::fs::create_dir(&dir3).unwrap();
    std::fs::write(dir3.join("tls.pem"), "stray").unwrap();
    let out = ca_server(&[
        "init",
        "--data-dir",
        s(&dir3),
        "--tls-name",
        "ca.example.com",
    ]);
    assert!(!out.status.success(), "init over a stray tls.pem succeeded");
    assert_eq!(leftovers(&dir3, &[]), vec!["tls.pem".to_string()]);
    for days in ["0", "4000000"] {
        let out = ca_server(&["init", "--data-dir", s(&dir3), "--validity-days", days]);
        assert!(
            !out.status.success(),
            "init --validity-days {days} succeeded"
        );
        assert!(stderr(&out).contains("--validity-days"), "{}", stderr(&out));
        assert_eq!(leftovers(&dir3, &[]), vec!["tls.pem".to_string()]);
    }
    assert_eq!(
        leftovers(tmp.path(), &["ca", "ca2", "ca3"]),
        Vec::<String>::new()
    );
}
