//! The JWS signature algorithms this server accepts (RFC 7518 section 3.1, RFC 8037 section
//! 3.1), each with its JOSE name.

/// A JWS `alg` (RFC 7515 section 4.1.1) that an ACME request may be signed with.
///
/// RFC 8555 section 6.2: a server MUST accept ES256, SHOULD accept EdDSA, and MUST refuse
/// `none` and the MAC algorithms; this server accepts the four below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JwsAlgorithm {
    /// ECDSA on P-256 with SHA-256, signature `r || s` of 64 bytes (RFC 7518 section 3.4).
    Es256,
    /// ECDSA on P-384 with SHA-384, signature `r || s` of 96 bytes (RFC 7518 section 3.4).
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 section 3.3).
    Rs256,
    /// Ed25519 (RFC 8037 section 3.1).
    EdDsa,
}

impl JwsAlgorithm {
    /// Every accepted algorithm, in the order a problem document lists them.
    pub const ALL: [JwsAlgorithm; 4] = [Self::Es256, Self::Es384, Self::Rs256, Self::EdDsa];

    /// The JOSE name (RFC 7518 section 7.1.2, RFC 8037 section 5).
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm of a JOSE name; `None` for every other name, `none` and the MAC
    /// algorithms among them (names are case-sensitive, RFC 7515 section 4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }
}

impl std::fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
