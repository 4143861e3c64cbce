//! Replays the fuzz corpus (`fuzz/corpus/<target>/`, the minimized inputs of every fuzz run,
//! crashes that were fixed among them) through the very bodies the fuzz targets run, so that
//! an input that once crashed a parser, or reached a path worth keeping, is checked by every
//! `./test` without a fuzzer.

use std::path::{Path, PathBuf};

use ca_core::fuzzing::{csr, ocsp_request, pem, OcspFixture};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 50,
        "{} holds {} inputs; the corpus is missing",
        dir.display(),
        files.len()
    );
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("reading a corpus input");
            (p, bytes)
        })
        .collect()
}

/// Runs `body` on every input of the target's corpus, naming the input that panics.
fn replay(target: &str, body: impl Fn(&[u8])) {
    for (path, bytes) in corpus(target) {
        // The bodies hold no state a panic could leave half-changed that a later input reads.
        let run = std::panic::AssertUnwindSafe(|| body(&bytes));
        if std::panic::catch_unwind(run).is_err() {
            panic!("fuzz target {target} fails on {}", path.display());
        }
    }
}

#[test]
fn csr_corpus() {
    replay("csr", csr);
}

#[test]
fn pem_corpus() {
    replay("pem", pem);
}

#[test]
fn ocsp_request_corpus() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fixtures");
    let ca = std::fs::read(fixtures.join("ocsp-ca.der")).expect("fixture");
    let key = std::fs::read(fixtures.join("ocsp-ca.key.der")).expect("fixture");
    let fixture = OcspFixture::new(&ca, &key);
    replay("ocsp_request", |data| ocsp_request(&fixture, data));
}

#[test]
fn json_bodies_corpus() {
    replay("json_bodies", ca_server::api::fuzzing::parse_bodies);
}

#[test]
fn est_bodies_corpus() {
    replay("est_bodies", ca_core::fuzzing::est_bodies);
}

#[test]
fn cmp_message_corpus() {
    replay("cmp_message", ca_cmp::fuzzing::cmp_message);
}
