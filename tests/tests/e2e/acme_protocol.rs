//! ACME (RFC 8555) as the RFC and docs/API.md ("## ACME") write it, request by request, with
//! the test client of `e2e_tests::acme_client`: the directory and nonces, the checks of every
//! JWS (nonce, url, key form, algorithm, signature), accounts, External Account Binding, key
//! rollover, the order state machine, identifiers refused, another account's objects,
//! failed validation, revocation, renewal information, the order rate and the audit log.
//!
//! Every answer is checked for its status, its problem `type`, and the headers every ACME
//! answer carries (`Replay-Nonce`, `Link: <directory>;rel="index"`).

use e2e_tests::acme_client::*;
use e2e_tests::audit_chain::audit_log;
use e2e_tests::formats::{now_unix, parse_rfc3339};
use serde_json::{json, Value};

/// Names under a public suffix, which the `tls-server` profile accepts.
const ZONE: &str = "proto.example.com";

fn name(label: &str) -> String {
    format!("{label}.{ZONE}")
}

/// 16 random bytes, base64url: an id or nonce no server handed out.
fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    b64(&bytes)
}

#[test]
fn directory_and_new_nonce() {
    let p = ProtoServer::start(true, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let base = format!("{}/acme", p.s.base);
    let mut soft = Soft::new();

    let r = acme.get(&d);
    soft.ok("GET directory", &r, 200, &d);
    for (field, path) in [
        ("newNonce", "/new-nonce"),
        ("newAccount", "/new-account"),
        ("newOrder", "/new-order"),
        ("revokeCert", "/revoke-cert"),
        ("keyChange", "/key-change"),
        ("renewalInfo", "/renewal-info"),
    ] {
        soft.check(r.json[field] == format!("{base}{path}"), || {
            format!("directory {field} is {base}{path}: {r}")
        });
    }
    soft.check(r.json["meta"]["externalAccountRequired"] == true, || {
        format!("meta.externalAccountRequired true (the default eab_required): {r}")
    });
    soft.check(r.json["meta"]["profiles"]["tls-server"].is_string(), || {
        format!("meta.profiles names tls-server: {r}")
    });

    // RFC 8555 section 7.2: HEAD 200, GET 204, a Replay-Nonce, Cache-Control: no-store.
    for (method, status) in [("HEAD", 200), ("GET", 204)] {
        let url = acme.url("newNonce");
        let r = if method == "HEAD" {
            acme.head(&url)
        } else {
            acme.get(&url)
        };
        soft.ok(&format!("{method} newNonce"), &r, status, &d);
        soft.check(
            r.header("cache-control")
                .is_some_and(|c| c.contains("no-store")),
            || format!("{method} newNonce: Cache-Control: no-store (RFC 8555 7.2): {r}"),
        );
        soft.check(r.bytes.is_empty(), || {
            format!("{method} newNonce has no body: {r}")
        });
    }
    // Two nonces are never the same.
    let (a, b) = (acme.new_nonce(), acme.new_nonce());
    soft.check(a != b, || format!("two nonces are equal: {a}"));
    soft.finish("directory and newNonce");
}

#[test]
fn nonces_are_single_use_and_must_be_the_servers() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let a = p.account(&acme);
    let mut soft = Soft::new();

    // A JWS sent twice: the second is a replay (RFC 8555 section 6.5).
    let jws = acme.jws(&a.key, KeyRef::Kid(&a.url), &a.url, None);
    let first = acme.post_jws(&a.url, &jws);
    first.expect_ok(200, &d);
    let replay = acme.post_jws(&a.url, &jws);
    replay.expect_problem(400, "badNonce", &d);
    // The fresh nonce of the badNonce answer works (section 6.5: retry with it).
    let fresh = acme.take_nonce(&replay);
    let header = protected_header(&a.key, KeyRef::Kid(&a.url), &fresh, &a.url);
    let r = acme.post_jws(&a.url, &sign_jws(&a.key, &header, b""));
    soft.ok("POST with the badNonce answer's nonce", &r, 200, &d);

    // A nonce the server never issued.
    let header = protected_header(&a.key, KeyRef::Kid(&a.url), &random_b64(24), &a.url);
    let r = acme.post_jws(&a.url, &sign_jws(&a.key, &header, b""));
    soft.problem("a made-up nonce", &r, 400, "badNonce", &d);

    // No nonce at all.
    let mut header = protected_header(&a.key, KeyRef::Kid(&a.url), "x", &a.url);
    header.as_object_mut().unwrap().remove("nonce");
    let r = acme.post_jws(&a.url, &sign_jws(&a.key, &header, b""));
    soft.problem("no nonce", &r, 400, "badNonce", &d);

    // A replayed newAccount is refused as well (the nonce, before anything else happens).
    let key = AccountKey::es256();
    let jws = acme.jws(
        &key,
        KeyRef::Jwk,
        &acme.url("newAccount"),
        Some(&json!({"termsOfServiceAgreed": true})),
    );
    let r = acme.post_jws(&acme.url("newAccount"), &jws);
    soft.ok("newAccount", &r, 201, &d);
    let r = acme.post_jws(&acme.url("newAccount"), &jws);
    soft.problem("newAccount replayed", &r, 400, "badNonce", &d);

    // The nonce is checked before the url (docs/API.md, "Requests"): a made-up nonce with a
    // wrong url is badNonce.
    let header = protected_header(
        &a.key,
        KeyRef::Kid(&a.url),
        &random_b64(24),
        &acme.url("newOrder"),
    );
    let r = acme.post_jws(&a.url, &sign_jws(&a.key, &header, b""));
    soft.problem("made-up nonce and wrong url", &r, 400, "badNonce", &d);
    soft.finish("nonces");
}

#[test]
fn every_jws_is_checked_for_url_key_form_algorithm_and_signature() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let a = p.account(&acme);
    let new_order = acme.url("newOrder");
    let new_account = acme.url("newAccount");
    let order_payload = json!({"identifiers": [{"type": "dns", "value": name("jws")}]});
    let order_bytes = order_payload.to_string().into_bytes();
    let mut soft = Soft::new();

    // The url header must be the URL posted to (RFC 8555 section 6.4).
    let header = protected_header(&a.key, KeyRef::Kid(&a.url), &acme.nonce(), &new_order);
    let r = acme.post_jws(&a.url, &sign_jws(&a.key, &header, b""));
    soft.problem("url of another resource", &r, 403, "unauthorized", &d);
    let header = protected_header(
        &a.key,
        KeyRef::Kid(&a.url),
        &acme.nonce(),
        &format!("{}/", a.url),
    );
    let r = acme.post_jws(&a.url, &sign_jws(&a.key, &header, b""));
    soft.problem("url with a trailing slash", &r, 403, "unauthorized", &d);

    // Exactly one of jwk and kid (section 6.2).
    let mut header = protected_header(&a.key, KeyRef::Kid(&a.url), &acme.nonce(), &new_order);
    header["jwk"] = a.key.jwk();
    let r = acme.post_jws(&new_order, &sign_jws(&a.key, &header, &order_bytes));
    soft.problem("jwk and kid both", &r, 400, "malformed", &d);
    let mut header = protected_header(&a.key, KeyRef::Kid(&a.url), &acme.nonce(), &new_order);
    header.as_object_mut().unwrap().remove("kid");
    let r = acme.post_jws(&new_order, &sign_jws(&a.key, &header, &order_bytes));
    soft.problem("neither jwk nor kid", &r, 400, "malformed", &d);

    // newAccount takes jwk, everything else kid (sections 6.2, 7.3).
    let r = acme.post(
        &a.key,
        KeyRef::Kid(&a.url),
        &new_account,
        Some(&json!({"termsOfServiceAgreed": true})),
    );
    soft.problem("kid for newAccount", &r, 400, "malformed", &d);
    let r = acme.post(&a.key, KeyRef::Jwk, &new_order, Some(&order_payload));
    soft.problem("jwk for newOrder", &r, 400, "malformed", &d);
    let r = acme.post(&a.key, KeyRef::Jwk, &a.url, None);
    soft.problem("jwk for the account URL", &r, 400, "malformed", &d);

    // A kid that names no account.
    let ghost = format!("{}/acme/acct/{}", p.s.base, random_b64(16));
    let r = acme.post(
        &a.key,
        KeyRef::Kid(&ghost),
        &new_order,
        Some(&order_payload),
    );
    soft.problem("unknown kid", &r, 400, "accountDoesNotExist", &d);
    let r = acme.post(
        &a.key,
        KeyRef::Kid("https://elsewhere.example/acct/1"),
        &new_order,
        Some(&order_payload),
    );
    soft.problem(
        "a kid that is no account URL",
        &r,
        400,
        "accountDoesNotExist",
        &d,
    );

    // Algorithms (section 6.2): none and MACs are refused with the list of those accepted.
    let mut header = protected_header(&a.key, KeyRef::Kid(&a.url), &acme.nonce(), &new_order);
    header["alg"] = "none".into();
    let mut jws = sign_jws(&a.key, &header, &order_bytes);
    jws["signature"] = "".into();
    let r = acme.post_jws(&new_order, &jws);
    soft.problem("alg none", &r, 400, "badSignatureAlgorithm", &d);
    soft.check(
        r.json["algorithms"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "ES256")),
        || format!("badSignatureAlgorithm lists the algorithms (RFC 8555 6.2): {r}"),
    );
    let mut header = protected_header(&a.key, KeyRef::Kid(&a.url), &acme.nonce(), &new_order);
    header["alg"] = "HS256".into();
    let jws = mac_jws(b"a shared secret of 32 bytes....", &header, &order_bytes);
    let r = acme.post_jws(&new_order, &jws);
    soft.problem("alg HS256", &r, 400, "badSignatureAlgorithm", &d);
    // An alg that does not go with the key.
    let mut header = protected_header(&a.key, KeyRef::Kid(&a.url), &acme.nonce(), &new_order);
    header["alg"] = "RS256".into();
    let r = acme.post_jws(&new_order, &sign_jws(&a.key, &header, &order_bytes));
    soft.problem("RS256 with an EC key", &r, 400, "badSignatureAlgorithm", &d);

    // A signature that does not verify: malformed (docs/API.md, "Requests").
    let mut jws = acme.jws(
        &a.key,
        KeyRef::Kid(&a.url),
        &new_order,
        Some(&order_payload),
    );
    let mut sig = unb64(jws["signature"].as_str().unwrap());
    sig[10] ^= 1;
    jws["signature"] = b64(&sig).into();
    let r = acme.post_jws(&new_order, &jws);
    soft.problem("a flipped signature bit", &r, 400, "malformed", &d);
    // Signed by another key than the account's.
    let other = AccountKey::es256();
    let header = protected_header(&other, KeyRef::Kid(&a.url), &acme.nonce(), &new_order);
    let r = acme.post_jws(&new_order, &sign_jws(&other, &header, &order_bytes));
    soft.problem("signed by another key", &r, 400, "malformed", &d);
    // newAccount whose jwk is not the key that signed.
    let mut header = protected_header(&other, KeyRef::Jwk, &acme.nonce(), &new_account);
    header["jwk"] = AccountKey::es256().jwk();
    let r = acme.post_jws(
        &new_account,
        &sign_jws(&other, &header, br#"{"termsOfServiceAgreed":true}"#),
    );
    soft.problem(
        "newAccount signed by another key than its jwk",
        &r,
        400,
        "malformed",
        &d,
    );
    // Not a JWS at all.
    let r = acme.post_bytes(&new_order, b"{\"hello\": 1}".to_vec());
    soft.problem("a body that is no JWS", &r, 400, "malformed", &d);

    // The order of the checks (docs/API.md, "Requests"): the first failure answers.
    let ghost_header = |nonce: &str, url: &str| {
        sign_jws(
            &a.key,
            &protected_header(&a.key, KeyRef::Kid(&ghost), nonce, url),
            &order_bytes,
        )
    };
    let mut header = protected_header(&a.key, KeyRef::Kid(&a.url), &random_b64(24), &new_order);
    header["alg"] = "none".into();
    let r = acme.post_jws(&new_order, &sign_jws(&a.key, &header, &order_bytes));
    soft.problem(
        "alg none before a made-up nonce",
        &r,
        400,
        "badSignatureAlgorithm",
        &d,
    );
    let r = acme.post_jws(&new_order, &ghost_header(&acme.nonce(), &a.url));
    soft.problem(
        "wrong url before an unknown kid",
        &r,
        403,
        "unauthorized",
        &d,
    );
    let mut jws = ghost_header(&acme.nonce(), &new_order);
    jws["signature"] = b64(&[1u8; 64]).into();
    let r = acme.post_jws(&new_order, &jws);
    soft.problem(
        "unknown kid before a bad signature",
        &r,
        400,
        "accountDoesNotExist",
        &d,
    );

    // Content-Type must be application/jose+json: 415 otherwise (RFC 8555 section 6.2).
    let jws = acme.jws(
        &a.key,
        KeyRef::Kid(&a.url),
        &new_order,
        Some(&order_payload),
    );
    let r = acme.post_bytes_as(&new_order, jws.to_string().into_bytes(), "application/json");
    soft.check(r.status == 415, || {
        format!("a JWS sent as application/json is 415 (RFC 8555 section 6.2): {r}")
    });
    soft.check(r.headers_mismatch(&d).is_none(), || {
        format!("the 415 carries the ACME headers: {r}")
    });

    // The untampered request works, and RS256 and EdDSA accounts work too.
    let r = acme.post_as(&a, &new_order, &order_payload);
    soft.ok("the same newOrder untampered", &r, 201, &d);
    for kind in [KeyKind::Rs256, KeyKind::EdDsa] {
        let b = p.account_with(&acme, AccountKey::new(kind));
        let r = acme.get_as(&b, &b.url);
        soft.ok(&format!("POST-as-GET the {kind:?} account"), &r, 200, &d);
        let r = acme.post_as(&b, &new_order, &order_payload);
        soft.ok(&format!("newOrder by the {kind:?} account"), &r, 201, &d);
    }
    soft.finish("JWS checks");
}

#[test]
fn accounts_are_created_found_updated_and_deactivated() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let mut soft = Soft::new();

    let key = AccountKey::es256();
    let payload = acme.new_account_payload(&key, None);
    let r = acme.new_account(&key, &payload);
    r.expect_ok(201, &d);
    let url = r.location();
    assert!(
        url.starts_with(&format!("{}/acme/acct/", p.s.base)),
        "Location: {r}"
    );
    soft.check(r.json["orders"].is_string(), || {
        format!("the account has its orders URL: {r}")
    });
    let a = Account { key, url };

    // The same key again: 200 with the same account (RFC 8555 section 7.3.1).
    let r = acme.new_account(&a.key, &payload);
    soft.ok("newAccount with the same key", &r, 200, &d);
    soft.check(r.location() == a.url, || {
        format!("the existing account's Location {}: {r}", a.url)
    });
    let r = acme.new_account(&a.key, &json!({"onlyReturnExisting": true}));
    soft.ok("onlyReturnExisting with its key", &r, 200, &d);
    soft.check(r.location() == a.url, || format!("Location: {r}"));
    let r = acme.new_account(&AccountKey::es256(), &json!({"onlyReturnExisting": true}));
    soft.problem(
        "onlyReturnExisting, unknown key",
        &r,
        400,
        "accountDoesNotExist",
        &d,
    );
    soft.check(r.location().is_empty(), || {
        format!("no account, no Location: {r}")
    });

    // Contacts (section 7.3.2).
    let r = acme.post_as(&a, &a.url, &json!({"contact": ["mailto:new@example.com"]}));
    soft.ok("contact update", &r, 200, &d);
    let r = acme.get_as(&a, &a.url);
    soft.check(
        r.json["contact"] == json!(["mailto:new@example.com"]),
        || format!("the contact was updated: {r}"),
    );
    let r = acme.post_as(&a, &a.url, &json!({"contact": ["mailto:no-at-sign"]}));
    soft.problem("a mailto without an address", &r, 400, "invalidContact", &d);
    let r = acme.post_as(&a, &a.url, &json!({"contact": ["tel:+15555550100"]}));
    soft.problem("a tel: contact", &r, 400, "unsupportedContact", &d);
    let key = AccountKey::es256();
    let r = acme.new_account(
        &key,
        &json!({"termsOfServiceAgreed": true, "contact": ["mailto:a@example.com,b@example.com"]}),
    );
    soft.problem(
        "newAccount, two addresses in one",
        &r,
        400,
        "invalidContact",
        &d,
    );
    let eleven: Vec<String> = (0..11)
        .map(|i| format!("mailto:c{i}@example.com"))
        .collect();
    let r = acme.post_as(&a, &a.url, &json!({ "contact": eleven }));
    soft.problem("eleven contacts", &r, 400, "invalidContact", &d);
    let r = acme.get_as(&a, &a.url);
    soft.check(
        r.json["contact"] == json!(["mailto:new@example.com"]),
        || format!("refused updates changed nothing: {r}"),
    );
    let r = acme.post_as(&a, &a.url, &json!({"status": "revoked"}));
    soft.problem("status other than deactivated", &r, 400, "malformed", &d);
    let r = acme.post_as(&a, &a.url, &json!({"unknownField": 1}));
    soft.problem("an unknown field", &r, 400, "malformed", &d);

    // Another account cannot read or change this one.
    let b = p.account(&acme);
    let r = acme.get_as(&b, &a.url);
    soft.problem("another account's URL", &r, 403, "unauthorized", &d);

    // Deactivation (section 7.3.6): then every request with that key is refused.
    let r = acme.post_as(&a, &a.url, &json!({"status": "deactivated"}));
    soft.ok("deactivation", &r, 200, &d);
    soft.check(r.json["status"] == "deactivated", || {
        format!("the account is deactivated: {r}")
    });
    let r = acme.get_as(&a, &a.url);
    soft.problem("deactivated: POST-as-GET", &r, 403, "unauthorized", &d);
    let r = acme.new_order(&a, &[&name("deactivated")]);
    soft.problem("deactivated: newOrder", &r, 403, "unauthorized", &d);
    let r = acme.post_as(&a, &a.url, &json!({"status": "valid"}));
    soft.problem("deactivated: reactivation", &r, 403, "unauthorized", &d);
    let r = acme.new_account(&a.key, &payload);
    soft.problem(
        "deactivated: newAccount with its key",
        &r,
        403,
        "unauthorized",
        &d,
    );
    soft.finish("accounts");
}

#[test]
fn external_account_binding_binds_accounts_and_their_certificates_to_the_ra() {
    // eab_required left out: its default, true.
    let p = ProtoServer::start(true, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let new_account = acme.url("newAccount");
    let mut soft = Soft::new();
    soft.check(
        acme.directory["meta"]["externalAccountRequired"] == true,
        || format!("meta.externalAccountRequired: {}", acme.directory),
    );

    // POST /v1/acme/eab: the operator's, for a live RA token.
    let r =
        p.s.post("/v1/acme/eab", &p.ra_token, &json!({"ra": PROTO_RA}));
    soft.check(r.status == 403, || {
        format!("POST /v1/acme/eab with an RA token is 403: {r}")
    });
    let r = p.s.post(
        "/v1/acme/eab",
        &p.s.tokens.operator,
        &json!({"ra": "no-such-ra"}),
    );
    soft.check(
        r.status == 404 && r.json["error"]["code"] == "token_not_found",
        || format!("POST /v1/acme/eab for an unknown RA: 404 token_not_found: {r}"),
    );
    let eab = p.eab();

    let key = AccountKey::es256();
    let r = acme.new_account(&key, &acme.new_account_payload(&key, None));
    soft.problem("no binding", &r, 403, "externalAccountRequired", &d);
    let wrong_mac = EabKey {
        mac: vec![7u8; 32],
        ..eab.clone()
    };
    let r = acme.new_account(&key, &acme.new_account_payload(&key, Some(&wrong_mac)));
    soft.problem("a MAC with another key", &r, 403, "unauthorized", &d);
    let unknown = EabKey {
        kid: random_b64(16),
        ..eab.clone()
    };
    let r = acme.new_account(&key, &acme.new_account_payload(&key, Some(&unknown)));
    soft.problem("an unknown key id", &r, 403, "unauthorized", &d);
    // A binding over another key than the account's.
    let mut payload = acme.new_account_payload(&key, None);
    payload["externalAccountBinding"] =
        eab_binding(&AccountKey::es256(), &eab.kid, &eab.mac, &new_account);
    let r = acme.new_account(&key, &payload);
    soft.check(r.status >= 400 && r.status < 500, || {
        format!("a binding over another key is refused: {r}")
    });

    // The right one binds the account.
    let r = acme.new_account(&key, &acme.new_account_payload(&key, Some(&eab)));
    r.expect_ok(201, &d);
    let a = Account {
        key,
        url: r.location(),
    };
    soft.check(
        r.json["externalAccountBinding"]["kid"] == eab.kid.as_str(),
        || format!("the account shows its binding: {r}"),
    );
    // A key id binds once.
    let key2 = AccountKey::es256();
    let r = acme.new_account(&key2, &acme.new_account_payload(&key2, Some(&eab)));
    soft.problem("a key id used twice", &r, 403, "unauthorized", &d);

    // Its certificates are the RA's: listed for the RA token, with it as requester.
    let cert_key = AccountKey::es256();
    let (_, chain) = acme.issue(&a, &p.http01, &cert_key, p.scratch.path(), &[&name("eab")]);
    let serial = serial_hex(&chain[0]);
    let r = p.s.get("/v1/certificates?limit=1000", Some(&p.ra_token));
    assert_eq!(r.status, 200, "GET /v1/certificates as the RA: {r}");
    let item = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["serial"] == serial.as_str())
        .cloned();
    soft.check(item.is_some(), || {
        format!("the RA lists the certificate {serial}: {r}")
    });
    if let Some(item) = item {
        soft.check(item["requester"] == PROTO_RA, || {
            format!("its requester is the RA {PROTO_RA}: {item}")
        });
    }
    let r = p.s.get("/v1/certificates?limit=1000", Some(&p.s.tokens.ra));
    soft.check(
        r.status == 200
            && !r.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["serial"] == serial.as_str()),
        || format!("another RA does not list {serial}: {r}"),
    );
    soft.finish("external account binding");
}

#[test]
fn key_rollover_moves_the_account_to_the_new_key() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let key_change = acme.url("keyChange");
    let mut soft = Soft::new();
    let a = p.account(&acme);
    let b = p.account(&acme);

    // Refused inner JWSs first (RFC 8555 section 7.3.5).
    let new_key = AccountKey::es256();
    let mut inner_header = json!({"alg": new_key.alg(), "jwk": new_key.jwk(), "url": a.url});
    let inner_payload = json!({"account": a.url, "oldKey": a.key.jwk()}).to_string();
    let inner = sign_jws(&new_key, &inner_header, inner_payload.as_bytes());
    let r = acme.post_as(&a, &key_change, &inner);
    soft.problem("inner url not the keyChange URL", &r, 400, "malformed", &d);
    inner_header["url"] = key_change.clone().into();
    inner_header["nonce"] = acme.nonce().into();
    let inner = sign_jws(&new_key, &inner_header, inner_payload.as_bytes());
    let r = acme.post_as(&a, &key_change, &inner);
    soft.problem("inner JWS with a nonce", &r, 400, "malformed", &d);
    let inner_header = json!({"alg": new_key.alg(), "jwk": new_key.jwk(), "url": key_change});
    let wrong_old = json!({"account": a.url, "oldKey": b.key.jwk()}).to_string();
    let inner = sign_jws(&new_key, &inner_header, wrong_old.as_bytes());
    let r = acme.post_as(&a, &key_change, &inner);
    soft.problem("oldKey not the account's key", &r, 400, "malformed", &d);
    let wrong_account = json!({"account": b.url, "oldKey": a.key.jwk()}).to_string();
    let inner = sign_jws(&new_key, &inner_header, wrong_account.as_bytes());
    let r = acme.post_as(&a, &key_change, &inner);
    soft.problem("account not the signer's", &r, 400, "malformed", &d);

    // The new key of another account: 409 with that account's URL.
    let r = acme.key_change(&a, &b.key);
    soft.check(r.status == 409 && r.location() == b.url, || {
        format!(
            "key change to another account's key: 409 with Location {} (RFC 8555 7.3.5): {r}",
            b.url
        )
    });
    soft.check(r.headers_mismatch(&d).is_none(), || {
        format!("the 409 carries the ACME headers: {r}")
    });
    soft.check(r.problem_type() == "malformed", || {
        format!("the 409 is a problem document: {r}")
    });

    // The change itself.
    let r = acme.key_change(&a, &new_key);
    r.expect_ok(200, &d);
    let old = Account {
        key: AccountKey::from_pkcs8(a.key.kind, a.key.pkcs8.clone()),
        url: a.url.clone(),
    };
    let a = Account {
        key: new_key,
        url: a.url,
    };
    let r = acme.get_as(&old, &old.url);
    soft.problem("the old key after the change", &r, 400, "malformed", &d);
    let r = acme.new_order(&old, &[&name("old-key")]);
    soft.problem("newOrder with the old key", &r, 400, "malformed", &d);
    let r = acme.new_account(&old.key, &json!({"onlyReturnExisting": true}));
    soft.problem(
        "the old key has no account",
        &r,
        400,
        "accountDoesNotExist",
        &d,
    );
    let r = acme.get_as(&a, &a.url);
    soft.ok("the new key", &r, 200, &d);
    let r = acme.new_account(&a.key, &json!({"onlyReturnExisting": true}));
    soft.ok("onlyReturnExisting with the new key", &r, 200, &d);
    soft.check(r.location() == a.url, || {
        format!("the new key's account is the same URL {}: {r}", a.url)
    });
    let r = acme.new_order(&a, &[&name("new-key")]);
    soft.ok("newOrder with the new key", &r, 201, &d);
    // The old key is free again: it may make a new account of its own.
    let r = acme.new_account(&old.key, &json!({"termsOfServiceAgreed": true}));
    soft.ok("the old key makes a new account", &r, 201, &d);
    soft.check(r.location() != a.url, || format!("a new account: {r}"));

    // A change to a key of another type: the EdDSA key works, the ES256 one no more.
    let ed = AccountKey::new(KeyKind::EdDsa);
    let r = acme.key_change(&a, &ed);
    soft.ok("key change to EdDSA", &r, 200, &d);
    let ed = Account {
        key: ed,
        url: a.url.clone(),
    };
    let r = acme.get_as(&ed, &ed.url);
    soft.ok("the EdDSA key", &r, 200, &d);
    let r = acme.get_as(&a, &a.url);
    soft.check(
        r.status == 400
            && ["malformed", "badSignatureAlgorithm"].contains(&r.problem_type().as_str()),
        || format!("the replaced ES256 key is refused: {r}"),
    );
    soft.finish("key rollover");
}

#[test]
fn an_order_goes_pending_ready_valid_and_only_its_account_sees_it() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let mut soft = Soft::new();
    let a = p.account(&acme);
    let b = p.account(&acme);
    let names = [name("one"), name("two")];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    let r = acme.new_order(&a, &names);
    r.expect_ok(201, &d);
    let order_url = r.location();
    let order = r.json.clone();
    assert!(
        order_url.starts_with(&format!("{}/acme/order/", p.s.base)),
        "{r}"
    );
    assert_eq!(order["status"], "pending", "{r}");
    soft.check(r.retry_after().is_some(), || {
        format!("a pending order is answered with Retry-After (docs/API.md): {r}")
    });
    soft.check(order["expires"].is_string(), || format!("expires: {r}"));
    let authzs: Vec<String> = order["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert_eq!(authzs.len(), 2, "{r}");
    let r = acme.get_as(&a, &order_url);
    soft.ok("POST-as-GET the order", &r, 200, &d);
    soft.check(
        r.json["status"] == "pending" && r.retry_after().is_some(),
        || format!("pending with Retry-After: {r}"),
    );
    for authz in &authzs {
        let r = acme.get_as(&a, authz);
        soft.ok("POST-as-GET an authorization", &r, 200, &d);
        soft.check(r.json["status"] == "pending", || format!("pending: {r}"));
        let mut kinds: Vec<&str> = r.json["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        kinds.sort();
        soft.check(kinds == ["dns-01", "http-01", "tls-alpn-01"], || {
            format!("a DNS name is offered the three challenges: {r}")
        });
    }

    // Before it is ready, finalize is orderNotReady (RFC 8555 section 7.4).
    let cert_key = AccountKey::es256();
    let csr = cert_key.csr(p.scratch.path(), &names);
    let r = acme.finalize(&a, &order, &csr);
    soft.problem("finalize a pending order", &r, 403, "orderNotReady", &d);

    // Another account reads neither the order nor its authorizations.
    let r = acme.get_as(&b, &order_url);
    soft.problem("another account's order", &r, 403, "unauthorized", &d);
    let r = acme.get_as(&b, &authzs[0]);
    soft.problem(
        "another account's authorization",
        &r,
        403,
        "unauthorized",
        &d,
    );
    let r = acme.finalize(&b, &order, &csr);
    soft.problem(
        "finalize another account's order",
        &r,
        403,
        "unauthorized",
        &d,
    );

    let order = acme.authorize_http01(&a, &p.http01, &order_url, &order);
    let r = acme.get_as(&a, &authzs[0]);
    let http01 = Acme::challenge_of(&r.json, "http-01");
    soft.check(
        http01["status"] == "valid"
            && http01["validated"].is_string()
            && http01["validationRecord"].is_array(),
        || format!("the http-01 challenge is valid with validated and validationRecord: {r}"),
    );
    soft.check(
        p.http01
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|path| path.starts_with("/.well-known/acme-challenge/")),
        || "the validation asked the responder".to_string(),
    );

    // A CSR of other names: badCSR, and the order stays ready.
    let wrong = cert_key.csr(p.scratch.path(), &[names[0], &name("three")]);
    let r = acme.finalize(&a, &order, &wrong);
    soft.problem("CSR with a name not in the order", &r, 400, "badCSR", &d);
    let fewer = cert_key.csr(p.scratch.path(), &[names[0]]);
    let r = acme.finalize(&a, &order, &fewer);
    soft.problem("CSR missing a name of the order", &r, 400, "badCSR", &d);
    let r = acme.get_as(&a, &order_url);
    assert_eq!(r.json["status"], "ready", "after refused CSRs: {r}");
    let r = acme.post_as(
        &a,
        order["finalize"].as_str().unwrap(),
        &json!({"csr": "!!"}),
    );
    soft.problem("a CSR that is not base64url", &r, 400, "malformed", &d);

    // The right CSR.
    let r = acme.finalize(&a, &order, &csr);
    r.expect_ok(200, &d);
    let r = acme.poll(&a, &order_url, ACME_DEADLINE, |o| {
        o["status"] != "processing"
    });
    assert_eq!(r.json["status"], "valid", "{r}");
    let cert_url = r.json["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("a valid order has its certificate URL: {r}"))
        .to_string();
    let r = acme.get_as(&a, &cert_url);
    r.expect_ok(200, &d);
    soft.check(
        r.header("content-type").as_deref() == Some("application/pem-certificate-chain"),
        || format!("the download is application/pem-certificate-chain: {r}"),
    );
    let chain = e2e_tests::formats::pem_certs(&r.text);
    p.verify_chain(&chain);
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let mut sans: Vec<String> = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(n) => n.to_string(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    sans.sort();
    soft.check(sans == [names[0], names[1]], || {
        format!("the certificate's SANs are the order's names: {sans:?}")
    });

    // Done: finalize again is orderNotReady.
    let r = acme.finalize(&a, &order, &csr);
    soft.problem("finalize a valid order", &r, 403, "orderNotReady", &d);
    // Another account cannot download it.
    let r = acme.get_as(&b, &cert_url);
    soft.check(r.status == 404, || {
        format!("another account's certificate is 404: {r}")
    });
    soft.check(r.headers_mismatch(&d).is_none(), || {
        format!("the 404 carries the ACME headers: {r}")
    });
    // The account's orders list has it (RFC 8555 section 7.1.2.1).
    let r = acme.get_as(&a, &a.url);
    let orders_url = r.json["orders"].as_str().unwrap().to_string();
    let r = acme.get_as(&a, &orders_url);
    soft.ok("the orders list", &r, 200, &d);
    soft.check(
        r.json["orders"]
            .as_array()
            .is_some_and(|o| o.iter().any(|u| u == order_url.as_str())),
        || format!("the orders list has {order_url}: {r}"),
    );
    let r = acme.get_as(&b, &orders_url);
    soft.problem("another account's orders list", &r, 403, "unauthorized", &d);

    // A new order of the same account for a validated name reuses its authorization and is
    // ready at once; another account's order for it gets an authorization of its own.
    let r = acme.new_order(&a, &[names[0]]);
    soft.ok("a new order for a validated name", &r, 201, &d);
    soft.check(
        r.json["status"] == "ready" && r.json["authorizations"][0] == authzs[0].as_str(),
        || format!("the order reuses {} and is ready: {r}", authzs[0]),
    );
    let r = acme.new_order(&b, &[names[0]]);
    soft.ok("another account's order for that name", &r, 201, &d);
    soft.check(
        r.json["status"] == "pending" && r.json["authorizations"][0] != authzs[0].as_str(),
        || format!("another account does not reuse {}: {r}", authzs[0]),
    );
    soft.finish("order state machine");
}

#[test]
fn identifiers_wildcards_and_validity_requests() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let new_order = acme.url("newOrder");
    let mut soft = Soft::new();
    let a = p.account(&acme);

    // A wildcard is authorized for its base name, by dns-01 only (RFC 8555 section 7.1.3).
    let wildcard = format!("*.{}", name("wild"));
    let r = acme.new_order(&a, &[&wildcard]);
    r.expect_ok(201, &d);
    let authz_url = r.json["authorizations"][0].as_str().unwrap().to_string();
    let r = acme.get_as(&a, &authz_url);
    soft.check(
        r.json["identifier"] == json!({"type": "dns", "value": name("wild")})
            && r.json["wildcard"] == true,
        || format!("the wildcard's authorization is for its base name: {r}"),
    );
    let kinds: Vec<&str> = r.json["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    soft.check(kinds == ["dns-01"], || {
        format!("a wildcard is offered dns-01 only: {r}")
    });

    // Names the profile refuses: rejectedIdentifier, one subproblem per refused identifier
    // (docs/API.md, "Orders").
    let good = name("fine");
    for (bad, why) in [
        ("localhost", "a single label"),
        ("host.internal", "an internal name"),
        ("*.com", "a wildcard on a public suffix"),
    ] {
        let r = acme.new_order(&a, &[&good, bad]);
        soft.problem(&format!("{bad} ({why})"), &r, 400, "rejectedIdentifier", &d);
        let subs = r.json["subproblems"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        soft.check(
            subs.len() == 1
                && subs[0]["identifier"]["value"] == bad
                && subs[0]["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(ERROR_URN)),
            || format!("{bad} ({why}): one subproblem naming it and only it: {r}"),
        );
    }
    let r = acme.post_as(
        &a,
        &new_order,
        &json!({"identifiers": [{"type": "email", "value": "a@example.com"}]}),
    );
    soft.problem("an email identifier", &r, 400, "unsupportedIdentifier", &d);
    let r = acme.post_as(&a, &new_order, &json!({"identifiers": []}));
    soft.problem("no identifier", &r, 400, "malformed", &d);

    // notBefore / notAfter are refused: the profile sets the validity.
    for field in ["notBefore", "notAfter"] {
        let r = acme.post_as(
            &a,
            &new_order,
            &json!({"identifiers": [{"type": "dns", "value": good}], field: "2030-01-01T00:00:00Z"}),
        );
        soft.problem(field, &r, 400, "malformed", &d);
    }
    // A profile that is not offered.
    let r = acme.post_as(
        &a,
        &new_order,
        &json!({"identifiers": [{"type": "dns", "value": good}], "profile": "no-such-profile"}),
    );
    soft.problem("an unknown profile", &r, 400, "malformed", &d);
    soft.finish("identifiers");
}

#[test]
fn a_challenge_answer_that_does_not_wait_is_processing_with_retry_after() {
    let p = ProtoServer::start(false, "challenge_answer_wait_ms = 0");
    let acme = p.client();
    let mut soft = Soft::new();
    let a = p.account(&acme);
    let (_, order) = acme.order(&a, &[&name("nowait")]);
    let authz_url = order["authorizations"][0].as_str().unwrap().to_string();
    let r = acme.answer_http01(&a, &p.http01, &authz_url, None);
    soft.check(
        r.json["status"] == "processing" && r.retry_after().is_some(),
        || format!("the challenge answer is processing with Retry-After: {r}"),
    );
    let r = acme.poll_authz(&a, &authz_url);
    soft.check(r.json["status"] == "valid", || {
        format!("the authorization turns valid: {r}")
    });
    soft.finish("challenge answer without waiting");
}

#[test]
fn the_orders_list_is_paged_with_next_links() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let mut soft = Soft::new();
    let a = p.account(&acme);
    // One more than a page (100): the first page links to a second with the last one.
    let created: Vec<String> = (0..101)
        .map(|i| {
            let r = acme.new_order(&a, &[&name(&format!("page{i}"))]);
            r.expect_ok(201, &d);
            r.location()
        })
        .collect();
    let r = acme.get_as(&a, &a.url);
    let orders_url = r.json["orders"].as_str().unwrap().to_string();
    let mut listed: Vec<String> = Vec::new();
    let mut url = orders_url.clone();
    let mut pages = 0;
    loop {
        let r = acme.get_as(&a, &url);
        soft.ok("a page of the orders list", &r, 200, &d);
        pages += 1;
        listed.extend(
            r.json["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap().to_string()),
        );
        match r.links("next").first() {
            Some(next) if pages < 5 => url = next.clone(),
            _ => break,
        }
    }
    soft.check(pages == 2, || {
        format!("101 orders take 2 pages, not {pages}")
    });
    // Oldest first to the second (orders of the same second in the order of their ids).
    let (mut listed_set, mut created_set) = (listed.clone(), created.clone());
    listed_set.sort();
    created_set.sort();
    soft.check(listed_set == created_set, || {
        format!("the pages list every order once: {listed:?}")
    });
    // A cursor that is not one is malformed.
    let r = acme.get_as(&a, &format!("{orders_url}?cursor=AAAA"));
    soft.problem("a bad cursor", &r, 400, "malformed", &d);
    soft.finish("orders list pages");
}

#[test]
fn caa_is_checked_again_at_finalize_when_the_authorization_is_old() {
    // caa_recheck_secs = 0: every authorization is old enough to be checked again.
    let p = ProtoServer::start(
        false,
        "caa_identities = [\"proto-ca.example\"]\ncaa_recheck_secs = 0",
    );
    let acme = p.client();
    let d = acme.directory_url.clone();
    let mut soft = Soft::new();
    let a = p.account(&acme);
    let host = name("caa-later");
    let (_, order) = acme.order(&a, &[&host]);
    let authz_url = order["authorizations"][0].as_str().unwrap().to_string();
    acme.answer_http01(&a, &p.http01, &authz_url, None);
    let r = acme.poll_authz(&a, &authz_url);
    assert_eq!(r.json["status"], "valid", "no CAA record yet: {r}");
    // Another CA's record appears between validation and finalize.
    p.dns.add_caa_issue(&host, "other-ca.example");
    let cert_key = AccountKey::es256();
    let csr = cert_key.csr(p.scratch.path(), &[&host]);
    let r = acme.finalize(&a, &order, &csr);
    soft.problem("finalize after CAA forbids this CA", &r, 403, "caa", &d);
    soft.finish("CAA at finalize");
}

#[test]
fn an_order_replaces_a_certificate_once() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let mut soft = Soft::new();
    let a = p.account(&acme);
    let stranger = p.account(&acme);
    let host = name("replaced");
    let (_, chain) = acme.issue(
        &a,
        &p.http01,
        &AccountKey::es256(),
        p.scratch.path(),
        &[&host],
    );
    let cert_id = ari_cert_id(&chain[0]);
    let order_replacing = |account: &Account, names: &[&str]| {
        let identifiers: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        acme.post_as(
            account,
            &acme.url("newOrder"),
            &json!({"identifiers": identifiers, "replaces": cert_id}),
        )
    };
    // RFC 9773 section 5: another account's certificate, or one sharing no identifier, is
    // refused; the first replacement is accepted and records what it replaces; a second
    // is alreadyReplaced (409) while the first is not invalid.
    let r = order_replacing(&stranger, &[&host]);
    soft.problem(
        "replacing another account's certificate",
        &r,
        400,
        "malformed",
        &d,
    );
    let r = order_replacing(&a, &[&name("elsewhere")]);
    soft.problem(
        "replacing with no shared identifier",
        &r,
        400,
        "malformed",
        &d,
    );
    let r = order_replacing(&a, &[&host]);
    soft.ok("the first replacement", &r, 201, &d);
    soft.check(r.json["replaces"] == cert_id.as_str(), || {
        format!("the order names what it replaces: {r}")
    });
    let r = order_replacing(&a, &[&host]);
    soft.problem("a second replacement", &r, 409, "alreadyReplaced", &d);
    soft.finish("replaces");
}

#[test]
fn a_failed_http01_makes_the_authorization_and_the_order_invalid() {
    let p = ProtoServer::start(false, "failed_validations_per_hour = 1");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let mut soft = Soft::new();
    let a = p.account(&acme);

    let (order_url, order) = acme.order(&a, &[&name("fails")]);
    let authz_url = order["authorizations"][0].as_str().unwrap().to_string();
    let r = acme.answer_http01(&a, &p.http01, &authz_url, Some("not the key authorization"));
    let challenge_url = r.json["url"].as_str().unwrap().to_string();
    // A validation done within [acme] challenge_answer_wait_ms is answered with its outcome.
    soft.check(
        r.json["status"] == "invalid"
            && r.json["error"]["type"] == format!("{ERROR_URN}unauthorized")
            && r.retry_after().is_none(),
        || format!("the challenge answer is the failed validation: {r}"),
    );
    let r = acme.poll_authz(&a, &authz_url);
    soft.check(r.json["status"] == "invalid", || {
        format!("the authorization is invalid: {r}")
    });
    let challenge = Acme::challenge_of(&r.json, "http-01").clone();
    soft.check(challenge["status"] == "invalid", || {
        format!("the challenge is invalid: {r}")
    });
    soft.check(
        challenge["error"]["type"] == format!("{ERROR_URN}unauthorized"),
        || format!("the challenge's error is unauthorized: {r}"),
    );
    let r = acme.get_as(&a, &order_url);
    soft.check(r.json["status"] == "invalid", || {
        format!("the order is invalid: {r}")
    });
    let r = acme.finalize(
        &a,
        &order,
        &AccountKey::es256().csr(p.scratch.path(), &[&name("fails")]),
    );
    soft.problem("finalize an invalid order", &r, 403, "orderNotReady", &d);
    // Answering again does not start another validation.
    let r = acme.post_as(&a, &challenge_url, &json!({}));
    soft.ok("answering an invalid challenge", &r, 200, &d);
    soft.check(r.json["status"] == "invalid", || {
        format!("the challenge stays invalid: {r}")
    });
    // failed_validations_per_hour = 1: a new order naming that identifier is refused.
    let r = acme.new_order(&a, &[&name("fails")]);
    soft.problem(
        "an order after a failed validation",
        &r,
        429,
        "rateLimited",
        &d,
    );
    soft.check(r.retry_after().is_some_and(|s| s > 0 && s <= 3600), || {
        format!("rateLimited with Retry-After within the hour: {r}")
    });
    let r = acme.new_order(&a, &[&name("other")]);
    soft.ok("an order for another name", &r, 201, &d);
    soft.finish("failed http-01");
}

#[test]
fn revocation_by_account_and_by_key_and_renewal_information() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let mut soft = Soft::new();
    let a = p.account(&acme);
    let stranger = p.account(&acme);

    let key1 = AccountKey::es256();
    let (_, chain1) = acme.issue(&a, &p.http01, &key1, p.scratch.path(), &[&name("rev1")]);
    let key2 = AccountKey::es256();
    let (_, chain2) = acme.issue(&a, &p.http01, &key2, p.scratch.path(), &[&name("rev2")]);
    let (cert1, cert2) = (&chain1[0], &chain2[0]);

    // Renewal information (RFC 9773) of a valid certificate.
    let info_url = format!("{}/{}", acme.url("renewalInfo"), ari_cert_id(cert1));
    let r = acme.get(&info_url);
    soft.ok("renewalInfo", &r, 200, &d);
    let (_, parsed) = x509_parser::parse_x509_certificate(cert1).unwrap();
    let (nb, na) = (
        parsed.validity().not_before.timestamp(),
        parsed.validity().not_after.timestamp(),
    );
    let window = |r: &AcmeResp| {
        let w = &r.json["suggestedWindow"];
        match (w["start"].as_str(), w["end"].as_str()) {
            (Some(s), Some(e)) => Some((parse_rfc3339(s), parse_rfc3339(e))),
            _ => None,
        }
    };
    match window(&r) {
        Some((start, end)) => soft.check(start < end && nb < start && end < na, || {
            format!("the window lies inside the validity {nb}..{na}, start < end: {r}")
        }),
        None => soft.check(false, || format!("renewalInfo has a suggestedWindow: {r}")),
    }
    soft.check(r.retry_after().is_some_and(|s| s > 0), || {
        format!("renewalInfo has Retry-After: {r}")
    });
    let r = acme.get(&format!(
        "{}/{}.{}",
        acme.url("renewalInfo"),
        "AAAA",
        random_b64(16)
    ));
    soft.check(r.status == 404, || {
        format!("renewalInfo of a serial this CA never issued: 404: {r}")
    });

    // Not by an account that did not order it, nor with a reason a subscriber may not give.
    let r = acme.revoke_kid(&stranger, cert1, None);
    soft.problem(
        "revocation by an unrelated account",
        &r,
        403,
        "unauthorized",
        &d,
    );
    let r = acme.revoke_jwk(&AccountKey::es256(), cert2, None);
    soft.problem(
        "revocation signed by an unrelated key",
        &r,
        403,
        "unauthorized",
        &d,
    );
    let r = acme.revoke_kid(&a, cert1, Some(6));
    soft.problem("reason certificateHold", &r, 400, "badRevocationReason", &d);
    let r = acme.revoke_kid(&a, cert1, Some(11));
    soft.problem("reason 11", &r, 400, "badRevocationReason", &d);
    soft.check(p.s.record(&serial_hex(cert1))["status"] == "valid", || {
        "refused revocations revoked nothing".to_string()
    });

    // A certificate this CA did not issue: 404 malformed (docs/API.md).
    let foreign_key = AccountKey::es256();
    let key_file = foreign_key.write_pem(p.scratch.path());
    let foreign = p.scratch.path().join("foreign.der");
    e2e_tests::command::openssl(&[
        "req",
        "-x509",
        "-new",
        "-batch",
        "-key",
        key_file.to_str().unwrap(),
        "-subj",
        &format!("/CN={}", name("rev1")),
        "-days",
        "2",
        "-outform",
        "DER",
        "-out",
        foreign.to_str().unwrap(),
    ]);
    let foreign = std::fs::read(&foreign).unwrap();
    let r = acme.revoke_kid(&a, &foreign, None);
    soft.problem("a certificate of another CA", &r, 404, "malformed", &d);
    let r = acme.revoke_jwk(&foreign_key, &foreign, None);
    soft.problem("another CA's, with its key", &r, 404, "malformed", &d);

    // By the account that ordered it (kid), then again.
    let r = acme.revoke_kid(&a, cert1, Some(4));
    soft.ok("revocation by the ordering account", &r, 200, &d);
    soft.check(
        p.s.record(&serial_hex(cert1))["status"] == "revoked",
        || "the certificate is revoked in the store".to_string(),
    );
    let r = acme.revoke_kid(&a, cert1, None);
    soft.problem("revoked twice", &r, 400, "alreadyRevoked", &d);

    // By the certificate's own key (jwk form).
    let r = acme.revoke_jwk(&key2, cert2, Some(1));
    soft.ok("revocation signed by the certificate's key", &r, 200, &d);
    soft.check(
        p.s.record(&serial_hex(cert2))["status"] == "revoked",
        || "the second certificate is revoked in the store".to_string(),
    );

    // A revoked certificate's window lies in the past: renew now.
    let r = acme.get(&info_url);
    soft.ok("renewalInfo after revocation", &r, 200, &d);
    match window(&r) {
        Some((start, end)) => soft.check(start < end && end <= now_unix(), || {
            format!("a revoked certificate's window is in the past: {r}")
        }),
        None => soft.check(false, || format!("renewalInfo has a suggestedWindow: {r}")),
    }
    soft.finish("revocation and renewalInfo");
}

#[test]
fn orders_per_account_per_hour_is_enforced() {
    let p = ProtoServer::start(false, "orders_per_account_per_hour = 2");
    let acme = p.client();
    let d = acme.directory_url.clone();
    let a = p.account(&acme);
    for i in 0..2 {
        acme.new_order(&a, &[&name(&format!("rate{i}"))])
            .expect_ok(201, &d);
    }
    let r = acme.new_order(&a, &[&name("rate2")]);
    r.expect_problem(429, "rateLimited", &d);
    let retry = r.retry_after();
    assert!(
        retry.is_some_and(|s| s > 0 && s <= 3600),
        "rateLimited with a Retry-After within the hour (RFC 8555 6.6): {r}"
    );
    // The limit is the account's.
    let b = p.account(&acme);
    acme.new_order(&b, &[&name("rate3")]).expect_ok(201, &d);
}

#[test]
fn the_audit_log_records_each_acme_step_and_verifies() {
    let p = ProtoServer::start(false, "");
    let acme = p.client();
    let a = p.account(&acme);
    let (_, chain) = acme.issue(
        &a,
        &p.http01,
        &AccountKey::es256(),
        p.scratch.path(),
        &[&name("audit")],
    );
    let serial = serial_hex(&chain[0]);
    let log = audit_log(&p.s);
    let actions: Vec<&str> = log.iter().filter_map(|e| e["action"].as_str()).collect();
    for action in [
        "acme_account_created",
        "acme_order_created",
        "acme_challenge_started",
        "acme_authorization_validated",
        "acme_order_updated",
    ] {
        assert!(
            actions.contains(&action),
            "the audit log has {action}: {actions:?}"
        );
    }
    let updated: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "acme_order_updated")
        .collect();
    assert!(
        updated
            .iter()
            .any(|e| e["details"]["status"] == "valid" && e["details"]["serial"] == serial.as_str()),
        "an acme_order_updated entry records the order valid with serial {serial}: {updated:?}"
    );
    let issued = log
        .iter()
        .find(|e| e["action"] == "certificate_issued" && e["target"] == serial.as_str());
    assert!(
        issued.is_some_and(|e| e["details"]["protocol"] == "acme"),
        "the certificate_issued entry of {serial} names the protocol acme: {issued:?}"
    );
    p.stop_and_verify_audit();
}
