//! Certificate serial numbers (RFC 5280 section 4.1.2.2).

use std::fmt;

use std::sync::Arc;

use keys::{RandomError, SecureRandom};

/// Length of every serial this CA issues, in octets.
pub const SERIAL_LEN: usize = 16;

/// A serial number issued by this CA: 16 octets from a CSPRNG with the top bit cleared
/// (positive) and the next bit set (so the DER INTEGER is always exactly 16 octets and the hex
/// form always 32 digits). That leaves 126 random bits, well above the 64 that CA/B Forum
/// requires, and the encoding is well inside RFC 5280's 20-octet limit.
///
/// The bytes are stored big-endian and are the store's key; hex appears only at the edges.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial([u8; SERIAL_LEN]);

impl Serial {
    /// Draws a fresh serial from `rng` (the key provider's CSPRNG).
    pub fn random(rng: &dyn SecureRandom) -> Result<Self, RandomError> {
        let mut bytes = [0u8; SERIAL_LEN];
        rng.fill(&mut bytes)?;
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Ok(Serial(bytes))
    }

    /// Builds a serial from its 16 stored octets; `None` unless they have this CA's form.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; SERIAL_LEN] = bytes.try_into().ok()?;
        (arr[0] & 0xc0 == 0x40).then_some(Serial(arr))
    }

    /// Parses the API's form: lower- or upper-case hex without separators. `None` for anything
    /// that cannot be a serial of this CA (callers answer "not found" or "bad input").
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != SERIAL_LEN * 2 {
            return None;
        }
        let mut bytes = [0u8; SERIAL_LEN];
        hex::decode_to_slice(s, &mut bytes).ok()?;
        Serial::from_bytes(&bytes)
    }

    /// The serial's octets, big-endian, as they appear in the certificate's INTEGER.
    pub fn as_bytes(&self) -> &[u8; SERIAL_LEN] {
        &self.0
    }

    /// Lower-case hex, as the API shows it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Where the issuance engine draws serial numbers from: the key provider's CSPRNG in
/// production ([`RandomSerials`]); a test may script the draws, e.g. to make one collide with
/// a stored serial and see the engine draw again.
pub trait SerialSource: Send + Sync {
    /// The next serial.
    fn draw(&self) -> Result<Serial, RandomError>;
}

/// Serials drawn from a [`SecureRandom`] by [`Serial::random`].
pub struct RandomSerials(pub Arc<dyn SecureRandom>);

impl SerialSource for RandomSerials {
    fn draw(&self) -> Result<Serial, RandomError> {
        Serial::random(self.0.as_ref())
    }
}

impl AsRef<[u8]> for Serial {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Stored as its 16 octets (the same encoding as a `[u8; 16]`), and read back only if they
/// have this CA's form.
impl serde::Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Serial {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = <[u8; SERIAL_LEN]>::deserialize(deserializer)?;
        Serial::from_bytes(&bytes)
            .ok_or_else(|| serde::de::Error::custom("a serial number not of this CA's form"))
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_full_length_and_round_trip() {
        let rng = keys::SystemRandom::new();
        for _ in 0..1000 {
            let s = Serial::random(&rng).unwrap();
            assert_eq!(s.as_bytes()[0] & 0xc0, 0x40);
            let hex = s.to_hex();
            assert_eq!(hex.len(), 32);
            assert_eq!(Serial::from_hex(&hex), Some(s));
            assert_eq!(Serial::from_hex(&hex.to_uppercase()), Some(s));
        }
    }

    #[test]
    fn foreign_forms_are_rejected() {
        assert_eq!(Serial::from_hex(""), None);
        assert_eq!(Serial::from_hex("zz"), None);
        assert_eq!(Serial::from_hex(&"00".repeat(16)), None);
        assert_eq!(Serial::from_hex(&"ff".repeat(16)), None);
        assert_eq!(Serial::from_hex(&"41".repeat(17)), None);
        assert!(Serial::from_hex(&"41".repeat(16)).is_some());
    }
}
