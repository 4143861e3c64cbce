//! `[cmp]`: the CMP front end (RFC 9483 over RFC 9811 HTTP), off unless enabled.

use serde::{Deserialize, Serialize};

/// The CMP front end's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmpConfig {
    /// Serve CMP at `/.well-known/cmp` and `/.well-known/cmp/p/{profile}`. Enrollment codes
    /// created while it is on are derived from the CMP code key (docs/API.md, "CMP").
    pub enabled: bool,
    /// The profile of `/.well-known/cmp` (RFC 9811 section 3.3's default path): a
    /// certification request there is for this profile; an enrollment redeemed there may be
    /// of any profile.
    pub profile: String,
    /// Further profiles, each served at `/.well-known/cmp/p/{profile}`, where an enrollment
    /// must be of that profile.
    pub profiles: Vec<String>,
    /// The RAs whose signed `ir`, `cr`, `p10cr` and `rr` are taken (RFC 9483 section 5),
    /// each by its CMP signing certificate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ras: Vec<CmpRaConfig>,
}

/// A registered RA's CMP signing certificate (`[[cmp.ras]]`): named by the SHA-256 of the
/// certificate's DER or of its SubjectPublicKeyInfo (hex, colons allowed), so that the RA is a
/// key it proves by signing, never a name it chose.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmpRaConfig {
    /// The requester name its certificates are issued under (the owner the JSON API's
    /// queries and revocations see).
    pub name: String,
    /// SHA-256 of the certificate's DER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<String>,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo DER (survives a renewal with the
    /// same key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
}

impl Default for CmpConfig {
    fn default() -> Self {
        CmpConfig {
            enabled: false,
            profile: "tls-client".into(),
            profiles: Vec::new(),
            ras: Vec::new(),
        }
    }
}

impl CmpConfig {
    /// Whether `/.well-known/cmp/p/{name}` is served.
    pub fn serves(&self, name: &str) -> bool {
        self.profile == name || self.profiles.iter().any(|p| p == name)
    }
}
