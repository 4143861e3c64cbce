//! TLS client certificates as callers: which certificate acts as which role and name.
//!
//! rustls has already verified the certificate chain to `[tls] client_ca_file` (RFC 8446
//! §4.4.2, RFC 5280 §6) before a request is seen; this module decides who the holder is. A
//! mapping names a certificate by the SHA-256 of its DER (`certificate_sha256`) or of its
//! SubjectPublicKeyInfo (`spki_sha256`, which survives a renewal with the same key), so that
//! the identity is a key the holder proves, never a name the holder may have chosen. A mapping
//! by subject alone is honoured only when `client_ca_file` does not trust this CA: an RA of
//! this CA can have any subject certified (the `tls-client` profile), and could otherwise
//! become any mapped role. A certificate this CA issued is checked against its own store on
//! every request: a revoked (or held) certificate no longer authenticates.

use std::collections::HashMap;
use std::sync::Arc;

use ca_core::store::Storage;
use ca_core::{CaError, Serial};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::auth::{Caller, Role};
use crate::config::ClientCertificateConfig;

/// What the listener learns of a verified client certificate, for [`ClientCertificates`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// SHA-256 of the certificate's DER.
    pub sha256: [u8; 32],
    /// SHA-256 of its SubjectPublicKeyInfo DER.
    pub spki_sha256: [u8; 32],
    /// Its subject, RFC 4514.
    pub subject: String,
    /// Its issuer, RFC 4514.
    pub issuer: String,
    /// Its serial number's content octets.
    pub serial: Vec<u8>,
}

impl ClientCertificate {
    /// Reads a certificate presented in a TLS handshake; `None` when it does not parse (rustls
    /// accepted it, so this does not happen for well-formed chains).
    pub fn parse(der: &[u8]) -> Option<ClientCertificate> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let (subject, issuer) = ca_core::inspect::subject_and_issuer(der).ok()?;
        Some(ClientCertificate {
            sha256: Sha256::digest(der).into(),
            spki_sha256: Sha256::digest(cert.public_key().raw).into(),
            subject,
            issuer,
            serial: cert.raw_serial().to_vec(),
        })
    }
}

/// Why a verified client certificate does not authenticate its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `[[tls.clients]]` entry names it.
    NotMapped,
    /// This CA issued it and has revoked it (or put it on hold).
    Revoked,
    /// Its revocation state could not be read.
    Unchecked,
}

impl Refusal {
    /// The reason, as a 401 answer gives it.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotMapped => {
                "the TLS client certificate is not mapped to a role; send a bearer token"
            }
            Refusal::Revoked => "the TLS client certificate is revoked",
            Refusal::Unchecked => "the TLS client certificate's revocation could not be checked",
        }
    }
}

/// Why a `[[tls.clients]]` entry is refused when the server starts; each variant names the
/// entry (`[[tls.clients]] name "portal"`).
#[derive(Debug, thiserror::Error)]
pub enum ClientMappingError {
    /// The `subject` is not an RFC 4514 name.
    #[error("{entry}: subject")]
    Subject {
        /// The entry.
        entry: String,
        /// Why the name does not parse.
        source: CaError,
    },
    /// A fingerprint is not 64 hex digits.
    #[error("{entry}: {field} must be a SHA-256 fingerprint (64 hex digits)")]
    Fingerprint {
        /// The entry.
        entry: String,
        /// `certificate_sha256` or `spki_sha256`.
        field: &'static str,
    },
    /// Another entry maps the same certificate, key or subject.
    #[error("{entry}: the same certificate is mapped twice")]
    Duplicate {
        /// The entry.
        entry: String,
    },
    /// The entry names no certificate at all.
    #[error("{entry}: give certificate_sha256, spki_sha256 or subject")]
    NoIdentity {
        /// The entry.
        entry: String,
    },
}

/// A mapping's name and role.
#[derive(Clone, Debug)]
struct Holder {
    name: String,
    role: Role,
    /// The subject the certificate must also have, when the mapping names one.
    subject: Option<String>,
}

/// The `[[tls.clients]]` mappings in force, and how to check certificates this CA issued.
#[derive(Debug, Default)]
pub struct ClientCertificates {
    by_certificate: HashMap<[u8; 32], Holder>,
    by_spki: HashMap<[u8; 32], Holder>,
    by_subject: HashMap<String, Holder>,
    /// The subjects of this CA's certificates (its issuing certificate and its chain): a
    /// client certificate with one of them as issuer may be one this CA issued.
    own_subjects: Vec<String>,
    store: Option<Arc<dyn Storage>>,
}

/// The mappings in force and the warnings an operator must read about the configuration.
#[derive(Debug)]
pub struct Loaded {
    /// The mappings.
    pub certificates: ClientCertificates,
    /// One message per mapping that is ignored or weaker than it should be, naming it.
    pub warnings: Vec<String>,
}

/// Parses a SHA-256 fingerprint: 64 hex digits, optionally in colon-separated pairs as
/// `openssl x509 -fingerprint -sha256` prints them.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex_digits: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(hex_digits.trim()).ok()?;
    <[u8; 32]>::try_from(bytes).ok()
}

fn spki_of(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.public_key().raw.to_vec())
}

impl ClientCertificates {
    /// Builds the mappings of `clients`. `client_cas` are the certificates of `[tls]
    /// client_ca_file`; `own_chain` is this CA's chain (issuing certificate first); `store`
    /// holds this CA's revocations. A configuration error (an unknown role, a malformed
    /// fingerprint or subject, a mapping without any of them, the same certificate mapped
    /// twice) is an `Err` naming the entry; a subject-only mapping while `client_cas` trust
    /// this CA is ignored with a warning.
    pub fn load(
        clients: &[ClientCertificateConfig],
        client_cas: &[Vec<u8>],
        own_chain: &[Vec<u8>],
        store: Option<Arc<dyn Storage>>,
    ) -> Result<Loaded, ClientMappingError> {
        let own_keys: Vec<Vec<u8>> = own_chain.iter().filter_map(|c| spki_of(c)).collect();
        let trusts_this_ca = client_cas
            .iter()
            .filter_map(|c| spki_of(c))
            .any(|k| own_keys.contains(&k));
        let own_subjects = own_chain
            .iter()
            .filter_map(|c| ClientCertificate::parse(c))
            .map(|c| c.subject)
            .collect();
        let mut loaded = Loaded {
            certificates: ClientCertificates {
                own_subjects,
                store,
                ..ClientCertificates::default()
            },
            warnings: Vec::new(),
        };
        for c in clients {
            loaded.add(c, trusts_this_ca)?;
        }
        Ok(loaded)
    }

    /// The caller `cert` authenticates, or why it does not.
    pub fn caller(&self, cert: &ClientCertificate) -> Result<Caller, Refusal> {
        let holder = self
            .by_certificate
            .get(&cert.sha256)
            .or_else(|| self.by_spki.get(&cert.spki_sha256))
            .or_else(|| self.by_subject.get(&cert.subject))
            .filter(|h| h.subject.as_ref().is_none_or(|s| *s == cert.subject))
            .ok_or(Refusal::NotMapped)?;
        self.check_revocation(cert)?;
        Ok(Caller {
            name: holder.name.clone(),
            role: holder.role,
            token_hash: Sha256::digest([b"client-certificate:".as_slice(), &cert.sha256].concat())
                .into(),
        })
    }

    /// A certificate whose issuer is this CA is refused when this CA's store has it revoked
    /// or on hold (RFC 5280 §3.3: a relying party checks revocation; here the CA is its own
    /// relying party and reads the state directly).
    fn check_revocation(&self, cert: &ClientCertificate) -> Result<(), Refusal> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if !self.own_subjects.contains(&cert.issuer) {
            return Ok(());
        }
        let Some(serial) = Serial::from_bytes(&cert.serial) else {
            // Not a serial this CA draws: not one of its certificates.
            return Ok(());
        };
        match store.revocation(&serial) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(Refusal::Revoked),
            Err(e) => {
                tracing::error!(error = %e, %serial, "reading a client certificate's revocation");
                Err(Refusal::Unchecked)
            }
        }
    }
}

impl Loaded {
    fn add(
        &mut self,
        c: &ClientCertificateConfig,
        trusts_this_ca: bool,
    ) -> Result<(), ClientMappingError> {
        let entry = c.describe();
        let role = c.role;
        let subject = match c.subject.as_deref().filter(|s| !s.is_empty()) {
            // The subject as the certificate will render it.
            Some(s) => Some(ca_core::name::to_rfc4514(
                &ca_core::name::parse_rfc4514(s).map_err(|source| ClientMappingError::Subject {
                    entry: entry.clone(),
                    source,
                })?,
            )),
            None => None,
        };
        let fingerprint = |field: &'static str, value: &Option<String>| {
            value
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| {
                    parse_fingerprint(v).ok_or_else(|| ClientMappingError::Fingerprint {
                        entry: entry.clone(),
                        field,
                    })
                })
                .transpose()
        };
        let certificate = fingerprint("certificate_sha256", &c.certificate_sha256)?;
        let spki = fingerprint("spki_sha256", &c.spki_sha256)?;
        let holder = Holder {
            name: c.name.clone(),
            role,
            subject: subject.clone(),
        };
        let certs = &mut self.certificates;
        let duplicate = || ClientMappingError::Duplicate {
            entry: entry.clone(),
        };
        match (certificate, spki, subject) {
            (Some(fp), _, _) => {
                if certs.by_certificate.insert(fp, holder).is_some() {
                    return Err(duplicate());
                }
            }
            (None, Some(fp), _) => {
                if certs.by_spki.insert(fp, holder).is_some() {
                    return Err(duplicate());
                }
            }
            (None, None, Some(_)) if trusts_this_ca => self.warnings.push(format!(
                "{entry} is IGNORED: client_ca_file trusts this CA, whose RAs can have any \
                 subject certified, so a subject does not identify a client; map it by \
                 certificate_sha256 (openssl x509 -noout -fingerprint -sha256 -in CERT) or \
                 spki_sha256 instead"
            )),
            (None, None, Some(s)) => {
                self.warnings.push(format!(
                    "{entry} maps by subject only: any certificate with this subject from \
                     client_ca_file's CAs acts as {} {:?}; prefer certificate_sha256 or \
                     spki_sha256",
                    role.name(),
                    c.name
                ));
                if certs.by_subject.insert(s, holder).is_some() {
                    return Err(duplicate());
                }
            }
            (None, None, None) => return Err(ClientMappingError::NoIdentity { entry }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex64 = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex64), Some([0xab; 32]));
        assert_eq!(parse_fingerprint(&colons), Some([0xab; 32]));
        assert_eq!(parse_fingerprint("abcd"), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
    }
}
