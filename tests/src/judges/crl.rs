//! CRLs judged: fetched from the server, verified by `openssl crl -CAfile`, linted by pkilint,
//! parsed with x509-parser ([`Crl`]), and used by `openssl verify -crl_check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use x509_parser::prelude::FromDer;

use super::certificates::CaCert;
use super::pkilint::pkilint_crl;
use crate::command::{openssl, output_within, COMMAND_DEADLINE};
use crate::formats::{now_unix, to_pem};
use crate::server::Server;
use crate::unique;

impl Server {
    /// GET /crl (or /crl/delta): asserts 200 and `application/pkix-crl`; the DER.
    fn crl_at(&self, path: &str) -> Vec<u8> {
        let r = self.get(path, None);
        assert_eq!(r.status, 200, "GET {path}: {r}");
        assert_eq!(
            r.content_type, "application/pkix-crl",
            "GET {path}: content type"
        );
        assert!(r.bytes.first() == Some(&0x30), "GET {path}: not DER: {r}");
        r.bytes
    }

    /// The complete CRL being served (GET /crl), DER.
    pub fn crl(&self) -> Vec<u8> {
        self.crl_at("/crl")
    }

    /// The delta CRL being served (GET /crl/delta), DER.
    pub fn delta_crl(&self) -> Vec<u8> {
        self.crl_at("/crl/delta")
    }

    /// Every check on a CRL (complete or delta) in DER: `openssl crl -CAfile` says
    /// `verify OK`, pkilint's PKIX CRL linter finds no ERROR or FATAL; returns it parsed, with
    /// `openssl crl -text`.
    pub fn check_crl(&self, der: &[u8], name: &str) -> Crl {
        check_crl(self.ca(), self.scratch(), der, name)
    }
}

/// A CRL as parsed by x509-parser, with `openssl crl -text`.
#[derive(Clone, Debug)]
pub struct Crl {
    pub der: Vec<u8>,
    /// The DER in a file of the scratch directory.
    pub file: PathBuf,
    /// The CRL number.
    pub number: u128,
    /// The Delta CRL Indicator (the base CRL's number): `Some` for a delta CRL.
    pub delta_base: Option<u128>,
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub entries: Vec<CrlEntry>,
    /// `openssl crl -inform DER -noout -text`.
    pub text: String,
}

/// One revokedCertificates entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    /// Lower-case hex, as the API writes serials.
    pub serial: String,
    pub revoked_at: i64,
    /// The reasonCode (1 keyCompromise, 4 superseded, 6 certificateHold, 8 removeFromCRL...).
    pub reason: Option<u8>,
    pub invalidity_date: Option<i64>,
}

impl Crl {
    /// The entry for a serial.
    pub fn entry(&self, serial: &str) -> Option<&CrlEntry> {
        self.entries.iter().find(|e| e.serial == serial)
    }

    /// The openssl text of one entry: from its `Serial Number:` line to the next one.
    pub fn entry_text(&self, serial: &str) -> Option<String> {
        let want = format!("Serial Number: {}", serial.to_uppercase());
        let mut lines = self.text.lines().skip_while(|l| !l.contains(&want));
        let first = lines.next()?;
        let mut text = format!("{first}\n");
        for l in lines.take_while(|l| !l.contains("Serial Number:") && !l.contains("Signature")) {
            text.push_str(l);
            text.push('\n');
        }
        Some(text)
    }
}

/// A DER INTEGER (tag, short length, content) as u128.
fn der_uint(value: &[u8]) -> Option<u128> {
    match value {
        [0x02, len, rest @ ..] if usize::from(*len) == rest.len() && rest.len() <= 17 => {
            Some(rest.iter().fold(0u128, |n, b| (n << 8) | u128::from(*b)))
        }
        _ => None,
    }
}

/// Parses a DER CRL with x509-parser, asserting that it parses without trailing bytes and
/// carries a CRL number (`file` and `text` are left empty).
pub fn parse_crl(der: &[u8], what: &str) -> Crl {
    use x509_parser::revocation_list::CertificateRevocationList;
    let (rest, crl) = CertificateRevocationList::from_der(der)
        .unwrap_or_else(|e| panic!("{what}: the CRL does not parse: {e}"));
    assert!(rest.is_empty(), "{what}: trailing bytes after the CRL");
    let number: u128 = crl
        .crl_number()
        .unwrap_or_else(|| panic!("{what}: no CRL number"))
        .to_string()
        .parse()
        .unwrap_or_else(|e| panic!("{what}: CRL number too large: {e}"));
    let delta_base = crl
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "2.5.29.27")
        .map(|e| {
            assert!(e.critical, "{what}: Delta CRL Indicator not critical");
            der_uint(e.value)
                .unwrap_or_else(|| panic!("{what}: Delta CRL Indicator is not an INTEGER"))
        });
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| CrlEntry {
            serial: hex::encode(r.raw_serial()),
            revoked_at: r.revocation_date.timestamp(),
            reason: r.reason_code().map(|(_, c)| c.0),
            invalidity_date: r.invalidity_date().map(|(_, t)| t.timestamp()),
        })
        .collect();
    Crl {
        der: der.to_vec(),
        file: PathBuf::new(),
        number,
        delta_base,
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        entries,
        text: String::new(),
    }
}

/// Every check on a DER CRL: `openssl crl -inform DER -CAfile CA -noout` says `verify OK`,
/// `lint_crl -t CRL -p PKIX` finds no ERROR or FATAL, x509-parser parses it (thisUpdate around
/// now, nextUpdate after it). `name` names the file written to `scratch`.
pub fn check_crl(ca: &CaCert, scratch: &Path, der: &[u8], name: &str) -> Crl {
    let what = format!("CRL {name}");
    let file = scratch.join(format!("{name}.der"));
    std::fs::write(&file, der).expect("writing the CRL");
    let file_s = file.to_str().expect("UTF-8 path");
    let ca_s = ca.file.to_str().expect("UTF-8 path");
    let out = output_within(
        Command::new("openssl").args([
            "crl", "-inform", "DER", "-in", file_s, "-CAfile", ca_s, "-noout",
        ]),
        COMMAND_DEADLINE,
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.contains("verify OK"),
        "{what}: `openssl crl -CAfile` did not say verify OK ({}):\n{said}",
        out.status
    );
    let text = openssl(&["crl", "-inform", "DER", "-in", file_s, "-noout", "-text"]);
    pkilint_crl(&file, &what);
    let crl = parse_crl(der, &what);
    let (this_update, next_update) = (crl.this_update, crl.next_update);
    let now = now_unix();
    assert!(
        (this_update - now).abs() < 3600,
        "{what}: thisUpdate {this_update} is not around now ({now})"
    );
    assert!(
        next_update.is_some_and(|n| n > this_update),
        "{what}: nextUpdate {next_update:?} missing or not after thisUpdate"
    );
    Crl { file, text, ..crl }
}

/// `openssl verify -crl_check -CAfile <CA chain + CRLs in PEM> leaf.pem`: whether it
/// succeeded, and its output.
///
/// Only for complete CRLs: OpenSSL applies delta CRLs only when the certificate or the CRL
/// carries a freshestCRL extension, and without `-extended_crl` it may even take a delta CRL
/// for a complete one.
pub fn openssl_verify_crl(ca: &CaCert, crls: &[&Crl], leaf: &Path) -> (bool, String) {
    assert!(
        crls.iter().all(|c| c.delta_base.is_none()),
        "openssl_verify_crl takes complete CRLs only"
    );
    let mut bundle = ca.pem.clone();
    if !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    for crl in crls {
        bundle.push_str(&to_pem("X509 CRL", &crl.der));
    }
    let file = leaf.with_extension(format!("bundle{}.pem", unique()));
    std::fs::write(&file, bundle).expect("writing the CA and CRL bundle");
    let out = output_within(
        Command::new("openssl")
            .args(["verify", "-crl_check", "-CAfile"])
            .arg(&file)
            .arg(leaf),
        COMMAND_DEADLINE,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = out.status.success() && text.lines().any(|l| l.trim_end().ends_with(": OK"));
    (ok, text)
}
