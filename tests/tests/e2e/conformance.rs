//! Profiles as certificate policies, judged by pkilint's CA/Browser Forum linters: every
//! built-in profile, across its key types and SAN forms, issues certificates with no ERROR
//! or FATAL finding in the linter of the standard it claims; the development root passes
//! the CA/B root checks; the CRL passes the BR CRL profile; a custom profile from TOML
//! (docs/profiles/icp-brasil-a1.toml) issues its policy, CPS, otherName SANs and extra
//! extension, read back with OpenSSL and with x509-parser; the ETSI example profile
//! (docs/profiles/etsi-qcp-n-qscd.toml) issues EU qualified signature certificates that
//! pkilint's ETSI linter passes as QCP-n-qscd.

use std::path::Path;

use e2e_tests::prelude::*;
use serde_json::{json, Value};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// Writes `pem` under `dir` and runs `tool lint ARGS` on it, asserting no ERROR or FATAL
/// finding.
fn lint(tool: &str, args: &[&str], pem: &str, dir: &Path, what: &str) {
    let name: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let file = dir.join(format!("{name}.pem"));
    std::fs::write(&file, pem).expect("write the certificate");
    let report = pkilint_run(tool, args, &file);
    assert!(
        report.findings.is_empty(),
        "{what}: {tool} found {:?}\n{}",
        report.codes(),
        report.output
    );
}

/// A server whose certificates name public URLs, as a publicly trusted CA's must (the CA/B
/// linters refuse internal names such as 127.0.0.1 in CRL and AIA URLs), with `profiles`
/// added to its configuration.
fn server(profiles: &str) -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = format!("public_base_url = \"http://ca.example.com\"\n{profiles}");
    std::fs::write(tmp.path().join("config.toml"), config).expect("config.toml");
    let s = Server::serve(tmp.path());
    (tmp, s)
}

fn issue(s: &Server, body: &Value, what: &str) -> String {
    let r = s.post("/v1/certificates", &s.tokens.ra, body);
    assert_eq!(r.status, 201, "{what}: {r}");
    r.json["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no certificate: {r}"))
        .to_string()
}

#[test]
fn tls_server_certificates_pass_the_cabf_serverauth_linter() {
    let (dir, s) = server("");
    let forms: [(&str, &[&str]); 4] = [
        ("", &["DNS:a.example.com"]),
        (
            "/CN=www.example.com",
            &["DNS:www.example.com", "DNS:*.example.com"],
        ),
        // Public names and addresses: the BR allow no internal names or reserved addresses
        // (7.1.2.7.12), which the profile refuses (san.public_only).
        ("", &["IP:1.1.1.1", "DNS:b.example.com"]),
        ("/CN=2606:4700:4700::1111", &["IP:2606:4700:4700::1111"]),
    ];
    for key in ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"] {
        for (subj, sans) in forms {
            let csr = make_csr(key, subj, sans);
            let what = format!("tls-server {key} {subj} {sans:?}");
            let pem = issue(&s, &json!({"csr": csr.pem, "profile": "tls-server"}), &what);
            lint(
                "lint_cabf_serverauth_cert",
                &["-d"],
                &pem,
                dir.path(),
                &what,
            );
            let der = pem_certs(&pem).remove(0);
            let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)
                .expect("the certificate parses");
            assert!(
                cert.extensions()
                    .iter()
                    .all(|e| e.oid.to_id_string() != "2.5.29.14"),
                "{what}: no subjectKeyIdentifier in a TLS subscriber certificate"
            );
        }
    }
    // Ed25519 is not a key type of the TLS BR (7.1.3.1).
    let ed = make_csr("ed25519", "", &["DNS:a.example.com"]);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": ed.pem, "profile": "tls-server"}),
    );
    assert_error(&r, 422, "key_type_not_allowed", "Ed25519 under tls-server");
    // A validity beyond the BR's limit in force (200 days from 2026-03-15).
    let csr = make_csr("ec-p256", "", &["DNS:a.example.com"]);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": csr.pem, "profile": "tls-server", "validity_days": 397}),
    );
    assert_error(&r, 422, "validity_not_allowed", "397 days under tls-server");
    // The development root: a CA certificate with its countryName.
    lint(
        "lint_cabf_serverauth_cert",
        &["-d"],
        &s.ca().pem,
        dir.path(),
        "development root",
    );
}

#[test]
fn personal_certificates_pass_the_cabf_smime_linter() {
    let (dir, s) = server("");
    let email = "email:maria.silva@example.com";
    // (CSR subject, identity subject, what): mailbox-validated, individual-validated by a
    // personal name, by a pseudonym.
    let forms = [
        ("/CN=maria.silva@example.com", "", "mailbox"),
        ("", "", "mailbox without subject"),
        (
            "/CN=Maria Silva",
            "SN=Silva,GN=Maria",
            "individual with a personal name",
        ),
        (
            "/CN=Maria Silva",
            "serialNumber=IDCBR-12345678901,SN=Silva,GN=Maria,C=BR",
            "individual with serialNumber and country",
        ),
        (
            "/CN=Zorro",
            "pseudonym=Zorro",
            "individual with a pseudonym",
        ),
    ];
    for key in ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"] {
        for (subj, identity, form) in forms {
            let csr = make_csr(key, subj, &[email]);
            let what = format!("personal {key} {form}");
            let pem = issue(
                &s,
                &json!({"csr": csr.pem, "profile": "personal",
                        "identity": {"subject": identity}}),
                &what,
            );
            lint("lint_cabf_smime_cert", &["-d"], &pem, dir.path(), &what);
        }
    }
    // What the S/MIME BR forbid is refused before signing.
    let refused = |subj: &str, sans: &[&str], identity: &str, code: &str, why: &str| {
        let csr = make_csr("ec-p256", subj, sans);
        let r = s.post(
            "/v1/certificates",
            &s.tokens.ra,
            &json!({"csr": csr.pem, "profile": "personal", "identity": {"subject": identity}}),
        );
        assert_error(&r, 422, code, why);
    };
    refused(
        "/CN=Maria Silva",
        &[email],
        "",
        "subject_not_allowed",
        "a personal name in the CN with no givenName or surname asserted",
    );
    refused(
        "/GN=Maria/CN=Maria",
        &[email],
        "",
        "subject_not_allowed",
        "a givenName from the CSR (only the RA asserts it)",
    );
    refused(
        "/CN=maria.silva@example.com",
        &[],
        "",
        "san_required",
        "no e-mail SAN",
    );
    refused(
        "/O=Acme/CN=Maria Silva",
        &[email],
        "SN=Silva,GN=Maria",
        "subject_not_allowed",
        "an organization in a strict individual-validated certificate",
    );
    // An enrolment carries the identity in its subject; the certificate it redeems lints.
    let r = s.post(
        "/v1/enrollments",
        &s.tokens.ra,
        &json!({"profile": "personal", "subject": "CN=Maria Silva,SN=Silva,GN=Maria",
                "sans": ["maria.silva@example.com"], "expires_in_hours": 1, "max_attempts": 3}),
    );
    assert_eq!(r.status, 201, "enrolment: {r}");
    let id = r.json["id"].as_str().expect("id").to_string();
    let code = r.json["code"].as_str().expect("code").to_string();
    let csr = make_csr("ec-p256", "", &[]);
    let r = s.request(
        reqwest::Method::POST,
        &format!("/v1/enrollments/{id}/redeem"),
        None,
        Some(&json!({"code": code, "csr": csr.pem})),
    );
    assert_eq!(r.status, 201, "redemption: {r}");
    let pem = r.json["certificate"].as_str().expect("certificate");
    lint(
        "lint_cabf_smime_cert",
        &["-d"],
        pem,
        dir.path(),
        "personal from an enrolment",
    );
}

#[test]
fn tls_client_certificates_and_the_crl_pass_their_linters() {
    let (dir, s) = server("");
    let forms: [(&str, &[&str]); 3] = [
        ("/CN=device-42", &[]),
        ("/O=Acme/CN=device-43", &["DNS:device-43.example.com"]),
        ("/CN=Ana", &["email:ana@example.com"]),
    ];
    let mut serial = String::new();
    for key in ["ec-p256", "ec-p384", "ed25519", "rsa-2048"] {
        for (subj, sans) in forms {
            let csr = make_csr(key, subj, sans);
            let what = format!("tls-client {key} {subj}");
            let r = s.post(
                "/v1/certificates",
                &s.tokens.ra,
                &json!({"csr": csr.pem, "profile": "tls-client"}),
            );
            assert_eq!(r.status, 201, "{what}: {r}");
            serial = r.json["serial"].as_str().expect("serial").to_string();
            let pem = r.json["certificate"].as_str().expect("certificate");
            lint("lint_pkix_cert", &[], pem, dir.path(), &what);
        }
    }
    s.revoke_ok(&serial, "superseded");
    s.generate_crl();
    let crl = s.crl();
    let file = dir.path().join("ca.crl");
    std::fs::write(&file, &crl).expect("write the CRL");
    let report = pkilint_run("lint_crl", &["-t", "CRL", "-p", "BR"], &file);
    assert!(
        report.findings.is_empty(),
        "lint_crl -p BR found {:?}\n{}",
        report.codes(),
        report.output
    );
}

/// The example profile of docs/profiles, loaded as an operator would, issues a certificate
/// whose policy (with CPS and notice), otherName SANs and extra extension OpenSSL shows and
/// x509-parser reads back value for value.
#[test]
fn a_custom_profile_from_toml_issues_policies_other_names_and_extra_extensions() {
    let (tmp, s) = server(include_str!("../../../docs/profiles/icp-brasil-a1.toml"));
    let pf = [
        "15041980",
        "52998224725",
        "00000000000",
        "000001234567890",
        "SSPSP ",
    ]
    .concat();
    let csr = make_csr(
        "rsa-2048",
        "/C=BR/O=ICP-Brasil/OU=Exemplo/CN=MARIA SILVA:52998224725",
        &["email:maria@example.com"],
    );
    let body = |sans: Vec<String>| json!({"csr": csr.pem, "profile": "icp-brasil-a1", "identity": {"sans": sans}});
    let pem = issue(
        &s,
        &body(vec![
            format!("otherName:2.16.76.1.3.1:{pf}"),
            "otherName:2.16.76.1.3.6:123456789012".into(),
        ]),
        "icp-brasil-a1",
    );
    let dir = tmp.path();
    lint("lint_pkix_cert", &[], &pem, dir, "icp-brasil-a1");

    // OpenSSL's view.
    let file = dir.join("icp.pem");
    std::fs::write(&file, &pem).expect("write");
    let text = openssl(&[
        "x509",
        "-noout",
        "-text",
        "-in",
        file.to_str().expect("path"),
    ]);
    for expected in [
        "Policy: 1.3.6.1.4.1.55555.1.2.1",
        "CPS: http://ca.example/repositorio/dpc.pdf",
        "Explicit Text: Exemplo: nao e um certificado ICP-Brasil",
        "1.3.6.1.4.1.55555.3.1:",
        "othername: 2.16.76.1.3.1:",
        "othername: 2.16.76.1.3.6:",
        "email:maria@example.com",
        "Subject: C = BR, O = ICP-Brasil, OU = Exemplo, CN = MARIA SILVA:52998224725",
    ] {
        assert!(
            text.contains(expected),
            "openssl x509 -text lacks {expected:?}:\n{text}"
        );
    }

    // A second parser: the otherName values, as OCTET STRINGs, and the extension's DER.
    let der = pem_certs(&pem).remove(0);
    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(&der).expect("the certificate parses");
    let mut other_names = Vec::new();
    let mut marker = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    if let GeneralName::OtherName(oid, value) = name {
                        other_names.push((oid.to_id_string(), value.to_vec()));
                    }
                }
            }
            _ if ext.oid.to_id_string() == "1.3.6.1.4.1.55555.3.1" => {
                marker = Some((ext.critical, ext.value.to_vec()));
            }
            _ => {}
        }
    }
    // [0] EXPLICIT { OCTET STRING value }.
    let explicit = |value: &str| {
        let mut inner = vec![0x04, value.len() as u8];
        inner.extend_from_slice(value.as_bytes());
        let mut out = vec![0xa0, inner.len() as u8];
        out.extend(inner);
        out
    };
    assert_eq!(
        other_names,
        [
            ("2.16.76.1.3.1".to_string(), explicit(&pf)),
            ("2.16.76.1.3.6".to_string(), explicit("123456789012")),
        ]
    );
    assert_eq!(
        marker,
        Some((false, hex::decode("0c076578656d706c6f").expect("hex")))
    );

    // The syntax is the profile's: a CPF with wrong check digits, a missing required
    // otherName, an otherName in the CSR.
    let bad_cpf = pf.replacen("52998224725", "52998224724", 1);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &body(vec![format!("otherName:2.16.76.1.3.1:{bad_cpf}")]),
    );
    assert_error(&r, 422, "san_not_allowed", "a CPF with wrong check digits");
    assert!(
        r.to_string().contains("cpf"),
        "the message names the field: {r}"
    );
    let r = s.post("/v1/certificates", &s.tokens.ra, &body(vec![]));
    assert_error(&r, 422, "san_not_allowed", "the required otherName missing");
    let in_csr = make_csr(
        "rsa-2048",
        "/C=BR/O=ICP-Brasil/CN=MARIA",
        &[&format!("otherName:2.16.76.1.3.1;UTF8:{pf}")],
    );
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": in_csr.pem, "profile": "icp-brasil-a1",
                "identity": {"sans": [format!("otherName:2.16.76.1.3.1:{pf}")]}}),
    );
    assert_error(&r, 422, "san_not_allowed", "an otherName in the CSR");
}

/// The ETSI example profile (EN 319 412-2/-5, QCP-n-qscd), loaded as an operator would,
/// issues across its key types and subject forms certificates that pkilint's ETSI linter
/// passes as `QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE` (and detects as that type by itself) and
/// its RFC 5280 linter passes, with QCP-n-qscd first among the policies; what EN 319 412-2
/// forbids in a subject is refused before signing.
#[test]
fn the_etsi_profile_issues_qualified_signature_certificates_pkilint_passes() {
    const TYPE: &str = "QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE";
    let (tmp, s) = server(include_str!("../../../docs/profiles/etsi-qcp-n-qscd.toml"));
    let dir = tmp.path();
    let body = |csr: &str, identity: &str| json!({"csr": csr, "profile": "etsi-qcp-n-qscd", "identity": {"subject": identity}});
    let name = "C=PT,GN=Maria,SN=Silva,serialNumber=PNOPT-12345678";
    // (key, CSR subject, identity subject, what): the personal name, the surname alone, a
    // pseudonym.
    let mut forms = vec![];
    for key in ["ec-p256", "ec-p384", "rsa-3072", "rsa-4096"] {
        forms.push((key, "/CN=Maria Silva", name, "personal name"));
    }
    forms.push((
        "ec-p256",
        "/CN=Silva",
        "C=PT,SN=Silva,serialNumber=IDCPT-98765432",
        "surname",
    ));
    forms.push((
        "rsa-3072",
        "/CN=Zorro",
        "C=ES,pseudonym=Zorro,serialNumber=PASES-X1234567",
        "pseudonym",
    ));
    let mut first = None;
    for (key, subj, identity, form) in forms {
        let csr = make_csr(key, subj, &[]);
        let what = format!("etsi-qcp-n-qscd {key} {form}");
        let pem = issue(&s, &body(&csr.pem, identity), &what);
        let file = dir.join(format!("etsi-{key}-{}.pem", form.replace(' ', "-")));
        std::fs::write(&file, &pem).expect("write the certificate");
        pkilint_etsi(&file, TYPE, &what);
        lint("lint_pkix_cert", &[], &pem, dir, &what);
        first.get_or_insert((file, pem));
    }
    let (file, pem) = first.expect("a certificate");
    let (detected, report) = pkilint_etsi_detected(&file);
    assert_eq!(detected, TYPE, "{}", report.output);
    assert!(report.findings.is_empty(), "{}", report.output);

    // What the template writes: QCP-n-qscd first, then the CA's own policy; keyUsage
    // nonRepudiation alone, critical; the four qcStatements.
    let der = pem_certs(&pem).remove(0);
    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(&der).expect("the certificate parses");
    let mut policies = Vec::new();
    let mut key_usage = None;
    let mut qc_statements = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::CertificatePolicies(list) => {
                policies.extend(list.iter().map(|p| p.policy_id.to_id_string()));
            }
            ParsedExtension::KeyUsage(ku) => {
                key_usage = Some((ext.critical, ku.non_repudiation(), ku.flags));
            }
            _ if ext.oid.to_id_string() == "1.3.6.1.5.5.7.1.3" => {
                qc_statements = Some((ext.critical, ext.value.to_vec()));
            }
            _ => {}
        }
    }
    assert_eq!(policies, ["0.4.0.194112.1.2", "1.3.6.1.4.1.55555.1.4"]);
    assert_eq!(key_usage, Some((true, true, 0b10)), "nonRepudiation alone");
    let (critical, value) = qc_statements.expect("qcStatements");
    assert!(!critical, "qcStatements is not critical");
    for statement in [
        &[0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x01][..], // QcCompliance 0.4.0.1862.1.1
        &[0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x04][..], // QcSSCD
        &[0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x06][..], // QcType
        &[0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x05][..], // QcPDS
    ] {
        assert!(
            value.windows(statement.len()).any(|w| w == statement),
            "qcStatements lacks {statement:02x?}: {value:02x?}"
        );
    }
    assert_eq!(
        cert.subject().to_string(),
        "C=PT, givenName=Maria, surname=Silva, serialNumber=PNOPT-12345678, CN=Maria Silva"
    );

    // EN 319 412-2 4.2.4 in the request: no pseudonym with both names (NAT-4.2.4-4), a
    // countryName (NAT-4.2.4-1), identity data only from the RA, a CN repeating the name.
    let refused = |subj: &str, identity: &str, why: &str| {
        let csr = make_csr("ec-p256", subj, &[]);
        let r = s.post("/v1/certificates", &s.tokens.ra, &body(&csr.pem, identity));
        assert_error(&r, 422, "subject_not_allowed", why);
        r.to_string()
    };
    let message = refused(
        "/CN=Zorro",
        "C=PT,GN=Maria,SN=Silva,pseudonym=Zorro,serialNumber=PNOPT-12345678",
        "a pseudonym with both names",
    );
    assert!(message.contains("NAT-4.2.4-4"), "{message}");
    refused(
        "/CN=Maria Silva",
        "GN=Maria,SN=Silva,serialNumber=PNOPT-12345678",
        "no countryName",
    );
    refused(
        "/C=PT/CN=Maria Silva",
        "GN=Maria,SN=Silva,serialNumber=PNOPT-12345678",
        "a countryName from the CSR",
    );
    refused("/CN=Someone Else", name, "a CN that is not the name");
    // Ed25519 is not among the example's key types.
    let ed = make_csr("ed25519", "/CN=Maria Silva", &[]);
    let r = s.post("/v1/certificates", &s.tokens.ra, &body(&ed.pem, name));
    assert_error(
        &r,
        422,
        "key_type_not_allowed",
        "Ed25519 under etsi-qcp-n-qscd",
    );
}
