//! Transport and access: TLS with the CA's own server certificate (checked with OpenSSL and
//! curl), client certificates mapped to roles, plain HTTP refused off loopback, and the
//! limits: request rate per client, connections, slow clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::prelude::*;
use e2e_tests::raw_http::{
    connections_open, take_api_slots, take_slots_when_free, wait_for_a_free_slot,
};
use serde_json::json;

/// Turns on client certificates from this CA (`client_ca_file = "ca.pem"`) with `clients`, the
/// TOML of the `[[tls.clients]]` entries.
fn map_client_certificates(dir: &Path, clients: &str) {
    configure(
        dir,
        &[("client_ca_file = \"\"", "client_ca_file = \"ca.pem\"")],
        &format!("\n{clients}"),
    );
}

/// A `tls-client` certificate for `subj` issued through `s` by its RA, on a new P-256 key:
/// (certificate file, key file, serial).
fn client_certificate(
    s: &Server,
    tmp: &Path,
    file: &str,
    subj: &str,
) -> (PathBuf, PathBuf, String) {
    let key = fresh_p256_key(tmp);
    let cert = tmp.join(format!("{file}.pem"));
    let serial = s.tls_client_certificate(&key, subj, &[&format!("DNS:{file}.example")], &cert);
    (cert, key, serial)
}

/// Turns TLS on with the CA's own server certificate for `ca.test.example` and 127.0.0.1.
fn tls_on(dir: &Path) {
    ca_server_ok(&[
        "tls-cert",
        "--data-dir",
        dir.to_str().unwrap(),
        "--name",
        "ca.test.example",
        "--name",
        "127.0.0.1",
    ]);
}

/// curl over TLS against the server as `ca.test.example`, trusting only the CA; (HTTP
/// status, body).
fn curl(s: &Server, path: &str, extra: &[&str]) -> (u16, String) {
    curl_at(s, "ca.test.example", path, extra)
}

/// `openssl s_client` verifies the server certificate against the CA in `dir`, for the
/// name `ca.test.example`, over TLS 1.3.
fn the_server_certificate_verifies_for_its_name(s: &Server, dir: &Path) {
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let out = output_within(
        Command::new("openssl").args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            dir.join("ca.pem").to_str().unwrap(),
            "-verify_hostname",
            "ca.test.example",
            "-verify_return_error",
        ]),
        COMMAND_DEADLINE,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Verify return code: 0 (ok)") && text.contains("TLSv1.3"),
        "s_client: {text}"
    );
}

#[test]
fn tls_with_the_cas_own_certificate_and_client_certificates_as_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    // Client certificates for a portal and a stranger, issued by this CA (tls-client) while
    // plain.
    let plain = Server::serve(&dir);
    let (client_cert, key, _) =
        client_certificate(&plain, tmp.path(), "portal", "/O=Example/CN=portal");
    let (stranger_cert, stranger_key, _) =
        client_certificate(&plain, tmp.path(), "stranger", "/CN=stranger");
    let tokens = plain.tokens.clone();
    plain.terminate();
    tls_on(&dir);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("tls-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the TLS key is 0600");
    map_client_certificates(
        &dir,
        &format!(
            "[[tls.clients]]\ncertificate_sha256 = \"{}\"\nrole = \"auditor\"\nname = \"portal\"\n",
            sha256_fingerprint(&client_cert)
        ),
    );
    let s = Server::serve(&dir);
    assert!(s.base.starts_with("https://"), "TLS is on: {}", s.base);

    // The server certificate verifies with OpenSSL against the CA, for its name.
    the_server_certificate_verifies_for_its_name(&s, &dir);

    let (code, body) = curl(&s, "/healthz", &[]);
    assert_eq!(
        (code, body.contains("ok")),
        (200, true),
        "GET /healthz over TLS: {body}"
    );
    let bearer = format!("Authorization: Bearer {}", tokens.auditor);
    assert_eq!(
        curl(&s, "/v1/audit?limit=1", &["-H", &bearer]).0,
        200,
        "a token over TLS"
    );
    // No token, no certificate: 401. The mapped client certificate acts as its role.
    assert_eq!(curl(&s, "/v1/audit?limit=1", &[]).0, 401);
    let portal = curl_client_cert(&client_cert, &key);
    let (code, body) = curl(&s, "/v1/audit?limit=1", &portal);
    assert_eq!(
        code, 200,
        "the portal's certificate reads the audit log: {body}"
    );
    let (code, body) = curl(
        &s,
        "/v1/crl/generate",
        &[&portal[..], &["-X", "POST"]].concat(),
    );
    assert_eq!(
        code, 403,
        "an auditor certificate may not generate CRLs: {body}"
    );
    assert!(body.contains("\"forbidden\""), "{body}");
    let stranger = curl_client_cert(&stranger_cert, &stranger_key);
    let (code, body) = curl(&s, "/v1/audit?limit=1", &stranger);
    assert_eq!(code, 401, "an unmapped certificate is no one: {body}");
    assert!(
        body.contains("not mapped to a role"),
        "the answer says why: {body}"
    );
    plain_http_on_the_tls_port_reaches_no_api(&s, &tokens.auditor);
    s.terminate();
}

/// Plain HTTP on the TLS port reaches only the status routes, never the API (`token`: the
/// auditor's).
fn plain_http_on_the_tls_port_reaches_no_api(s: &Server, token: &str) {
    let plain = s.base.replace("https://", "http://");
    let r = s.send(
        http_client()
            .get(format!("{plain}/v1/audit?limit=1"))
            .bearer_auth(token),
        "plain GET /v1/audit on the TLS port",
    );
    assert_error(&r, 404, "not_found", "the API over plain HTTP");
    assert!(r.text.contains("https"), "the answer says where: {r}");
}

#[test]
fn init_can_issue_the_servers_tls_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out = ca_server(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
        "--tls-name",
        "ca.test.example",
        "--tls-name",
        "127.0.0.1",
    ]);
    assert!(
        out.status.success(),
        "init --tls-name: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Server::serve(&dir);
    assert!(
        s.base.starts_with("https://"),
        "TLS is on after init: {}",
        s.base
    );
    let (code, _) = curl(&s, "/healthz", &[]);
    assert_eq!(code, 200);
    // The CA signed the server's certificate, so it is recorded (requester `(ca)`) and
    // audited like every certificate the CA key signs; no token may take that name.
    let auth = format!("Authorization: Bearer {}", s.tokens.auditor);
    let (code, body) = curl(&s, "/v1/certificates?profile=ca-server-tls", &["-H", &auth]);
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let items = list["items"].as_array().expect("items");
    assert!(
        items.len() == 1 && items[0]["requester"] == "(ca)",
        "the server's certificate is recorded as the CA's: {body}"
    );
    s.terminate();
}

/// `openssl s_client` against `addr` for `name`, trusting only `ca`: whether the server's
/// certificate verifies for that name.
fn s_client_verifies(addr: &str, ca: &Path, name: &str) -> (bool, String) {
    let out = output_within(
        Command::new("openssl")
            .args(["s_client", "-connect", addr, "-CAfile"])
            .arg(ca)
            .args([
                if name.parse::<std::net::IpAddr>().is_ok() {
                    "-verify_ip"
                } else {
                    "-verify_hostname"
                },
                name,
                "-verify_return_error",
            ]),
        COMMAND_DEADLINE,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (text.contains("Verify return code: 0 (ok)"), text)
}

/// The server's own certificate answers to the names the operator reaches it by: a single
/// label (`localhost`) and IP addresses alone, which the `tls-server` subscriber profile
/// refuses; a malformed name is refused with the flag that gave it.
#[test]
fn the_servers_own_certificate_takes_single_labels_and_ip_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    let d = dir.to_str().unwrap();
    let out = ca_server(&["tls-cert", "--data-dir", d, "--name", "bad_name"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--name \"bad_name\"") && !err.contains("--dns"),
        "a malformed name is refused, naming --name: {err}"
    );
    let out = ca_server(&[
        "init",
        "--data-dir",
        &format!("{d}-2"),
        "--tls-name",
        "a..b",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--tls-name \"a..b\""),
        "init names --tls-name: {err}"
    );
    ca_server_ok(&[
        "tls-cert",
        "--data-dir",
        d,
        "--name",
        "localhost",
        "--name",
        "127.0.0.1",
    ]);
    let s = Server::serve(&dir);
    let addr = s.base.trim_start_matches("https://").to_string();
    for name in ["localhost", "127.0.0.1"] {
        let (ok, text) = s_client_verifies(&addr, &dir.join("ca.pem"), name);
        assert!(ok, "the certificate verifies for {name}: {text}");
    }
    s.terminate();

    // An IP address alone.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let d = dir.to_str().unwrap();
    ca_server_ok(&["init", "--data-dir", d, "--tls-name", "127.0.0.1"]);
    let s = Server::serve(&dir);
    let addr = s.base.trim_start_matches("https://").to_string();
    let (ok, text) = s_client_verifies(&addr, &dir.join("ca.pem"), "127.0.0.1");
    assert!(ok, "an IP-only certificate verifies: {text}");
    s.terminate();
}

/// Relying parties check status over plain HTTP (RFC 5280 section 8): after `tls-cert`, new
/// certificates name the plain-HTTP status listener, and `openssl ocsp -url` and `openssl
/// crl` work with the URLs in them; certificates issued before, which name the API's port,
/// keep working because plain HTTP on the TLS port reaches the status routes.
#[test]
fn status_urls_in_certificates_issued_after_tls_cert_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    let d = dir.to_str().unwrap();
    let out = ca_server_ok(&[
        "tls-cert",
        "--data-dir",
        d,
        "--name",
        "localhost",
        "--name",
        "127.0.0.1",
    ]);
    assert!(
        out.contains("[public] listen"),
        "tls-cert says where status is served: {out}"
    );
    let s = Server::serve(&dir);
    assert!(s.base.starts_with("https://"), "TLS is on: {}", s.base);
    let public = s.public.clone().expect("the status listener is announced");
    assert!(public.starts_with("http://127.0.0.1:"), "{public}");
    let issued = issue_over_tls(&s);
    the_named_status_urls_work(&s, &public, &issued);

    // A certificate issued before `tls-cert` names the API's port over plain HTTP.
    let leaf = s.leaf_file(&issued);
    let leaf = leaf.to_str().unwrap();
    let old = s.base.replace("https://", "http://");
    let answer = s.ocsp_ask(&format!("{old}/ocsp"), &["-cert", leaf]);
    assert!(answer.contains(": good"), "OCSP on the TLS port: {answer}");
    let r = s.send(
        http_client().get(format!("{old}/crl")),
        &format!("{old}/crl"),
    );
    assert_eq!(r.status, 200, "GET {old}/crl: {r}");
    s.check_crl(&r.bytes, "the CRL on the TLS port");
    assert_eq!(
        curl_at(&s, "localhost", "/healthz", &[]).0,
        200,
        "TLS still works there"
    );
    s.terminate();

    // Without the status listener, derived URLs would name a TLS port: refused, saying how.
    configure(
        &dir,
        &[("\n[public]\nlisten = ", "\n[public]\n#listen = ")],
        "",
    );
    let err = serve_refused(&dir);
    assert!(
        err.contains("[public]") && err.contains("RFC 5280"),
        "the refusal says what to set: {err}"
    );
    // Explicit URLs elsewhere (a CDN) are allowed, with a warning.
    configure(
        &dir,
        &[("\n[urls]\ncrl = []\nocsp = []\nca_issuers = []", "")],
        "\n[urls]\ncrl = [\"http://crl.cdn.example/ca.crl\"]\nocsp = [\"http://ocsp.cdn.example\"]\nca_issuers = [\"http://crl.cdn.example/ca.der\"]\n",
    );
    let s = Server::serve(&dir);
    let log = s.log();
    assert!(
        log.contains("http://ocsp.cdn.example is not served by this server"),
        "a warning names the URL: {log}"
    );
    s.terminate();
}

/// An RA issues a tls-server certificate over TLS (curl, at 127.0.0.1): the answer.
fn issue_over_tls(s: &Server) -> serde_json::Value {
    let csr = server_csr("leaf.test.example.com");
    let body = json!({"csr": csr.pem, "profile": "tls-server"}).to_string();
    let bearer = format!("Authorization: Bearer {}", s.tokens.ra);
    let (code, text) = curl_at(
        s,
        "127.0.0.1",
        "/v1/certificates",
        &[
            "-H",
            &bearer,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
        ],
    );
    assert_eq!(code, 201, "issued over TLS: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The certificate of `issued` names the status listener at `public` for its CRL, OCSP and
/// caIssuers URLs, and each works there (OCSP: good; the CRL passes every check; caIssuers
/// serves the CA); the status listener serves nothing else.
fn the_named_status_urls_work(s: &Server, public: &str, issued: &serde_json::Value) {
    let (crl, ocsp, ca_issuers) = cert_urls(issued["certificate"].as_str().unwrap());
    assert_eq!(
        (crl.clone(), ocsp.clone(), ca_issuers.clone()),
        (
            vec![format!("{public}/crl")],
            vec![format!("{public}/ocsp")],
            vec![format!("{public}/ca.der")]
        ),
        "the certificate names the status listener"
    );
    let leaf = s.leaf_file(issued);
    let leaf = leaf.to_str().unwrap();
    let answer = s.ocsp_ask(&ocsp[0], &["-cert", leaf]);
    assert!(
        answer.contains(": good"),
        "openssl ocsp -url {}: {answer}",
        ocsp[0]
    );
    let client = http_client();
    let fetch = |url: &str| {
        let r = s.send(client.get(url), url);
        assert_eq!(r.status, 200, "GET {url}: {r}");
        r.bytes
    };
    s.check_crl(
        &fetch(&crl[0]),
        "the CRL at the certificate's distribution point",
    );
    assert_eq!(
        fetch(&ca_issuers[0]),
        s.ca().ders[0],
        "caIssuers serves the CA"
    );
    // The status listener serves nothing else.
    let r = s.send(
        client
            .get(format!("{public}/v1/audit"))
            .bearer_auth(&s.tokens.auditor),
        "GET /v1/audit on the status listener",
    );
    assert_error(&r, 404, "not_found", "the API on the status listener");
}

/// curl over TLS to `host` (which the server's certificate names) at the server's port;
/// (HTTP status, body).
fn curl_at(s: &Server, host: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let port = s.base.rsplit(':').next().unwrap();
    let resolve = format!("{host}:{port}:127.0.0.1");
    let out = output_within(
        Command::new("curl")
            .args([
                "-s",
                "-m",
                "60",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(s.dir.join("ca.pem"))
            .args(["--resolve", &resolve])
            .args(extra)
            .arg(format!("https://{host}:{port}{path}")),
        COMMAND_DEADLINE,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn plain_http_is_refused_off_loopback_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    let err = serve_refused_on(&dir, "0.0.0.0:0");
    assert!(
        err.contains("refusing to serve plain HTTP") && err.contains("tls-cert"),
        "{err}"
    );

    // Allowed: past that check, the URLs derived from 0.0.0.0 are refused next...
    configure(
        &dir,
        &[("allow_plain_http = false", "allow_plain_http = true")],
        "",
    );
    let err = serve_refused_on(&dir, "0.0.0.0:0");
    assert!(
        !err.contains("refusing to serve plain HTTP") && err.contains("no client can reach"),
        "with allow_plain_http, only the unreachable derived URLs are refused: {err}"
    );
    // ...and with a public base URL, the server serves plain HTTP on every address.
    configure(
        &dir,
        &[(
            "\npublic_base_url = \"\"",
            "\npublic_base_url = \"http://ca.example.test\"",
        )],
        "",
    );
    let s = Server::serve_on(&dir, "0.0.0.0:0");
    let port = s
        .base
        .strip_prefix("http://0.0.0.0:")
        .unwrap_or_else(|| panic!("listening on {}, not http://0.0.0.0:PORT", s.base));
    let r = http_client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "GET /healthz over plain HTTP off loopback");
    s.terminate();
}

#[test]
fn rate_connection_and_slow_client_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    configure(
        &dir,
        &[
            ("\nrequests_per_second = 0.0", "\nrequests_per_second = 5.0"),
            ("\nburst = 100.0", "\nburst = 5.0"),
            ("max_connections = 1024", "max_connections = 3"),
            ("header_timeout_secs = 10", "header_timeout_secs = 1"),
        ],
        "",
    );
    let s = Server::serve(&dir);
    // One client over its rate gets 429 with Retry-After; another client is unaffected.
    let client = http_client();
    let mut limited = None;
    for _ in 0..20 {
        let r = client
            .get(format!("{}/v1/audit?limit=1", s.base))
            .bearer_auth(&s.tokens.auditor)
            .send()
            .unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("20 requests at once exceed 5/s with a burst of 5");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let other = client
        .get(format!("{}/v1/audit?limit=1", s.base))
        .bearer_auth(&s.tokens.operator)
        .send()
        .unwrap();
    assert_ne!(other.status(), 429, "the operator has its own bucket");
    poll("the bucket refills", Duration::from_secs(10), || {
        let again = client
            .get(format!("{}/v1/audit?limit=1", s.base))
            .bearer_auth(&s.tokens.auditor)
            .send()
            .map_err(|e| e.to_string())?;
        match again.status().as_u16() {
            200 => Ok(()),
            status => Err(format!("status {status}")),
        }
    });
    drop(client);

    // Connections beyond the limit get one 429 and are closed; the server stays up. A slow
    // client that never finishes its headers is dropped after header_timeout_secs.
    let addr = s.base.trim_start_matches("http://").to_string();
    connections_over_3_get_429(take_api_slots(&s, &addr, 3), &addr, "/healthz");
    slow_headers_are_dropped_after_1_s(&addr, "/healthz");
    assert_eq!(s.get("/healthz", None).status, 200, "the server is up");
    s.terminate();
}

/// Security finding 2: an RA can have any subject certified with the `tls-client` profile, so
/// a subject-only mapping under this CA would let it become the mapped role. Such a mapping
/// (as configurations written before fingerprints had it) still loads, is named in a warning,
/// and maps no one; the fingerprint mapping of the real portal keeps working.
#[test]
fn an_ra_cannot_become_a_mapped_role_by_choosing_its_subject() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    let plain = Server::serve(&dir);
    let (portal, portal_key, _) =
        client_certificate(&plain, tmp.path(), "portal", "/O=Example/CN=portal");
    // The attacker: an RA issuing itself a certificate with the auditor's subject.
    let (forged, forged_key, _) =
        client_certificate(&plain, tmp.path(), "forged", "/O=Example/CN=portal");
    let tokens = plain.tokens.clone();
    plain.terminate();
    tls_on(&dir);
    map_client_certificates(
        &dir,
        &format!(
            "[[tls.clients]]\nsubject = \"CN=operator-console,O=Example\"\nrole = \"operator\"\nname = \"console\"\n\n\
             [[tls.clients]]\nsubject = \"CN=portal,O=Example\"\nrole = \"auditor\"\nname = \"portal\"\n\n\
             [[tls.clients]]\ncertificate_sha256 = \"{}\"\nsubject = \"CN=portal,O=Example\"\nrole = \"auditor\"\nname = \"portal-fp\"\n",
            sha256_fingerprint(&portal)
        ),
    );
    let s = Server::serve(&dir);
    let (code, body) = curl(
        &s,
        "/v1/audit?limit=1",
        &curl_client_cert(&forged, &forged_key),
    );
    assert_eq!(
        code, 401,
        "a certificate the RA chose the subject of is no one: {body}"
    );
    let (code, body) = curl(
        &s,
        "/v1/audit?limit=1",
        &curl_client_cert(&portal, &portal_key),
    );
    assert_eq!(code, 200, "the fingerprint mapping still works: {body}");
    let bearer = format!("Authorization: Bearer {}", tokens.auditor);
    assert_eq!(curl(&s, "/v1/audit?limit=1", &["-H", &bearer]).0, 200);
    let log = s.log();
    for name in ["console", "portal"] {
        assert!(
            log.contains(&format!("[[tls.clients]] name \\\"{name}\\\" is IGNORED"))
                || log.contains(&format!("[[tls.clients]] name \"{name}\" is IGNORED")),
            "the log names the subject-only mapping {name}: {log}"
        );
    }
    s.terminate();
}

/// Security finding 2: a client certificate this CA issued and then revoked loses its role at
/// once, after a CRL and after a restart.
#[test]
fn a_revoked_or_held_client_certificate_loses_its_role() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    let plain = Server::serve(&dir);
    let (cert, key, serial) = client_certificate(&plain, tmp.path(), "ra-client", "/CN=ra-client");
    let tokens = plain.tokens.clone();
    plain.terminate();
    tls_on(&dir);
    map_client_certificates(
        &dir,
        &format!(
            "[[tls.clients]]\ncertificate_sha256 = \"{}\"\nrole = \"auditor\"\nname = \"console\"\n",
            sha256_fingerprint(&cert)
        ),
    );
    let s = Server::serve(&dir);
    let args = curl_client_cert(&cert, &key);
    let get = format!("/v1/certificates/{serial}");
    let (code, body) = curl(&s, &get, &args);
    assert_eq!(
        code, 200,
        "the mapped certificate acts as the auditor: {body}"
    );
    // No token may take the client certificate's name (it would own what the name requested).
    let op = format!("Authorization: Bearer {}", tokens.operator);
    let (code, body) = curl(
        &s,
        "/v1/tokens",
        &["-H", &op, "--data", r#"{"role": "ra", "name": "console"}"#],
    );
    assert_eq!(code, 409, "a token named like a client certificate: {body}");
    assert!(body.contains("token_name_taken"), "{body}");
    let bearer = format!("Authorization: Bearer {}", tokens.ra);
    // On hold, the certificate is no one; released, it is the auditor again.
    let (code, body) = curl(
        &s,
        &format!("/v1/certificates/{serial}/revoke"),
        &["-H", &bearer, "--data", r#"{"reason": "certificateHold"}"#],
    );
    assert_eq!(code, 200, "holding the client certificate: {body}");
    let (code, body) = curl(&s, &get, &args);
    assert_eq!(code, 401, "a held certificate is no one: {body}");
    let (code, body) = curl(
        &s,
        &format!("/v1/certificates/{serial}/release-hold"),
        &["-H", &bearer, "-X", "POST"],
    );
    assert_eq!(code, 200, "releasing the hold: {body}");
    let (code, body) = curl(&s, &get, &args);
    assert_eq!(code, 200, "released, the auditor again: {body}");
    let (code, body) = curl(
        &s,
        &format!("/v1/certificates/{serial}/revoke"),
        &["-H", &bearer, "--data", r#"{"reason": "keyCompromise"}"#],
    );
    assert_eq!(code, 200, "revoking the client certificate: {body}");
    let (code, body) = curl(&s, &get, &args);
    assert_eq!(code, 401, "a revoked certificate is no one: {body}");
    assert!(
        body.contains("certificate is revoked"),
        "the answer says why: {body}"
    );
    let op = format!("Authorization: Bearer {}", tokens.operator);
    assert_eq!(
        curl(&s, "/v1/crl/generate", &["-H", &op, "-X", "POST"]).0,
        200
    );
    s.terminate();
    let s = Server::serve(&dir);
    let (code, body) = curl(&s, &get, &args);
    assert_eq!(code, 401, "still no one after a restart: {body}");
    s.terminate();
}

/// The status listener is as exposed as the API and has its limits: a client over
/// `public_requests_per_second` gets 429, connections beyond `max_connections` get one 429
/// and are closed, a client that never finishes its headers is dropped after
/// `header_timeout_secs`.
#[test]
fn the_status_listener_has_the_apis_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    tls_on(&dir);
    configure(
        &dir,
        &[
            (
                "public_requests_per_second = 100.0",
                "public_requests_per_second = 5.0",
            ),
            ("public_burst = 1000.0", "public_burst = 5.0"),
            ("max_connections = 1024", "max_connections = 3"),
            ("header_timeout_secs = 10", "header_timeout_secs = 1"),
        ],
        "",
    );
    let s = Server::serve(&dir);
    let public = s.public.clone().expect("the status listener");
    let client = http_client();
    let statuses: Vec<u16> = (0..20)
        .map(|_| {
            s.send(client.get(format!("{public}/ca.der")), "GET /ca.der")
                .status
        })
        .collect();
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "20 requests at once exceed 5/s with a burst of 5: {statuses:?}"
    );
    drop(client);

    let addr = public.trim_start_matches("http://").to_string();
    // The public listener's connections, read from the API (over TLS, with curl).
    let operator = format!("Authorization: Bearer {}", s.tokens.operator);
    let held = take_slots_when_free(&addr, 3, || {
        let (status, body) = curl(&s, "/metrics", &["-H", &operator]);
        (status == 200)
            .then(|| connections_open(&body, "public"))
            .flatten()
    });
    connections_over_3_get_429(held, &addr, "/ca.der");
    slow_headers_are_dropped_after_1_s(&addr, "/crl");
    s.terminate();
}

/// With `max_connections = 3` and three connections `held` open, a fourth to `addr` gets one
/// 429 with `Retry-After` and is closed; once they close, a new one is served.
fn connections_over_3_get_429(held: Vec<TcpStream>, addr: &str, path: &str) {
    let mut extra = TcpStream::connect(addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    extra
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 429") && answer.contains("retry-after: 1"),
        "over the limit: {answer}"
    );
    drop(held);
    wait_for_a_free_slot(addr, path);
}

/// With `header_timeout_secs = 1`, a client that never finishes its headers is dropped after
/// about a second.
fn slow_headers_are_dropped_after_1_s(addr: &str, path: &str) {
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(format!("GET {path} HTTP/1.1\r\nHo").as_bytes())
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "the slow client was dropped after {waited:?}, not after the 1 s header deadline"
    );
}
