//! The payloads of ACME requests (RFC 8555 section 7), parsed from a [`VerifiedJws`]'s
//! payload. Each refuses what the RFC does not define for it (`malformed`), so that a client
//! learns of a misspelt field rather than having it ignored; RFC 8555 section 7.1 lets a
//! server ignore unknown fields of resources it returns, not of requests it acts on, except
//! where an extension adds some (`profile`, RFC 9773's `replaces`).
//!
//! [`VerifiedJws`]: crate::jws::VerifiedJws

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::b64;
use crate::identifier::{AcmeIdentifier, RawIdentifier};
use crate::problem::{Problem, ProblemType};

/// Most identifiers in one order.
pub const MAX_IDENTIFIERS: usize = 100;
/// Most contact URLs of an account.
pub const MAX_CONTACTS: usize = 10;
/// Longest contact URL, in bytes.
pub const MAX_CONTACT_LEN: usize = 320;

fn parse<T: DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, Problem> {
    serde_json::from_slice(payload).map_err(|e| {
        // serde's message names the field and the line/column, never more than the input's
        // own field names.
        let msg = e.to_string();
        let msg: String = msg.chars().take(160).collect();
        Problem::malformed(format!("the {what} payload is not valid: {msg}"))
    })
}

/// `newAccount` (RFC 8555 section 7.3), and an account update (section 7.3.2) when sent to
/// the account URL.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAccount {
    /// `mailto:` URLs.
    #[serde(default)]
    pub contact: Option<Vec<String>>,
    /// Whether the client agreed to the terms of service.
    #[serde(default)]
    pub terms_of_service_agreed: Option<bool>,
    /// Look the key's account up rather than create one (section 7.3.1).
    #[serde(default)]
    pub only_return_existing: Option<bool>,
    /// The External Account Binding JWS (section 7.3.4), as JSON.
    #[serde(default)]
    pub external_account_binding: Option<Value>,
    /// `deactivated` to deactivate the account (section 7.3.6); only on the account URL.
    #[serde(default)]
    pub status: Option<String>,
    /// The orders URL: servers ignore it in requests, clients echo it back.
    #[serde(default)]
    pub orders: Option<Value>,
}

impl NewAccount {
    /// Parses the payload and checks its contacts ([`check_contacts`]).
    pub fn parse(payload: &[u8]) -> Result<Self, Problem> {
        let request: Self = parse(payload, "account")?;
        if let Some(contacts) = &request.contact {
            check_contacts(contacts)?;
        }
        Ok(request)
    }
}

/// Checks contact URLs (RFC 8555 section 7.3): at most [`MAX_CONTACTS`], each a `mailto:`
/// URL of one address without header fields (`?`) or a comma (`unsupportedContact`,
/// `invalidContact`).
pub fn check_contacts(contacts: &[String]) -> Result<(), Problem> {
    if contacts.len() > MAX_CONTACTS {
        return Err(Problem::new(
            ProblemType::InvalidContact,
            format!("at most {MAX_CONTACTS} contacts are accepted"),
        ));
    }
    for contact in contacts {
        let Some(address) = contact.strip_prefix("mailto:") else {
            return Err(Problem::new(
                ProblemType::UnsupportedContact,
                "only mailto: contacts are supported",
            ));
        };
        let valid = contact.len() <= MAX_CONTACT_LEN
            && address
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && address
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, ',' | '?' | '<' | '>' | '"'));
        if !valid {
            return Err(Problem::new(
                ProblemType::InvalidContact,
                format!(
                    "the contact \"{}\" is not a mailto: URL of one address",
                    crate::problem::quote(contact)
                ),
            ));
        }
    }
    Ok(())
}

/// `newOrder` (RFC 8555 section 7.4), with the `profile` of the ACME profiles extension and
/// the `replaces` of RFC 9773 section 5.
#[derive(Debug)]
pub struct NewOrder {
    /// The identifiers, each once, in the order given.
    pub identifiers: Vec<AcmeIdentifier>,
    /// Requested notBefore (RFC 3339), if any.
    pub not_before: Option<String>,
    /// Requested notAfter (RFC 3339), if any.
    pub not_after: Option<String>,
    /// The profile asked for, if any.
    pub profile: Option<String>,
    /// The ARI CertID of the certificate this order replaces (RFC 9773 section 5).
    pub replaces: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawNewOrder {
    identifiers: Vec<RawIdentifier>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    replaces: Option<String>,
}

impl NewOrder {
    /// Parses the payload: one to [`MAX_IDENTIFIERS`] identifiers, each valid
    /// ([`AcmeIdentifier`]); repeated ones are kept once. Every refused identifier is a
    /// subproblem of one `rejectedIdentifier` (or `compound`) problem (RFC 8555 section
    /// 6.7.1).
    pub fn parse(payload: &[u8]) -> Result<Self, Problem> {
        let raw: RawNewOrder = parse(payload, "newOrder")?;
        if raw.identifiers.is_empty() {
            return Err(Problem::malformed("the order names no identifier"));
        }
        if raw.identifiers.len() > MAX_IDENTIFIERS {
            return Err(Problem::new(
                ProblemType::RejectedIdentifier,
                format!("an order may name at most {MAX_IDENTIFIERS} identifiers"),
            ));
        }
        let mut identifiers = Vec::with_capacity(raw.identifiers.len());
        let mut refused = Vec::new();
        for raw_id in &raw.identifiers {
            match AcmeIdentifier::from_raw(raw_id) {
                Ok(id) if identifiers.contains(&id) => {}
                Ok(id) => identifiers.push(id),
                Err(problem) => refused.push((raw_id, problem)),
            }
        }
        if !refused.is_empty() {
            return Err(crate::problem::Problem::for_identifiers(
                refused
                    .into_iter()
                    .map(|(raw_id, problem)| (raw_id.identifier(), problem))
                    .collect(),
            ));
        }
        Ok(NewOrder {
            identifiers,
            not_before: raw.not_before,
            not_after: raw.not_after,
            profile: raw.profile,
            replaces: raw.replaces,
        })
    }
}

/// `finalize` (RFC 8555 section 7.4): the CSR, DER.
#[derive(Debug)]
pub struct Finalize {
    /// The CSR's DER.
    pub csr: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFinalize {
    csr: String,
}

impl Finalize {
    /// Parses the payload: `csr` in unpadded base64url (`malformed` otherwise; the CSR
    /// itself is the profile's to judge, `badCSR`).
    pub fn parse(payload: &[u8]) -> Result<Self, Problem> {
        let raw: RawFinalize = parse(payload, "finalize")?;
        let csr = b64::decode("csr", &raw.csr)?;
        if csr.is_empty() {
            return Err(Problem::new(ProblemType::BadCsr, "the CSR is empty"));
        }
        Ok(Finalize { csr })
    }
}

/// `revokeCert` (RFC 8555 section 7.6): the certificate (DER) and an optional reason code.
#[derive(Debug)]
pub struct RevokeCert {
    /// The certificate's DER.
    pub certificate: Vec<u8>,
    /// The CRLReason code (RFC 5280 section 5.3.1), if given.
    pub reason: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRevokeCert {
    certificate: String,
    #[serde(default)]
    reason: Option<u32>,
}

impl RevokeCert {
    /// Parses the payload; a reason outside 0..=10 is `badRevocationReason` (which reasons
    /// a subscriber may give is the server's rule).
    pub fn parse(payload: &[u8]) -> Result<Self, Problem> {
        let raw: RawRevokeCert = parse(payload, "revokeCert")?;
        let certificate = b64::decode("certificate", &raw.certificate)?;
        let reason = match raw.reason {
            None => None,
            Some(code) if code <= 10 => Some(code as u8),
            Some(code) => {
                return Err(Problem::new(
                    ProblemType::BadRevocationReason,
                    format!("{code} is not a CRLReason code (RFC 5280 section 5.3.1)"),
                ))
            }
        };
        Ok(RevokeCert {
            certificate,
            reason,
        })
    }
}

/// The payload of a challenge response (RFC 8555 section 7.5.1): an empty JSON object.
pub fn parse_challenge_response(payload: &[u8]) -> Result<(), Problem> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    parse::<Empty>(payload, "challenge").map(drop)
}

/// The payload of an authorization deactivation (RFC 8555 section 7.5.2):
/// `{"status": "deactivated"}`.
pub fn parse_authz_deactivation(payload: &[u8]) -> Result<(), Problem> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Deactivate {
        status: String,
    }
    let request: Deactivate = parse(payload, "authorization")?;
    if request.status == "deactivated" {
        Ok(())
    } else {
        Err(Problem::malformed(
            "an authorization's status may only be set to deactivated",
        ))
    }
}

/// The inner payload of a key change (RFC 8555 section 7.3.5).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyChange {
    /// The account URL.
    pub account: String,
    /// The old key, as a JWK.
    pub old_key: Value,
}

impl KeyChange {
    /// Parses the inner JWS's payload.
    pub fn parse(payload: &[u8]) -> Result<Self, Problem> {
        parse(payload, "keyChange")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_account_fields_and_contacts() {
        let a = NewAccount::parse(
            br#"{"contact":["mailto:a@example.com"],"termsOfServiceAgreed":true}"#,
        )
        .unwrap();
        assert_eq!(a.terms_of_service_agreed, Some(true));
        assert!(NewAccount::parse(br#"{"onlyReturnExisting":true}"#)
            .unwrap()
            .only_return_existing
            .unwrap());
        let e = NewAccount::parse(br#"{"contact":["tel:+1555"]}"#).unwrap_err();
        assert_eq!(e.kind, ProblemType::UnsupportedContact);
        for bad in [
            "mailto:",
            "mailto:a@b",
            "mailto:a@b.c,d@e.f",
            "mailto:a@b.c?subject=x",
        ] {
            let body = format!(r#"{{"contact":["{bad}"]}}"#);
            let e = NewAccount::parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.kind, ProblemType::InvalidContact, "{bad}");
        }
        let e = NewAccount::parse(br#"{"contacts":[]}"#).unwrap_err();
        assert_eq!(e.kind, ProblemType::Malformed);
    }

    #[test]
    fn new_order_dedups_and_collects_refusals() {
        let o = NewOrder::parse(
            br#"{"identifiers":[{"type":"dns","value":"a.example.com"},
                {"type":"dns","value":"A.example.com"},{"type":"ip","value":"192.0.2.7"}]}"#,
        )
        .unwrap();
        assert_eq!(o.identifiers.len(), 2);
        let e = NewOrder::parse(
            br#"{"identifiers":[{"type":"dns","value":"a_b.example"},
                {"type":"dns","value":"ok.example.com"},{"type":"ip","value":"x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ProblemType::RejectedIdentifier);
        assert_eq!(e.subproblems.len(), 2);
        assert_eq!(
            NewOrder::parse(br#"{"identifiers":[]}"#).unwrap_err().kind,
            ProblemType::Malformed
        );
        assert_eq!(
            NewOrder::parse(br#"{"identifier":[]}"#).unwrap_err().kind,
            ProblemType::Malformed
        );
    }

    #[test]
    fn finalize_revoke_and_challenge_bodies() {
        assert_eq!(
            Finalize::parse(br#"{"csr":"AQID"}"#).unwrap().csr,
            vec![1, 2, 3]
        );
        assert!(Finalize::parse(br#"{"csr":"AQ=="}"#).is_err());
        let r = RevokeCert::parse(br#"{"certificate":"AQID","reason":4}"#).unwrap();
        assert_eq!(r.reason, Some(4));
        assert_eq!(
            RevokeCert::parse(br#"{"certificate":"AQID","reason":11}"#)
                .unwrap_err()
                .kind,
            ProblemType::BadRevocationReason
        );
        parse_challenge_response(b"{}").unwrap();
        assert!(parse_challenge_response(br#"{"keyAuthorization":"x"}"#).is_err());
        parse_authz_deactivation(br#"{"status":"deactivated"}"#).unwrap();
        assert!(parse_authz_deactivation(br#"{"status":"valid"}"#).is_err());
    }
}
