//! A throwaway PostgreSQL cluster per test ([`Postgres`]): `initdb` in a temporary directory,
//! `pg_ctl start` on a free loopback port with its socket in that directory, password
//! authentication over TCP for the superuser `postgres`, and `pg_ctl stop -m immediate` and
//! the directory removed on drop.
//!
//! Debian keeps `initdb` and `pg_ctl` in `/usr/lib/postgresql/N/bin`, not on the PATH
//! (package `postgresql`, which `scripts/setup.sh` installs). PostgreSQL refuses to run as
//! root, so a root test process (CI) runs the cluster as the unprivileged user
//! [`CLUSTER_USER`], created when missing. Nothing here skips: without PostgreSQL the tests
//! that need it fail and say what to install.
//!
//! ```no_run
//! use e2e_tests::postgres::Postgres;
//! let pg = Postgres::start();
//! assert_eq!(pg.psql("select 1").trim(), "1");
//! // a server child names pg.url("postgres") and reads pg.password_file()
//! ```

use std::ffi::OsStr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::command::{output_within, COMMAND_DEADLINE};

/// The user a root test process runs its clusters as.
pub const CLUSTER_USER: &str = "ca-test-pg";

/// The superuser's password in every test cluster (a test's own, on loopback only).
const PASSWORD: &str = "test-cluster-password";

/// The newest `/usr/lib/postgresql/N/bin` that has `initdb`, asserting there is one.
pub fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/N/bin/initdb: run scripts/setup.sh (installs postgresql)")
}

/// Whether this process runs as root (then the cluster runs as [`CLUSTER_USER`]).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// [`CLUSTER_USER`]'s uid and gid, the user created first when missing.
fn cluster_user() -> (u32, u32) {
    static USER: OnceLock<(u32, u32)> = OnceLock::new();
    *USER.get_or_init(|| {
        let id = |flag: &str| {
            let out = Command::new("id")
                .args([flag, CLUSTER_USER])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        if id("-u").is_none() {
            let out = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .arg(CLUSTER_USER)
                .output()
                .expect("useradd");
            // 9: the user exists (made by another process meanwhile).
            assert!(
                out.status.success() || out.status.code() == Some(9),
                "useradd {CLUSTER_USER}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (
            id("-u").expect("the cluster user's uid"),
            id("-g").expect("the cluster user's gid"),
        )
    })
}

/// A running throwaway cluster, stopped and removed on drop.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    as_user: bool,
}

impl Postgres {
    /// Creates and starts a cluster: `initdb` (UTF-8, scram-sha-256 over TCP, trust on its
    /// own socket) and `pg_ctl start -w` listening on 127.0.0.1 only, at a free port.
    pub fn start() -> Postgres {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let as_user = running_as_root();
        let pg = Postgres {
            dir,
            bin,
            port: free_port(),
            as_user,
        };
        pg.give_to_cluster_user(pg.dir.path());
        let pwfile = pg.dir.path().join("initdb-password");
        write_private(&pwfile, PASSWORD);
        pg.give_to_cluster_user(&pwfile);
        let data = pg.data_dir();
        let out = pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
            ],
        );
        pg.assert_ok(&out, "initdb");
        let _ = std::fs::remove_file(&pwfile);
        pg.pg_ctl(&["start"]);
        pg
    }

    /// `pg_ctl ACTION -w` on the cluster, listening on 127.0.0.1 only at its port, with its
    /// socket in its directory and its log in `server.log`.
    fn pg_ctl(&self, action: &[&str]) {
        let data = self.data_dir();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let mut args: Vec<&OsStr> = vec![
            "-D".as_ref(),
            data.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
            "-w".as_ref(),
            "-o".as_ref(),
            options.as_ref(),
        ];
        args.extend(action.iter().map(OsStr::new));
        let out = self.run("pg_ctl", &args);
        self.assert_ok(&out, &format!("pg_ctl {}", action.join(" ")));
    }

    /// `pg_ctl restart -m fast`: every session ends (what it had not committed is rolled
    /// back), and the cluster accepts connections again on the same port when this returns.
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "restart"]);
    }

    /// A synchronous standby of this cluster, named `name` (its `application_name`): a
    /// `pg_basebackup` of it on a free port, streaming from it, and this cluster made to wait
    /// for it at every commit (`synchronous_standby_names`); returns once the standby is in
    /// sync.
    pub fn start_standby(&self, name: &str) -> Postgres {
        let standby = Postgres {
            dir: tempfile::tempdir().expect("tempdir"),
            bin: self.bin.clone(),
            port: free_port(),
            as_user: self.as_user,
        };
        standby.give_to_cluster_user(standby.dir.path());
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres password={PASSWORD} application_name={name}",
            self.port
        );
        let data = standby.data_dir();
        let out = standby.run(
            "pg_basebackup",
            &[
                "-d".as_ref(),
                conninfo.as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-R".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
            ],
        );
        standby.assert_ok(&out, "pg_basebackup");
        // Its own primary_conninfo, with the name the primary waits for.
        let auto = data.join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).expect("postgresql.auto.conf");
        conf.push_str(&format!("primary_conninfo = '{conninfo}'\n"));
        std::fs::write(&auto, conf).expect("writing postgresql.auto.conf");
        standby.pg_ctl(&["start"]);
        self.psql(&format!(
            "ALTER SYSTEM SET synchronous_standby_names = '{name}'"
        ));
        self.psql("SELECT pg_reload_conf()");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self
            .psql(&format!(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}'"
            ))
            .trim()
            != "sync"
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never became a synchronous standby"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        standby
    }

    /// Turns TLS on: a server certificate for IP address 127.0.0.1 from a throwaway CA made
    /// with `openssl`, `ssl = on`, reloaded. Returns the CA certificate's PEM file, and the
    /// PEM file of another CA that did not issue it.
    pub fn enable_tls(&self) -> (PathBuf, PathBuf) {
        use crate::command::openssl;
        let d = self.dir.path();
        let p = |name: &str| d.join(name).to_str().expect("UTF-8 path").to_string();
        let (ca_key, ca) = crate::parent_ca::openssl_root(d, "tls-ca", "/CN=tls-ca");
        let (_, other) = crate::parent_ca::openssl_root(d, "other-ca", "/CN=other-ca");
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("writing the extensions");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            ca.to_str().expect("UTF-8 path"),
            "-CAkey",
            ca_key.to_str().expect("UTF-8 path"),
            "-CAcreateserial",
            "-out",
            &p("server.crt"),
            "-days",
            "2",
            "-extfile",
            &p("server.ext"),
        ]);
        let data = self.data_dir();
        for file in ["server.crt", "server.key"] {
            let target = data.join(file);
            std::fs::copy(d.join(file), &target).expect("copying the server's TLS files");
            std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
            self.give_to_cluster_user(&target);
        }
        self.psql("ALTER SYSTEM SET ssl = on");
        self.psql("SELECT pg_reload_conf()");
        (ca, other)
    }

    /// `pg_ctl promote`: a standby becomes a primary that accepts writes.
    pub fn promote(&self) {
        let data = self.data_dir();
        let out = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-w".as_ref(),
                "promote".as_ref(),
            ],
        );
        self.assert_ok(&out, "pg_ctl promote");
    }

    /// `pg_ctl stop -m immediate`: the cluster dies as in a crash (its directory stays until
    /// it is dropped).
    pub fn kill(&self) {
        let out = self.stop_immediately();
        self.assert_ok(&out, "pg_ctl stop -m immediate");
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for database `db` as `postgres`, without the password (the server refuses
    /// URLs with one).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A 0600 file holding the superuser's password, in the cluster's directory.
    pub fn password_file(&self) -> PathBuf {
        let path = self.dir.path().join("password");
        if !path.exists() {
            write_private(&path, PASSWORD);
        }
        path
    }

    /// `ca-server init` of a test CA (`CN=Test Root,O=Test,C=XX`) in `dir` whose store is the
    /// database at `url`, with the superuser's password file: the command's outcome.
    pub fn init_ca(&self, dir: &Path, url: &str) -> Output {
        let password_file = self.password_file();
        crate::binary::ca_server(&[
            "init",
            "--data-dir",
            dir.to_str().expect("UTF-8 path"),
            "--subject",
            "CN=Test Root,O=Test,C=XX",
            "--store-url",
            url,
            "--store-password-file",
            password_file.to_str().expect("UTF-8 path"),
        ])
    }

    /// [`Postgres::init_ca`], which must succeed.
    pub fn init_ca_ok(&self, dir: &Path, url: &str) {
        let out = self.init_ca(dir, url);
        assert!(
            out.status.success(),
            "ca-server init on {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The superuser's password.
    pub fn password(&self) -> &'static str {
        PASSWORD
    }

    /// Runs `sql` with `psql` over TCP with the password, unaligned and without headers;
    /// asserts success and returns its output.
    pub fn psql(&self, sql: &str) -> String {
        let out = output_within(
            Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
                .arg(self.url("postgres"))
                .env("PGPASSWORD", PASSWORD),
            COMMAND_DEADLINE,
        );
        self.assert_ok(&out, &format!("psql -c {sql:?}"));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `pg_ctl stop -m immediate`, whatever it answers.
    fn stop_immediately(&self) -> Output {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "stop".as_ref(),
            ],
        )
    }

    /// Hands `path` to [`CLUSTER_USER`] when the cluster runs as that user.
    fn give_to_cluster_user(&self, path: &Path) {
        if self.as_user {
            let (uid, gid) = cluster_user();
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("handing {} to {CLUSTER_USER}: {e}", path.display()));
        }
    }

    /// Runs a PostgreSQL program from [`postgres_bin`], as the cluster user when root.
    fn run(&self, program: &str, args: &[&OsStr]) -> Output {
        let path = self.bin.join(program);
        let mut command = if self.as_user {
            let mut c = Command::new("runuser");
            c.args(["-u", CLUSTER_USER, "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.args(args).current_dir(self.dir.path());
        output_within(&mut command, COMMAND_DEADLINE)
    }

    fn assert_ok(&self, out: &Output, what: &str) {
        if out.status.success() {
            return;
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        panic!(
            "{what} failed ({}):\n{}{}\nserver log:\n{log}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    /// Stops the cluster at once (`-m immediate`); the directory goes with the `TempDir`.
    fn drop(&mut self) {
        let _ = self.stop_immediately();
    }
}

/// A loopback port free right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Writes `text` to a new file of mode 0600.
fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
