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
}

impl Default for CmpConfig {
    fn default() -> Self {
        CmpConfig {
            enabled: false,
            profile: "tls-client".into(),
            profiles: Vec::new(),
        }
    }
}

impl CmpConfig {
    /// Whether `/.well-known/cmp/p/{name}` is served.
    pub fn serves(&self, name: &str) -> bool {
        self.profile == name || self.profiles.iter().any(|p| p == name)
    }
}
