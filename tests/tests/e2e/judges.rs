//! Negative controls of the judges. A judge that never fails proves nothing: pkilint, run
//! through the harness's own code path (`pkilint_run` and its report parser, which `pkilint`,
//! `pkilint_crl` and `pkilint_ocsp` use), must find the faults of deliberately non-conformant
//! documents made here with OpenSSL (a certificate, a CRL, an OCSP response), each after
//! passing a conformant twin made the same way; and the harness must refuse a pkilint report
//! of another shape than the one it knows instead of reading it as "no findings".

use std::path::{Path, PathBuf};

use e2e_tests::prelude::*;
use tempfile::TempDir;

/// A scratch directory with a self-signed P-256 CA made by `openssl req -x509`, and the
/// files the controls below make from it.
struct Lab {
    dir: TempDir,
    /// The CA's key (PEM).
    key: PathBuf,
    /// The CA's certificate (PEM), a conformant one.
    ca: PathBuf,
}

/// The `openssl req` configuration of the controls' certificates: a CA with the given
/// basicConstraints and keyUsage, and key identifiers.
fn req_config(basic_constraints: &str, key_usage: &str) -> String {
    format!(
        "[req]\n\
         distinguished_name = dn\n\
         prompt = no\n\
         x509_extensions = ext\n\
         [dn]\n\
         O = Test\n\
         CN = Negative Control CA\n\
         [ext]\n\
         basicConstraints = {basic_constraints}\n\
         keyUsage = {key_usage}\n\
         subjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid:always\n"
    )
}

/// The revoked certificate the controls' CRLs and OCSP responses list.
const REVOKED_SERIAL: &str = "0A";

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = key_file("ec-p256");
        let mut lab = Lab {
            ca: dir.path().join("ca.pem"),
            dir,
            key,
        };
        lab.ca = lab.self_signed(
            "ca",
            "4242",
            "critical,CA:TRUE",
            "critical,keyCertSign,cRLSign",
        );
        // `openssl ca`'s database: one revoked certificate.
        std::fs::write(
            lab.path("index.txt"),
            format!("R\t491231235959Z\t250101000000Z\t{REVOKED_SERIAL}\tunknown\t/CN=Revoked\n"),
        )
        .expect("writing index.txt");
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn s(path: &Path) -> &str {
        path.to_str().expect("UTF-8 path")
    }

    /// A self-signed certificate on the lab's key, `openssl req -x509 -set_serial SERIAL` with
    /// [`req_config`]: the PEM file `NAME.pem`.
    fn self_signed(
        &self,
        name: &str,
        serial: &str,
        basic_constraints: &str,
        key_usage: &str,
    ) -> PathBuf {
        let config = self.path(&format!("{name}.cnf"));
        std::fs::write(&config, req_config(basic_constraints, key_usage)).expect("writing cnf");
        let out = self.path(&format!("{name}.pem"));
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            Lab::s(&self.key),
            "-config",
            Lab::s(&config),
            "-sha256",
            "-days",
            "30",
            "-set_serial",
            serial,
            "-out",
            Lab::s(&out),
        ]);
        out
    }

    /// A CRL of the lab's CA by `openssl ca -gencrl`, in DER: `NAME.der`. `conformant` gives
    /// it a CRL number and an authority key identifier, as RFC 5280 section 5.2 requires;
    /// without, it has neither.
    fn crl(&self, name: &str, conformant: bool) -> PathBuf {
        let mut config = format!(
            "[ca]\n\
             default_ca = lab\n\
             [lab]\n\
             database = {}\n\
             default_md = sha256\n\
             default_crl_days = 1\n",
            Lab::s(&self.path("index.txt"))
        );
        if conformant {
            let number = self.path(&format!("{name}.crlnumber"));
            std::fs::write(&number, "01\n").expect("writing crlnumber");
            config.push_str(&format!(
                "crlnumber = {}\n\
                 crl_extensions = crl_ext\n\
                 [crl_ext]\n\
                 authorityKeyIdentifier = keyid:always\n",
                Lab::s(&number)
            ));
        }
        let cnf = self.path(&format!("{name}.cnf"));
        std::fs::write(&cnf, config).expect("writing cnf");
        let pem = self.path(&format!("{name}.pem"));
        openssl(&[
            "ca",
            "-gencrl",
            "-batch",
            "-config",
            Lab::s(&cnf),
            "-keyfile",
            Lab::s(&self.key),
            "-cert",
            Lab::s(&self.ca),
            "-out",
            Lab::s(&pem),
        ]);
        let der = self.path(&format!("{name}.der"));
        openssl(&[
            "crl",
            "-in",
            Lab::s(&pem),
            "-outform",
            "DER",
            "-out",
            Lab::s(&der),
        ]);
        der
    }

    /// An OCSP response of the lab's CA, signed by the CA itself, for the revoked serial:
    /// `openssl ocsp -index index.txt -rsigner ca.pem -reqin REQ -respout NAME.der`.
    fn ocsp_response(&self, name: &str) -> Vec<u8> {
        let req = self.path(&format!("{name}-req.der"));
        let serial = format!("0x{REVOKED_SERIAL}");
        let (ok, out) = openssl_ocsp(&[
            "ocsp",
            "-issuer",
            Lab::s(&self.ca),
            "-serial",
            &serial,
            "-no_nonce",
            "-reqout",
            Lab::s(&req),
        ]);
        assert!(ok, "openssl ocsp -reqout: {out}");
        let resp = self.path(&format!("{name}.der"));
        let (ok, out) = openssl_ocsp(&[
            "ocsp",
            "-index",
            Lab::s(&self.path("index.txt")),
            "-CA",
            Lab::s(&self.ca),
            "-rsigner",
            Lab::s(&self.ca),
            "-rkey",
            Lab::s(&self.key),
            "-reqin",
            Lab::s(&req),
            "-respout",
            Lab::s(&resp),
            "-ndays",
            "1",
        ]);
        assert!(ok, "openssl ocsp -respout: {out}");
        std::fs::read(&resp).expect("reading the OCSP response")
    }

    /// Writes `der` to `NAME.der`.
    fn write(&self, name: &str, der: &[u8]) -> PathBuf {
        let file = self.path(&format!("{name}.der"));
        std::fs::write(&file, der).expect("writing a control");
        file
    }
}

/// Asserts that `report` has a finding with each of `codes`.
fn assert_findings(report: &PkilintReport, codes: &[&str], what: &str) {
    for code in codes {
        assert!(
            report.has(code),
            "{what}: pkilint should report {code}, reported {:?}\n{}",
            report.codes(),
            report.output
        );
    }
}

/// Asserts that `check` (one of the harness's asserting judges) panics on a bad document.
fn assert_judge_fails(check: impl FnOnce() + std::panic::UnwindSafe, what: &str) {
    assert!(
        std::panic::catch_unwind(check).is_err(),
        "{what}: the harness's judge let it through"
    );
}

#[test]
fn pkilint_finds_a_serial_below_one_and_a_ca_certificate_that_cannot_sign_certificates() {
    let lab = Lab::new();
    // The conformant twin passes: the faults below are what pkilint finds.
    pkilint(&lab.ca, "the control CA certificate");
    assert!(pkilint_cert_findings(&lab.ca).findings.is_empty());

    // RFC 5280 section 4.1.2.2: the serial number is a positive integer.
    for serial in ["0", "-5"] {
        let what = format!("a certificate with serial {serial}");
        let bad = lab.self_signed(
            &format!("serial{serial}"),
            serial,
            "critical,CA:TRUE",
            "critical,keyCertSign,cRLSign",
        );
        let report = pkilint_cert_findings(&bad);
        assert_findings(
            &report,
            &["pkix.certificate_serial_number_out_of_range"],
            &what,
        );
        assert_judge_fails(|| pkilint(&bad, &what), &what);
    }

    // Section 4.2.1.3: a CA certificate (cA TRUE) asserts keyCertSign.
    let no_sign = lab.self_signed(
        "no-keycertsign",
        "4243",
        "critical,CA:TRUE",
        "critical,digitalSignature",
    );
    let report = pkilint_cert_findings(&no_sign);
    assert_findings(
        &report,
        &["pkix.ca_certificate_keycertsign_keyusage_not_set"],
        "a CA certificate without keyCertSign",
    );
}

#[test]
fn pkilint_finds_a_crl_without_crl_number_or_authority_key_identifier() {
    let lab = Lab::new();
    let good = lab.crl("good", true);
    pkilint_crl(&good, "the control CRL");
    assert!(pkilint_crl_findings(&good).findings.is_empty());

    // RFC 5280 section 5.2: conforming CRL issuers include both extensions.
    let bad = lab.crl("bare", false);
    let report = pkilint_crl_findings(&bad);
    assert_findings(
        &report,
        &[
            "pkix.crl_number_missing",
            "pkix.authority_key_identifier_missing",
        ],
        "a CRL without CRL number and AKI",
    );
    assert_judge_fails(
        || pkilint_crl(&bad, "a CRL without CRL number and AKI"),
        "a CRL without CRL number and AKI",
    );
}

#[test]
fn pkilint_finds_a_tampered_ocsp_response() {
    let lab = Lab::new();
    let der = lab.ocsp_response("good");
    let good = lab.write("good", &der);
    pkilint_ocsp(&good, "the control OCSP response");
    assert!(pkilint_ocsp_findings(&good).findings.is_empty());

    // responseStatus (OCSPResponse's first field, ENUMERATED 0 = successful) set to 4, the
    // value RFC 6960 leaves unused, on a response that still carries responseBytes, which only
    // a successful one may.
    let mut bad = der.clone();
    let at = bad
        .windows(3)
        .take(8)
        .position(|w| w == [0x0a, 0x01, 0x00])
        .expect("responseStatus successful near the start");
    bad[at + 2] = 4;
    let status4 = lab.write("status4", &bad);
    let report = pkilint_ocsp_findings(&status4);
    assert_findings(
        &report,
        &[
            "pkix.ocsp_response_status_code_4",
            "pkix.ocsp_error_response_has_response_body",
        ],
        "responseStatus 4 with responseBytes",
    );
    assert_judge_fails(
        || pkilint_ocsp(&status4, "responseStatus 4 with responseBytes"),
        "responseStatus 4",
    );

    // nextUpdate ([0] EXPLICIT GeneralizedTime "YYYYMMDDHHMMSSZ") moved to the year 2000,
    // before thisUpdate.
    let mut bad = der;
    let at = bad
        .windows(4)
        .position(|w| w == [0xa0, 0x11, 0x18, 0x0f])
        .expect("a nextUpdate in the response");
    bad[at + 4..at + 8].copy_from_slice(b"2000");
    let backwards = lab.write("backwards", &bad);
    let report = pkilint_ocsp_findings(&backwards);
    assert_findings(
        &report,
        &["pkix.ocsp_negative_validity_period"],
        "nextUpdate before thisUpdate",
    );
}

/// The parser of pkilint's JSON reports accepts pkilint 0.13's shape and refuses every other,
/// so that a renamed key cannot read as "no findings".
#[test]
fn the_pkilint_report_parser_refuses_other_shapes() {
    let finding = r#"{"severity": "ERROR", "code": "pkix.x", "message": null}"#;
    let result = |descriptions: &str| {
        format!(r#"{{"node_path": "certificate", "validator": "V", {descriptions}}}"#)
    };
    let one = format!(
        r#"{{"results": [{}]}}"#,
        result(&format!(r#""finding_descriptions": [{finding}]"#))
    );

    // pkilint's shape.
    assert_eq!(
        parse_pkilint_report(r#"{"results": []}"#, Some(0)),
        Ok(vec![])
    );
    let findings = parse_pkilint_report(&one, Some(1)).expect("one finding");
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].code, "pkix.x");
    assert_eq!(findings[0].severity, "ERROR");
    assert_eq!(findings[0].node_path, "certificate");

    // Every other shape fails, saying why.
    let with = |descriptions: &str| format!(r#"{{"results": [{}]}}"#, result(descriptions));
    let refused: Vec<(String, Option<i32>, &str)> = vec![
        (String::new(), Some(1), "no JSON report"),
        ("Failed to load CRL".into(), Some(1), "no JSON report"),
        ("[]".into(), Some(0), "not a JSON object"),
        (r#"{"result": []}"#.into(), Some(0), "unknown key"),
        (r#"{"results": {}}"#.into(), Some(0), "no \"results\" array"),
        (
            with(&format!(r#""findings": [{finding}]"#)),
            Some(1),
            "no \"finding_descriptions\" array",
        ),
        (
            with(r#""finding_descriptions": {}"#),
            Some(0),
            "no \"finding_descriptions\" array",
        ),
        (
            with(r#""finding_descriptions": []"#),
            Some(0),
            "empty \"finding_descriptions\"",
        ),
        (
            with(r#""finding_descriptions": [{"severity": "ERROR", "message": "m"}]"#),
            Some(1),
            "no string \"code\"",
        ),
        (
            with(r#""finding_descriptions": [{"severity": "ERROR", "code": "c"}]"#),
            Some(1),
            "no \"message\"",
        ),
        (
            r#"{"results": [{"validator": "V", "finding_descriptions": []}]}"#.into(),
            Some(0),
            "no string \"node_path\"",
        ),
        (one.clone(), Some(0), "its report lists 1 findings"),
        (
            r#"{"results": []}"#.into(),
            Some(2),
            "its report lists 0 findings",
        ),
        (
            r#"{"results": []}"#.into(),
            None,
            "its report lists 0 findings",
        ),
    ];
    for (stdout, code, why) in refused {
        match parse_pkilint_report(&stdout, code) {
            Ok(findings) => panic!("accepted {stdout:?} (exit {code:?}): {findings:?}"),
            Err(e) => assert!(e.contains(why), "{stdout:?}: {e:?} should say {why:?}"),
        }
    }
}
