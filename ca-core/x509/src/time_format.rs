//! Times as the API writes them.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::CaError;

/// An RFC 3339 UTC time at second precision, as the API writes times.
pub fn rfc3339(unix: i64) -> Result<String, CaError> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| CaError::Storage(format!("time {unix} is out of range")))
}
