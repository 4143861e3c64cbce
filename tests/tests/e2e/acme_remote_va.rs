//! Multi-perspective validation (CA/B Forum BR 3.2.2.9): two remote validation agents
//! (`ca-server va`) on loopback, one of them made to fail (its http-01 port is one where
//! nothing answers), asked by the CA over mutually authenticated TLS alongside its own
//! validation. With `remote_va_quorum = 1` lego obtains its certificate and the failing agent
//! shows in the log and the metrics; with 2 the validation fails with a problem naming the
//! disagreement. An agent refuses a client without a certificate, reads bad input as a 400
//! problem, and refuses to start with a key others may read; the CA refuses a configuration
//! whose quorum or TLS material does not fit.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use e2e_tests::acme::{free_port, set_acme_table, ChallTestSrv};
use e2e_tests::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

/// A test PKI made with openssl: a CA, the agents' server certificate (IP 127.0.0.1) and the
/// CA server's client certificate, keys mode 0600.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=Remote VA Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        let leaf = |name: &str, serial: &str, ext: &str| {
            std::fs::write(p(&format!("{name}.ext")), ext).unwrap();
            openssl(&[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &p(&format!("{name}.key")),
                "-out",
                &p(&format!("{name}.csr")),
                "-subj",
                &format!("/CN={name}"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &p(&format!("{name}.csr")),
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca.key"),
                "-set_serial",
                serial,
                "-days",
                "2",
                "-out",
                &p(&format!("{name}.pem")),
                "-extfile",
                &p(&format!("{name}.ext")),
            ]);
            chmod(&dir.path().join(format!("{name}.key")), 0o600);
        };
        leaf(
            "agent",
            "0x1001",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
             basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        );
        leaf(
            "ca-client",
            "0x1002",
            "extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n",
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A `ca-server va` process; killed on drop, its output shown when a test panics.
struct Agent {
    child: Option<Child>,
    /// `https://127.0.0.1:PORT`, as it printed it.
    url: String,
    log: Arc<Mutex<String>>,
}

impl Agent {
    /// `ca-server va --listen 127.0.0.1:0 --cert agent.pem --key agent.key --client-ca ca.pem
    /// --http01-port HTTP01 --dns-resolver DNS --deny-network none --timeout-secs 5`.
    fn start(pki: &Pki, http01_port: u16, dns: &str) -> Agent {
        let mut child = Command::new(server_bin())
            .args(["va", "--listen", "127.0.0.1:0", "--cert"])
            .arg(pki.path("agent.pem"))
            .arg("--key")
            .arg(pki.path("agent.key"))
            .arg("--client-ca")
            .arg(pki.path("ca.pem"))
            .args(["--http01-port", &http01_port.to_string()])
            .args(["--dns-resolver", dns, "--deny-network", "none"])
            .args(["--timeout-secs", "5"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning ca-server va");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let copy = |pipe: Box<dyn std::io::Read + Send>, tx: Option<mpsc::Sender<String>>| {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let (Some(tx), Some(url)) = (&tx, line.strip_prefix("listening on ")) {
                        let _ = tx.send(url.trim().to_string());
                    }
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        };
        copy(Box::new(child.stdout.take().unwrap()), Some(tx));
        copy(Box::new(child.stderr.take().unwrap()), None);
        let url = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "ca-server va never printed `listening on` ({e:?}):\n{}",
                    log.lock().unwrap()
                );
            }
        };
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        Agent {
            child: Some(child),
            url,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `curl -X POST URL/PATH` with the CA bundle, with the CA server's client certificate
    /// when `cert`: the exit status, the HTTP status and the body.
    fn post(&self, pki: &Pki, path: &str, body: &str, cert: bool) -> (bool, u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--noproxy", "*", "-m", "30", "-o", "-"])
            .args(["-w", "\n%{http_code}", "--cacert"])
            .arg(pki.path("ca.pem"));
        if cert {
            cmd.arg("--cert")
                .arg(pki.path("ca-client.pem"))
                .arg("--key")
                .arg(pki.path("ca-client.key"));
        }
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ])
        .arg(format!("{}{path}", self.url));
        let out = output_within(&mut cmd, COMMAND_DEADLINE);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let (text, code) = stdout.rsplit_once('\n').unwrap_or(("", "0"));
        let text = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        (out.status.success(), code.trim().parse().unwrap_or(0), text)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!(
                    "---- ca-server va output ({}) ----\n{}\n---- end ----",
                    self.url,
                    self.log()
                );
            }
        }
    }
}

/// The `[acme]` table of the CA: http-01 at `http01_port` (lego's), names through `dns`, no
/// denied network, no EAB, both agents, and `extra`.
fn acme_table(http01_port: u16, dns: &str, pki: &Pki, agents: &[&Agent], extra: &str) -> String {
    let urls: Vec<String> = agents.iter().map(|a| format!("\"{}\"", a.url)).collect();
    format!(
        "enabled = true\n\
         eab_required = false\n\
         http01_port = {http01_port}\n\
         dns_resolver = \"{dns}\"\n\
         deny_networks = []\n\
         validation_timeout_secs = 5\n\
         remote_vas = [{}]\n\
         remote_va_cert = \"{}\"\n\
         remote_va_key = \"{}\"\n\
         remote_va_ca_file = \"{}\"\n\
         remote_va_timeout_secs = 10\n\
         {extra}",
        urls.join(", "),
        pki.arg("ca-client.pem"),
        pki.arg("ca-client.key"),
        pki.arg("ca.pem"),
    )
}

/// `lego ... --domains NAME --http --http.port 127.0.0.1:PORT run` against `s`: its exit
/// status and output.
fn lego(s: &Server, clients: &Path, name: &str, http01_port: u16) -> (bool, String) {
    let mut cmd = Command::new("lego");
    cmd.env("LEGO_CA_CERTIFICATES", s.dir.join("ca.pem"))
        .args(["--server", &format!("{}/acme/directory", s.base)])
        .args(["--accept-tos", "--email", "admin@example.com", "--path"])
        .arg(clients.join(name))
        .args(["--domains", name, "--http", "--http.port"])
        .arg(format!("127.0.0.1:{http01_port}"))
        .arg("run");
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    let out = output_within(&mut cmd, COMMAND_DEADLINE);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `GET /metrics` over TLS (curl, the operator token).
fn metrics(s: &Server) -> String {
    let out = output_within(
        Command::new("curl")
            .args(["-sS", "--fail", "--noproxy", "*", "-m", "30", "--cacert"])
            .arg(s.dir.join("ca.pem"))
            .args([
                "-H",
                &format!("Authorization: Bearer {}", s.tokens.operator),
            ])
            .arg(format!("{}/metrics", s.base)),
        COMMAND_DEADLINE,
    );
    assert!(
        out.status.success(),
        "GET /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The sum of the samples of `name` (or `ca_NAME`, as the registry's prefix may make it)
/// whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("ca_{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

#[test]
fn the_quorum_of_remote_perspectives_decides_issuance() {
    let pki = Pki::new();
    let dns = ChallTestSrv::start();
    let (http01_port, dead_port) = (free_port(), free_port());
    let good = Agent::start(&pki, http01_port, &dns.dns);
    let bad = Agent::start(&pki, dead_port, &dns.dns);

    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    let dir_arg = dir.to_str().unwrap();
    ca_server_ok(&["tls-cert", "--data-dir", dir_arg, "--name", "127.0.0.1"]);
    let clients = tmp.path().join("lego");

    // A configuration the CA refuses, each naming its key: a quorum beyond the agents, and
    // agents without the CA's client certificate.
    set_acme_table(
        &dir,
        &acme_table(
            http01_port,
            &dns.dns,
            &pki,
            &[&good, &bad],
            "remote_va_quorum = 3\n",
        ),
    );
    let refused = serve_refused(&dir);
    assert!(
        refused
            .lines()
            .any(|l| l.starts_with("ca-server: ") && l.contains("[acme] remote_va_quorum: 3")),
        "{refused}"
    );
    let without_cert = acme_table(http01_port, &dns.dns, &pki, &[&good, &bad], "").replace(
        &format!("remote_va_cert = \"{}\"", pki.arg("ca-client.pem")),
        "",
    );
    set_acme_table(&dir, &without_cert);
    let refused = serve_refused(&dir);
    assert!(refused.contains("remote_va_cert"), "{refused}");
    // The CA's client key must be readable by its owner only.
    chmod(&pki.path("ca-client.key"), 0o644);
    set_acme_table(
        &dir,
        &acme_table(http01_port, &dns.dns, &pki, &[&good, &bad], ""),
    );
    let refused = serve_refused(&dir);
    assert!(
        refused.contains("remote_va_key") && refused.contains("mode"),
        "{refused}"
    );
    chmod(&pki.path("ca-client.key"), 0o600);

    // Quorum 1: the failing agent is one allowed failure; lego gets its certificate.
    set_acme_table(
        &dir,
        &acme_table(
            http01_port,
            &dns.dns,
            &pki,
            &[&good, &bad],
            "remote_va_quorum = 1\n",
        ),
    );
    let s = Server::serve(&dir);
    let (ok, out) = lego(&s, &clients, "mpic-one.example.com", http01_port);
    assert!(
        ok,
        "lego with quorum 1 failed:\n{out}\n---- ca-server ----\n{}\n---- good agent ----\n{}\n\
         ---- bad agent ----\n{}",
        s.log(),
        good.log(),
        bad.log()
    );
    let cert = clients.join("mpic-one.example.com/certificates/mpic-one.example.com.crt");
    assert!(cert.is_file(), "lego wrote no certificate: {out}");
    let text = metrics(&s);
    let m = "ca_acme_perspective_results_total";
    let check = [("check", "validation")];
    let of = |perspective: &str, outcome: &str| {
        let mut labels = vec![("perspective", perspective), ("outcome", outcome)];
        labels.extend(check);
        sample(&text, m, &labels)
    };
    assert_eq!(of("local", "valid"), 1.0, "{text}");
    assert_eq!(of(&good.url, "valid"), 1.0, "{text}");
    assert_eq!(of(&bad.url, "connection"), 1.0, "{text}");
    // The CA logged the failing perspective; each agent logged its validation.
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains("remote perspective failed") && l.contains(&bad.url)),
        "{log}"
    );
    poll("the agents' log lines", Duration::from_secs(10), || {
        let (g, b) = (good.log(), bad.log());
        let line = |log: &str, outcome: &str| {
            log.lines().any(|l| {
                l.contains("remote validation")
                    && l.contains("mpic-one.example.com")
                    && l.contains(outcome)
            })
        };
        if line(&g, "valid") && line(&b, "connection") {
            Ok(())
        } else {
            Err(format!("good:\n{g}\nbad:\n{b}"))
        }
    });
    s.terminate();

    // Quorum 2: the failing agent breaks the quorum; the challenge's problem names the
    // disagreement and lego fails.
    set_acme_table(
        &dir,
        &acme_table(
            http01_port,
            &dns.dns,
            &pki,
            &[&good, &bad],
            "remote_va_quorum = 2\n",
        ),
    );
    let s = Server::serve(&dir);
    let (ok, out) = lego(&s, &clients, "mpic-two.example.com", http01_port);
    assert!(!ok, "lego with quorum 2 succeeded:\n{out}\n{}", s.log());
    assert!(
        out.contains("During secondary validation")
            && out.contains("1 of 2 remote perspectives agreed with the primary, 2 needed")
            && out.contains(&format!("{}: connection", bad.url))
            && out.contains(&format!("{}: valid", good.url)),
        "lego's output does not name the disagreement:\n{out}\n---- ca-server ----\n{}\n\
         ---- good agent ----\n{}\n---- bad agent ----\n{}",
        s.log(),
        good.log(),
        bad.log()
    );
    let text = metrics(&s);
    assert_eq!(
        sample(
            &text,
            "ca_acme_validations_total",
            &[("type", "http-01"), ("outcome", "connection")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            m,
            &[("perspective", &bad.url), ("outcome", "connection")]
        ),
        1.0,
        "{text}"
    );
    s.terminate();
}

#[test]
fn an_agent_requires_a_client_certificate_and_reads_bad_input_as_a_problem() {
    let pki = Pki::new();
    let dns = ChallTestSrv::start();
    let agent = Agent::start(&pki, free_port(), &dns.dns);
    let request = r#"{"type":"http-01","identifier":{"type":"dns","value":"x.example.com"},"token":"abc","keyAuthorization":"abc.def"}"#;

    // No client certificate: the handshake fails, no HTTP answer.
    let (ok, status, text) = agent.post(&pki, "/va/v1/validate", request, false);
    assert!(
        !ok && status == 0,
        "a client without a certificate was answered {status}: {text}"
    );

    // With the CA's client certificate: bad input is a 400 malformed problem, never a crash.
    for (body, why) in [
        ("not json", "not JSON"),
        (r#"{"type":"http-01"}"#, "fields missing"),
        (
            r#"{"type":"tls-sni-01","identifier":{"type":"dns","value":"a.example"},"token":"t","keyAuthorization":"k"}"#,
            "an unknown challenge",
        ),
        (
            r#"{"type":"http-01","identifier":{"type":"ip","value":"nope"},"token":"t","keyAuthorization":"k"}"#,
            "a bad IP",
        ),
    ] {
        let (ok, status, text) = agent.post(&pki, "/va/v1/validate", body, true);
        assert!(ok && status == 400, "{why}: {status} {text}");
        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(
            doc["type"], "urn:ietf:params:acme:error:malformed",
            "{why}: {text}"
        );
    }
    let big = format!("{{\"token\":\"{}\"}}", "a".repeat(64 * 1024));
    let (_, status, text) = agent.post(&pki, "/va/v1/caa", &big, true);
    assert_eq!(status, 413, "an oversized body: {text}");
    let (_, status, text) = agent.post(&pki, "/va/v1/other", "{}", true);
    assert_eq!(status, 404, "{text}");

    // A well-formed request: the validation's outcome (nothing listens on its port).
    let (ok, status, text) = agent.post(&pki, "/va/v1/validate", request, true);
    assert!(ok && status == 200, "{status} {text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["valid"], false, "{text}");
    assert_eq!(
        answer["problem"]["type"], "urn:ietf:params:acme:error:connection",
        "{text}"
    );
    let caa = r#"{"identifier":{"type":"dns","value":"x.example.com"},"wildcard":false,"identities":["ca.example"],"accountUri":"https://ca.example/acme/acct/1","method":"http-01"}"#;
    let (ok, status, text) = agent.post(&pki, "/va/v1/caa", caa, true);
    assert!(ok && status == 200, "{status} {text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["valid"], true, "no CAA records: {text}");
    assert!(agent.log().contains("remote validation"), "{}", agent.log());

    // An agent whose key others may read refuses to start.
    chmod(&pki.path("agent.key"), 0o644);
    let out = ca_server(&[
        "va",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        &pki.arg("agent.pem"),
        "--key",
        &pki.arg("agent.key"),
        "--client-ca",
        &pki.arg("ca.pem"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("mode 644"),
        "{stderr}"
    );
}
