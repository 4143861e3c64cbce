//! Property tests (proptest) of the weak-key refusals of `SubjectKey::check_strength`
//! (issue 15, finding 7): small-order and non-canonical Ed25519 points, EC points at
//! infinity, RSA moduli that are even or have a factor below 1000, RSA exponents that are
//! even or below 3; and that real keys pass.

use ca_core::csr::{SubjectKey, SubjectKeyType};
use der::asn1::UintRef;
use der::Encode;
use proptest::prelude::*;
use ring::signature::KeyPair;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn ed25519(bits: [u8; 32]) -> SubjectKey {
    SubjectKey {
        key_type: SubjectKeyType::Ed25519,
        bits: bits.to_vec(),
    }
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The canonical encodings of the eight points of small order (the torsion subgroup of
/// edwards25519): orders 1, 2, 4 and 8, with y of 1, -1, 0 and the two order-8 values, each
/// with both signs of x where x is not 0.
fn small_order_points() -> Vec<[u8; 32]> {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut minus_one = [0xff; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    let zero = [0u8; 32];
    let mut zero_negative = zero;
    zero_negative[31] = 0x80;
    let eight_a = hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05");
    let eight_b = hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a");
    let mut points = vec![identity, minus_one, zero, zero_negative, eight_a, eight_b];
    for p in [eight_a, eight_b] {
        let mut flipped = p;
        flipped[31] ^= 0x80;
        points.push(flipped);
    }
    points
}

#[test]
fn the_small_order_list_is_what_ed25519_dalek_calls_weak() {
    for p in small_order_points() {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&p).unwrap();
        assert!(key.is_weak(), "{}", hex::encode(p));
    }
}

#[test]
fn every_small_order_ed25519_point_is_refused() {
    for p in small_order_points() {
        let e = ed25519(p).check_strength().unwrap_err();
        assert_eq!(e.code(), "weak_key", "{}", hex::encode(p));
        assert!(e.to_string().contains("small order"), "{e}");
    }
}

/// An RSAPublicKey (RFC 8017 appendix A.1.1) of big-endian `n` and `e`.
fn rsa(n: &[u8], e: &[u8]) -> SubjectKey {
    let key = pkcs1::RsaPublicKey {
        modulus: UintRef::new(n).unwrap(),
        public_exponent: UintRef::new(e).unwrap(),
    };
    SubjectKey {
        key_type: SubjectKeyType::Rsa(n.len() as u32 * 8),
        bits: key.to_der().unwrap(),
    }
}

/// `n * k` for big-endian `n`.
fn times(n: &[u8], k: u32) -> Vec<u8> {
    let mut out = vec![0u8; n.len() + 4];
    let mut carry = 0u64;
    for (i, b) in n.iter().rev().enumerate() {
        let v = u64::from(*b) * u64::from(k) + carry;
        let at = out.len() - 1 - i;
        out[at] = v as u8;
        carry = v >> 8;
    }
    let mut at = out.len() - 1 - n.len();
    while carry > 0 {
        out[at] = carry as u8;
        carry >>= 8;
        at = at.wrapping_sub(1);
    }
    let first = out.iter().position(|b| *b != 0).unwrap_or(out.len() - 1);
    out[first..].to_vec()
}

fn is_prime(p: u32) -> bool {
    p >= 2 && (2..p).take_while(|d| d * d <= p).all(|d| p % d != 0)
}

/// A real RSA-2048 modulus (no prime factor below 1000), generated once per run.
fn real_modulus() -> Vec<u8> {
    use rsa::traits::PublicKeyParts;
    static MODULUS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    MODULUS
        .get_or_init(|| {
            let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
            key.n().to_bytes_be()
        })
        .clone()
}

const F4: [u8; 3] = [0x01, 0x00, 0x01];

proptest! {
    #![proptest_config(config(256))]

    /// Every encoding whose y is not below p = 2^255 - 19 is refused as non-canonical,
    /// whichever sign bit it carries.
    #[test]
    fn non_canonical_ed25519_encodings_are_refused(excess in 0u8..19, sign in any::<bool>()) {
        let mut bits = [0xff; 32];
        bits[0] = 0xed + excess;
        bits[31] = if sign { 0xff } else { 0x7f };
        let e = ed25519(bits).check_strength().unwrap_err();
        prop_assert_eq!(e.code(), "weak_key");
        prop_assert!(e.to_string().contains("canonical"), "{}", e);
    }

    /// Keys of real key pairs pass.
    #[test]
    fn real_ed25519_keys_pass(seed in any::<[u8; 32]>()) {
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let bits: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        prop_assert!(ed25519(bits).check_strength().is_ok());
    }

    /// Arbitrary 32 octets: never a panic; whatever passes decodes to a point that is
    /// canonical and not of small order.
    #[test]
    fn arbitrary_ed25519_octets_never_panic(bits in any::<[u8; 32]>()) {
        if ed25519(bits).check_strength().is_ok() {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bits).unwrap();
            prop_assert!(!key.is_weak());
            prop_assert!(!small_order_points().contains(&bits));
        }
    }

    /// A modulus with prime factors below 1000 is refused, naming the smallest one.
    #[test]
    fn rsa_moduli_with_small_factors_are_refused(
        p in (3u32..1000).prop_filter("prime", |p| is_prime(*p)),
        q in (3u32..1000).prop_filter("prime", |p| is_prime(*p)),
    ) {
        let n = times(&times(&real_modulus(), p), q);
        let e = rsa(&n, &F4).check_strength().unwrap_err();
        prop_assert_eq!(e.code(), "weak_key_small_factor");
        prop_assert!(e.to_string().contains(&format!("divisible by {}", p.min(q))), "{}", e);
    }

    /// An even modulus is refused.
    #[test]
    fn even_rsa_moduli_are_refused(n in proptest::collection::vec(any::<u8>(), 256)) {
        let mut n = n;
        n[0] |= 0x80;
        n[255] &= 0xfe;
        let e = rsa(&n, &F4).check_strength().unwrap_err();
        prop_assert_eq!(e.code(), "weak_key");
        prop_assert!(e.to_string().contains("even"), "{}", e);
    }

    /// Exponents that are even or below 3 are refused; odd ones from 3 pass (the profile,
    /// not this check, may ask for 65537).
    #[test]
    fn rsa_exponents(e in any::<u32>()) {
        let bytes: Vec<u8> = e.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        let bytes = if bytes.is_empty() { vec![0] } else { bytes };
        let result = rsa(&real_modulus(), &bytes).check_strength();
        if e % 2 == 1 && e >= 3 {
            prop_assert!(result.is_ok(), "{}: {:?}", e, result);
        } else {
            prop_assert_eq!(result.unwrap_err().code(), "weak_key");
        }
    }
}

#[test]
fn real_rsa_keys_pass_and_ec_infinity_is_refused() {
    rsa(&real_modulus(), &F4).check_strength().unwrap();
    for key_type in [SubjectKeyType::EcP256, SubjectKeyType::EcP384] {
        let e = SubjectKey {
            key_type,
            bits: vec![0x00],
        }
        .check_strength()
        .unwrap_err();
        assert_eq!(e.code(), "weak_key");
        assert!(e.to_string().contains("infinity"), "{e}");
    }
}
