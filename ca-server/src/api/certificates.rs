//! Issuance and reading of certificates (API contract: Issuance, Reading).

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ca_core::audit::Protocol;
use ca_core::csr::San;
use ca_core::engine::{Identity, IssueRequest, Issued, NewKey, RenewRequest, Requester};
use ca_core::revocation::{Revocation, Status};
use ca_core::store::{CertRecord, Storage};
use ca_core::{inspect, CaError, Serial};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{body_or_error, parse_json, ApiError, AppState, Authenticated};
use crate::auth::{owns, Caller, Role};

/// The issuance body of the contract.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    pub(super) csr: String,
    pub(super) profile: String,
    pub(super) validity_days: Option<u32>,
    pub(super) request_id: Option<String>,
    #[serde(default)]
    pub(super) identity: IdentityBody,
}

/// Identity data the RA verified and asserts over the CSR's names (API.md, "Identity data"):
/// subject attributes as an RFC 4514 string, and SANs in the API's form (an otherName as
/// `otherName:OID:value`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    #[serde(default)]
    pub(super) subject: String,
    #[serde(default)]
    pub(super) sans: Vec<String>,
}

impl IdentityBody {
    /// The engine's form; a subject that is not RFC 4514 is `invalid_request`.
    pub(super) fn parse(&self) -> Result<Identity, ApiError> {
        if self.sans.len() > 100 {
            return Err(ApiError::invalid_request(
                "identity.sans holds at most 100 names",
            ));
        }
        Ok(Identity {
            subject: ca_core::name::parse_rfc4514(&self.subject)?,
            sans: self.sans.iter().map(|s| San::from_value(s)).collect(),
        })
    }
}

/// The batch body: each request stays raw JSON until its own task decodes it, so that one bad
/// request answers its own error and the rest are decoded once, straight into [`IssueBody`].
#[derive(Debug)]
pub(super) struct BatchBody {
    pub(super) requests: Vec<Box<RawValue>>,
}

impl BatchBody {
    /// Parses `{"requests": [...]}`, counting the requests as they are read: the request after
    /// the `max`-th stops the parse with 413 `batch_too_large`, before the rest of the body is
    /// looked at. Other faults are 400 `invalid_request`, as for every JSON body.
    pub(super) fn parse(body: &[u8], max: usize) -> Result<BatchBody, ApiError> {
        if body.trim_ascii_start().starts_with(b"[") {
            return Err(ApiError::invalid_request(
                "the batch body must be an object {\"requests\": [...]}, not a bare array",
            ));
        }
        let over = Cell::new(false);
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed = BatchSeed { max, over: &over }
            .deserialize(&mut de)
            .and_then(|b| de.end().map(|()| b));
        match parsed {
            Ok(b) => Ok(b),
            Err(_) if over.get() => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!("the batch holds more than {max} requests; the maximum is {max}"),
            )),
            Err(e) => Err(ApiError::invalid_request(format!("invalid JSON body: {e}"))),
        }
    }
}

/// The body's only field, `requests`.
const BATCH_FIELDS: &[&str] = &["requests"];

/// Deserializes a [`BatchBody`] with at most `max` requests; sets `over` when there are more.
struct BatchSeed<'a> {
    max: usize,
    over: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = BatchBody;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<BatchBody, D::Error> {
        d.deserialize_struct("BatchBody", BATCH_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = BatchBody;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a requests array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BatchBody, A::Error> {
        let mut requests = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "requests" {
                return Err(de::Error::unknown_field(&key, BATCH_FIELDS));
            }
            if requests.is_some() {
                return Err(de::Error::duplicate_field("requests"));
            }
            requests = Some(map.next_value_seed(RequestsSeed {
                max: self.max,
                over: self.over,
            })?);
        }
        let requests = requests.ok_or_else(|| de::Error::missing_field("requests"))?;
        Ok(BatchBody { requests })
    }
}

/// The `requests` array, counted as it is read.
struct RequestsSeed<'a> {
    max: usize,
    over: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for RequestsSeed<'_> {
    type Value = Vec<Box<RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RequestsSeed<'_> {
    type Value = Vec<Box<RawValue>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an array of at most {} requests", self.max)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(item) = seq.next_element::<Box<RawValue>>()? {
            if items.len() == self.max {
                self.over.set(true);
                return Err(de::Error::custom(format_args!(
                    "more than {} requests",
                    self.max
                )));
            }
            items.push(item);
        }
        Ok(items)
    }
}

/// Query parameters of the DER issuance form (`Content-Type: application/pkcs10`), which
/// carry what the JSON body's other fields carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DerIssueQuery {
    pub(super) profile: String,
    pub(super) validity_days: Option<u32>,
    pub(super) request_id: Option<String>,
}

/// The media type of a DER PKCS#10 request body (RFC 5967).
const PKCS10: &str = "application/pkcs10";
/// The media type of a DER certificate (RFC 2585).
const PKIX_CERT: &str = "application/pkix-cert";

/// `POST /v1/certificates` (ra). A JSON body answers JSON; a DER CSR with `Content-Type:
/// application/pkcs10` (the profile and options in the query string) answers the DER
/// certificate as `application/pkix-cert`, with its serial in `Location`: no JSON, PEM or
/// base64 on either side (docs/API.md).
pub async fn issue(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Authenticated(caller): Authenticated,
    query: Result<Query<DerIssueQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body_or_error(body)?;
    if is_pkcs10(&headers) {
        let Query(query) = query
            .map_err(|e| ApiError::invalid_request(format!("invalid query: {}", e.body_text())))?;
        let request = request(
            body.to_vec(),
            query.profile,
            query.validity_days,
            query.request_id,
            &caller,
        )?;
        let issued = issue_one(&state, request, &caller, started).await?;
        let location = format!("/v1/certificates/{}", issued.record.serial);
        let headers = [
            (header::CONTENT_TYPE, PKIX_CERT.to_string()),
            (header::LOCATION, location),
        ];
        return Ok((status_of(&issued), headers, issued.record.der).into_response());
    }
    let body: IssueBody = parse_json(&body)?;
    let issued = issue_one(&state, body.into_request(&caller)?, &caller, started).await?;
    Ok((status_of(&issued), Json(issued_view(&state, &issued)?)).into_response())
}

/// True when the body is a DER PKCS#10 request rather than the contract's JSON.
fn is_pkcs10(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(PKCS10))
}

/// 201 for a new certificate, 200 for one answered again for a repeated `request_id`.
fn status_of(issued: &Issued) -> StatusCode {
    if issued.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    }
}

/// Issues the certificate of one request (single or batch, which arrived at `started`) and
/// logs it: a `ca-admin` caller from a CA profile only, anyone else from any other profile
/// (the engine refuses the rest: 403 `forbidden`, `profile_requires_ca_admin`).
async fn issue_one(
    state: &AppState,
    request: IssueRequest,
    caller: &Caller,
    started: Instant,
) -> Result<Issued, ApiError> {
    let issued = match caller.role {
        Role::CaAdmin => state.engine.issue_ca(request).await?,
        Role::Ra | Role::Auditor | Role::Operator => state.engine.issue(request).await?,
    };
    state.log.issued(
        &issued.record,
        &caller.name,
        issued.replayed,
        started.elapsed(),
    );
    Ok(issued)
}

/// `POST /v1/certificates/batch` (ra): one result per request, in order; one bad request
/// never fails the others.
pub async fn issue_batch(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = BatchBody::parse(&body_or_error(body)?, state.max_batch)?;
    state
        .engine
        .metrics()
        .request_batch
        .observe(body.requests.len() as f64);
    // The items run concurrently within this request's task: each is queued for the workers
    // on the first poll, and the answers come back in request order.
    let items = body.requests.iter().map(|item| async {
        batch_item(&state, &caller, item, started)
            .await
            .or_else(|e| {
                let route = "/v1/certificates/batch";
                state
                    .log
                    .refused(e.code, e.status.as_u16(), &caller.name, route, "");
                serde_json::value::to_raw_value(&e.body()).map_err(json_failed)
            })
    });
    let results = futures_util::future::join_all(items)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(Json(BatchResults { results }).into_response())
}

/// One item of a batch, issued and serialised; its error becomes the item's answer.
async fn batch_item(
    state: &AppState,
    caller: &Caller,
    item: &RawValue,
    started: Instant,
) -> Result<Box<RawValue>, ApiError> {
    let body: IssueBody = serde_json::from_str(item.get())
        .map_err(|e| ApiError::invalid_request(format!("invalid request: {e}")))?;
    let issued = issue_one(state, body.into_request(caller)?, caller, started).await?;
    serde_json::value::to_raw_value(&issued_view(state, &issued)?).map_err(json_failed)
}

/// The batch answer: each result already serialised.
#[derive(Serialize)]
struct BatchResults {
    results: Vec<Box<RawValue>>,
}

fn json_failed(e: serde_json::Error) -> ApiError {
    CaError::Storage(format!("encoding an answer: {e}")).into()
}

/// The renewal body of the contract.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    pub(super) csr: Option<String>,
    pub(super) validity_days: Option<u32>,
    pub(super) request_id: Option<String>,
}

/// `POST /v1/certificates/{serial}/renew` (ra): a new certificate for the same subject, SANs
/// and profile; the same key without a CSR, a new one with.
pub async fn renew(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    serial: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let old = find(&state, &path_serial(serial), &caller)?;
    let body = body_or_error(body)?;
    let body: RenewBody = if body.iter().all(u8::is_ascii_whitespace) {
        RenewBody::default()
    } else {
        parse_json(&body)?
    };
    check_request_id(body.request_id.as_deref())?;
    let serial = old.serial;
    let issued = state
        .engine
        .renew(RenewRequest {
            serial,
            key: NewKey::from_csr(body.csr.map(String::into_bytes)),
            validity_days: body.validity_days,
            request_id: body.request_id,
            requester: requester(&caller),
        })
        .await?;
    state.log.issued(
        &issued.record,
        &caller.name,
        issued.replayed,
        started.elapsed(),
    );
    Ok((status_of(&issued), Json(issued_view(&state, &issued)?)).into_response())
}

/// `GET /v1/certificates/{serial}` (auditor; ra for the certificates its token requested).
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    serial: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &path_serial(serial), &caller)?;
    Ok(Json(certificate_json(&state, &record)?))
}

/// The serial of the path, or "" (then refused as `invalid_serial`).
pub(super) fn path_serial(serial: Result<Path<String>, PathRejection>) -> String {
    serial.map(|Path(s)| s).unwrap_or_default()
}

/// The certificate named by a path serial, as the caller may see it: an auditor sees every
/// certificate; anyone else (an RA, a ca-admin) only what its own token requested, and to it
/// others' certificates do not exist.
pub(super) fn find(
    state: &AppState,
    serial_hex: &str,
    caller: &Caller,
) -> Result<CertRecord, ApiError> {
    if serial_hex.is_empty()
        || serial_hex.len() > 40
        || !serial_hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_serial",
            "a serial is 1 to 40 hexadecimal digits",
        ));
    }
    let not_found = || ApiError::from(CaError::SerialNotFound(serial_hex.to_ascii_lowercase()));
    let serial = Serial::from_hex(serial_hex).ok_or_else(not_found)?;
    let record = state.store().certificate(&serial)?.ok_or_else(not_found)?;
    if caller.role != Role::Auditor && !owns(state.store(), caller, &record.requester)? {
        return Err(not_found());
    }
    Ok(record)
}

pub(super) fn check_request_id(id: Option<&str>) -> Result<(), ApiError> {
    match id {
        Some(id) if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) => Err(
            ApiError::invalid_request("request_id must have 1 to 128 printable characters"),
        ),
        _ => Ok(()),
    }
}

pub(super) fn requester(caller: &Caller) -> Requester {
    Requester {
        name: caller.name.clone(),
        token_hash: caller.token_hash,
        protocol: Protocol::Api,
    }
}

impl IssueBody {
    fn into_request(self, caller: &Caller) -> Result<IssueRequest, ApiError> {
        let mut request = request(
            self.csr.into_bytes(),
            self.profile,
            self.validity_days,
            self.request_id,
            caller,
        )?;
        request.identity = self.identity.parse()?;
        Ok(request)
    }
}

/// The engine's request for a CSR and the issuance options (JSON body or DER form's query).
fn request(
    csr: Vec<u8>,
    profile: String,
    validity_days: Option<u32>,
    request_id: Option<String>,
    caller: &Caller,
) -> Result<IssueRequest, ApiError> {
    check_request_id(request_id.as_deref())?;
    Ok(IssueRequest {
        csr,
        profile,
        identity: Identity::default(),
        validity_days,
        request_id,
        requester: requester(caller),
    })
}

fn pem_of(der: &[u8]) -> String {
    ca_core::armor::to_pem("CERTIFICATE", der)
}

pub(super) fn rfc3339(unix: i64) -> Result<String, ApiError> {
    Ok(ca_core::audit::rfc3339(unix)?)
}

/// The answer to an issuance (API contract: Issuance): the certificate, its chain and
/// validity. Serialised straight from borrowed parts: the chain is not copied per answer.
#[derive(Debug, Serialize)]
pub(super) struct IssuedView<'a> {
    serial: String,
    certificate: String,
    chain: &'a [String],
    not_before: String,
    not_after: String,
    profile: &'a str,
    status: &'static str,
    renewed_from: Option<String>,
}

/// The answer to an issuance, for `issued`.
pub(super) fn issued_view<'a>(
    state: &'a AppState,
    issued: &'a Issued,
) -> Result<IssuedView<'a>, ApiError> {
    let r = &issued.record;
    // A fresh certificate cannot be revoked yet; a replayed one may have been since.
    let revocation = if issued.replayed {
        state.store().revocation(&r.serial)?
    } else {
        None
    };
    let status = Status::of(r.not_after, revocation.as_ref(), OffsetDateTime::now_utc());
    Ok(IssuedView {
        serial: r.serial.to_hex(),
        certificate: pem_of(&r.der),
        chain: &state.chain_pem,
        not_before: rfc3339(r.not_before)?,
        not_after: rfc3339(r.not_after)?,
        profile: &r.profile,
        status: status.name(),
        renewed_from: r.renewed_from.map(hex::encode),
    })
}

/// The full view of a stored certificate, with its derived status.
pub(super) fn certificate_json(state: &AppState, r: &CertRecord) -> Result<Value, ApiError> {
    let revocation = state.store().revocation(&r.serial)?;
    certificate_view(state.store(), r, revocation.as_ref())
}

/// The contract's view of a stored certificate (`GET /v1/certificates/{serial}`, the list's
/// items, and `ca-server export`), given its current revocation.
pub fn certificate_view(
    store: &dyn Storage,
    r: &CertRecord,
    revocation: Option<&Revocation>,
) -> Result<Value, ApiError> {
    let view = inspect::view(&r.der)?;
    let serial = r.serial;
    let status = Status::of(r.not_after, revocation, OffsetDateTime::now_utc());
    let revocation = match revocation {
        Some(rev) => json!({
            "reason": rev.reason.name(),
            "revoked_at": rfc3339(rev.revoked_at)?,
            "invalidity_date": rev.invalidity_date.map(rfc3339).transpose()?,
        }),
        None => Value::Null,
    };
    Ok(json!({
        "serial": r.serial.to_hex(),
        "certificate": pem_of(&r.der),
        "status": status.name(),
        "revocation": revocation,
        "renewed_from": r.renewed_from.map(hex::encode),
        "renewed_by": store
            .renewed_by(&serial)?
            .iter()
            .map(Serial::to_hex)
            .collect::<Vec<_>>(),
        "profile": r.profile,
        "subject": view.subject,
        "sans": view.sans.iter().map(|s| s.value()).collect::<Vec<_>>(),
        "requester": r.requester,
        "issued_at": rfc3339(r.issued_at)?,
        "not_before": rfc3339(r.not_before)?,
        "not_after": rfc3339(r.not_after)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_bodies_are_counted_while_parsed() {
        let ok = BatchBody::parse(br#"{"requests":[{"csr":"x"},1,"y"]}"#, 3).unwrap();
        assert_eq!(ok.requests.len(), 3);
        assert_eq!(ok.requests[0].get(), r#"{"csr":"x"}"#);
        // The fourth item stops the parse: what follows is never looked at.
        let over = BatchBody::parse(br#"{"requests":[1,2,3,4,not json"#, 3).unwrap_err();
        assert_eq!(
            (over.status, over.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large")
        );
        for bad in [
            &br#"{"requests":[1],"extra":1}"#[..],
            br#"{"requests":[1],"requests":[2]}"#,
            br#"{}"#,
            br#"{"requests":{}}"#,
            br#"{"requests":[1]} trailing"#,
            br#"[1]"#,
        ] {
            let e = BatchBody::parse(bad, 3).unwrap_err();
            assert_eq!(
                e.code,
                "invalid_request",
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(BatchBody::parse(br#"{"requests":[]}"#, 3)
            .unwrap()
            .requests
            .is_empty());
    }
}
