//! ACME (RFC 8555) as real clients see it: the server with TLS and `[acme]` on
//! ([`AcmeServer`]), pebble-challtestsrv as the DNS every name resolves through
//! ([`ChallTestSrv`]), and the clients lego ([`Lego`]) and certbot ([`Certbot`]) run against it
//! with a deadline. What they bring back is judged like every issued certificate: `openssl
//! verify`, pkilint, the SANs, and the server's own record of it.
//!
//! The test client of [`crate::api`] speaks plain HTTP only, so the JSON API of a server with
//! TLS is reached with curl here ([`AcmeServer::api`]); the CA chain and OCSP come from the
//! plain-HTTP status listener that `ca-server tls-cert` configures.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::api::Resp;
use crate::binary::ca_server_ok;
use crate::command::{output_within, COMMAND_DEADLINE};
use crate::data_dir::{configure, create_token, new_dir};
use crate::formats::{pem_certs, to_pem};
use crate::judges::certificates::openssl_verify;
use crate::judges::pkilint::pkilint;
use crate::server::Server;
use crate::unique;
use crate::wait::poll;

/// The name of the RA token the ACME accounts are bound to by External Account Binding.
pub const ACME_RA: &str = "acme-ra";

/// How long pebble-challtestsrv may take to answer on its ports.
const CHALLTESTSRV_STARTUP: Duration = Duration::from_secs(30);

/// The environment variables naming a proxy, removed from the clients' environment: every
/// request they make goes to loopback.
const PROXY_VARIABLES: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// A loopback port free right now (TCP and UDP).
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The last `max` bytes of `text` (at a character boundary).
fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// `pebble-challtestsrv` on free loopback ports with only its mock DNS and its management API:
/// every A query is answered 127.0.0.1 (`-defaultIPv4`), AAAA queries get no answer
/// (`-defaultIPv6 ""`), and TXT records are set and cleared over the management API
/// (`/set-txt`, `/clear-txt`). Killed on drop.
pub struct ChallTestSrv {
    child: Option<Child>,
    /// The DNS server, `127.0.0.1:PORT` (UDP and TCP).
    pub dns: String,
    /// The management API, `127.0.0.1:PORT` (HTTP).
    pub management: String,
    log: PathBuf,
    _dir: TempDir,
}

impl ChallTestSrv {
    /// Starts it and waits until both its DNS (TCP) and its management port accept
    /// connections.
    pub fn start() -> ChallTestSrv {
        let dir = tempfile::tempdir().expect("tempdir");
        let dns = format!("127.0.0.1:{}", free_port());
        let management = format!("127.0.0.1:{}", free_port());
        let log = dir.path().join("challtestsrv.log");
        let out = std::fs::File::create(&log).expect("creating the challtestsrv log");
        let err = out.try_clone().expect("cloning the log file");
        let child = Command::new("pebble-challtestsrv")
            .args(["-dns01", &dns, "-management", &management])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "spawning pebble-challtestsrv: {e} (Debian package `pebble`; run \
                     scripts/setup.sh)"
                )
            });
        let mut srv = ChallTestSrv {
            child: Some(child),
            dns,
            management,
            log,
            _dir: dir,
        };
        for addr in [srv.dns.clone(), srv.management.clone()] {
            poll(
                &format!("pebble-challtestsrv listening on {addr}"),
                CHALLTESTSRV_STARTUP,
                || {
                    if let Some(status) = srv.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                        panic!("pebble-challtestsrv exited ({status}):\n{}", srv.log());
                    }
                    TcpStream::connect(&addr)
                        .map(drop)
                        .map_err(|e| e.to_string())
                },
            );
        }
        srv
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Adds a CAA `issue` record with `value` (a CA's domain) to `host` (`POST /add-caa`).
    pub fn add_caa_issue(&self, host: &str, value: &str) {
        let body = format!(
            r#"{{"host":"{}.","policies":[{{"tag":"issue","value":"{value}"}}]}}"#,
            host.trim_end_matches('.')
        );
        let out = Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "--noproxy",
                "*",
                "-m",
                "10",
                "-X",
                "POST",
                "-d",
            ])
            .arg(&body)
            .arg(format!("http://{}/add-caa", self.management))
            .output()
            .expect("running curl");
        assert!(
            out.status.success(),
            "add-caa {body}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A shell script for lego's `exec` DNS provider (`EXEC_PATH`): `present FQDN VALUE` sets
    /// the TXT record FQDN to VALUE (`POST /set-txt {"host", "value"}`), `cleanup FQDN VALUE`
    /// clears FQDN's TXT records (`POST /clear-txt {"host"}`), with curl. Written into `dir`.
    pub fn lego_exec_script(&self, dir: &Path) -> PathBuf {
        let script = dir.join(format!("challtestsrv-exec-{}.sh", unique()));
        let text = format!(
            r#"#!/bin/sh
# lego's exec DNS provider: $1 is present or cleanup, $2 the FQDN, $3 the TXT value.
set -eu
case "$1" in
  present) path=set-txt; body="{{\"host\":\"$2\",\"value\":\"$3\"}}" ;;
  cleanup) path=clear-txt; body="{{\"host\":\"$2\"}}" ;;
  *) exit 0 ;;
esac
exec curl -sS --fail --noproxy '*' -m 10 -X POST -d "$body" "http://{}/$path"
"#,
            self.management
        );
        std::fs::write(&script, text).expect("writing the exec script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("making the exec script executable");
        script
    }
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How an [`AcmeServer`] is configured.
#[derive(Clone, Debug)]
pub struct AcmeSetup {
    /// `[acme] eab_required`.
    pub eab_required: bool,
    /// `[limits] public_requests_per_second = 0`: ACME requests carry no bearer token, so a
    /// load generator's would all share the limit of its one address.
    pub unlimited_public_rate: bool,
}

/// An External Account Binding key as `POST /v1/acme/eab` answers it.
#[derive(Clone, Debug)]
pub struct Eab {
    pub kid: String,
    /// base64url, as lego's `--hmac` and certbot's `--eab-hmac-key` take it.
    pub hmac_key: String,
}

/// A server with TLS (`ca-server tls-cert --name ca.test.example --name 127.0.0.1`) and ACME
/// on, its validation pointed at loopback: http-01 and tls-alpn-01 connect to the free ports
/// [`AcmeServer::http01_port`] and [`AcmeServer::tlsalpn01_port`] (where the clients
/// listen), names resolve through [`ChallTestSrv`] to 127.0.0.1, and `deny_networks = []`.
/// An RA token [`ACME_RA`] exists for EAB keys.
pub struct AcmeServer {
    /// The server (dropped before the DNS it resolves through).
    pub s: Server,
    pub dns: ChallTestSrv,
    pub http01_port: u16,
    pub tlsalpn01_port: u16,
    /// The RA token [`ACME_RA`].
    pub ra_token: String,
    /// Client state (lego's and certbot's directories, scripts).
    pub clients: TempDir,
    _tmp: TempDir,
}

/// Replaces the `[acme]` table of DIR's config.toml with `[acme]` and `body` (appending it
/// when there is none).
pub fn set_acme_table(dir: &Path, body: &str) {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("reading config.toml");
    let table = format!("[acme]\n{}\n", body.trim_end());
    let new = match text.find("\n[acme]\n") {
        Some(start) => {
            let start = start + 1;
            let end = text[start + "[acme]\n".len()..]
                .find("\n[")
                .map_or(text.len(), |i| start + "[acme]\n".len() + i + 1);
            format!("{}{table}{}", &text[..start], &text[end..])
        }
        None => format!("{text}\n{table}"),
    };
    std::fs::write(&path, new).expect("writing config.toml");
}

impl AcmeServer {
    /// A new data directory with TLS, the RA token [`ACME_RA`] and `[acme]` on, served.
    pub fn start(setup: AcmeSetup) -> AcmeServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = new_dir(tmp.path());
        ca_server_ok(&[
            "tls-cert",
            "--data-dir",
            dir.to_str().expect("UTF-8 path"),
            "--name",
            "ca.test.example",
            "--name",
            "127.0.0.1",
        ]);
        let ra_token = create_token(&dir, "ra", ACME_RA);
        let dns = ChallTestSrv::start();
        let (http01_port, tlsalpn01_port) = (free_port(), free_port());
        set_acme_table(
            &dir,
            &format!(
                "enabled = true\n\
                 eab_required = {}\n\
                 http01_port = {http01_port}\n\
                 tlsalpn01_port = {tlsalpn01_port}\n\
                 dns_resolver = \"{}\"\n\
                 deny_networks = []\n",
                setup.eab_required, dns.dns
            ),
        );
        if setup.unlimited_public_rate {
            configure(
                &dir,
                &[(
                    "public_requests_per_second = 100.0",
                    "public_requests_per_second = 0.0",
                )],
                "",
            );
        }
        let s = Server::serve(&dir);
        assert!(s.base.starts_with("https://"), "TLS is on: {}", s.base);
        let acme = AcmeServer {
            s,
            dns,
            http01_port,
            tlsalpn01_port,
            ra_token,
            clients: tempfile::tempdir().expect("tempdir"),
            _tmp: tmp,
        };
        let r = acme.api("GET", "/acme/directory", None, None);
        assert!(
            r.status == 200 && r.json["newAccount"].is_string(),
            "GET /acme/directory: {r}\nserver output:\n{}",
            tail(&acme.s.log(), 20_000)
        );
        acme
    }

    /// The ACME directory URL, `https://127.0.0.1:PORT/acme/directory`.
    pub fn directory(&self) -> String {
        format!("{}/acme/directory", self.s.base)
    }

    /// The CA chain of the data directory (`DIR/ca.pem`), which the TLS certificate chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.s.dir.join("ca.pem")
    }

    /// A request to the server's API over TLS with curl (`--cacert DIR/ca.pem`), with an
    /// optional bearer token and JSON body.
    pub fn api(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--noproxy", "*", "-m", "60", "-o", "-"])
            .args(["-w", "\n%{http_code}", "-X", method, "--cacert"])
            .arg(self.ca_file());
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(b.to_string());
        }
        cmd.arg(format!("{}{path}", self.s.base));
        let out = output_within(&mut cmd, COMMAND_DEADLINE);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let (text, code) = stdout.rsplit_once('\n').unwrap_or(("", "0"));
        let status = code.trim().parse().unwrap_or(0);
        assert!(
            out.status.success() && status != 0,
            "curl -X {method} {path} failed ({}): {stdout}{}\nserver output:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tail(&self.s.log(), 20_000)
        );
        Resp {
            status,
            text: text.to_string(),
            json: serde_json::from_str(text).unwrap_or(Value::Null),
            content_type: String::new(),
            bytes: text.as_bytes().to_vec(),
            location: String::new(),
        }
    }

    /// `POST /v1/acme/eab {"ra": RA}` with the operator token: asserts 201 and the answer's
    /// shape; the new key.
    pub fn eab(&self, ra: &str) -> Eab {
        let r = self.api(
            "POST",
            "/v1/acme/eab",
            Some(&self.s.tokens.operator),
            Some(&json!({ "ra": ra })),
        );
        assert_eq!(r.status, 201, "POST /v1/acme/eab for {ra}: {r}");
        assert_eq!(r.json["ra"], ra, "POST /v1/acme/eab: {r}");
        let field = |name: &str| {
            r.json[name]
                .as_str()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| panic!("POST /v1/acme/eab: no {name}: {r}"))
                .to_string()
        };
        Eab {
            kid: field("kid"),
            hmac_key: field("hmac_key"),
        }
    }

    /// `GET /v1/certificates/{serial}` with the auditor token; asserts 200.
    pub fn record(&self, serial: &str) -> Value {
        let path = format!("/v1/certificates/{serial}");
        let r = self.api("GET", &path, Some(&self.s.tokens.auditor), None);
        assert_eq!(r.status, 200, "GET {path}: {r}");
        r.json
    }

    /// Every serial `GET /v1/certificates` lists for `token`, walking its pages.
    pub fn listed_serials(&self, token: &str) -> Vec<String> {
        let mut serials = Vec::new();
        let mut cursor = String::new();
        loop {
            let mut path = "/v1/certificates?limit=1000".to_string();
            if !cursor.is_empty() {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let r = self.api("GET", &path, Some(token), None);
            assert_eq!(r.status, 200, "GET {path}: {r}");
            let items = r.json["items"]
                .as_array()
                .unwrap_or_else(|| panic!("GET {path}: no items: {r}"));
            serials.extend(
                items
                    .iter()
                    .map(|i| i["serial"].as_str().expect("serial").to_string()),
            );
            match r.json["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => return serials,
            }
        }
    }

    /// Judges a certificate an ACME client wrote to `file` (the leaf first, maybe its
    /// issuers after it): `openssl verify -x509_strict -purpose sslserver` against the CA,
    /// pkilint, its dNSName SANs exactly `names` (and no other SAN), the issuer after the
    /// leaf (when there is one) the CA's certificate, and the server's record of it valid,
    /// `tls-server` and holding the same certificate. Returns its serial.
    pub fn check_certificate(&self, file: &Path, names: &[&str], what: &str) -> String {
        let pem = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("{what}: reading {}: {e}", file.display()));
        let ders = pem_certs(&pem);
        assert!(
            !ders.is_empty(),
            "{what}: no certificate in {}",
            file.display()
        );
        let ca = self.s.ca();
        if ders.len() > 1 {
            assert_eq!(
                ders[1],
                ca.ders[0],
                "{what}: the certificate after the leaf in {} is not the CA's",
                file.display()
            );
        }
        let leaf = self.s.scratch().join(format!("acme-leaf-{}.pem", unique()));
        std::fs::write(&leaf, to_pem("CERTIFICATE", &ders[0])).expect("writing the leaf");
        openssl_verify(ca, &leaf, "tls-server", what);
        pkilint(&leaf, what);

        let (_, cert) = X509Certificate::from_der(&ders[0])
            .unwrap_or_else(|e| panic!("{what}: the certificate does not parse: {e}"));
        let mut sans = Vec::new();
        for ext in cert.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => sans.push(d.to_string()),
                        other => panic!("{what}: a SAN other than a DNS name: {other:?}"),
                    }
                }
            }
        }
        sans.sort();
        let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        want.sort();
        assert_eq!(sans, want, "{what}: the certificate's DNS names");

        let serial = hex::encode(cert.raw_serial());
        let record = self.record(&serial);
        assert_eq!(
            record["status"], "valid",
            "{what}: the record of {serial}: {record}"
        );
        assert_eq!(
            record["profile"], "tls-server",
            "{what}: the record of {serial}: {record}"
        );
        let stored = pem_certs(record["certificate"].as_str().unwrap_or_else(|| {
            panic!("{what}: the record of {serial} has no certificate: {record}")
        }));
        assert_eq!(
            stored,
            vec![ders[0].clone()],
            "{what}: the record of {serial} holds another certificate"
        );
        serial
    }

    /// Runs an ACME client: asserts it exits 0 within [`COMMAND_DEADLINE`], else panics with
    /// the command, its output, the server's and pebble-challtestsrv's output.
    pub fn run_client(&self, what: &str, cmd: &mut Command) -> Output {
        self.run_client_with_log(what, cmd, None)
    }

    /// [`AcmeServer::run_client`], showing the tail of the client's own log file `log` too
    /// when it fails.
    pub fn run_client_with_log(&self, what: &str, cmd: &mut Command, log: Option<&Path>) -> Output {
        for var in PROXY_VARIABLES {
            cmd.env_remove(var);
        }
        let shown = format!("{cmd:?}");
        let out = output_within(cmd, COMMAND_DEADLINE);
        let client_log = log
            .map(|l| {
                let text = std::fs::read_to_string(l).unwrap_or_default();
                format!("---- {} ----\n{}\n", l.display(), tail(&text, 20_000))
            })
            .unwrap_or_default();
        assert!(
            out.status.success(),
            "{what}: {shown} failed ({}).\nstdout:\n{}\nstderr:\n{}\n{client_log}\
             ---- ca-server output ----\n{}\n---- pebble-challtestsrv output ----\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.s.log(), 30_000),
            tail(&self.dns.log(), 5_000),
        );
        out
    }

    /// A lego client with a directory of its own, for `domains`, solving `challenge`.
    pub fn lego(&self, domains: &[&str], challenge: Challenge, eab: Option<Eab>) -> Lego<'_> {
        let path = self.clients.path().join(format!("lego-{}", unique()));
        Lego {
            acme: self,
            path,
            domains: domains.iter().map(|d| d.to_string()).collect(),
            challenge,
            eab,
        }
    }

    /// A certbot client with configuration, work and log directories of its own.
    pub fn certbot(&self, eab: Option<Eab>) -> Certbot<'_> {
        let dir = self.clients.path().join(format!("certbot-{}", unique()));
        Certbot {
            acme: self,
            dir,
            eab,
        }
    }
}

/// The challenge a [`Lego`] client solves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// http-01, lego's own HTTP server on 127.0.0.1:[`AcmeServer::http01_port`].
    Http01,
    /// tls-alpn-01, lego's own TLS server on 127.0.0.1:[`AcmeServer::tlsalpn01_port`].
    TlsAlpn01,
    /// dns-01 through lego's `exec` provider and [`ChallTestSrv::lego_exec_script`].
    Dns01,
}

/// lego against an [`AcmeServer`]: `LEGO_CA_CERTIFICATES=DIR/ca.pem lego --server DIRECTORY
/// --accept-tos --email admin@example.com --path PATH --domains ... CHALLENGE FLAGS
/// COMMAND`.
pub struct Lego<'a> {
    acme: &'a AcmeServer,
    /// lego's `--path` (accounts and certificates).
    pub path: PathBuf,
    pub domains: Vec<String>,
    pub challenge: Challenge,
    /// Used when lego registers its account (`--eab --kid --hmac`).
    pub eab: Option<Eab>,
}

impl Lego<'_> {
    /// The command with its global options; `challenge` adds the challenge's flags.
    fn command(&self, challenge: bool) -> Command {
        let acme = self.acme;
        let mut cmd = Command::new("lego");
        cmd.env("LEGO_CA_CERTIFICATES", acme.ca_file())
            .arg("--server")
            .arg(acme.directory())
            .args(["--accept-tos", "--email", "admin@example.com", "--path"])
            .arg(&self.path);
        for d in &self.domains {
            cmd.args(["--domains", d]);
        }
        if let Some(eab) = &self.eab {
            // `--opt=value`: a base64url value may start with `-`, which a parser would take
            // for an option.
            cmd.arg("--eab")
                .arg(format!("--kid={}", eab.kid))
                .arg(format!("--hmac={}", eab.hmac_key));
        }
        if challenge {
            match self.challenge {
                Challenge::Http01 => {
                    cmd.args([
                        "--http",
                        "--http.port",
                        &format!("127.0.0.1:{}", acme.http01_port),
                    ]);
                }
                Challenge::TlsAlpn01 => {
                    cmd.args([
                        "--tls",
                        "--tls.port",
                        &format!("127.0.0.1:{}", acme.tlsalpn01_port),
                    ]);
                }
                Challenge::Dns01 => {
                    let script = acme.dns.lego_exec_script(acme.clients.path());
                    // The exec provider solves one authorization after the other, waiting
                    // EXEC_SEQUENCE_INTERVAL (60 s by default) in between.
                    cmd.env("EXEC_PATH", script)
                        .env("EXEC_SEQUENCE_INTERVAL", "1")
                        .env("EXEC_POLLING_INTERVAL", "1")
                        .env("EXEC_PROPAGATION_TIMEOUT", "30")
                        .args(["--dns", "exec", "--dns.resolvers", &acme.dns.dns])
                        .arg("--dns.disable-cp");
                }
            }
        }
        cmd
    }

    /// `lego ... run`: registers the account and obtains the certificate.
    pub fn run(&self) -> Output {
        let what = format!("lego run for {:?} ({:?})", self.domains, self.challenge);
        self.acme.run_client(&what, self.command(true).arg("run"))
    }

    /// `lego ... run` that must fail: asserts lego exits unsuccessfully and returns what it
    /// printed (stdout and stderr).
    pub fn run_refused(&self) -> String {
        let mut cmd = self.command(true);
        cmd.arg("run");
        for var in PROXY_VARIABLES {
            cmd.env_remove(var);
        }
        let shown = format!("{cmd:?}");
        let out = output_within(&mut cmd, COMMAND_DEADLINE);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "{shown} succeeded, but should have been refused:\n{text}"
        );
        text
    }

    /// `lego ... renew --days 999 --no-random-sleep`: renews now (no certificate of the
    /// server lives 999 days, and without `--days` lego renews nothing and exits 0).
    pub fn renew(&self) -> Output {
        let what = format!("lego renew for {:?} ({:?})", self.domains, self.challenge);
        self.acme.run_client(
            &what,
            self.command(true)
                .args(["renew", "--days", "999", "--no-random-sleep"]),
        )
    }

    /// `lego ... revoke`: revokes the current certificate with the account's key (lego then
    /// moves its files to `archives/`).
    pub fn revoke(&self) -> Output {
        let what = format!("lego revoke for {:?}", self.domains);
        self.acme
            .run_client(&what, self.command(false).arg("revoke"))
    }

    /// The certificate file lego writes for the first domain (`*.` spelled `_.`), the leaf
    /// followed by its issuer.
    pub fn certificate_file(&self) -> PathBuf {
        let name = self.domains[0].replace('*', "_");
        self.path.join("certificates").join(format!("{name}.crt"))
    }
}

/// certbot against an [`AcmeServer`], its standalone http-01 server on
/// 127.0.0.1:[`AcmeServer::http01_port`]: `REQUESTS_CA_BUNDLE=DIR/ca.pem certbot ...
/// --server DIRECTORY --non-interactive --config-dir --work-dir --logs-dir`.
pub struct Certbot<'a> {
    acme: &'a AcmeServer,
    /// Holds `config/`, `work/` and `logs/`.
    pub dir: PathBuf,
    pub eab: Option<Eab>,
}

impl Certbot<'_> {
    fn command(&self, subcommand: &str) -> Command {
        let acme = self.acme;
        let mut cmd = Command::new("certbot");
        cmd.env("REQUESTS_CA_BUNDLE", acme.ca_file())
            .arg(subcommand)
            .arg("--server")
            .arg(acme.directory())
            .arg("--non-interactive")
            .arg("--config-dir")
            .arg(self.dir.join("config"))
            .arg("--work-dir")
            .arg(self.dir.join("work"))
            .arg("--logs-dir")
            .arg(self.dir.join("logs"));
        cmd
    }

    /// `certbot certonly --standalone --http-01-address 127.0.0.1 --http-01-port P
    /// --agree-tos -m admin@example.com -d DOMAIN ...` (with `--eab-kid`/`--eab-hmac-key`
    /// when it has an EAB key).
    pub fn certonly(&self, domains: &[&str]) -> Output {
        let mut cmd = self.command("certonly");
        cmd.args(["--standalone", "--http-01-address", "127.0.0.1"])
            .args(["--http-01-port", &self.acme.http01_port.to_string()])
            .args(["--agree-tos", "-m", "admin@example.com"]);
        if let Some(eab) = &self.eab {
            // `--opt=value`: a base64url value may start with `-`, which argparse would take
            // for an option.
            cmd.arg(format!("--eab-kid={}", eab.kid))
                .arg(format!("--eab-hmac-key={}", eab.hmac_key));
        }
        for d in domains {
            cmd.args(["-d", d]);
        }
        self.acme.run_client_with_log(
            &format!("certbot certonly for {domains:?}"),
            &mut cmd,
            Some(&self.log_file()),
        )
    }

    /// `certbot revoke --cert-path FILE --no-delete-after-revoke`.
    pub fn revoke(&self, cert: &Path) -> Output {
        let mut cmd = self.command("revoke");
        cmd.arg("--cert-path")
            .arg(cert)
            .arg("--no-delete-after-revoke");
        self.acme.run_client_with_log(
            &format!("certbot revoke {}", cert.display()),
            &mut cmd,
            Some(&self.log_file()),
        )
    }

    /// certbot's debug log (each run rotates the previous one to `letsencrypt.log.1`).
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("logs").join("letsencrypt.log")
    }

    /// The certificate (leaf alone) certbot keeps for a lineage named after its first
    /// domain.
    pub fn cert_file(&self, domain: &str) -> PathBuf {
        self.dir
            .join("config")
            .join("live")
            .join(domain)
            .join("cert.pem")
    }
}
