//! Key authorizations (RFC 8555 section 8.1) and what each challenge type proves with them
//! (sections 8.3 and 8.4, RFC 8737).

use crate::b64;

/// The challenge types this server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChallengeType {
    /// `http-01` (RFC 8555 section 8.3).
    Http01,
    /// `dns-01` (RFC 8555 section 8.4).
    Dns01,
    /// `tls-alpn-01` (RFC 8737).
    TlsAlpn01,
}

impl ChallengeType {
    /// Every type, in the order an authorization lists them.
    pub const ALL: [ChallengeType; 3] = [
        ChallengeType::Http01,
        ChallengeType::Dns01,
        ChallengeType::TlsAlpn01,
    ];

    /// The type's name in challenge objects.
    pub fn name(self) -> &'static str {
        match self {
            ChallengeType::Http01 => "http-01",
            ChallengeType::Dns01 => "dns-01",
            ChallengeType::TlsAlpn01 => "tls-alpn-01",
        }
    }

    /// The type with this name.
    pub fn from_name(name: &str) -> Option<ChallengeType> {
        ChallengeType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Bytes of entropy in a challenge token (RFC 8555 section 8.1 asks for at least 128 bits).
pub const TOKEN_BYTES: usize = 32;

/// Encodes a token's random bytes as the RFC's base64url.
pub fn token_from_bytes(bytes: &[u8; TOKEN_BYTES]) -> String {
    b64::encode(bytes)
}

/// The key authorization of `token` for the account key with this base64url thumbprint:
/// `token || '.' || thumbprint` (RFC 8555 section 8.1).
pub fn key_authorization(token: &str, thumbprint_b64: &str) -> String {
    format!("{token}.{thumbprint_b64}")
}

/// The TXT record value dns-01 expects: base64url(SHA-256(key authorization)) (RFC 8555
/// section 8.4).
pub fn dns01_txt(key_authorization: &str) -> String {
    b64::encode(ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8555 section 8.4's example is not computable (its thumbprint is elided), so this
    /// checks the construction against an independent SHA-256.
    #[test]
    fn key_authorization_and_txt() {
        let ka = key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", "tp");
        assert_eq!(ka, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.tp");
        let txt = dns01_txt("abc");
        // SHA-256("abc") = ba7816bf...
        assert_eq!(txt, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        assert_eq!(
            ChallengeType::from_name("dns-01"),
            Some(ChallengeType::Dns01)
        );
        assert_eq!(ChallengeType::from_name("dns-02"), None);
    }
}
