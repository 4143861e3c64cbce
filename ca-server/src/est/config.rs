//! `[est]`: the EST front end (RFC 7030), off unless enabled.

use serde::{Deserialize, Serialize};

/// The EST front end's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EstConfig {
    /// Serve EST at `/.well-known/est/` (RFC 7030 section 3.2.2).
    pub enabled: bool,
    /// The profile of `/.well-known/est/`'s operations.
    pub profile: String,
    /// Further profiles, each served at `/.well-known/est/{profile}/` (the RFC's optional
    /// label).
    pub profiles: Vec<String>,
}

impl Default for EstConfig {
    fn default() -> Self {
        EstConfig {
            enabled: false,
            profile: "tls-client".into(),
            profiles: Vec::new(),
        }
    }
}

impl EstConfig {
    /// Whether `name` is served: the default profile or one of `profiles`.
    pub fn serves(&self, name: &str) -> bool {
        self.profile == name || self.profiles.iter().any(|p| p == name)
    }
}
