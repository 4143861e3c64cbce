//! One-time enrollment codes: generated, shown once to a person, stored only as a salted hash.
//!
//! A code carries 80 bits from the operating system's CSPRNG and is written for humans in
//! Douglas Crockford's base32 alphabet (the 32 symbols `0-9 A-Z` less `I`, `L`, `O` and `U`,
//! so that no two symbols look alike), in groups of four: `7K3M-Q9TX-2BHD-W5RA`. Typed input is
//! forgiving: case, spaces and dashes do not matter, and `O` reads as `0`, `I` and `L` as `1`.
//!
//! The CA keeps only a [`CodeHash`] (PBKDF2-HMAC-SHA256, RFC 8018 section 5.2, with a random
//! salt) and checks a presented code against it in constant time; the code itself is never
//! stored, and its `Debug` output is redacted.
//!
//! Where the CMP front end is on, a code is not drawn but derived from the enrollment's id
//! with the server's [`CodeKey`] (HMAC-SHA256, RFC 2104): CMP's password-based MAC (RFC 9810
//! section 5.1.3.1) is keyed by the code itself with a salt and iteration count the client
//! chooses, so the server must be able to have the code again, and a hash cannot give it.
//! The store still holds only the hash; the key lives outside it (docs/API.md, "CMP").

use std::fmt;
use std::num::NonZeroU32;

use keys::SecureRandom;
use ring::pbkdf2;
use zeroize::{Zeroize, Zeroizing};

use crate::error::CaError;
use crate::metrics::CodeChecks;

/// Crockford's base32 alphabet: digits then upper-case letters without `I`, `L`, `O`, `U`.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The entropy of a code, in bits (a whole number of 5-bit base32 symbols).
pub const CODE_BITS: usize = 80;

/// The number of base32 symbols of a code (5 bits each).
pub const CODE_SYMBOLS: usize = CODE_BITS / 5;

/// The number of symbols between two dashes of the human form.
const GROUP: usize = 4;

/// The random bytes a code is drawn from.
const CODE_BYTES: usize = CODE_BITS / 8;

/// An enrollment code: a one-time secret handed to a person, who types it back to redeem it.
///
/// It is held in its human form (`XXXX-XXXX-XXXX-XXXX`, upper case), is wiped from memory on
/// drop and never shows in `Debug` output. There is deliberately no `Display`: printing a code
/// takes an explicit [`EnrollmentCode::as_str`].
pub struct EnrollmentCode {
    /// The human form: [`CODE_SYMBOLS`] symbols of [`ALPHABET`] in dash-separated groups.
    text: String,
}

impl EnrollmentCode {
    /// Draws a fresh code of [`CODE_BITS`] bits from `rng` (the key provider's CSPRNG).
    pub fn generate(rng: &dyn SecureRandom) -> Result<EnrollmentCode, CaError> {
        let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
        rng.fill(bytes.as_mut_slice())?;
        let symbols = Zeroizing::new(encode(&bytes));
        Ok(EnrollmentCode::from_symbols(&symbols))
    }

    /// Reads a code as a person typed it, or `None` when it cannot be one.
    ///
    /// Case, spaces, tabs and dashes anywhere are ignored; `O`/`o` reads as `0` and `I`, `i`,
    /// `L`, `l` as `1`, as Crockford's decoding prescribes. Any other character outside the
    /// alphabet (including `U`) or a symbol count other than [`CODE_SYMBOLS`] is refused.
    pub fn normalize(input: &str) -> Option<EnrollmentCode> {
        let mut symbols = Zeroizing::new([0u8; CODE_SYMBOLS]);
        let mut count = 0;
        let mut valid = true;
        for c in input.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let symbol = match c.to_ascii_uppercase() {
                'O' => b'0',
                'I' | 'L' => b'1',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c as u8,
                _ => {
                    valid = false;
                    break;
                }
            };
            if count == CODE_SYMBOLS {
                valid = false;
                break;
            }
            symbols[count] = symbol;
            count += 1;
        }
        (valid && count == CODE_SYMBOLS).then(|| EnrollmentCode::from_symbols(&symbols))
    }

    /// The human form, `XXXX-XXXX-XXXX-XXXX`, to show once to the person who will redeem it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical symbols without separators: what is hashed, so that the grouping of the
    /// human form can change without invalidating stored hashes.
    fn canonical(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.text.bytes().filter(|b| *b != b'-').collect())
    }

    fn from_symbols(symbols: &[u8; CODE_SYMBOLS]) -> EnrollmentCode {
        let mut text = String::with_capacity(CODE_SYMBOLS + CODE_SYMBOLS / GROUP);
        for (i, symbol) in symbols.iter().enumerate() {
            if i > 0 && i % GROUP == 0 {
                text.push('-');
            }
            text.push(char::from(*symbol));
        }
        EnrollmentCode { text }
    }
}

/// The base32 symbols of `bytes` read as one bit string, most significant bit first, five bits
/// a symbol (the bit order of RFC 4648 section 6, with Crockford's alphabet).
fn encode(bytes: &[u8; CODE_BYTES]) -> [u8; CODE_SYMBOLS] {
    let mut symbols = [0u8; CODE_SYMBOLS];
    for (i, symbol) in symbols.iter_mut().enumerate() {
        // Symbol i holds bits 5i..5i+5: take the 16 bits from byte 5i/8 and shift them down.
        let bit = i * 5;
        let byte = bit / 8;
        let pair =
            u16::from(bytes[byte]) << 8 | u16::from(bytes.get(byte + 1).copied().unwrap_or(0));
        let value = (pair >> (11 - bit % 8)) & 0x1f;
        *symbol = ALPHABET[usize::from(value)];
    }
    symbols
}

impl fmt::Debug for EnrollmentCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrollmentCode(<redacted>)")
    }
}

impl Drop for EnrollmentCode {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

/// The length of a [`CodeKey`]'s secret.
pub const CODE_KEY_LEN: usize = 32;

/// Bound to every derived code, so that the key derives nothing else that could be confused
/// with a code.
const CODE_KEY_LABEL: &[u8] = b"ca-core enrollment code v1\0";

/// The server's secret from which enrollment codes are derived ([`CodeKey::derive`]) when a
/// front end needs a code again after it was handed out (CMP's MAC protection).
pub struct CodeKey(ring::hmac::Key);

impl CodeKey {
    /// A key from its secret.
    pub fn new(secret: &[u8; CODE_KEY_LEN]) -> CodeKey {
        CodeKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    /// The code of enrollment `id`: the first [`CODE_BITS`] of HMAC-SHA256(key, label || id),
    /// as a pseudorandom function of the id as unpredictable as a drawn code to anyone
    /// without the key.
    pub fn derive(&self, id: &[u8; 16]) -> EnrollmentCode {
        let tag = ring::hmac::sign(&self.0, &[CODE_KEY_LABEL, id.as_slice()].concat());
        let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
        bytes.copy_from_slice(&tag.as_ref()[..CODE_BYTES]);
        let symbols = Zeroizing::new(encode(&bytes));
        EnrollmentCode::from_symbols(&symbols)
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey(..)")
    }
}

/// PBKDF2 iterations of a [`CodeHash`] (encoding version 1).
///
/// Deliberately modest: a code has 80 bits of entropy and the API limits redemption attempts,
/// so guessing is not what the KDF stops. It is defence in depth for a stolen database, where
/// 2^80 candidates times 10,000 HMAC-SHA256 iterations is far out of reach, while a legitimate
/// check stays at a few milliseconds.
const PBKDF2_ITERATIONS: NonZeroU32 = match NonZeroU32::new(10_000) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// The version byte of [`CodeHash::to_bytes`]: PBKDF2-HMAC-SHA256, 10,000 iterations,
/// 16-byte salt, 32-byte output.
const HASH_VERSION: u8 = 1;

/// The salted hash of an [`EnrollmentCode`], the only form in which a code is stored.
///
/// PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2) over the code's canonical symbols (upper case, no
/// dashes) with a random 16-byte salt.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeHash {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl CodeHash {
    /// The length of [`CodeHash::to_bytes`]: a version byte, the salt and the hash.
    pub const ENCODED_LEN: usize = 1 + 16 + 32;

    /// Hashes `code` with a fresh random salt drawn from `rng`.
    pub fn new(code: &EnrollmentCode, rng: &dyn SecureRandom) -> Result<CodeHash, CaError> {
        let mut salt = [0u8; 16];
        rng.fill(&mut salt)?;
        let mut hash = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            PBKDF2_ITERATIONS,
            &salt,
            &code.canonical(),
            &mut hash,
        );
        Ok(CodeHash { salt, hash })
    }

    /// Whether `candidate`, as a person typed it (see [`EnrollmentCode::normalize`]), is the
    /// hashed code. The comparison of the derived hash is constant time (`ring::pbkdf2::verify`);
    /// input that cannot be a code at all is refused before hashing. Each derivation is
    /// recorded in `checks`.
    pub fn verify(&self, candidate: &str, checks: &CodeChecks) -> bool {
        let Some(code) = EnrollmentCode::normalize(candidate) else {
            return false;
        };
        let matched = pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            PBKDF2_ITERATIONS,
            &self.salt,
            &code.canonical(),
            &self.hash,
        )
        .is_ok();
        checks.record(matched);
        matched
    }

    /// The fixed-size storage encoding: version byte (1), then the 16-byte salt, then the
    /// 32-byte hash.
    pub fn to_bytes(&self) -> [u8; CodeHash::ENCODED_LEN] {
        let mut out = [0u8; CodeHash::ENCODED_LEN];
        out[0] = HASH_VERSION;
        out[1..17].copy_from_slice(&self.salt);
        out[17..].copy_from_slice(&self.hash);
        out
    }

    /// Reads [`CodeHash::to_bytes`] back; a wrong length or an unknown version is a storage
    /// fault.
    pub fn from_bytes(bytes: &[u8]) -> Result<CodeHash, CaError> {
        if bytes.len() != CodeHash::ENCODED_LEN {
            return Err(CaError::Storage(format!(
                "enrollment code hash of {} bytes (expected {})",
                bytes.len(),
                CodeHash::ENCODED_LEN
            )));
        }
        if bytes[0] != HASH_VERSION {
            return Err(CaError::Storage(format!(
                "enrollment code hash of unknown version {}",
                bytes[0]
            )));
        }
        let mut salt = [0u8; 16];
        let mut hash = [0u8; 32];
        salt.copy_from_slice(&bytes[1..17]);
        hash.copy_from_slice(&bytes[17..]);
        Ok(CodeHash { salt, hash })
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeHash")
            .field("version", &HASH_VERSION)
            .finish_non_exhaustive()
    }
}

/// The life cycle of an enrollment: issued and waiting, used once, locked after too many wrong
/// codes, or past its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnrollmentState {
    /// The code was issued and may still be redeemed.
    Pending,
    /// The code was redeemed; it can never be used again.
    Redeemed,
    /// Too many wrong codes were presented; the enrollment no longer accepts any.
    Locked,
    /// The code's validity ended before it was redeemed.
    Expired,
}

impl EnrollmentState {
    /// Every state.
    pub const ALL: [EnrollmentState; 4] = [
        EnrollmentState::Pending,
        EnrollmentState::Redeemed,
        EnrollmentState::Locked,
        EnrollmentState::Expired,
    ];

    /// The stable name used in the API and in storage: `pending`, `redeemed`, `locked` or
    /// `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentState::Pending => "pending",
            EnrollmentState::Redeemed => "redeemed",
            EnrollmentState::Locked => "locked",
            EnrollmentState::Expired => "expired",
        }
    }

    /// The state of a name given by [`EnrollmentState::as_str`], or `None`.
    pub fn parse(name: &str) -> Option<EnrollmentState> {
        EnrollmentState::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(code: &EnrollmentCode) -> String {
        code.as_str().replace('-', "")
    }

    #[test]
    fn derived_codes_are_codes_of_their_id_and_key_only() {
        let key = CodeKey::new(&[1; CODE_KEY_LEN]);
        let code = key.derive(&[9; 16]);
        assert_eq!(
            EnrollmentCode::normalize(code.as_str()).map(|c| c.as_str().to_string()),
            Some(code.as_str().to_string()),
            "a derived code reads back as itself"
        );
        assert_eq!(
            key.derive(&[9; 16]).as_str(),
            code.as_str(),
            "deterministic"
        );
        assert_ne!(key.derive(&[8; 16]).as_str(), code.as_str(), "another id");
        let other = CodeKey::new(&[2; CODE_KEY_LEN]);
        assert_ne!(
            other.derive(&[9; 16]).as_str(),
            code.as_str(),
            "another key"
        );
        assert_eq!(format!("{key:?}"), "CodeKey(..)");
    }

    #[test]
    fn generated_code_has_80_bits_in_16_symbols_of_four_groups() {
        assert_eq!(CODE_SYMBOLS, 16);
        const { assert!(CODE_BITS >= 60) };
        let code = EnrollmentCode::generate(&keys::SystemRandom::new()).unwrap();
        let text = code.as_str();
        assert_eq!(text.len(), 19, "{text}");
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().all(|g| g.len() == 4));
        assert_eq!(symbols(&code).len() * 5, CODE_BITS);
    }

    #[test]
    fn generated_codes_use_only_the_alphabet_and_every_symbol_occurs() {
        let mut seen = [false; 32];
        for _ in 0..400 {
            let code = EnrollmentCode::generate(&keys::SystemRandom::new()).unwrap();
            for b in symbols(&code).bytes() {
                assert!(
                    !b"ILOU".contains(&b),
                    "look-alike {} in {code:?}",
                    b as char
                );
                let pos = ALPHABET.iter().position(|a| *a == b).unwrap();
                seen[pos] = true;
            }
        }
        // 6,400 symbols: each of the 32 shows up unless the encoding loses bits.
        assert!(seen.iter().all(|s| *s), "{seen:?}");
    }

    #[test]
    fn two_generated_codes_differ() {
        let a = EnrollmentCode::generate(&keys::SystemRandom::new()).unwrap();
        let b = EnrollmentCode::generate(&keys::SystemRandom::new()).unwrap();
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn encoding_is_the_bit_string_in_base32() {
        assert_eq!(&encode(&[0; 10]), b"0000000000000000");
        assert_eq!(&encode(&[0xff; 10]), b"ZZZZZZZZZZZZZZZZ");
        // RFC 4648 base32 of these bytes is "AEBAGBAFAYDQQCIK" and "74VXX3XPX4ZUVR7I", with the
        // standard alphabet "A-Z2-7" mapped to Crockford's.
        let bytes = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a];
        assert_eq!(&encode(&bytes), b"041061050R3GG28A");
        let bytes = [0xff, 0x2b, 0x7b, 0xee, 0xef, 0xbf, 0x33, 0x4a, 0xc7, 0xe8];
        assert_eq!(&encode(&bytes), b"ZWNQQVQFQWSMNHZ8");
    }

    #[test]
    fn normalization_tolerates_case_spaces_dashes_and_look_alikes() {
        let canonical = "7K3M-Q9TX-10AB-W5RA";
        for typed in [
            "7K3M-Q9TX-10AB-W5RA",
            "7k3m-q9tx-10ab-w5ra",
            "7K3MQ9TX10ABW5RA",
            " 7K3M Q9TX 10AB W5RA ",
            "7K3M--Q9TX-1-0AB-W5RA-",
            "7K3M-Q9TX-IOAB-W5RA",
            "7K3M-Q9TX-lOAB-W5RA",
            "7K3M-Q9TX-Lo-AB-W5RA",
            "7k3m\tq9tx\n10ab w5ra",
        ] {
            let code = EnrollmentCode::normalize(typed);
            assert_eq!(
                code.as_ref().map(|c| c.as_str()),
                Some(canonical),
                "{typed:?}"
            );
        }
    }

    #[test]
    fn normalization_rejects_other_characters_and_wrong_lengths() {
        for typed in [
            "",
            "7K3M-Q9TX-10AB-W5R",
            "7K3M-Q9TX-10AB-W5RAX",
            "7K3M-Q9TX-10AB-W5RA-0",
            "7K3M-Q9TX-10AB-W5RU",
            "7K3M-Q9TX-10AB-W5R!",
            "7K3M_Q9TX_10AB_W5RA",
            "7K3M-Q9TX-10AB-W5RÄ",
            "7K3M-Q9TX-10AB-W5R١",
        ] {
            assert!(EnrollmentCode::normalize(typed).is_none(), "{typed:?}");
        }
    }

    #[test]
    fn round_trip_through_normalization() {
        for _ in 0..50 {
            let code = EnrollmentCode::generate(&keys::SystemRandom::new()).unwrap();
            let lower = code.as_str().to_lowercase();
            assert_eq!(
                EnrollmentCode::normalize(&lower).unwrap().as_str(),
                code.as_str()
            );
            let bare = symbols(&code);
            assert_eq!(
                EnrollmentCode::normalize(&bare).unwrap().as_str(),
                code.as_str()
            );
        }
    }

    #[test]
    fn verify_accepts_the_code_and_refuses_others() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let checks = CodeChecks::counted(&metrics);
        let code = EnrollmentCode::normalize("7K3M-Q9TX-10AB-W5RA").unwrap();
        let hash = CodeHash::new(&code, &keys::SystemRandom::new()).unwrap();
        assert!(hash.verify("7K3M-Q9TX-10AB-W5RA", &checks));
        assert!(hash.verify("7k3mq9txloabw5ra", &checks));
        assert!(hash.verify("7K3M Q9TX IOAB W5RA", &checks));
        assert!(!hash.verify("7K3M-Q9TX-10AB-W5RB", &checks));
        let other = EnrollmentCode::generate(&keys::SystemRandom::new()).unwrap();
        assert!(!hash.verify(other.as_str(), &checks));
        // Input that cannot be a code is refused before any derivation.
        assert!(!hash.verify("7K3M-Q9TX-10AB-W5R", &checks));
        assert!(!hash.verify("not a code", &checks));
        assert!(!hash.verify("", &checks));
        let count = |outcome| {
            metrics
                .enrollment_code_checks
                .with_label_values(&[outcome])
                .get()
        };
        assert_eq!((count("match"), count("mismatch")), (3, 2));
    }

    #[test]
    fn hashes_of_the_same_code_are_salted_apart() {
        let code = EnrollmentCode::generate(&keys::SystemRandom::new()).unwrap();
        let a = CodeHash::new(&code, &keys::SystemRandom::new()).unwrap();
        let b = CodeHash::new(&code, &keys::SystemRandom::new()).unwrap();
        assert_ne!(a.to_bytes(), b.to_bytes());
        assert!(
            a.verify(code.as_str(), &CodeChecks::default())
                && b.verify(code.as_str(), &CodeChecks::default())
        );
    }

    #[test]
    fn hash_encoding_round_trips() {
        let code = EnrollmentCode::generate(&keys::SystemRandom::new()).unwrap();
        let hash = CodeHash::new(&code, &keys::SystemRandom::new()).unwrap();
        let bytes = hash.to_bytes();
        assert_eq!(bytes.len(), CodeHash::ENCODED_LEN);
        assert_eq!(bytes.len(), 49);
        assert_eq!(bytes[0], 1);
        let back = CodeHash::from_bytes(&bytes).unwrap();
        assert_eq!(back, hash);
        assert!(back.verify(code.as_str(), &CodeChecks::default()));

        assert!(CodeHash::from_bytes(&bytes[..48]).is_err());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(CodeHash::from_bytes(&longer).is_err());
        let mut wrong_version = bytes;
        wrong_version[0] = 2;
        assert!(matches!(
            CodeHash::from_bytes(&wrong_version),
            Err(CaError::Storage(_))
        ));
    }

    #[test]
    fn debug_output_never_shows_the_code() {
        let code = EnrollmentCode::generate(&keys::SystemRandom::new()).unwrap();
        let debug = format!("{code:?} {:#?}", code);
        assert!(!debug.contains(code.as_str()), "{debug}");
        for group in code.as_str().split('-') {
            assert!(!debug.contains(group), "{debug}");
        }
        assert!(debug.contains("redacted"));
        let hash = CodeHash::new(&code, &keys::SystemRandom::new()).unwrap();
        let debug = format!("{hash:?}");
        assert!(!debug.contains(&hex::encode(&hash.to_bytes()[17..])));
    }

    #[test]
    fn states_have_stable_names() {
        let names: Vec<&str> = EnrollmentState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["pending", "redeemed", "locked", "expired"]);
        for state in EnrollmentState::ALL {
            assert_eq!(EnrollmentState::parse(state.as_str()), Some(state));
        }
        assert_eq!(EnrollmentState::parse("Pending"), None);
    }
}
