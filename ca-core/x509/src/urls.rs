//! The status and issuer URLs a CA writes into the certificates it issues.

/// The URLs written into every issued certificate (RFC 5280 sections 4.2.1.13 and 4.2.2.1).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Urls {
    /// CRL distribution point URLs.
    pub crl: Vec<String>,
    /// OCSP responder URLs (AIA id-ad-ocsp).
    pub ocsp: Vec<String>,
    /// URLs of the issuing CA's certificate (AIA id-ad-caIssuers).
    pub ca_issuers: Vec<String>,
}
