//! What a CA and a remote validation agent (`ca-server va`) say to each other: JSON over
//! HTTPS with a client certificate on both sides, as Boulder's remote VAs do over gRPC.
//!
//! - `POST /va/v1/validate` with a [`ValidateRequest`]: the agent runs the challenge from its
//!   own network perspective.
//! - `POST /va/v1/caa` with a [`CaaRequest`]: the agent checks CAA from its perspective.
//!
//! Both answer `200` with an [`Answer`]: `{"valid": true, "records": [...]}` (the
//! [`ValidationRecord`]s; none for CAA) or `{"valid": false, "problem": {"type", "detail"}}`
//! (the validation failed: an answer, not an error of the agent). A request the agent cannot
//! read is answered `400` (too large: `413`) with an `application/problem+json` document of
//! type `malformed`; an unknown path `404`.

use std::net::IpAddr;

use ca_acme::{Problem, ProblemType};
use serde::{Deserialize, Serialize};

use crate::{Challenge, Ident, ValidationRecord};

/// The path of validations.
pub const VALIDATE_PATH: &str = "/va/v1/validate";
/// The path of CAA checks.
pub const CAA_PATH: &str = "/va/v1/caa";
/// The largest request body an agent reads, bytes (a request is well under 2 KiB).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The largest answer a CA reads from an agent, bytes (records of up to 10 redirects).
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// An identifier as ACME writes it: `{"type": "dns" | "ip", "value"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireIdentifier {
    /// `dns` or `ip`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name (lower case, no `*.`) or the address.
    pub value: String,
}

impl WireIdentifier {
    /// The identifier of `ident`.
    pub fn of(ident: &Ident) -> Self {
        let id = ident.to_identifier();
        WireIdentifier {
            kind: id.kind,
            value: id.value,
        }
    }

    /// The [`Ident`] it names; `malformed` for another type or an address that does not
    /// parse.
    pub fn to_ident(&self) -> Result<Ident, Problem> {
        match self.kind.as_str() {
            "dns" => Ok(Ident::Dns(self.value.clone())),
            "ip" => self.value.parse::<IpAddr>().map(Ident::Ip).map_err(|_| {
                Problem::malformed(format!(
                    "\"{}\" is not an IP address",
                    ca_acme::problem::quote(&self.value)
                ))
            }),
            other => Err(Problem::malformed(format!(
                "unknown identifier type \"{}\"",
                ca_acme::problem::quote(other)
            ))),
        }
    }
}

/// The body of `POST /va/v1/validate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidateRequest {
    /// The challenge type: `http-01`, `dns-01` or `tls-alpn-01`.
    #[serde(rename = "type")]
    pub challenge: String,
    /// What is validated.
    pub identifier: WireIdentifier,
    /// The challenge's token.
    pub token: String,
    /// The key authorization (RFC 8555 section 8.1).
    pub key_authorization: String,
}

impl ValidateRequest {
    /// The request for [`crate::Va::validate`]'s arguments.
    pub fn new(challenge: Challenge, ident: &Ident, token: &str, key_authorization: &str) -> Self {
        ValidateRequest {
            challenge: challenge.name().into(),
            identifier: WireIdentifier::of(ident),
            token: token.into(),
            key_authorization: key_authorization.into(),
        }
    }

    /// The challenge type and identifier, or a `malformed` problem.
    pub fn parts(&self) -> Result<(Challenge, Ident), Problem> {
        Ok((challenge(&self.challenge)?, self.identifier.to_ident()?))
    }
}

/// The body of `POST /va/v1/caa`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaaRequest {
    /// What is checked (its base name for a wildcard).
    pub identifier: WireIdentifier,
    /// The order asks for `*.` of it (`issuewild` applies).
    pub wildcard: bool,
    /// The CA's issuer domain names.
    pub identities: Vec<String>,
    /// The account's URI, for `accounturi` (RFC 8657).
    pub account_uri: String,
    /// The challenge type validated, for `validationmethods` (RFC 8657).
    pub method: String,
}

impl CaaRequest {
    /// The request for [`crate::Va::check_caa`]'s arguments.
    pub fn new(
        ident: &Ident,
        wildcard: bool,
        identities: &[String],
        account_uri: &str,
        method: Challenge,
    ) -> Self {
        CaaRequest {
            identifier: WireIdentifier::of(ident),
            wildcard,
            identities: identities.to_vec(),
            account_uri: account_uri.into(),
            method: method.name().into(),
        }
    }

    /// The identifier and the method, or a `malformed` problem.
    pub fn parts(&self) -> Result<(Ident, Challenge), Problem> {
        Ok((self.identifier.to_ident()?, challenge(&self.method)?))
    }
}

fn challenge(name: &str) -> Result<Challenge, Problem> {
    Challenge::from_name(name).ok_or_else(|| {
        Problem::malformed(format!(
            "unknown challenge type \"{}\"",
            ca_acme::problem::quote(name)
        ))
    })
}

/// A problem as it travels: its type's URN and its detail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireProblem {
    /// `urn:ietf:params:acme:error:...`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    #[serde(default)]
    pub detail: String,
}

impl WireProblem {
    /// The type and detail of `problem`.
    pub fn of(problem: &Problem) -> Self {
        WireProblem {
            kind: problem.kind.urn().into(),
            detail: problem.detail.clone(),
        }
    }

    /// The problem; a type this side does not know becomes `serverInternal` naming it.
    pub fn to_problem(&self) -> Problem {
        match ProblemType::ALL.iter().find(|t| t.urn() == self.kind) {
            Some(kind) => Problem::new(*kind, self.detail.clone()),
            None => Problem::new(
                ProblemType::ServerInternal,
                format!(
                    "unknown problem type \"{}\": {}",
                    ca_acme::problem::quote(&self.kind),
                    self.detail
                ),
            ),
        }
    }
}

/// An agent's answer to a validation or a CAA check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The challenge was met (CAA: issuance is allowed).
    pub valid: bool,
    /// What was looked up and connected to (a validation that succeeded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<ValidationRecord>,
    /// Why not (`valid: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<WireProblem>,
}

impl Answer {
    /// The answer of a validation's outcome.
    pub fn of_validation(result: &Result<Vec<ValidationRecord>, Problem>) -> Self {
        match result {
            Ok(records) => Answer {
                valid: true,
                records: records.clone(),
                problem: None,
            },
            Err(problem) => Self::failed(problem),
        }
    }

    /// The answer of a CAA check's outcome.
    pub fn of_caa(result: &Result<(), Problem>) -> Self {
        match result {
            Ok(()) => Answer {
                valid: true,
                records: Vec::new(),
                problem: None,
            },
            Err(problem) => Self::failed(problem),
        }
    }

    fn failed(problem: &Problem) -> Self {
        Answer {
            valid: false,
            records: Vec::new(),
            problem: Some(WireProblem::of(problem)),
        }
    }

    /// The outcome it reports; `valid: false` without a problem is `serverInternal`.
    pub fn into_result(self) -> Result<Vec<ValidationRecord>, Problem> {
        if self.valid {
            return Ok(self.records);
        }
        Err(self.problem.map(|p| p.to_problem()).unwrap_or_else(|| {
            Problem::new(
                ProblemType::ServerInternal,
                "the agent answered invalid without a problem",
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        let ident = Ident::Ip("192.0.2.7".parse().unwrap());
        let request = ValidateRequest::new(Challenge::TlsAlpn01, &ident, "tok", "tok.thumb");
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "tls-alpn-01", "identifier": {"type": "ip", "value": "192.0.2.7"},
                "token": "tok", "keyAuthorization": "tok.thumb"})
        );
        let back: ValidateRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back.parts().unwrap(), (Challenge::TlsAlpn01, ident));

        let caa = CaaRequest::new(
            &Ident::Dns("example.com".into()),
            true,
            &["ca.example".into()],
            "https://ca.example/acme/acct/1",
            Challenge::Dns01,
        );
        let back: CaaRequest = serde_json::from_str(&serde_json::to_string(&caa).unwrap()).unwrap();
        assert_eq!(back, caa);

        let record = ValidationRecord {
            url: Some("http://example.com/x".into()),
            hostname: "example.com".into(),
            port: Some(80),
            addresses_resolved: vec!["192.0.2.1".parse().unwrap()],
            address_used: Some("192.0.2.1".parse().unwrap()),
        };
        let ok = Answer::of_validation(&Ok(vec![record.clone()]));
        let back: Answer = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
        assert_eq!(back.into_result().unwrap(), vec![record]);

        let failed = Answer::of_caa(&Err(Problem::new(ProblemType::Caa, "forbidden")));
        let back: Answer = serde_json::from_str(&serde_json::to_string(&failed).unwrap()).unwrap();
        let problem = back.into_result().unwrap_err();
        assert_eq!(
            (problem.kind, problem.detail.as_str()),
            (ProblemType::Caa, "forbidden")
        );
    }

    #[test]
    fn bad_requests_are_malformed() {
        let unknown: Result<ValidateRequest, _> = serde_json::from_str(
            r#"{"type":"http-01","identifier":{"type":"dns","value":"a.b"},"token":"t","keyAuthorization":"k","x":1}"#,
        );
        assert!(unknown.is_err(), "unknown fields are refused");
        let request = ValidateRequest {
            challenge: "tls-sni-01".into(),
            ..ValidateRequest::new(Challenge::Http01, &Ident::Dns("a.b".into()), "t", "k")
        };
        assert_eq!(request.parts().unwrap_err().kind, ProblemType::Malformed);
        let ip = WireIdentifier {
            kind: "ip".into(),
            value: "not-an-ip".into(),
        };
        assert_eq!(ip.to_ident().unwrap_err().kind, ProblemType::Malformed);
        let email = WireIdentifier {
            kind: "email".into(),
            value: "a@b".into(),
        };
        assert_eq!(email.to_ident().unwrap_err().kind, ProblemType::Malformed);
        let odd = WireProblem {
            kind: "urn:x".into(),
            detail: "d".into(),
        };
        assert_eq!(odd.to_problem().kind, ProblemType::ServerInternal);
        // A record's port is read as Boulder writes it (a string) or as a number.
        let record: ValidationRecord =
            serde_json::from_str(r#"{"hostname":"h","port":443}"#).unwrap();
        assert_eq!(record.port, Some(443));
        let record: ValidationRecord =
            serde_json::from_str(r#"{"hostname":"h","port":"80"}"#).unwrap();
        assert_eq!(record.port, Some(80));
    }
}
