//! The store of 1,000,000 certificates that the large-store benchmarks read (`query`) and
//! revoke from (`mass_revocation`, on copies): built once through the engine (real
//! certificates, durable writes) and kept under the target directory for later runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ca_core::revocation::RevocationReason;
use ca_core::store::query::{CertificateQuery, Cursor};
use ca_core::store::Store;
use keys::KeyAlgorithm;

use crate::{authority, csr_der, CsrKey, EngineFixture, FixtureError};

/// Certificates in the store.
pub const CERTS: usize = 1_000_000;
/// Distinct SANs (and keys) among the CSRs: each is on CERTS / NAMES certificates.
pub const NAMES: usize = 1000;
/// Certificates revoked (keyCompromise), spread over the store.
pub const REVOKED: usize = 1000;
const CHUNK: usize = 2000;

/// Where the store is kept.
pub fn store_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join("bench-data").join("query-1m")
}

/// The store's RocksDB directory, built first when it is not there yet.
pub fn db_dir() -> Result<PathBuf, FixtureError> {
    let dir = store_dir();
    let done = dir.join("COMPLETE");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        build(&dir.join("db"))?;
        std::fs::write(&done, CERTS.to_string())?;
    }
    Ok(dir.join("db"))
}

/// Opens the 1M-certificate store, building it first when it is not there yet.
pub fn store() -> Result<Store, FixtureError> {
    Ok(Store::open(&db_dir()?)?)
}

fn build(db: &Path) -> Result<(), FixtureError> {
    let fixture = EngineFixture::at(
        authority(KeyAlgorithm::EcdsaP256)?,
        db,
        &Default::default(),
        0,
    )?;
    let mut csrs: Vec<Vec<u8>> = (0..NAMES)
        .map(|i| csr_der(CsrKey::EcP256, &format!("h{i}.bench.example.com")))
        .collect::<Result<_, _>>()?;
    csrs.push(csr_der(CsrKey::EcP256, "rare.bench.example.com")?);
    let started = Instant::now();
    let mut issued = 0;
    while issued < CERTS {
        let n = CHUNK.min(CERTS - issued);
        let chunk: Vec<Vec<u8>> = (issued..issued + n)
            // The rare name once, in the middle of the store.
            .map(|i| csrs[if i == CERTS / 2 { NAMES } else { i % NAMES }].clone())
            .collect();
        fixture.issue_all(chunk)?;
        issued += n;
        eprint!(
            "\rbuilding the 1M store: {issued} of {CERTS} certificates ({:.0}/s)",
            issued as f64 / started.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    // Revoke REVOKED certificates spread over the store.
    let store = fixture.engine.store().clone();
    let step = CERTS / REVOKED;
    let mut cursor: Option<Cursor> = None;
    for _ in 0..REVOKED {
        let page = store.query(&CertificateQuery::default(), cursor.as_ref(), step)?;
        let serial = page
            .rows
            .first()
            .ok_or("the store ended early")?
            .record
            .serial;
        fixture.runtime.block_on(fixture.engine.revoke(
            serial,
            RevocationReason::KeyCompromise,
            None,
            "bench",
        ))?;
        cursor = page.next;
    }
    Ok(())
}

/// A copy of the store at `from` in `to` for a run that writes: its table files hard-linked
/// (RocksDB never changes one once written), every other file copied.
pub fn copy_store(from: &Path, to: &Path) -> Result<(), FixtureError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.extension().is_some_and(|e| e == "sst") {
            std::fs::hard_link(&src, &dst)?;
        } else if entry.file_type()?.is_file() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}
