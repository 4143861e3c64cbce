//! Upgrades a store written by an older build, when it is opened for writing.
//!
//! Schema version 3 keys certificates by issuance sequence number (`issued`) with a serial
//! index (`serials`); versions 1 and 2 kept them in `certs`, keyed by serial, with a
//! `by_issued` index (sequence number to serial). The upgrade copies every record as it is
//! (the record's bytes do not change, it already holds its sequence number), then the caller
//! records version 3, then the two old families are dropped.
//!
//! Each step can be interrupted: copying again overwrites the same keys with the same values,
//! and a store already at version 3 that still has the old families only has them dropped.

use rocksdb::WriteBatch;

use super::{cf, CertRecord, Store, META_CERT_SEQ};
use crate::error::CaError;
use crate::store::Db;

/// The first schema version that keys certificates by issuance order.
pub(super) const ISSUANCE_ORDER_SCHEMA: u32 = 3;
/// The column family of certificates by serial, up to schema version 2.
const LEGACY_CERTS: &str = "certs";
/// The column family of issuance sequence number to serial, up to schema version 2.
const LEGACY_BY_ISSUED: &str = "by_issued";
/// Records copied per synced write.
const CHUNK: u64 = 10_000;
/// Records between two progress lines.
const PROGRESS_EVERY: u64 = 100_000;

/// Copies every certificate of the legacy `certs` family into `issued` and `serials`.
/// Does nothing on a store without one.
pub(super) fn copy_legacy_certificates(store: &Store) -> Result<(), CaError> {
    let Some(legacy) = store.db.cf_handle(LEGACY_CERTS) else {
        return Ok(());
    };
    let issued = store.cf(cf::ISSUED)?;
    let serials = store.cf(cf::SERIALS)?;
    let last_seq = store.meta_u64(META_CERT_SEQ)?;
    let estimate = store
        .db
        .property_int_value_cf(legacy, "rocksdb.estimate-num-keys")
        .db()?
        .unwrap_or(0);
    tracing::info!(
        certificates = estimate,
        "upgrading the store to schema version 3 (certificates keyed by issuance order)"
    );
    let mut it = store.db.raw_iterator_cf(legacy);
    it.seek_to_first();
    let mut batch = WriteBatch::default();
    let mut copied = 0u64;
    while let (Some(serial), Some(value)) = (it.key(), it.value()) {
        let record = CertRecord::decode(value)?;
        if record.seq == 0 || record.seq > last_seq || record.serial.as_bytes()[..] != *serial {
            return Err(CaError::Storage(format!(
                "cannot upgrade the store: the record under serial {} says serial {} and \
                 issuance number {} (the store's last is {last_seq})",
                hex::encode(serial),
                record.serial,
                record.seq
            )));
        }
        let seq = record.seq.to_be_bytes();
        batch.put_cf(issued, seq, value);
        batch.put_cf(serials, serial, seq);
        copied += 1;
        if copied % CHUNK == 0 {
            store.write(std::mem::take(&mut batch))?;
        }
        if copied % PROGRESS_EVERY == 0 {
            tracing::info!(copied, of = estimate, "upgrading the store");
        }
        it.next();
    }
    it.status().db()?;
    store.write(batch)?;
    tracing::info!(copied, "store upgraded to schema version 3");
    Ok(())
}

/// Drops the legacy families once the store records version 3.
pub(super) fn drop_legacy_families(store: &mut Store) -> Result<(), CaError> {
    let db = std::sync::Arc::get_mut(&mut store.db)
        .ok_or_else(|| CaError::Storage("the store is shared while being upgraded".into()))?;
    for name in [LEGACY_CERTS, LEGACY_BY_ISSUED] {
        if db.cf_handle(name).is_some() {
            db.drop_cf(name).db()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::Serial;
    use crate::store::query::CertificateQuery;
    use crate::store::{META_SCHEMA, SCHEMA_VERSION};
    use rocksdb::{Options, DB};

    fn record(seq: u64) -> CertRecord {
        CertRecord {
            seq,
            serial: Serial::random(&keys::SystemRandom::new()).unwrap(),
            der: vec![0x30, 0x03, 0x02, 0x01, seq as u8],
            profile: "tls-server".into(),
            requester: "ra".into(),
            issued_at: 1_700_000_000 + seq as i64,
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
            renewed_from: None,
            audit_seq: None,
        }
    }

    /// Writes a store as schema version 2 laid it out: `certs` by serial and `by_issued`.
    fn write_v2_store(path: &std::path::Path, records: &[CertRecord]) {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = DB::open_cf(&opts, path, [cf::META, LEGACY_CERTS, LEGACY_BY_ISSUED]).unwrap();
        let (meta, certs, by_issued) = (
            db.cf_handle(cf::META).unwrap(),
            db.cf_handle(LEGACY_CERTS).unwrap(),
            db.cf_handle(LEGACY_BY_ISSUED).unwrap(),
        );
        db.put_cf(meta, META_SCHEMA, 2u32.to_be_bytes()).unwrap();
        db.put_cf(meta, META_CERT_SEQ, (records.len() as u64).to_be_bytes())
            .unwrap();
        for r in records {
            db.put_cf(certs, r.serial.as_bytes(), r.encode().unwrap())
                .unwrap();
            db.put_cf(by_issued, r.seq.to_be_bytes(), r.serial.as_bytes())
                .unwrap();
        }
    }

    #[test]
    fn a_version_2_store_is_upgraded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<_> = (1..=25_000).map(record).collect();
        write_v2_store(dir.path(), &records);

        let err = Store::open_read_only(dir.path()).unwrap_err().to_string();
        assert!(err.contains("schema version 2, older"), "{err}");

        for _ in 0..2 {
            // The second open finds an upgraded store and changes nothing.
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
            assert_eq!(store.count_certificates().unwrap(), records.len() as u64);
            for r in records.iter().step_by(997) {
                let serial = r.serial;
                assert_eq!(store.certificate(&serial).unwrap().as_ref(), Some(r));
                assert!(store.contains_serial(&serial).unwrap());
            }
            assert_eq!(
                store.last_issued_at().unwrap(),
                records.last().unwrap().issued_at
            );
            let query = CertificateQuery {
                issued_after: Some(records[20_000].issued_at),
                now: 1_750_000_000,
                ..Default::default()
            };
            let page = store.query(&query, None, 10).unwrap();
            let seqs: Vec<u64> = page.rows.iter().map(|r| r.record.seq).collect();
            assert_eq!(seqs, (20_001..=20_010).collect::<Vec<_>>());
        }
        let families = DB::list_cf(&Options::default(), dir.path()).unwrap();
        assert!(!families
            .iter()
            .any(|f| f == LEGACY_CERTS || f == LEGACY_BY_ISSUED));
        assert!(Store::open_read_only(dir.path()).is_ok());
    }

    #[test]
    fn an_upgrade_stopped_after_recording_the_version_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<_> = (1..=10).map(record).collect();
        write_v2_store(dir.path(), &records);
        drop(Store::open(dir.path()).unwrap());
        // Put the legacy families back, as if the process had stopped before dropping them.
        {
            let mut opts = Options::default();
            opts.create_missing_column_families(true);
            let mut families = DB::list_cf(&opts, dir.path()).unwrap();
            families.push(LEGACY_CERTS.into());
            let db = DB::open_cf(&opts, dir.path(), families).unwrap();
            let certs = db.cf_handle(LEGACY_CERTS).unwrap();
            db.put_cf(
                certs,
                records[0].serial.as_bytes(),
                records[0].encode().unwrap(),
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.count_certificates().unwrap(), 10);
        drop(store);
        let families = DB::list_cf(&Options::default(), dir.path()).unwrap();
        assert!(!families.iter().any(|f| f == LEGACY_CERTS));
    }

    #[test]
    fn a_record_out_of_place_stops_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let mut records: Vec<_> = (1..=3).map(record).collect();
        records[1].seq = 99;
        write_v2_store(dir.path(), &records);
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cannot upgrade the store"), "{err}");
        // Nothing was given up: the old layout is still there, at version 2.
        let families = DB::list_cf(&Options::default(), dir.path()).unwrap();
        assert!(families.iter().any(|f| f == LEGACY_CERTS));
    }
}
