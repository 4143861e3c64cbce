//! The OCSP responder judged by `openssl ocsp`: good, revoked (time and reason) and unknown,
//! over POST (the URL taken from the certificate's AIA) and the RFC 6960 GET form, with the
//! nonce echoed; a revocation shows at once, without a CRL generation.

use e2e_tests::prelude::*;

/// A serial this CA never issued.
const MADE_UP: &str = "0x41424344454647484142434445464748";

#[test]
fn openssl_ocsp_good_revoked_unknown_over_post() {
    let s = Server::fresh();
    let a = s.issue(&server_csr("ocsp-a.example.com"), "tls-server", None);
    let b = s.issue(&server_csr("ocsp-b.example.com"), "tls-server", None);
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
    let a = s.issue(&server_csr("get-a.example.com"), "tls-server", None);
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
    let a = s.issue(&server_csr("lint-a.example.com"), "tls-server", None);
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

/// The value of `ca_ocsp_signatures_total{kind="KIND"}` on GET /metrics (0 when absent).
fn signatures(s: &Server, kind: &str) -> u64 {
    let r = s.get("/metrics", Some(&s.tokens.operator));
    assert_eq!(r.status, 200, "GET /metrics: {r}");
    let prefix = format!("ca_ocsp_signatures_total{{kind=\"{kind}\"}} ");
    r.text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a counter value"))
}

/// Asks `openssl ocsp` (nonce on, as the README's example) about `targets`; success and the
/// output.
fn ask_with_nonce(s: &Server, targets: &[&str]) -> (bool, String) {
    let issuer = s.issuer_file();
    let url = format!("{}/ocsp", s.base);
    let mut args = vec![
        "ocsp",
        "-issuer",
        issuer.to_str().expect("UTF-8 path"),
        "-CAfile",
        s.ca().file.to_str().expect("UTF-8 path"),
        "-url",
        &url,
    ];
    args.extend_from_slice(targets);
    openssl_ocsp(&args)
}

/// Nonce requests are signed afresh for each client only within its budget (`[ocsp]
/// on_demand_per_client_burst`): beyond it, the same client gets the cached answer without the
/// nonce (valid, RFC 9654 lets a responder ignore the nonce), requests that no cached answer
/// fits get `tryLater`, and the count of on-demand signatures stops at the budget.
#[test]
fn nonce_requests_beyond_the_client_budget_are_answered_without_a_fresh_signature() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("config.toml"),
        "[ocsp]\non_demand_per_client_per_second = 0.001\non_demand_per_client_burst = 5\n",
    )
    .expect("writing config.toml");
    let s = Server::serve(tmp.path());
    let a = s.issue(&server_csr("budget-a.example.com"), "tls-server", None);
    let b = s.issue(&server_csr("budget-b.example.com"), "tls-server", None);
    let a_file = s.leaf_file(&a);
    let b_file = s.leaf_file(&b);
    let (a_s, b_s) = (
        a_file.to_str().expect("UTF-8 path"),
        b_file.to_str().expect("UTF-8 path"),
    );
    let start = signatures(&s, "on_demand");

    // Within the budget: the nonce is echoed, no warning (the README's example).
    for i in 0..5 {
        let out = s.ocsp_ask(&format!("{}/ocsp", s.base), &["-cert", a_s]);
        assert_eq!(ocsp_status(&out, a_s).0, "good", "request {i}: {out}");
    }
    assert_eq!(signatures(&s, "on_demand") - start, 5);

    // Beyond it: valid answers without the nonce, no new on-demand signature.
    for i in 0..15 {
        let (ok, out) = ask_with_nonce(&s, &["-cert", a_s]);
        assert!(
            ok && out.contains("Response verify OK"),
            "request {i} over the budget must still verify:\n{out}"
        );
        assert!(
            out.contains("WARNING: no nonce in response"),
            "request {i} over the budget is answered without the nonce:\n{out}"
        );
        assert_eq!(ocsp_status(&out, a_s).0, "good", "{out}");
    }
    // A certificate not asked about before: its answer is signed once for the cache, and
    // carries no nonce either.
    let (ok, out) = ask_with_nonce(&s, &["-cert", b_s]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains("WARNING: no nonce in response"), "{out}");
    assert_eq!(ocsp_status(&out, b_s).0, "good", "{out}");
    // Requests that no cached answer fits (several CertIDs, a serial never issued): tryLater.
    for targets in [
        vec!["-cert", a_s, "-cert", b_s],
        vec!["-serial", MADE_UP, "-no_nonce"],
    ] {
        let (_, out) = ask_with_nonce(&s, &targets);
        assert!(
            out.contains("trylater"),
            "{targets:?} over the budget: tryLater, not a signature:\n{out}"
        );
    }
    assert_eq!(
        signatures(&s, "on_demand") - start,
        5,
        "on-demand signatures stop at the client's budget"
    );
    let text = s.get("/metrics", Some(&s.tokens.operator)).text;
    assert!(
        text.contains("ca_ocsp_responses_total{status=\"try_later\"} 2"),
        "tryLater answers are counted:\n{text}"
    );
}
