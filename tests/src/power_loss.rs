//! A power cut, simulated: processes started with [`PowerLoss::env`] preload
//! `tests/support/power_loss.c`, which logs every fsync/fdatasync (with the size it made
//! durable), rename and unlink; after the processes are killed, [`PowerLoss::cut`] truncates
//! every file under a directory to its last durable size, and a file never synced to nothing,
//! which is what the page cache loses when the power goes. SIGKILL alone keeps the page cache,
//! so only this catches a missing sync.
//!
//! Modelled: file data written and not synced is lost. Not modelled: directory entries that
//! were never synced (taken as durable), torn writes inside a synced range.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::command::{output_within, COMMAND_DEADLINE};

/// The preload library and its log.
pub struct PowerLoss {
    work: TempDir,
    library: PathBuf,
    ignore_suffix: Option<String>,
}

/// What a [`PowerLoss::cut`] dropped.
#[derive(Debug, Default)]
pub struct Cut {
    /// Files cut short (or emptied).
    pub files: usize,
    /// Bytes dropped in all.
    pub bytes: u64,
    /// Files under the directory that some sync had made durable.
    pub synced_files: usize,
}

impl Default for PowerLoss {
    /// [`PowerLoss::new`].
    fn default() -> PowerLoss {
        PowerLoss::new()
    }
}

impl PowerLoss {
    /// Compiles the preload library with the system's C compiler.
    pub fn new() -> PowerLoss {
        let work = tempfile::tempdir().expect("tempdir");
        let library = work.path().join("power_loss.so");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/power_loss.c");
        let out = output_within(
            Command::new("cc")
                .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
                .arg(&library)
                .arg(&source)
                .arg("-ldl"),
            COMMAND_DEADLINE,
        );
        assert!(
            out.status.success(),
            "compiling {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        PowerLoss {
            work,
            library,
            ignore_suffix: None,
        }
    }

    /// The same layer, except that syncs of files whose name ends with `suffix` count for
    /// nothing (a build that never syncs those files).
    pub fn ignoring_syncs_of(mut self, suffix: &str) -> PowerLoss {
        self.ignore_suffix = Some(suffix.to_string());
        self
    }

    fn log(&self) -> PathBuf {
        self.work.path().join("sync.log")
    }

    /// The environment that puts a process under the layer.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut env = vec![
            ("LD_PRELOAD", self.library.clone().into_os_string()),
            ("POWERLOSS_LOG", self.log().into_os_string()),
        ];
        if let Some(suffix) = &self.ignore_suffix {
            env.push(("POWERLOSS_IGNORE_SUFFIX", suffix.into()));
        }
        env
    }

    /// Takes every file now under `root` as durable: what a clean shutdown and a `sync`
    /// leave, for files written by processes outside the layer.
    pub fn settle(&self, root: &Path) {
        let mut lines = String::new();
        for file in regular_files(&canonical(root)) {
            let len = std::fs::metadata(&file).expect("stat").len();
            lines.push_str(&format!("S\t{len}\t{}\n", file.display()));
        }
        append(&self.log(), &lines);
    }

    /// The durable size of each file the log knows, by absolute path.
    fn durable(&self) -> BTreeMap<PathBuf, u64> {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let mut durable = BTreeMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.splitn(3, '\t').collect();
            match fields.as_slice() {
                ["S", size, path] => {
                    durable.insert(normal(path), size.parse().expect("size in the sync log"));
                }
                ["R", old, new] => {
                    let (old, new) = (normal(old), normal(new));
                    // A renamed directory carries its files along; a file renamed over a
                    // synced one replaces its durable state with its own.
                    durable.retain(|path, _| !path.starts_with(&new));
                    let moved: Vec<(PathBuf, u64)> = durable
                        .iter()
                        .filter(|(path, _)| path.starts_with(&old))
                        .map(|(path, len)| (path.clone(), *len))
                        .collect();
                    for (path, len) in moved {
                        durable.remove(&path);
                        let rest = path.strip_prefix(&old).expect("prefix");
                        durable.insert(new.join(rest), len);
                    }
                }
                ["U", path] => {
                    durable.remove(&normal(path));
                }
                _ => panic!("unreadable line in the sync log: {line:?}"),
            }
        }
        durable
    }

    /// The power cut: every file under `root` goes back to its last durable size (a file
    /// never synced to empty). The processes writing there must have been killed.
    pub fn cut(&self, root: &Path) -> Cut {
        let durable = self.durable();
        let mut cut = Cut::default();
        for file in regular_files(&canonical(root)) {
            let len = std::fs::metadata(&file).expect("stat").len();
            let keep = match durable.get(&file) {
                Some(synced) => {
                    cut.synced_files += 1;
                    (*synced).min(len)
                }
                None => 0,
            };
            if keep < len {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .and_then(|f| f.set_len(keep))
                    .unwrap_or_else(|e| panic!("cutting {}: {e}", file.display()));
                cut.files += 1;
                cut.bytes += len - keep;
            }
        }
        cut
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("appending to the sync log");
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `path` with `.` and repeated separators removed (the paths the layer logs are absolute).
fn normal(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

fn regular_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files
}
