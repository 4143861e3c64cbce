//! Who an EST request comes from (RFC 7030 section 3.2.3 and 3.3.2): a subscriber with an
//! enrolment's id and one-time code as HTTP Basic credentials, an RA by its bearer token or
//! mapped TLS client certificate (the API's own authentication, [`crate::limits::Identity`]),
//! or, for `simplereenroll`, the holder of a certificate this CA issued, presented as the TLS
//! client certificate ([`own_certificate`]).

use axum::http::{header, HeaderMap, StatusCode};
use ca_core::est::{parse_basic, BasicCredentials};
use ca_core::store::{CertRecord, Storage};
use ca_core::Serial;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::EstError;
use crate::auth::{Caller, Role};
use crate::limits::Identity;

/// The enroller of a `simpleenroll` or `serverkeygen` request.
#[derive(Debug)]
pub enum Enroller {
    /// A subscriber redeeming an enrolment: its id (from the Basic user name) and code.
    Subscriber {
        /// The enrolment's id.
        id: Option<[u8; 16]>,
        /// The credentials (the password is the one-time code).
        credentials: BasicCredentials,
    },
    /// An RA (role `ra`), by bearer token or mapped client certificate.
    Ra(Caller),
}

/// Finds the enroller: Basic credentials decide when present; otherwise the API's
/// identification of the request (a bearer token, else a mapped client certificate), which
/// must be an RA. No credentials at all, or credentials that do not authenticate, are 401
/// with a Basic challenge; another role is 403.
pub fn enroller(headers: &HeaderMap, identity: Option<&Identity>) -> Result<Enroller, EstError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        if let Some(credentials) = parse_basic(value.as_bytes())? {
            let id = hex::decode(&credentials.user)
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok());
            return Ok(Enroller::Subscriber { id, credentials });
        }
    }
    match identity {
        Some(Identity::Caller(caller)) if caller.role == Role::Ra => {
            Ok(Enroller::Ra(caller.clone()))
        }
        Some(Identity::Caller(caller)) => Err(EstError::new(
            StatusCode::FORBIDDEN,
            format!(
                "a caller with role {} may not enrol; it needs role ra",
                caller.role.name()
            ),
        )),
        Some(Identity::Refused(e)) if e.status == StatusCode::UNAUTHORIZED => {
            Err(EstError::unauthorized(format!(
                "{}; or send the enrolment's id and code as HTTP Basic credentials",
                e.message
            )))
        }
        Some(Identity::Refused(e)) => Err(EstError::new(e.status, e.message.clone())),
        Some(Identity::Anonymous) | None => Err(EstError::unauthorized(
            "credentials required: the enrolment's id and code as HTTP Basic credentials, or \
             an RA's bearer token or client certificate",
        )),
    }
}

/// Finds the certificate this CA issued that a TLS client certificate `der` is, for
/// `simplereenroll` (RFC 7030 section 4.2.2: the client authenticates with the certificate it
/// renews). The handshake proved that the client holds its key; here it must be, byte for
/// byte, the certificate stored under its serial, signed by this CA's key, valid from before
/// now and not revoked or on hold. Expiry is left to the renewal rules of its profile
/// (`renewal_grace_days`), which the engine applies. Every refusal is 401.
pub fn own_certificate(
    store: &dyn Storage,
    ca_certificate: &[u8],
    der: &[u8],
    now: i64,
) -> Result<CertRecord, EstError> {
    let not_ours =
        || EstError::unauthorized("the TLS client certificate was not issued by this CA");
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| not_ours())?;
    let serial = Serial::from_bytes(cert.raw_serial()).ok_or_else(not_ours)?;
    let record = store.certificate(&serial)?.ok_or_else(not_ours)?;
    if record.der != der {
        return Err(not_ours());
    }
    let (_, issuer) = X509Certificate::from_der(ca_certificate).map_err(|_| not_ours())?;
    cert.verify_signature(Some(issuer.public_key()))
        .map_err(|_| not_ours())?;
    if record.not_before > now {
        return Err(EstError::unauthorized(
            "the TLS client certificate is not valid yet",
        ));
    }
    if store.revocation(&serial)?.is_some() {
        return Err(EstError::unauthorized(
            "the TLS client certificate is revoked or on hold",
        ));
    }
    Ok(record)
}
