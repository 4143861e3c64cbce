//! EST (RFC 7030) as a device speaks it: curl for HTTP over TLS and openssl for requests,
//! certs-only answers and keys, against a server with the CA's own TLS certificate and
//! `[est] enabled = true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::binary::ca_server_ok;
use crate::command::{openssl, output_within, COMMAND_DEADLINE};
use crate::data_dir::configure;
use crate::judges::certificates::CaCert;
use crate::server::Server;
use crate::unique;

/// The name the CA's TLS certificate is for; curl resolves it to the loopback port.
pub const EST_HOST: &str = "ca.test.example";

/// Turns TLS on in `dir` with the CA's own server certificate for [`EST_HOST`], and EST on
/// with `tls-client` as its default profile and `personal` as a labelled one, plus `toml`.
pub fn est_on(dir: &Path, toml: &str) {
    ca_server_ok(&[
        "tls-cert",
        "--data-dir",
        dir.to_str().unwrap(),
        "--name",
        EST_HOST,
        "--name",
        "127.0.0.1",
    ]);
    configure(
        dir,
        &[
            ("[est]\nenabled = false", "[est]\nenabled = true"),
            (
                "profile = \"tls-client\"\nprofiles = []",
                "profile = \"tls-client\"\nprofiles = [\"personal\"]",
            ),
        ],
        toml,
    );
}

/// One curl exchange: the status, the response headers (lower-case names) and the body.
#[derive(Debug)]
pub struct Curl {
    /// The HTTP status (0 when curl failed to connect).
    pub status: u16,
    /// The response head as curl wrote it, lower-cased.
    pub headers: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Curl {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim().to_string())
        })
    }
}

/// curl over TLS to `path` of `s` as [`EST_HOST`], trusting only the CA (`--cacert`), with
/// `extra` arguments.
pub fn curl(s: &Server, path: &str, extra: &[&str]) -> Curl {
    let port = s.base.rsplit(':').next().unwrap();
    let head = s.scratch().join(format!("head-{}", unique()));
    let out = output_within(
        Command::new("curl")
            .args(["-s", "-m", "60", "-o", "-", "-w", "%{http_code}", "-D"])
            .arg(&head)
            .arg("--cacert")
            .arg(s.dir.join("ca.pem"))
            .args(["--resolve", &format!("{EST_HOST}:{port}:127.0.0.1")])
            .args(extra)
            .arg(format!("https://{EST_HOST}:{port}{path}")),
        COMMAND_DEADLINE,
    );
    let mut body = out.stdout;
    let status_at = body.len().saturating_sub(3);
    let status = String::from_utf8_lossy(&body[status_at..])
        .parse()
        .unwrap_or(0);
    body.truncate(status_at);
    let headers = std::fs::read_to_string(&head)
        .unwrap_or_default()
        .to_ascii_lowercase();
    Curl {
        status,
        headers,
        body,
    }
}

/// A JSON API call over TLS with curl and a bearer token: (status, JSON body or Null).
pub fn curl_json(
    s: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let bearer = format!("Authorization: Bearer {token}");
    let mut args = vec!["-X", method, "-H", &bearer];
    let text = body.map(Value::to_string);
    if let Some(text) = &text {
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            text,
        ]);
    }
    let r = curl(s, path, &args);
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// Creates an enrolment with the RA token through the JSON API: (id, code).
pub fn create_enrolment(s: &Server, body: &Value) -> (String, String) {
    let (status, json) = curl_json(s, "POST", "/v1/enrollments", &s.tokens.ra, Some(body));
    assert_eq!(status, 201, "POST /v1/enrollments: {json}");
    (
        json["id"].as_str().expect("id").to_string(),
        json["code"].as_str().expect("code").to_string(),
    )
}

/// `openssl req -new` for `key` and `subj` (and `extra` arguments), written as an EST body:
/// base64 of the DER request, by `openssl base64`.
pub fn est_csr(dir: &Path, key: &Path, subj: &str, extra: &[&str]) -> PathBuf {
    let der = dir.join(format!("csr-{}.der", unique()));
    let b64 = der.with_extension("b64");
    let mut args = vec![
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        subj,
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ];
    args.extend(extra);
    openssl(&args);
    openssl(&[
        "base64",
        "-in",
        der.to_str().unwrap(),
        "-out",
        b64.to_str().unwrap(),
    ]);
    b64
}

/// The certificates of a base64 certs-only answer, as `openssl base64 -d | openssl pkcs7
/// -inform DER -print_certs` prints them (PEM with subject and issuer lines), written to a
/// PEM file of the certificates alone: (text, file).
pub fn print_certs(dir: &Path, body: &[u8]) -> (String, PathBuf) {
    let b64 = dir.join(format!("p7-{}.b64", unique()));
    let der = b64.with_extension("der");
    let pem = b64.with_extension("pem");
    std::fs::write(&b64, body).unwrap();
    openssl(&[
        "base64",
        "-d",
        "-in",
        b64.to_str().unwrap(),
        "-out",
        der.to_str().unwrap(),
    ]);
    let text = openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-print_certs",
        "-out",
        pem.to_str().unwrap(),
    ]);
    let text = text + &std::fs::read_to_string(&pem).unwrap();
    // The certificates alone (no subject and issuer lines), for pkilint.
    let blocks: String = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter_map(|b| b.find("-----BEGIN CERTIFICATE-----").map(|at| &b[at..]))
        .map(|b| format!("{b}\n"))
        .collect();
    std::fs::write(&pem, blocks).unwrap();
    (text, pem)
}

/// The CA of `s` as its data directory holds it (`ca.pem`): the JSON client of the harness
/// does not speak TLS to the CA's own certificate.
pub fn est_ca(s: &Server) -> CaCert {
    let pem = std::fs::read_to_string(s.dir.join("ca.pem")).unwrap();
    CaCert::from_pem(&pem, s.scratch())
}

/// A certificate file's subject (`openssl x509 -noout -subject`), serial and public key
/// (PEM).
pub fn subject_serial_key(cert: &Path) -> (String, String, String) {
    let path = cert.to_str().unwrap();
    let subject = openssl(&[
        "x509", "-in", path, "-noout", "-subject", "-nameopt", "RFC2253",
    ]);
    let serial = openssl(&["x509", "-in", path, "-noout", "-serial"]);
    let key = openssl(&["x509", "-in", path, "-noout", "-pubkey"]);
    (
        subject.trim().trim_start_matches("subject=").to_string(),
        serial
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase(),
        key,
    )
}
