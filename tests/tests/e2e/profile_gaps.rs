//! Profile rules that an RA could slip past (issue 15, finding 11): `dns_suffixes` bound the
//! domains of e-mail SANs too, a wildcard directly on a public suffix is refused, and Unicode
//! format characters (bidi controls, zero-width characters) are refused in subjects, on
//! issuance and on enrollment creation.

use e2e_tests::prelude::*;
use serde_json::json;

const CONFIG: &str = r#"
[profiles.corp]
extended_key_usage = ["clientAuth"]
[profiles.corp.san]
dns = true
email = true
wildcards = true
dns_suffixes = ["example.com"]

[profiles.open]
[profiles.open.san]
dns = true
email = true
wildcards = true
"#;

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("config.toml"), CONFIG).expect("config.toml");
    let s = Server::serve(tmp.path());
    (tmp, s)
}

fn issue(s: &Server, csr: &Csr, profile: &str) -> Resp {
    s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": csr.pem, "profile": profile}),
    )
}

fn enrol(s: &Server, profile: &str, subject: &str, sans: &[&str]) -> Resp {
    s.post(
        "/v1/enrollments",
        &s.tokens.ra,
        &json!({"profile": profile, "subject": subject, "sans": sans,
                "expires_in_hours": 1, "max_attempts": 3}),
    )
}

fn assert_refused(r: &Resp, code: &str, says: &str, what: &str) {
    assert_error(r, 422, code, what);
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "{what}: the message should say {says:?}: {r}"
    );
}

#[test]
fn dns_suffixes_bound_email_domains() {
    let (_tmp, s) = server();
    let outside = make_csr("ec-p256", "/CN=Ana", &["email:ana@evil.example"]);
    let r = issue(&s, &outside, "corp");
    assert_refused(
        &r,
        "san_not_allowed",
        "evil.example",
        "e-mail outside dns_suffixes",
    );
    assert_refused(
        &r,
        "san_not_allowed",
        "dns_suffixes",
        "e-mail outside dns_suffixes",
    );
    let lookalike = make_csr("ec-p256", "/CN=Ana", &["email:ana@badexample.com"]);
    let r = issue(&s, &lookalike, "corp");
    assert_refused(
        &r,
        "san_not_allowed",
        "dns_suffixes",
        "e-mail at badexample.com",
    );
    let r = enrol(&s, "corp", "CN=Ana", &["ana@evil.example"]);
    assert_refused(
        &r,
        "san_not_allowed",
        "dns_suffixes",
        "enrollment e-mail outside",
    );

    let inside = make_csr("ec-p256", "/CN=Ana", &["email:ana@mail.example.com"]);
    assert_eq!(
        issue(&s, &inside, "corp").status,
        201,
        "e-mail within dns_suffixes"
    );
    let r = enrol(&s, "corp", "CN=Ana", &["ana@example.com"]);
    assert_eq!(r.status, 201, "enrollment e-mail within: {r}");
}

#[test]
fn wildcards_on_public_suffixes_are_refused() {
    let (_tmp, s) = server();
    for name in ["*.co.uk", "*.com", "*.github.io"] {
        let csr = make_csr("ec-p256", "/CN=wild", &[&format!("DNS:{name}")]);
        let r = issue(&s, &csr, "open");
        let says = format!("wildcard on a public suffix: {name}");
        assert_refused(&r, "san_not_allowed", &says, name);
        let r = enrol(&s, "open", "CN=wild", &[name]);
        assert_refused(&r, "san_not_allowed", &says, &format!("enrollment {name}"));
    }
    let csr = make_csr("ec-p256", "/CN=wild", &["DNS:*.shop.co.uk"]);
    assert_eq!(issue(&s, &csr, "open").status, 201, "*.shop.co.uk");
}

#[test]
fn unicode_format_characters_are_refused_in_subjects() {
    let (_tmp, s) = server();
    for (attr, value, shown) in [
        ("CN", "Maria\u{202E}avlis", "U+202E"),
        ("CN", "Maria\u{2066}Silva\u{2069}", "U+2066"),
        ("O", "Exa\u{200B}mple", "U+200B"),
        ("CN", "\u{FEFF}Maria", "U+FEFF"),
    ] {
        let subj = format!("/{attr}={value}");
        let csr = make_csr_with("ec-p256", &subj, &["DNS:bidi.example"], &["-utf8"]);
        let r = issue(&s, &csr, "open");
        let says = format!("subject attribute {attr} contains a Unicode format character {shown}");
        assert_refused(&r, "subject_not_allowed", &says, &subj);
        let r = enrol(&s, "open", &format!("{attr}={value}"), &["bidi.example"]);
        assert_refused(
            &r,
            "subject_not_allowed",
            &says,
            &format!("enrollment {subj}"),
        );
    }
    // Letters of any script stay allowed.
    let csr = make_csr_with(
        "ec-p256",
        "/CN=Jos\u{e9} \u{5f20}\u{4f1f} \u{645}\u{62d}\u{645}\u{62f}",
        &["DNS:intl.example"],
        &["-utf8"],
    );
    let r = issue(&s, &csr, "open");
    assert_eq!(r.status, 201, "{r}");
}
