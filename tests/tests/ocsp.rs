//! The OCSP responder judged by `openssl ocsp`: good, revoked (time and reason) and unknown,
//! over POST (the URL taken from the certificate's AIA) and the RFC 6960 GET form, with the
//! nonce echoed; a revocation shows at once, without a CRL generation.

mod common;

use common::*;

/// A serial this CA never issued.
const MADE_UP: &str = "0x41424344454647484142434445464748";

#[test]
fn openssl_ocsp_good_revoked_unknown_over_post() {
    let s = Server::fresh();
    let a = s.issue(&server_csr("ocsp-a.example"), "tls-server", None);
    let b = s.issue(&server_csr("ocsp-b.example"), "tls-server", None);
    let a_file = s.leaf_file(&a);
    let b_file = s.leaf_file(&b);
    let (a_s, b_s) = (
        a_file.to_str().expect("UTF-8 path"),
        b_file.to_str().expect("UTF-8 path"),
    );
    // The URL as relying parties find it: the certificate's AIA OCSP entry.
    let (_, ocsp_urls, _) = cert_urls(a["certificate"].as_str().expect("certificate"));
    assert_eq!(ocsp_urls, vec![format!("{}/ocsp", s.base)], "AIA OCSP URL");
    let url = &ocsp_urls[0];

    let out = s.ocsp_ask(url, &["-cert", a_s]);
    assert_eq!(ocsp_status(&out, a_s), ("good".into(), None), "{out}");
    let out = s.ocsp_ask(url, &["-cert", b_s]);
    assert_eq!(ocsp_status(&out, b_s), ("good".into(), None), "{out}");

    // Revoked: visible as soon as the revoke call answered, no CRL generation.
    let v = s.revoke_ok(b["serial"].as_str().expect("serial"), "keyCompromise");
    let out = s.ocsp_ask(url, &["-cert", b_s]);
    assert_eq!(
        ocsp_status(&out, b_s),
        ("revoked".into(), Some("keyCompromise".into())),
        "OCSP right after revoke:\n{out}"
    );
    assert!(
        out.contains("Revocation Time:"),
        "no revocation time in openssl's output:\n{out}"
    );
    // The revocation time is the one the API answered (openssl prints e.g. `Jan  2 03:04:05
    // 2025 GMT`; compare the time of day, which both print the same way).
    let revoked_at = v["revocation"]["revoked_at"].as_str().expect("revoked_at");
    let hms = &revoked_at[11..19];
    assert!(
        out.lines()
            .any(|l| l.contains("Revocation Time:") && l.contains(hms)),
        "OCSP revocation time is not {revoked_at}:\n{out}"
    );

    // Never issued: unknown.
    let out = s.ocsp_ask(url, &["-serial", MADE_UP]);
    assert_eq!(ocsp_status(&out, MADE_UP).0, "unknown", "{out}");

    // One request for the three.
    let out = s.ocsp_ask(url, &["-cert", a_s, "-cert", b_s, "-serial", MADE_UP]);
    assert_eq!(ocsp_status(&out, a_s).0, "good", "{out}");
    assert_eq!(ocsp_status(&out, b_s).0, "revoked", "{out}");
    assert_eq!(ocsp_status(&out, MADE_UP).0, "unknown", "{out}");
}

#[test]
fn openssl_ocsp_over_get_and_cached_answers_follow_revocation() {
    let s = Server::fresh();
    let a = s.issue(&server_csr("get-a.example"), "tls-server", None);
    let a_file = s.leaf_file(&a);
    let a_s = a_file.to_str().expect("UTF-8 path");

    let der = s.ocsp_get(&["-cert", a_s]);
    let out = s.ocsp_respin(&der, &["-cert", a_s]);
    assert_eq!(ocsp_status(&out, a_s).0, "good", "GET form:\n{out}");
    // The same GET again (RFC 5019 responders may cache it): still good.
    let der = s.ocsp_get(&["-cert", a_s]);
    let out = s.ocsp_respin(&der, &["-cert", a_s]);
    assert_eq!(ocsp_status(&out, a_s).0, "good", "GET form again:\n{out}");

    // After the revoke call answered, the GET form no longer says good.
    s.revoke_ok(
        a["serial"].as_str().expect("serial"),
        "cessationOfOperation",
    );
    let der = s.ocsp_get(&["-cert", a_s]);
    let out = s.ocsp_respin(&der, &["-cert", a_s]);
    assert_eq!(
        ocsp_status(&out, a_s),
        ("revoked".into(), Some("cessationOfOperation".into())),
        "GET form after revoke (a cached good answer must not outlive the revocation):\n{out}"
    );

    // Clients that do not URL-encode the base64 (RFC 5019 section 5 asks them to) are
    // understood too: `+` and `/` are plain characters in a path.
    let raw = s.ocsp_request_base64(&["-cert", a_s]);
    let der = s.ocsp_get_encoded(&raw);
    let out = s.ocsp_respin(&der, &["-cert", a_s]);
    assert_eq!(
        ocsp_status(&out, a_s).0,
        "revoked",
        "GET form without URL encoding ({raw}):\n{out}"
    );

    let der = s.ocsp_get(&["-serial", MADE_UP]);
    let out = s.ocsp_respin(&der, &["-serial", MADE_UP]);
    assert_eq!(ocsp_status(&out, MADE_UP).0, "unknown", "GET form:\n{out}");
}

#[test]
fn ocsp_responses_pass_pkilint() {
    let s = Server::fresh();
    let a = s.issue(&server_csr("lint-a.example"), "tls-server", None);
    let a_file = s.leaf_file(&a);
    let a_s = a_file.to_str().expect("UTF-8 path");
    s.revoke_ok(a["serial"].as_str().expect("serial"), "keyCompromise");
    let url = format!("{}/ocsp", s.base);
    for (name, target) in [
        ("revoked", ["-cert", a_s]),
        ("unknown", ["-serial", MADE_UP]),
    ] {
        let file = s.scratch().join(format!("ocsp-{name}.der"));
        let file_s = file.to_str().expect("UTF-8 path");
        let mut args = target.to_vec();
        args.extend(["-respout", file_s]);
        s.ocsp_ask(&url, &args);
        pkilint_ocsp(&file, &format!("OCSP response ({name})"));
    }
}
