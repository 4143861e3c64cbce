//! The disk under the store, for `GET /metrics`: the bytes of the store's files and the space
//! left on their filesystem, so that an operator is warned before the store cannot write.
//!
//! - `ca_store_disk_bytes`: bytes of the files in the RocksDB directory (`[ca] db_dir`);
//!   not exported with PostgreSQL, whose disk is the database server's.
//! - `ca_store_filesystem_avail_bytes`, `ca_store_filesystem_size_bytes`: space available to
//!   the server and total size of the filesystem holding the RocksDB directory (with
//!   PostgreSQL, the data directory, which holds the configuration and the keys), from
//!   `statvfs(3)`.

use std::path::{Path, PathBuf};

use ca_core::store::space::filesystem_space;
use ca_core::CaError;
use prometheus::{IntGauge, Registry};

/// The disk gauges and the directories they measure; sampled when scraped.
#[derive(Clone, Debug)]
pub struct DiskMetrics {
    /// The RocksDB directory and its `ca_store_disk_bytes`, when the store is RocksDB.
    store: Option<(PathBuf, IntGauge)>,
    /// The directory whose filesystem is measured.
    filesystem: PathBuf,
    avail: IntGauge,
    size: IntGauge,
}

impl DiskMetrics {
    /// Registers the disk gauges on `registry` (whose prefix is `ca_`): the store's files in
    /// `store_dir` (None with PostgreSQL) and the filesystem of `store_dir`, or of `data_dir`
    /// without one.
    pub fn register(
        registry: &Registry,
        store_dir: Option<PathBuf>,
        data_dir: &Path,
    ) -> Result<Self, CaError> {
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help)
                .map_err(|e| CaError::internal("defining a metric", Some(Box::new(e))))?;
            registry
                .register(Box::new(gauge.clone()))
                .map_err(|e| CaError::internal("registering a metric", Some(Box::new(e))))?;
            Ok::<_, CaError>(gauge)
        };
        let filesystem = store_dir.clone().unwrap_or_else(|| data_dir.to_path_buf());
        let store = match store_dir {
            Some(dir) => Some((
                dir,
                gauge(
                    "store_disk_bytes",
                    "Bytes of the files in the RocksDB store's directory",
                )?,
            )),
            None => None,
        };
        Ok(DiskMetrics {
            store,
            filesystem,
            avail: gauge(
                "store_filesystem_avail_bytes",
                "Bytes available to the server on the store's filesystem",
            )?,
            size: gauge(
                "store_filesystem_size_bytes",
                "Size of the store's filesystem in bytes",
            )?,
        })
    }

    /// Measures the directories now (blocking: it lists the store's files). What cannot be
    /// read keeps its last value, and is logged at debug level.
    pub fn sample(&self) {
        if let Some((dir, gauge)) = &self.store {
            match directory_bytes(dir) {
                Ok(bytes) => gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX)),
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "measuring the store"),
            }
        }
        match filesystem_space(&self.filesystem) {
            Ok(space) => {
                let bytes = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
                self.avail.set(bytes(space.avail));
                self.size.set(bytes(space.size));
            }
            Err(e) => tracing::debug!(
                dir = %self.filesystem.display(),
                error = %e,
                "statvfs of the store's filesystem"
            ),
        }
    }
}

/// The bytes of the regular files under `dir`, subdirectories included (symbolic links are
/// not followed).
pub fn directory_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                // A file RocksDB deleted between the listing and here is simply not counted.
                if let Ok(meta) = entry.metadata() {
                    total = total.saturating_add(meta.len());
                }
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_bytes_sums_files_in_subdirectories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("a"), [0u8; 100]).expect("a");
        std::fs::create_dir(tmp.path().join("sub")).expect("sub");
        std::fs::write(tmp.path().join("sub/b"), [0u8; 23]).expect("b");
        assert_eq!(directory_bytes(tmp.path()).expect("bytes"), 123);
    }

    #[test]
    fn sample_sets_the_store_and_filesystem_gauges() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let db = tmp.path().join("db");
        std::fs::create_dir(&db).expect("db");
        std::fs::write(db.join("000001.sst"), [0u8; 4096]).expect("sst");
        let registry = Registry::new_custom(Some("ca".into()), None).expect("registry");
        let disk = DiskMetrics::register(&registry, Some(db), tmp.path()).expect("register");
        disk.sample();
        let value = |name: &str| {
            registry
                .gather()
                .iter()
                .find(|f| f.name() == name)
                .map(|f| f.get_metric()[0].get_gauge().get_value())
                .expect("the metric is exported")
        };
        assert_eq!(value("ca_store_disk_bytes"), 4096.0);
        let size = value("ca_store_filesystem_size_bytes");
        let avail = value("ca_store_filesystem_avail_bytes");
        assert!(
            size > 0.0 && avail > 0.0 && avail <= size,
            "{avail} of {size}"
        );
    }

    #[test]
    fn without_a_rocksdb_directory_only_the_filesystem_is_measured() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let registry = Registry::new_custom(Some("ca".into()), None).expect("registry");
        let disk = DiskMetrics::register(&registry, None, tmp.path()).expect("register");
        disk.sample();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "ca_store_filesystem_avail_bytes",
                "ca_store_filesystem_size_bytes"
            ]
        );
    }
}
