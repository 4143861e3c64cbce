//! Enrollment with one-time codes: redemption with a CSR and with a key the CA generates
//! (delivered as PKCS#12, opened with OpenSSL), single use, attempt limits, expiry, and no
//! code, password, token, CSR or private key (its private numbers) anywhere in the server's
//! output.

use base64::Engine as _;
use e2e_tests::prelude::*;
use serde_json::{json, Value};

fn create(s: &Server, body: &Value) -> (String, String) {
    let r = s.post("/v1/enrollments", &s.tokens.ra, body);
    assert_eq!(r.status, 201, "POST /v1/enrollments: {r}");
    let id = r.json["id"].as_str().expect("id").to_string();
    let code = r.json["code"].as_str().expect("code").to_string();
    (id, code)
}

/// The subject of [`maria`]'s enrollment: a personal name the RA asserts (the `personal`
/// profile, S/MIME BR individual-validated, takes givenName and surname only from the RA), as
/// RFC 4514 writes the certificate's subject.
const MARIA: &str = "CN=Maria Silva,SN=Silva,GN=Maria";

fn maria(hours: f64, attempts: u32) -> Value {
    json!({"profile": "personal", "subject": MARIA, "sans": ["maria@example.com"],
           "expires_in_hours": hours, "max_attempts": attempts})
}

/// An enrollment under `tls-client` (RFC 5280), which takes an organization and Ed25519 keys.
const MARIA_CLIENT: &str = "CN=Maria Silva,O=Example";

fn maria_client(hours: f64, attempts: u32) -> Value {
    json!({"profile": "tls-client", "subject": MARIA_CLIENT, "sans": ["maria@example.com"],
           "expires_in_hours": hours, "max_attempts": attempts})
}

fn redeem(s: &Server, id: &str, body: &Value) -> Resp {
    s.request(
        reqwest::Method::POST,
        &format!("/v1/enrollments/{id}/redeem"),
        None,
        Some(body),
    )
}

fn state(s: &Server, id: &str) -> Value {
    let r = s.get(&format!("/v1/enrollments/{id}"), Some(&s.tokens.ra));
    assert_eq!(r.status, 200, "GET /v1/enrollments/{id}: {r}");
    r.json
}

/// The three bootstrap tokens as secrets.
fn token_secrets(tokens: &Tokens) -> Vec<Secret> {
    vec![
        Secret::text("the RA token", &tokens.ra),
        Secret::text("the auditor token", &tokens.auditor),
        Secret::text("the operator token", &tokens.operator),
    ]
}

/// Stops the server and asserts that nothing it printed, from start to exit, holds one of
/// `secrets`.
fn assert_no_secret_in_output(s: Server, secrets: &[Secret]) {
    let (_, output) = s.terminate_with_output();
    let found = leaked_secrets(&output, secrets);
    assert!(
        found.is_empty(),
        "the server's output holds secrets: {found:?}. Output:\n{output}"
    );
    assert!(
        output.contains("enrollment redeemed"),
        "the search ran over the whole output, which logs redemptions: {output}"
    );
}

/// The negative control of the secret search: `text`, which holds `secret`, must be found to
/// hold it.
fn assert_found(text: &str, secret: &Secret, what: &str) {
    assert!(
        !leaked_secrets(text, std::slice::from_ref(secret)).is_empty(),
        "the secret search does not find {} in {what}:\n{text}",
        secret.name
    );
}

#[test]
fn a_code_redeems_once_with_a_csr_whose_own_names_are_ignored() {
    let s = Server::fresh();
    let (id, code) = create(&s, &maria(24.0, 3));
    // The code: at least 60 bits, groups a person can type.
    let symbols: String = code.chars().filter(|c| *c != '-').collect();
    assert!(symbols.len() * 5 >= 60, "code {code:?} too short");
    assert!(
        symbols
            .chars()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !"ILOU".contains(c))),
        "{code}"
    );
    assert_eq!(state(&s, &id)["state"], "pending");

    let csr = make_csr("ec-p256", "/CN=Someone Else", &["email:other@example.org"]);
    // Typed by a person: lower case, spaces instead of dashes.
    let typed = code.to_lowercase().replace('-', " ");
    let r = redeem(&s, &id, &json!({"code": typed, "csr": csr.pem}));
    assert_eq!(r.status, 201, "redeem with CSR: {r}");
    let serial = r.json["serial"].as_str().unwrap().to_string();
    let der = pem_certs(r.json["certificate"].as_str().unwrap())
        .pop()
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        "givenName=Maria, surname=Silva, CN=Maria Silva",
        "the enrollment's subject (DER order)"
    );
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        format!("{:?}", san.general_names),
        r#"[RFC822Name("maria@example.com")]"#
    );
    assert_eq!(cert.public_key().raw, &csr_spki(&csr)[..], "the CSR's key");
    let leaf = s.leaf_file(&r.json);
    openssl_verify(s.ca(), &leaf, "personal", "enrollment certificate");
    pkilint(&leaf, "enrollment certificate");

    let st = state(&s, &id);
    assert_eq!(st["state"], "redeemed", "{st}");
    assert_eq!(st["serial"], serial.as_str());
    let rec = s.record(&serial);
    assert_eq!(
        rec["requester"], "bootstrap-ra",
        "the enrolling RA is the requester"
    );
    // A second redemption, even with the right code, is refused.
    let r = redeem(&s, &id, &json!({"code": code, "csr": csr.pem}));
    assert_error(&r, 409, "enrollment_already_redeemed", "second redemption");

    // Neither the code nor the CSR nor a token is in the server's output.
    let code_secret = Secret::text("the enrollment code", &code);
    let csr_secret = Secret::pem("the CSR", &csr.pem);
    assert_found(
        &format!("[stderr] redeem {{\"code\": {typed:?}}}"),
        &code_secret,
        "a log line with the code as typed",
    );
    assert_found(
        &format!(
            "[stderr] body: {}",
            serde_json::to_string(&csr.pem).unwrap()
        ),
        &csr_secret,
        "a log line with the CSR as a JSON string",
    );
    let wrapped: String = csr.pem.lines().map(|l| format!("[stdout] {l}\n")).collect();
    assert_found(&wrapped, &csr_secret, "the CSR as PEM over log lines");
    let mut secrets = token_secrets(&s.tokens);
    secrets.extend([code_secret, csr_secret]);
    assert_no_secret_in_output(s, &secrets);
}

fn csr_spki(csr: &Csr) -> Vec<u8> {
    let der = csr.der();
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
    req.certification_request_info.subject_pki.raw.to_vec()
}
use x509_parser::prelude::FromDer;

#[test]
fn the_ca_generates_the_key_and_delivers_a_pkcs12_for_each_key_type() {
    let s = Server::fresh();
    let password = "correct horse battery";
    let mut secrets = token_secrets(&s.tokens);
    secrets.push(Secret::text("the PKCS#12 password", password));
    // Ed25519, which the S/MIME BR do not allow, is refused under personal before the code
    // is used, and generated under tls-client (RFC 5280).
    let (id, code) = create(&s, &maria(1.0, 3));
    secrets.push(Secret::text("the refused ed25519 enrollment code", &code));
    let r = redeem(
        &s,
        &id,
        &json!({"code": code, "key_type": "ed25519", "pkcs12_password": password}),
    );
    assert_error(&r, 422, "key_type_not_allowed", "ed25519 under personal");
    assert_eq!(state(&s, &id)["state"], "pending", "a refused key type");
    for (key_type, profile) in [
        ("ec-p256", "personal"),
        ("ec-p384", "personal"),
        ("ed25519", "tls-client"),
        ("rsa-2048", "personal"),
        ("rsa-3072", "personal"),
        ("rsa-4096", "personal"),
    ] {
        let (body, subject) = if profile == "personal" {
            (maria(1.0, 3), MARIA)
        } else {
            (maria_client(1.0, 3), MARIA_CLIENT)
        };
        let (id, code) = create(&s, &body);
        secrets.push(Secret::text(
            &format!("the {key_type} enrollment code"),
            &code,
        ));
        let r = redeem(
            &s,
            &id,
            &json!({"code": code, "key_type": key_type, "pkcs12_password": password}),
        );
        assert_eq!(r.status, 201, "redeem {key_type} for a PKCS#12: {r}");
        let (file, out) = open_delivered_pkcs12(&s, key_type, &r.json, password, subject);
        let serial = r.json["serial"].as_str().unwrap();
        secrets.extend(check_pkcs12_key_and_certificate(
            &s, key_type, profile, serial, &out,
        ));
        // A wrong password fails.
        let wrong = output_within(
            std::process::Command::new("openssl").args([
                "pkcs12",
                "-in",
                file.to_str().unwrap(),
                "-passin",
                "pass:wrong password",
                "-nodes",
            ]),
            COMMAND_DEADLINE,
        );
        assert!(
            !wrong.status.success(),
            "{key_type}: a wrong password must fail"
        );
        assert_eq!(state(&s, &id)["state"], "redeemed");
    }
    // Nothing about codes, passwords, tokens or keys in the server's output.
    assert_no_secret_in_output(s, &secrets);
}

/// Writes the PKCS#12 of a redemption answer to the scratch directory and opens it with
/// OpenSSL: AES-256-CBC under PBKDF2 with HMAC-SHA256, a private key, the friendly name and a
/// local key id; the friendly name is the certificate's `subject` (RFC 4514). Returns the file
/// and what `openssl pkcs12 -nodes` printed.
fn open_delivered_pkcs12(
    s: &Server,
    key_type: &str,
    answer: &Value,
    password: &str,
    subject: &str,
) -> (std::path::PathBuf, String) {
    let pfx = base64::engine::general_purpose::STANDARD
        .decode(answer["pkcs12"].as_str().unwrap())
        .unwrap();
    let file = s.scratch().join(format!("{key_type}.p12"));
    std::fs::write(&file, &pfx).unwrap();
    let f = file.to_str().unwrap();
    let pass = format!("pass:{password}");
    // -info writes the algorithms on stderr.
    let info = output_within(
        std::process::Command::new("openssl")
            .args(["pkcs12", "-in", f, "-passin", &pass, "-info", "-noout"]),
        COMMAND_DEADLINE,
    );
    assert!(info.status.success(), "{key_type}: openssl pkcs12 -info");
    let info =
        String::from_utf8_lossy(&info.stderr).to_string() + &String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("AES-256-CBC") && info.contains("PBKDF2") && info.contains("hmacWithSHA256"),
        "{key_type}: {info}"
    );
    let out = openssl(&["pkcs12", "-in", f, "-passin", &pass, "-nodes"]);
    assert!(
        out.contains("-----BEGIN PRIVATE KEY-----"),
        "{key_type}: key in {out}"
    );
    assert!(
        out.contains(&format!("friendlyName: {subject}")),
        "{key_type}: friendly name in {out}"
    );
    assert!(
        out.contains("localKeyID"),
        "{key_type}: local key id in {out}"
    );
    (file, out)
}

/// What a PKCS#12 holds (`out`, printed by `openssl pkcs12 -nodes`): the certificate of
/// `serial` and the CA's, and the private key of that certificate, which OpenSSL verifies
/// under the purpose of `profile`. Returns the key's secrets, each found where it is.
fn check_pkcs12_key_and_certificate(
    s: &Server,
    key_type: &str,
    profile: &str,
    serial: &str,
    out: &str,
) -> Vec<Secret> {
    let dir = s.scratch();
    let certs: Vec<Vec<u8>> = pem_blocks(out)
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der)
        .collect();
    assert_eq!(certs.len(), 2, "{key_type}: leaf and CA certificate");
    let (_, leaf) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
    assert_eq!(hex::encode(leaf.raw_serial()), serial);
    // The key matches the certificate.
    let key_pem = pem_blocks(out)
        .into_iter()
        .find(|(l, _)| l == "PRIVATE KEY")
        .unwrap()
        .1;
    let key_file = dir.join(format!("{key_type}.key"));
    std::fs::write(&key_file, to_pem("PRIVATE KEY", &key_pem)).unwrap();
    let key_secrets = private_key_secrets(key_type, &key_pem, &key_file, out);
    let leaf_file = dir.join(format!("{key_type}.crt"));
    std::fs::write(&leaf_file, to_pem("CERTIFICATE", &certs[0])).unwrap();
    let from_key = openssl(&["pkey", "-in", key_file.to_str().unwrap(), "-pubout"]);
    let from_cert = openssl(&[
        "x509",
        "-in",
        leaf_file.to_str().unwrap(),
        "-pubkey",
        "-noout",
    ]);
    assert_eq!(from_key, from_cert, "{key_type}: key and certificate");
    openssl_verify(s.ca(), &leaf_file, profile, key_type);
    key_secrets
}

/// The private numbers themselves (the scalar, or RSA's exponent and primes) of `key_file`,
/// and the PKCS#8 document `key_pem` (its DER); each must be found where it is, as the
/// negative control of the search: in the PEM the PKCS#12 holds (`out`), in `openssl pkey
/// -text` and in hex.
fn private_key_secrets(
    key_type: &str,
    key_pem: &[u8],
    key_file: &std::path::Path,
    out: &str,
) -> Vec<Secret> {
    let key_text = openssl(&["pkey", "-in", key_file.to_str().unwrap(), "-text", "-noout"]);
    let mut key_secrets = vec![Secret::bytes(
        &format!("the {key_type} PKCS#8 key"),
        key_pem,
    )];
    for (label, number) in private_numbers(key_file) {
        let secret = Secret::bytes(&format!("the {key_type} key's {label}"), &number);
        assert_found(out, &secret, "the PKCS#12's PEM");
        assert_found(&key_text, &secret, "openssl pkey -text");
        assert_found(
            &format!("[stderr] key {}", hex::encode_upper(&number)),
            &secret,
            "a log line with the number in hex",
        );
        key_secrets.push(secret);
    }
    assert!(
        key_secrets.len() >= if key_type.starts_with("rsa") { 7 } else { 2 },
        "{key_type}: the private numbers of {key_text}"
    );
    key_secrets
}

#[test]
fn wrong_codes_lock_expired_codes_are_gone_and_bad_input_is_refused() {
    let s = Server::fresh();
    let csr = make_csr("ec-p256", "/CN=x", &[]);
    let (id, code) = create(&s, &maria(24.0, 3));
    let wrong = if code.starts_with('0') {
        code.replacen('0', "1", 1)
    } else {
        format!("0{}", &code[1..])
    };
    for left in [2, 1, 0] {
        let r = redeem(&s, &id, &json!({"code": wrong, "csr": csr.pem}));
        assert_error(&r, 403, "enrollment_code_invalid", "a wrong code");
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!(
                    "{left} {} left",
                    if left == 1 { "attempt" } else { "attempts" }
                )),
            "{r}"
        );
    }
    let r = redeem(&s, &id, &json!({"code": code, "csr": csr.pem}));
    assert_error(
        &r,
        423,
        "enrollment_locked",
        "the right code after the limit",
    );
    assert_eq!(state(&s, &id)["state"], "locked");

    // A code that lives one second expires (polled, up to 30 s).
    let (id, code) = create(&s, &maria(1.0 / 3600.0, 3));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while state(&s, &id)["state"] != "expired" {
        assert!(
            std::time::Instant::now() < deadline,
            "a one-second code is not expired after 30 s: {}",
            state(&s, &id)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let r = redeem(&s, &id, &json!({"code": code, "csr": csr.pem}));
    assert_error(&r, 410, "enrollment_expired", "an expired code");

    refused_redemptions_do_not_use_the_code(&s, &csr);
    refused_creations(&s);

    // Every state change is in the audit log.
    let r = s.get("/v1/audit?limit=1000", Some(&s.tokens.auditor));
    let actions: Vec<&str> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "enrollment_created",
        "enrollment_attempt_failed",
        "enrollment_locked",
    ] {
        assert!(actions.contains(&a), "{a} in the audit log: {actions:?}");
    }
}

/// Bad input to a redemption (password, key type, neither CSR nor key type, a bad CSR) is
/// refused and leaves the enrollment pending; unknown and malformed ids are 404.
fn refused_redemptions_do_not_use_the_code(s: &Server, csr: &Csr) {
    let (id, code) = create(s, &maria(1.0, 3));
    let r = redeem(
        s,
        &id,
        &json!({"code": code, "key_type": "ec-p256", "pkcs12_password": "short"}),
    );
    assert_error(&r, 422, "password_too_short", "a 5-character password");
    let r = redeem(
        s,
        &id,
        &json!({"code": code, "key_type": "rsa-1024", "pkcs12_password": "long enough"}),
    );
    assert_error(&r, 422, "key_type_not_allowed", "rsa-1024");
    let r = redeem(s, &id, &json!({"code": code}));
    assert_error(&r, 400, "invalid_request", "neither CSR nor key type");
    let r = redeem(s, &id, &json!({"code": code, "csr": "not a csr"}));
    assert_error(&r, 400, "csr_malformed", "a bad CSR");
    assert_eq!(
        state(s, &id)["state"],
        "pending",
        "refused input does not use the code"
    );
    let r = redeem(
        s,
        "00112233445566778899aabbccddeeff",
        &json!({"code": code, "csr": csr.pem}),
    );
    assert_error(&r, 404, "enrollment_not_found", "unknown id");
    let r = redeem(s, "xyz", &json!({"code": code, "csr": csr.pem}));
    assert_error(&r, 404, "enrollment_not_found", "malformed id");
}

/// Creation is the RA's, checked against the profile.
fn refused_creations(s: &Server) {
    let r = s.post("/v1/enrollments", &s.tokens.auditor, &maria(1.0, 3));
    assert_error(&r, 403, "forbidden", "an auditor creating an enrollment");
    let mut bad = maria(1.0, 3);
    bad["sans"] = json!(["www.example.com"]);
    assert_error(
        &s.post("/v1/enrollments", &s.tokens.ra, &bad),
        422,
        "san_not_allowed",
        "a DNS SAN on personal",
    );
    // The S/MIME BR (strict): an e-mail address, and no organization in an individual's
    // subject.
    let mut bad = maria(1.0, 3);
    bad["sans"] = json!([]);
    assert_error(
        &s.post("/v1/enrollments", &s.tokens.ra, &bad),
        422,
        "san_required",
        "no e-mail SAN on personal",
    );
    let mut bad = maria(1.0, 3);
    bad["subject"] = json!(format!("{MARIA},O=Example"));
    assert_error(
        &s.post("/v1/enrollments", &s.tokens.ra, &bad),
        422,
        "subject_not_allowed",
        "an organization on personal",
    );
    let mut bad = maria(1.0, 3);
    bad["expires_in_hours"] = json!(0);
    assert_error(
        &s.post("/v1/enrollments", &s.tokens.ra, &bad),
        400,
        "invalid_request",
        "zero lifetime",
    );
    let mut bad = maria(1.0, 3);
    bad["profile"] = json!("nope");
    assert_error(
        &s.post("/v1/enrollments", &s.tokens.ra, &bad),
        422,
        "unknown_profile",
        "unknown profile",
    );
}

/// A subject outside the BMP: the PKCS#12 friendly name cannot hold it as it is, and the
/// redemption still delivers a PKCS#12 OpenSSL opens. Returns the enrollment code.
fn a_subject_outside_the_bmp_gets_its_pkcs12(s: &Server, password: &str) -> String {
    let (id, code) = create(
        s,
        &json!({"profile": "personal", "subject": "CN=Maria 😀 Silva,SN=Silva,GN=Maria 😀",
                "sans": ["maria@example.com"],
                "expires_in_hours": 1.0, "max_attempts": 3}),
    );
    let r = redeem(
        s,
        &id,
        &json!({"code": code, "key_type": "ec-p256", "pkcs12_password": password}),
    );
    assert_eq!(r.status, 201, "a subject outside the BMP: {r}");
    let pfx = base64::engine::general_purpose::STANDARD
        .decode(r.json["pkcs12"].as_str().unwrap())
        .unwrap();
    let file = s.scratch().join("emoji-subject.p12");
    std::fs::write(&file, &pfx).unwrap();
    // OpenSSL prints the friendly name's U+FFFD as one Latin-1 byte: not UTF-8.
    let out = output_within(
        std::process::Command::new("openssl")
            .args(["pkcs12", "-in", file.to_str().unwrap(), "-nodes", "-passin"])
            .arg(format!("pass:{password}")),
        COMMAND_DEADLINE,
    );
    assert!(out.status.success(), "openssl pkcs12: {out:?}");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("-----BEGIN PRIVATE KEY-----"), "{out}");
    assert!(out.contains("friendlyName: CN=Maria"), "{out}");
    code
}

/// The CPU time the process `pid` has used so far, in seconds: utime + stime of
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks), summed over all its threads.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc stat");
    // The fields after the command name in parentheses start with field 3 (state).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("a tick count");
    let hz: f64 = Some(output_within(
        std::process::Command::new("getconf").arg("CLK_TCK"),
        COMMAND_DEADLINE,
    ))
    .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
    .unwrap_or(100.0);
    (ticks(14) + ticks(15)) / hz
}

/// A redemption for a CA-generated RSA-4096 key costs the server nothing before the
/// enrollment, its state and the code are checked: 20 attempts with an unknown id or a wrong
/// code (each answered 404 or 403 at once, the wrong codes counted) stay under half a second
/// of server CPU, where generating the keys first cost seconds each. Unknown ids never reach
/// the code's PBKDF2: `ca_enrollment_code_checks_total` counts the wrong codes only.
#[test]
fn redeem_checks_the_enrollment_and_code_before_generating_a_key() {
    let s = Server::fresh();
    let (id, code) = create(&s, &maria(24.0, 20));
    let wrong = if code.starts_with('0') {
        code.replacen('0', "1", 1)
    } else {
        format!("0{}", &code[1..])
    };
    let body = |code: &str| json!({"code": code, "key_type": "rsa-4096", "pkcs12_password": "a long passphrase"});
    // Warm up the route (first-use allocations, lazy statics) before measuring.
    let r = redeem(&s, "ffeeddccbbaa99887766554433221100", &body(&code));
    assert_error(&r, 404, "enrollment_not_found", "warm-up");

    let before = cpu_seconds(s.pid());
    let started = std::time::Instant::now();
    for i in 0..10u32 {
        let random_id = format!("{:032x}", 0x5eed_0000_u128 + u128::from(i));
        let r = redeem(&s, &random_id, &body(&code));
        assert_error(&r, 404, "enrollment_not_found", "an unknown enrollment id");
        let r = redeem(&s, &id, &body(&wrong));
        assert_error(&r, 403, "enrollment_code_invalid", "a wrong code");
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("{} attempts left", 20 - (i + 1))),
            "the wrong code is counted: {r}"
        );
    }
    let used = cpu_seconds(s.pid()) - before;
    eprintln!("20 refused rsa-4096 redemptions: {used:.3} s of server CPU");
    assert!(
        used < 0.5,
        "20 refused redemptions for rsa-4096 cost the server {used:.2} s of CPU \
         ({:.1} s wall): keys are generated before the enrollment and code are checked",
        started.elapsed().as_secs_f64()
    );
    let st = state(&s, &id);
    assert_eq!(st["state"], "pending", "{st}");
    assert_eq!(st["attempts_left"], 10, "every wrong code counted: {st}");
    let checks = |outcome: &str| {
        s.metric(&format!(
            "ca_enrollment_code_checks_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(
        (checks("mismatch"), checks("match")),
        (10.0, 0.0),
        "11 unknown ids and 10 wrong codes: only the wrong codes were hashed"
    );

    // The right code still redeems, for a key the CA generates.
    let r = redeem(
        &s,
        &id,
        &json!({"code": code, "key_type": "ec-p256", "pkcs12_password": "a long passphrase"}),
    );
    assert_eq!(r.status, 201, "the right code: {r}");
    assert_eq!(state(&s, &id)["state"], "redeemed");
    assert_eq!((checks("mismatch"), checks("match")), (10.0, 1.0));
    // A redeemed enrollment refuses before hashing too.
    let r = redeem(&s, &id, &body(&code));
    assert_error(&r, 409, "enrollment_already_redeemed", "redeemed");
    assert_eq!((checks("mismatch"), checks("match")), (10.0, 1.0));
}

/// A PKCS#12 password the file cannot carry (a character outside Unicode's Basic Multilingual
/// Plane, which a BMPString cannot hold, RFC 7292 appendix B.1) is refused before anything is
/// committed: the code is not used up and redeems afterwards with a valid password. A subject
/// with such a character still gets its PKCS#12 file (the friendly name carries U+FFFD
/// instead).
#[test]
fn an_unusable_pkcs12_password_is_refused_before_the_code_is_used() {
    let s = Server::fresh();
    let (id, code) = create(&s, &maria(1.0, 3));
    let first_code = code.clone();
    let r = redeem(
        &s,
        &id,
        &json!({"code": code, "key_type": "ec-p256", "pkcs12_password": "a long passphrase 😀"}),
    );
    assert_error(&r, 422, "password_not_allowed", "an emoji in the password");
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Basic Multilingual Plane"),
        "the message says why: {r}"
    );
    let st = state(&s, &id);
    assert_eq!(st["state"], "pending", "the code is not used up: {st}");
    assert_eq!(st["attempts_left"], 3, "refused input is no attempt: {st}");
    // A control character cannot be typed into a PKCS#12 reader either.
    let r = redeem(
        &s,
        &id,
        &json!({"code": code, "key_type": "ec-p256", "pkcs12_password": "a long\u{0}passphrase"}),
    );
    assert_error(&r, 422, "password_not_allowed", "a NUL in the password");
    assert_eq!(state(&s, &id)["state"], "pending");

    let password = "a long passphrase";
    let r = redeem(
        &s,
        &id,
        &json!({"code": code, "key_type": "ec-p256", "pkcs12_password": password}),
    );
    assert_eq!(r.status, 201, "the same code with a valid password: {r}");
    assert_eq!(state(&s, &id)["state"], "redeemed");
    let pfx = base64::engine::general_purpose::STANDARD
        .decode(r.json["pkcs12"].as_str().unwrap())
        .unwrap();
    let file = s.scratch().join("after-refusal.p12");
    std::fs::write(&file, &pfx).unwrap();
    let out = openssl(&[
        "pkcs12",
        "-in",
        file.to_str().unwrap(),
        "-passin",
        &format!("pass:{password}"),
        "-nodes",
    ]);
    assert!(out.contains("-----BEGIN PRIVATE KEY-----"), "{out}");

    let code = a_subject_outside_the_bmp_gets_its_pkcs12(&s, password);

    // No password, refused or used, and no code in the server's output.
    let mut secrets = token_secrets(&s.tokens);
    for (i, refused) in ["a long passphrase 😀", "a long\u{0}passphrase"]
        .into_iter()
        .enumerate()
    {
        secrets.push(Secret::text(
            &format!("refused password {}", i + 1),
            refused,
        ));
    }
    secrets.push(Secret::text("the PKCS#12 password", password));
    secrets.push(Secret::text("the first enrollment code", &first_code));
    secrets.push(Secret::text("the second enrollment code", &code));
    assert_no_secret_in_output(s, &secrets);
}
