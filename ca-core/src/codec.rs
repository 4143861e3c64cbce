//! Stored records: a format version byte, then the record's postcard body. Every value the
//! store keeps (certificates, revocations, audit entries, tokens, enrollments) is written and
//! read through these two functions, so that a format change is a new version byte.

use serde::{Deserialize, Serialize};

use crate::error::CaError;

/// Encodes a stored value: its format version byte, then its postcard body.
pub(crate) fn encode<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, CaError> {
    let mut out = vec![version];
    postcard::to_io(value, &mut out).map_err(|e| CaError::record("encoding a record", e))?;
    Ok(out)
}

/// Decodes a stored value written by [`encode`] with format version `version`; `what` names
/// it in errors.
pub(crate) fn decode_versioned<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    version: u8,
    what: &str,
) -> Result<T, CaError> {
    match bytes.split_first() {
        Some((&v, body)) if v == version => decode(body, what),
        _ => Err(CaError::Storage(format!("{what} of an unknown format"))),
    }
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, CaError> {
    postcard::from_bytes(body).map_err(|e| CaError::record(format!("decoding a {what}"), e))
}
