//! Property tests (proptest) of three small encodings and checks whose inputs come from
//! clients: serial numbers (`serial`), list cursors (`store::query::Cursor`) and the profile
//! checks of subjects, SANs and validities (`profile`), with RFC 4514 subjects (`name`).
//!
//! Case counts are kept small enough for the whole file to run in a few seconds in
//! `--release`; the store-backed cursor properties share one store of a few dozen
//! certificates issued through the engine.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::csr::{AttributeKind, San, SubjectAttribute, SubjectKey, SubjectKeyType, VerifiedCsr};
use ca_core::engine::{Engine, EngineConfig, IssueRequest, Requester};
use ca_core::name::{parse_rfc4514, to_rfc4514};
use ca_core::profile::{is_format_character, is_valid_hostname, Identity, Profile};
use ca_core::revocation::{RevocationReason, Status};
use ca_core::serial::SERIAL_LEN;
use ca_core::store::query::{CertificateQuery, Cursor, CursorKey, CURSOR_KEY_LEN};
use ca_core::{CaError, Serial};
use keys::SystemRandom;
use keys::{KeyAlgorithm, Signer, SoftwareKey};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Serials
// ---------------------------------------------------------------------------------------

/// The 16 octets of a serial of this CA's form: top bits `01`.
fn serial_bytes() -> impl Strategy<Value = [u8; SERIAL_LEN]> {
    (0x40u8..=0x7f, any::<[u8; SERIAL_LEN - 1]>()).prop_map(|(first, rest)| {
        let mut bytes = [0u8; SERIAL_LEN];
        bytes[0] = first;
        bytes[1..].copy_from_slice(&rest);
        bytes
    })
}

/// What `Serial::from_hex` should accept: 32 ASCII hex digits of either case whose first
/// octet is 0x40..=0x7f.
fn hex_is_serial(s: &str) -> bool {
    s.len() == 2 * SERIAL_LEN
        && s.bytes().all(|b| b.is_ascii_hexdigit())
        && u8::from_str_radix(&s[..2], 16).is_ok_and(|b| (0x40..=0x7f).contains(&b))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn serial_bytes_and_hex_round_trip(bytes in serial_bytes()) {
        let serial = Serial::from_bytes(&bytes).expect("a serial of this CA's form");
        prop_assert_eq!(serial.as_bytes(), &bytes);
        let hex = serial.to_hex();
        prop_assert_eq!(hex.len(), 2 * SERIAL_LEN);
        prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        prop_assert_eq!(Serial::from_hex(&hex), Some(serial));
        prop_assert_eq!(Serial::from_hex(&hex.to_uppercase()), Some(serial));
        prop_assert_eq!(serial.to_string(), hex);
    }

    #[test]
    fn serial_order_is_the_order_of_its_hex(a in serial_bytes(), b in serial_bytes()) {
        let (a, b) = (Serial::from_bytes(&a).unwrap(), Serial::from_bytes(&b).unwrap());
        prop_assert_eq!(a.cmp(&b), a.to_hex().cmp(&b.to_hex()));
    }

    #[test]
    fn from_bytes_accepts_exactly_sixteen_octets_with_top_bits_01(
        bytes in proptest::collection::vec(any::<u8>(), 0..40)
    ) {
        let expected = bytes.len() == SERIAL_LEN && bytes[0] & 0xc0 == 0x40;
        let parsed = Serial::from_bytes(&bytes);
        prop_assert_eq!(parsed.is_some(), expected);
        if let Some(s) = parsed {
            prop_assert_eq!(s.as_bytes().as_slice(), bytes.as_slice());
        }
    }

    #[test]
    fn from_hex_accepts_exactly_the_serial_forms(s in "[0-9a-fA-F]{30,34}|[0-9a-fA-Fg-zG-Z]{32}|\\PC{0,40}") {
        let parsed = Serial::from_hex(&s);
        prop_assert_eq!(parsed.is_some(), hex_is_serial(&s), "{:?}", s);
        if let Some(serial) = parsed {
            prop_assert_eq!(serial.to_hex(), s.to_ascii_lowercase());
        }
    }

    #[test]
    fn from_hex_refuses_serials_with_other_top_bits(
        first in prop_oneof![0x00u8..0x40, 0x80u8..=0xff],
        rest in any::<[u8; SERIAL_LEN - 1]>(),
    ) {
        let mut bytes = vec![first];
        bytes.extend_from_slice(&rest);
        prop_assert_eq!(Serial::from_hex(&hex::encode(&bytes)), None);
        prop_assert_eq!(Serial::from_bytes(&bytes), None);
    }
}

#[test]
fn random_serials_are_valid() {
    let rng = SystemRandom::new();
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        let s = Serial::random(&rng).unwrap();
        assert!((0x40..=0x7f).contains(&s.as_bytes()[0]));
        assert_eq!(Serial::from_bytes(s.as_bytes()), Some(s));
        assert_eq!(Serial::from_hex(&s.to_hex()), Some(s));
        assert!(seen.insert(s), "a repeated serial");
    }
}

// ---------------------------------------------------------------------------------------
// Cursors
// ---------------------------------------------------------------------------------------

/// The index tags a cursor may carry (the `Walk` discriminants of `store::query`).
const WALK_TAGS: std::ops::RangeInclusive<u8> = 1..=5;

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn cursor_decode_never_panics_and_fails_only_as_invalid_request(s in "\\PC{0,64}|[A-Za-z0-9_=+/-]{0,64}") {
        match Cursor::decode(&s) {
            // Whatever decodes is canonical: it encodes back to the same text.
            Ok(c) => prop_assert_eq!(c.encode(), s),
            Err(e) => prop_assert!(matches!(e, CaError::InvalidRequest(_)), "{:?}", e),
        }
    }

    #[test]
    fn cursors_of_every_index_round_trip(
        walk in WALK_TAGS,
        key in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![walk];
        bytes.extend_from_slice(&key);
        let text = URL_SAFE_NO_PAD.encode(&bytes);
        let cursor = Cursor::decode(&text).expect("a cursor of a known index");
        prop_assert_eq!(cursor.encode(), text.clone());
        prop_assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn sealed_cursors_open_only_for_their_key_and_context_and_unaltered(
        walk in WALK_TAGS,
        key in proptest::collection::vec(any::<u8>(), 0..64),
        secret in any::<[u8; CURSOR_KEY_LEN]>(),
        context in proptest::collection::vec(any::<u8>(), 0..24),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut bytes = vec![walk];
        bytes.extend_from_slice(&key);
        let cursor = Cursor::decode(&URL_SAFE_NO_PAD.encode(&bytes)).expect("a known index");
        let sealing = CursorKey::new(&secret).expect("key");
        let sealed = cursor.seal(&sealing, &context).expect("seal");
        prop_assert_eq!(Cursor::open(&sealed, &sealing, &context).expect("open"), cursor);
        let mut other_context = context.clone();
        other_context.push(0);
        prop_assert!(Cursor::open(&sealed, &sealing, &other_context).is_err());
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
        let i = flip.index(raw.len());
        raw[i] ^= 0x01;
        let err = Cursor::open(&URL_SAFE_NO_PAD.encode(&raw), &sealing, &context).unwrap_err();
        prop_assert!(matches!(err, CaError::InvalidRequest(_)));
    }

    #[test]
    fn cursors_of_unknown_indexes_are_refused(
        walk in prop_oneof![Just(0u8), 6u8..=255],
        key in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut bytes = vec![walk];
        bytes.extend_from_slice(&key);
        let err = Cursor::decode(&URL_SAFE_NO_PAD.encode(&bytes)).unwrap_err();
        prop_assert!(matches!(err, CaError::InvalidRequest(_)));
    }
}

/// A store with certificates of two profiles and two requesters, some sharing a SAN, some
/// revoked and some on hold, issued through the engine.
struct IssuedStore {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
}

fn issued_store(count: usize) -> IssuedStore {
    let der = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der).unwrap());
    let rng = SystemRandom::new();
    let root = create_root(
        signer.clone(),
        &parse_rfc4514("CN=Property Test CA").unwrap(),
        365,
        Serial::random(&rng).unwrap(),
    )
    .unwrap();
    let ca = Arc::new(
        CertificateAuthority::new(signer, vec![root], &Profile::builtin(), &Urls::default())
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = ca_core::store::Store::open(dir.path()).unwrap();
    let engine = Arc::new(Engine::start(ca, Arc::new(store), &EngineConfig::default()).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        for i in 0..count {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut sans = vec![format!("h{i}.example.com")];
            if i % 3 == 0 {
                sans.push("shared.example.com".into());
            }
            let mut params = rcgen::CertificateParams::new(sans).unwrap();
            params.distinguished_name = rcgen::DistinguishedName::new();
            let profile = if i % 4 == 3 {
                "tls-client"
            } else {
                "tls-server"
            };
            if profile == "tls-client" {
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, "Same Client");
            }
            let csr = params.serialize_request(&key).unwrap().pem().unwrap();
            let issued = engine
                .issue(IssueRequest {
                    csr: csr.into_bytes(),
                    profile: profile.into(),
                    identity: Default::default(),
                    validity_days: Some(1 + (i as u32 % 30)),
                    request_id: None,
                    requester: Requester {
                        name: if i % 2 == 0 { "ra-even" } else { "ra-odd" }.into(),
                        token_hash: [i as u8 % 2; 32],
                        protocol: Default::default(),
                    },
                })
                .await
                .unwrap();
            let serial = issued.record.serial;
            let reason = match i % 5 {
                1 => Some(RevocationReason::KeyCompromise),
                2 => Some(RevocationReason::CertificateHold),
                _ => None,
            };
            if let Some(reason) = reason {
                engine.revoke(serial, reason, None, "test").await.unwrap();
            }
        }
    });
    IssuedStore { _dir: dir, engine }
}

/// The queries whose pages are walked: one per index, and filters on top of them.
fn queries(now: i64) -> Vec<CertificateQuery> {
    let q = |f: &dyn Fn(&mut CertificateQuery)| {
        let mut q = CertificateQuery {
            now,
            ..CertificateQuery::default()
        };
        f(&mut q);
        q
    };
    vec![
        q(&|_| {}),
        q(&|q| q.profile = Some("tls-server".into())),
        q(&|q| q.requester = Some("ra-odd".into())),
        q(&|q| q.san = Some("shared.example.com".into())),
        q(&|q| q.san = Some("SHARED.example.com".into())),
        q(&|q| q.subject = Some("cn=same client".into())),
        q(&|q| q.status = Some(Status::Revoked)),
        q(&|q| q.status = Some(Status::OnHold)),
        q(&|q| q.status = Some(Status::Valid)),
        q(&|q| q.expires_before = Some(now + 15 * 86_400)),
        q(&|q| q.issued_after = Some(now - 3600)),
        q(&|q| {
            q.issued_before = Some(now + 3600);
            q.profile = Some("tls-client".into());
        }),
    ]
}

fn serials(page: &ca_core::store::query::Page) -> Vec<Serial> {
    page.rows.iter().map(|r| r.record.serial).collect()
}

/// Cursors from real queries survive encode/decode, and walking a query page by page through
/// the decoded cursors gives exactly the rows of one big page. Cursors decoded from arbitrary
/// text never make a query panic: they are followed or refused as `invalid_request`.
#[test]
fn cursors_of_real_queries_round_trip_and_foreign_ones_are_refused() {
    let fixture = issued_store(30);
    let store = fixture.engine.store();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let queries = queries(now);

    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(0..queries.len(), 1usize..=7), |(qi, limit)| {
            let q = &queries[qi];
            let all = store.query(q, None, 1000).unwrap();
            prop_assert!(all.next.is_none());
            let mut walked = Vec::new();
            let mut cursor: Option<Cursor> = None;
            for _ in 0..100 {
                let page = store.query(q, cursor.as_ref(), limit).unwrap();
                prop_assert!(page.rows.len() <= limit);
                walked.extend(serials(&page));
                match page.next {
                    Some(next) => {
                        let text = next.encode();
                        let decoded = Cursor::decode(&text).unwrap();
                        prop_assert_eq!(&decoded, &next);
                        prop_assert_eq!(decoded.encode(), text);
                        // The decoded cursor continues exactly as the original.
                        let a = store.query(q, Some(&next), limit).unwrap();
                        let b = store.query(q, Some(&decoded), limit).unwrap();
                        prop_assert_eq!(serials(&a), serials(&b));
                        cursor = Some(decoded);
                    }
                    None => break,
                }
            }
            prop_assert_eq!(walked, serials(&all));
            Ok(())
        })
        .unwrap();

    let foreign = prop_oneof![
        "\\PC{0,48}".boxed(),
        (WALK_TAGS, proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(walk, key)| {
                let mut bytes = vec![walk];
                bytes.extend_from_slice(&key);
                URL_SAFE_NO_PAD.encode(bytes)
            })
            .boxed(),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(foreign, 0..queries.len(), 1usize..=5),
            |(text, qi, limit)| {
                let Ok(cursor) = Cursor::decode(&text) else {
                    return Ok(());
                };
                match store.query(&queries[qi], Some(&cursor), limit) {
                    Ok(page) => prop_assert!(page.rows.len() <= limit),
                    Err(CaError::InvalidRequest(_)) => {}
                    Err(e) => {
                        return Err(TestCaseError::fail(format!(
                            "cursor {text:?}: unexpected error {e:?}"
                        )))
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Profiles and names
// ---------------------------------------------------------------------------------------

fn attribute_kind() -> impl Strategy<Value = AttributeKind> {
    proptest::sample::select(AttributeKind::ALL.to_vec())
}

/// Values of every kind: arbitrary Unicode (controls included), short and long.
fn attribute_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        ".{0,12}",
        "[A-Z]{2}",
        "[a-zA-Z0-9 ,+=#;<>\\\\\"]{0,16}",
        "[a-z]{60,70}",
    ]
}

fn subject() -> impl Strategy<Value = Vec<SubjectAttribute>> {
    proptest::collection::vec(
        (attribute_kind(), attribute_value())
            .prop_map(|(kind, value)| SubjectAttribute { kind, value }),
        0..5,
    )
}

/// A DNS label of letters, digits and inner hyphens, 1 to 20 characters.
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?"
}

fn hostname() -> impl Strategy<Value = String> {
    proptest::collection::vec(label(), 2..5).prop_map(|labels| labels.join("."))
}

/// A public host name, as `tls-server` (`san.public_only`) takes: one to three labels under a
/// registrable domain of a Public Suffix List suffix.
fn public_hostname() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(label(), 1..4),
        proptest::sample::select(vec![
            "example.com",
            "example.org",
            "example.net",
            "example.co.uk",
            "example.com.br",
        ]),
    )
        .prop_map(|(labels, domain)| format!("{}.{domain}", labels.join(".")))
}

/// A public IP address, as `tls-server` (`san.public_only`) takes: in globally routed unicast
/// blocks (IPv4 /8s of the regional registries, IPv6 2600::/12 and 2a00::/12), outside
/// IANA's special-purpose registries.
fn public_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (
            proptest::sample::select(vec![1u8, 8, 23, 45, 80, 151, 185, 212]),
            any::<[u8; 3]>()
        )
            .prop_map(|(a, [b, c, d])| IpAddr::from([a, b, c, d])),
        (
            prop_oneof![0x2600u16..0x2610, 0x2a00u16..0x2a10],
            any::<[u16; 7]>()
        )
            .prop_map(|(first, rest)| {
                let mut segments = [first; 8];
                segments[1..].copy_from_slice(&rest);
                IpAddr::from(segments)
            }),
    ]
}

/// SAN strings as the API takes them: host names (some wildcards, some broken), IP
/// addresses, e-mail addresses and arbitrary text.
fn san_text() -> impl Strategy<Value = String> {
    prop_oneof![
        hostname(),
        hostname().prop_map(|h| format!("*.{h}")),
        any::<IpAddr>().prop_map(|ip| ip.to_string()),
        (label(), hostname()).prop_map(|(l, h)| format!("{l}@{h}")),
        "[a-z.*-]{0,12}",
        "\\PC{0,24}",
    ]
}

fn sans() -> impl Strategy<Value = Vec<San>> {
    proptest::collection::vec(san_text().prop_map(|s| San::from_value(&s)), 0..6)
}

/// Plausible values for each attribute kind (mostly acceptable ones).
fn plausible_value(kind: AttributeKind) -> BoxedStrategy<String> {
    match kind {
        AttributeKind::Country => "[A-Z]{2}".boxed(),
        AttributeKind::SerialNumber => "[A-Za-z0-9 .-]{1,20}".boxed(),
        _ => "[A-Za-z][A-Za-z0-9 .,'-]{0,30}".boxed(),
    }
}

/// Subjects and SANs close to what clients send: distinct host names, e-mail addresses and IP
/// addresses (only public host names and addresses when `public`), a commonName that is one of
/// the host names or a person's name, and a few other attributes of distinct kinds.
fn plausible_names(public: bool) -> impl Strategy<Value = (Vec<SubjectAttribute>, Vec<San>)> {
    let others = proptest::sample::subsequence(
        AttributeKind::ALL
            .into_iter()
            .filter(|k| *k != AttributeKind::CommonName)
            .collect::<Vec<_>>(),
        0..3,
    )
    .prop_flat_map(|kinds| {
        kinds
            .into_iter()
            .map(|kind| {
                plausible_value(kind).prop_map(move |value| SubjectAttribute { kind, value })
            })
            .collect::<Vec<_>>()
    });
    (
        proptest::collection::hash_set(
            if public {
                public_hostname().boxed()
            } else {
                hostname().boxed()
            },
            0..3,
        ),
        proptest::collection::hash_set(
            (label(), hostname()).prop_map(|(l, h)| format!("{l}@{h}")),
            0..2,
        ),
        proptest::collection::hash_set(
            if public {
                public_ip().boxed()
            } else {
                any::<IpAddr>().boxed()
            },
            0..2,
        ),
        0u8..3,
        "[A-Z][a-z]{1,10} [A-Z][a-z]{1,10}",
        others,
    )
        .prop_map(|(hosts, emails, ips, cn_choice, person, others)| {
            let hosts: Vec<String> = hosts.into_iter().collect();
            let mut subject = Vec::new();
            match (cn_choice, hosts.first()) {
                (0, Some(host)) => subject.push(SubjectAttribute {
                    kind: AttributeKind::CommonName,
                    value: host.clone(),
                }),
                (1, _) => subject.push(SubjectAttribute {
                    kind: AttributeKind::CommonName,
                    value: person,
                }),
                _ => {}
            }
            subject.extend(others);
            let mut sans: Vec<San> = hosts.into_iter().map(San::Dns).collect();
            sans.extend(emails.into_iter().map(San::Email));
            sans.extend(ips.into_iter().map(San::Ip));
            (subject, sans)
        })
}

/// Arbitrary subjects and SANs, or plausible ones for the profile `name`: with public host
/// names and addresses only where it takes no others (`san.public_only`: `tls-server`).
fn names_for(name: &str) -> impl Strategy<Value = (Vec<SubjectAttribute>, Vec<San>)> {
    let public = Profile::builtin()[name].san.public_only;
    prop_oneof![(subject(), sans()), plausible_names(public)]
}

fn key_type() -> impl Strategy<Value = SubjectKeyType> {
    prop_oneof![
        Just(SubjectKeyType::EcP256),
        Just(SubjectKeyType::EcP384),
        Just(SubjectKeyType::Ed25519),
        prop_oneof![Just(2048u32), Just(3072), Just(4096), 1024u32..9000]
            .prop_map(SubjectKeyType::Rsa),
    ]
}

fn verified(
    key_type: SubjectKeyType,
    subject: Vec<SubjectAttribute>,
    sans: Vec<San>,
) -> VerifiedCsr {
    // An RSAPublicKey (RFC 8017 appendix A.1.1) of exponent 65537, which profiles require
    // by default; other key types' bits are not looked at.
    let bits = match key_type {
        SubjectKeyType::Rsa(_) => vec![
            0x30, 0x0a, 0x02, 0x03, 0x00, 0xc1, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01,
        ],
        _ => vec![4; 65],
    };
    VerifiedCsr {
        key: SubjectKey { key_type, bits },
        subject,
        sans,
    }
}

fn profile_names() -> impl Strategy<Value = String> {
    proptest::sample::select(vec!["tls-server", "tls-client", "personal"]).prop_map(String::from)
}

proptest! {
    #![proptest_config(config(4096))]

    /// Arbitrary subjects, SANs, key types and validities: `validate` and `check_names` never
    /// panic, agree with each other, and whatever they accept obeys the profile's rules.
    #[test]
    fn profile_checks_never_panic_and_accept_only_what_the_rules_allow(
        (name, (subject, sans)) in profile_names().prop_flat_map(|name| {
            let names = names_for(&name);
            (Just(name), names)
        }),
        key_type in key_type(),
        validity in proptest::option::of(prop_oneof![Just(0u32), 1u32..=1200, Just(u32::MAX)]),
    ) {
        let profile = &Profile::builtin()[&name];
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let identity = Identity { subject: subject.clone(), sans: sans.clone() };
        let names = profile.check_names(&name, &identity);
        let result = profile.validate(&name, verified(key_type, subject.clone(), sans.clone()), &Identity::default(), validity, now);
        let key_ok = profile.key_types.contains(&key_type);
        let max = profile.max_validity_days_at(now);
        let validity_days = validity.unwrap_or(profile.default_validity_days.min(max));
        let validity_ok = (1..=max).contains(&validity_days);
        // Attributes only the RA may assert are refused in a CSR, accepted as identity data.
        let csr_only_refusal = subject.iter().any(|a| {
            profile.subject.from_request.iter().any(|f| f.eq_ignore_ascii_case(a.kind.short_name()))
        });
        match &result {
            Ok(v) => {
                prop_assert!(key_ok && validity_ok);
                let names = names.as_ref().expect("validate accepts what check_names refuses");
                prop_assert_eq!(v.validity_days, validity_days);
                prop_assert_eq!(&v.subject, &names.subject);
                prop_assert_eq!(&v.sans, &names.sans);
                accepted_obeys_rules(profile, &v.subject, &v.sans)?;
            }
            Err(e) if !key_ok => prop_assert_eq!(e.code(), "key_type_not_allowed"),
            Err(e) if !validity_ok => prop_assert_eq!(e.code(), "validity_not_allowed"),
            Err(e) if csr_only_refusal => prop_assert_eq!(e.code(), "subject_not_allowed"),
            Err(e) => {
                // Key and validity are fine: the refusal is the names', as check_names says.
                let names_err = names.as_ref().expect_err("validate and check_names disagree");
                prop_assert_eq!(e.code(), names_err.code());
            }
        }
        if let Ok(names) = &names {
            accepted_obeys_rules(profile, &names.subject, &names.sans)?;
        }
    }

    /// tls-server accepts sets of distinct valid public host names and IP addresses with no
    /// subject or with a commonName (of at most 64 characters) repeated among them, for every
    /// validity from 1 to its maximum.
    #[test]
    fn tls_server_accepts_valid_names(
        hosts in proptest::collection::hash_set(public_hostname(), 1..5),
        ips in proptest::collection::hash_set(public_ip(), 0..3),
        cn_index in any::<proptest::sample::Index>(),
        with_cn in any::<bool>(),
        validity in 1u32..=397,
    ) {
        let profile = &Profile::builtin()["tls-server"];
        let hosts: HashSet<String> = hosts.into_iter().filter(|h| h.len() <= 253).collect();
        prop_assume!(!hosts.is_empty());
        let hosts: Vec<String> = hosts.into_iter().collect();
        let mut sans: Vec<San> = hosts.iter().map(|h| San::Dns(h.clone())).collect();
        sans.extend(ips.into_iter().map(San::Ip));
        // A commonName has at most 64 characters (RFC 5280 ub-common-name), so only a short
        // enough host name can repeat as the CN.
        let cn_candidates: Vec<&String> = hosts.iter().filter(|h| h.len() <= 64).collect();
        let subject = if with_cn && !cn_candidates.is_empty() {
            let cn = cn_index.get(&cn_candidates);
            vec![SubjectAttribute { kind: AttributeKind::CommonName, value: (*cn).clone() }]
        } else {
            Vec::new()
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let result = profile.validate("tls-server", verified(SubjectKeyType::EcP256, subject, sans), &Identity::default(), Some(validity.min(profile.max_validity_days_at(now))), now);
        prop_assert!(result.is_ok(), "{:?}", result.err());
    }

    /// tls-server refuses a DNS SAN with an empty label, wherever the empty label is.
    #[test]
    fn tls_server_refuses_empty_dns_labels(
        labels in proptest::collection::vec(label(), 1..4),
        at in any::<proptest::sample::Index>(),
    ) {
        let mut labels = labels;
        let i = at.index(labels.len() + 1);
        labels.insert(i, String::new());
        let name = labels.join(".");
        let profile = &Profile::builtin()["tls-server"];
        let err = profile
            .check_names("tls-server", &Identity { subject: vec![], sans: vec![San::Dns(name.clone())] })
            .expect_err(&name);
        prop_assert_eq!(err.code(), "san_not_allowed");
        prop_assert!(!is_valid_hostname(&name));
    }

    /// tls-server refuses every SAN that is neither a DNS name nor an IP address.
    #[test]
    fn tls_server_refuses_other_san_types(
        host in public_hostname(),
        other in prop_oneof![
            (label(), hostname()).prop_map(|(l, h)| San::Email(format!("{l}@{h}"))),
            "\\PC{0,20}".prop_map(San::Email),
            "\\PC{0,20}".prop_map(|s| San::Other(format!("URI:{s}"))),
        ],
    ) {
        let profile = &Profile::builtin()["tls-server"];
        let sans = vec![San::Dns(host), other];
        let err = profile.check_names("tls-server", &Identity { subject: vec![], sans }).unwrap_err();
        prop_assert_eq!(err.code(), "san_not_allowed");
    }

    /// Every profile refuses a validity of 0 days or above its maximum, and takes its
    /// default when none is asked for.
    #[test]
    fn validity_bounds(name in profile_names(), over in 1u32..=100_000) {
        let profile = &Profile::builtin()[&name];
        let host = "a.example.com".to_string();
        let (subject, sans) = match name.as_str() {
            "tls-server" => (vec![], vec![San::Dns(host)]),
            "personal" => (vec![], vec![San::Email("a@b.example".into())]),
            _ => (vec![SubjectAttribute { kind: AttributeKind::CommonName, value: "A".into() }], vec![]),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let max = profile.max_validity_days_at(now);
        let csr = || verified(SubjectKeyType::EcP256, subject.clone(), sans.clone());
        let validate = |days| profile.validate(&name, csr(), &Identity::default(), days, now);
        for days in [0, max.saturating_add(over)] {
            let err = validate(Some(days)).unwrap_err();
            prop_assert_eq!(err.code(), "validity_not_allowed");
        }
        let ok = validate(None).unwrap();
        prop_assert_eq!(ok.validity_days, profile.default_validity_days.min(max));
        let days = 1 + over % max;
        prop_assert_eq!(validate(Some(days)).unwrap().validity_days, days);
    }

    /// A subject attribute holding a control character is refused by every profile.
    #[test]
    fn control_characters_are_refused(
        name in profile_names(),
        before in "[a-z]{0,5}",
        control in prop_oneof![0u32..0x20, 0x7fu32..0xa0].prop_map(|c| char::from_u32(c).unwrap()),
        after in "[a-z]{0,5}",
    ) {
        let profile = &Profile::builtin()[&name];
        let subject = vec![SubjectAttribute {
            kind: AttributeKind::CommonName,
            value: format!("{before}{control}{after}"),
        }];
        // SANs each profile accepts, so that the refusal is the subject's.
        let sans = match name.as_str() {
            "tls-server" => vec![San::Dns("a.example.com".into())],
            _ => vec![San::Email("a@b.example".into())],
        };
        let err = profile.check_names(&name, &Identity { subject, sans }).unwrap_err();
        prop_assert_eq!(err.code(), "subject_not_allowed");
    }

    /// San::from_value classifies consistently and is idempotent over the API's form.
    #[test]
    fn san_from_value_is_idempotent(s in san_text()) {
        let san = San::from_value(&s);
        match &san {
            San::Ip(ip) => prop_assert_eq!(s.parse::<IpAddr>().ok(), Some(*ip)),
            San::Email(e) => prop_assert!(e == &s && s.contains('@')),
            San::Dns(d) => prop_assert!(d == &s && !s.contains('@') && !s.contains(':')),
            San::Uri(u) => prop_assert!(u == &s && s.contains(':')),
            San::OtherName(_) => prop_assert!(s.starts_with("otherName:")),
            San::Other(_) => prop_assert!(s.starts_with("otherName:"), "from_value gives Other only for a malformed otherName"),
        }
        prop_assert_eq!(San::from_value(&san.value()), san);
    }

    /// Subjects survive their RFC 4514 string form (the form enrollments store), and parsing
    /// arbitrary text never panics and is stable under a second round.
    #[test]
    fn rfc4514_round_trips(subject in subject(), text in "\\PC{0,40}|[A-Za-z]{1,2}=[^,]{0,8}(,[A-Za-z]{1,2}=[^,]{0,8}){0,3}") {
        let s = to_rfc4514(&subject);
        prop_assert_eq!(parse_rfc4514(&s).unwrap(), subject);
        if let Ok(parsed) = parse_rfc4514(&text) {
            let again = to_rfc4514(&parsed);
            prop_assert_eq!(parse_rfc4514(&again).unwrap(), parsed);
        }
    }
}

/// What an accepted subject and SAN list must satisfy under `profile`.
/// Addresses of special-purpose ranges that the standard library knows: private, loopback,
/// link-local, multicast, broadcast, documentation (IPv4), loopback, multicast, unique local,
/// link-local, IPv4-mapped and documentation (IPv6); a subset of what `san.public_only`
/// refuses.
fn special_purpose(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.to_ipv4_mapped().is_some()
                || v6.segments()[..2] == [0x2001, 0x0db8]
        }
    }
}

fn accepted_obeys_rules(
    profile: &Profile,
    subject: &[SubjectAttribute],
    sans: &[San],
) -> Result<(), TestCaseError> {
    prop_assert!(sans.len() <= profile.san.max);
    prop_assert!(!profile.san.required || !sans.is_empty());
    prop_assert!(!subject.is_empty() || !sans.is_empty());
    let mut seen = HashSet::new();
    for san in sans {
        prop_assert!(
            seen.insert(san.to_string().to_ascii_lowercase()),
            "repeated {}",
            san
        );
        match san {
            San::Dns(d) => {
                prop_assert!(profile.san.dns);
                let base = match d.strip_prefix("*.") {
                    Some(rest) => {
                        prop_assert!(profile.san.wildcards);
                        rest
                    }
                    None => d.as_str(),
                };
                prop_assert!(is_valid_hostname(base), "{:?}", d);
                prop_assert!(base.split('.').all(|l| !l.is_empty()));
                if profile.san.public_only {
                    // Below a suffix of the Public Suffix List, not the suffix itself.
                    let base = base.to_ascii_lowercase();
                    let suffix = psl::suffix(base.as_bytes());
                    prop_assert!(
                        suffix.is_some_and(|s| s.is_known() && s.as_bytes().len() < base.len()),
                        "internal name {:?}",
                        d
                    );
                }
            }
            San::Ip(ip) => {
                prop_assert!(profile.san.ip && !ip.is_unspecified());
                prop_assert!(!profile.san.public_only || !special_purpose(*ip), "{}", ip);
            }
            San::Email(e) => prop_assert!(profile.san.email && e.contains('@')),
            San::Uri(u) => prop_assert!(profile.san.uri && u.contains(':')),
            San::OtherName(o) => prop_assert!(profile.san.other_names.iter().any(|r| r.matches(o))),
            San::Other(_) => prop_assert!(false, "an Other SAN was accepted"),
        }
    }
    let mut kinds = HashSet::new();
    for attr in subject {
        prop_assert!(kinds.insert(attr.kind), "repeated {:?}", attr.kind);
        prop_assert!(profile
            .subject
            .allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attr.kind.short_name())));
        let chars = attr.value.chars().count();
        prop_assert!((1..=attr.kind.max_len()).contains(&chars));
        prop_assert!(!attr.value.chars().any(char::is_control));
        prop_assert!(!attr.value.chars().any(is_format_character));
    }
    let cn = subject.iter().find(|a| a.kind == AttributeKind::CommonName);
    prop_assert!(!profile.subject.require_cn || cn.is_some());
    if let (Some(cn), true) = (cn, profile.subject.cn_must_be_san) {
        let repeated = sans.iter().any(|s| match s {
            San::Dns(d) => d.eq_ignore_ascii_case(&cn.value),
            San::Ip(ip) => cn.value.parse::<IpAddr>().is_ok_and(|c| c == *ip),
            _ => false,
        });
        prop_assert!(repeated, "commonName {:?} is not among the SANs", cn.value);
    }
    Ok(())
}
