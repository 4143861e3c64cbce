//! A small tmpfs mounted in a private mount namespace ([`PrivateTmpfs`]), for tests of a full
//! disk: the mount is seen only by the processes run in the namespace (a server through
//! [`PrivateTmpfs::wrapper`], commands through [`PrivateTmpfs::run`]), and goes with the
//! namespace when the holder process is killed, whatever becomes of the test.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::command::output_within;
use crate::postgres::running_as_root;

/// How long a command run in the namespace may take.
const COMMAND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// A tmpfs of a given size on a directory, in a mount namespace of its own held by a sleeping
/// process (`unshare -m`), which is killed on drop.
pub struct PrivateTmpfs {
    holder: Child,
    /// Where the tmpfs is mounted (inside the namespace).
    pub mountpoint: PathBuf,
}

impl PrivateTmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `48m`) on `mountpoint`, an
    /// existing directory, in a new private mount namespace. `None` when the test does not
    /// run as root (creating a mount namespace needs it); panics when root cannot.
    pub fn mount(mountpoint: &Path, size: &str) -> Option<PrivateTmpfs> {
        if !running_as_root() {
            return None;
        }
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size={size} tmpfs \"$0\" && echo mounted && exec sleep 100000"
            ))
            .arg(mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running unshare (util-linux)");
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("stdout pipe");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let out = holder.wait_with_output().expect("waiting for unshare");
            panic!(
                "mounting a tmpfs on {} in a private mount namespace failed: {}",
                mountpoint.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(PrivateTmpfs {
            holder,
            mountpoint: mountpoint.to_path_buf(),
        })
    }

    /// The command prefix that runs a program in the namespace (`nsenter -t PID -m --`),
    /// which execs it without forking: the child's pid is the program's.
    pub fn wrapper(&self) -> Vec<OsString> {
        ["nsenter", "-t", &self.holder.id().to_string(), "-m", "--"]
            .iter()
            .map(OsString::from)
            .collect()
    }

    /// Runs `args` in the namespace and answers its output (whatever its exit status).
    pub fn run(&self, args: &[&std::ffi::OsStr]) -> Output {
        let wrapper = self.wrapper();
        output_within(
            Command::new(&wrapper[0]).args(&wrapper[1..]).args(args),
            COMMAND_DEADLINE,
        )
    }

    /// [`PrivateTmpfs::run`], asserting success; answers stdout.
    pub fn run_ok(&self, args: &[&std::ffi::OsStr]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} in the private mount namespace failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateTmpfs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
