//! base64url without padding (RFC 7515 section 2), the only encoding of JWS and JWK members.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::problem::Problem;

/// Decodes `value`, the member `name` of a JWS or JWK: the URL-safe alphabet only, no
/// padding, no whitespace, no stray bits in the last character (so that each byte string
/// has one encoding). Anything else is `malformed`.
pub(crate) fn decode(name: &str, value: &str) -> Result<Vec<u8>, Problem> {
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| Problem::malformed(format!("{name} is not unpadded base64url")))
}

/// Encodes `bytes` as base64url without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unpadded_url_safe_base64_decodes() {
        assert_eq!(decode("x", "_-8").unwrap(), vec![0xff, 0xef]);
        assert_eq!(decode("x", "").unwrap(), Vec::<u8>::new());
        for bad in ["_-8=", "/+8", "AQ==", "AQ=", " AQ", "AQ\n", "AR"] {
            assert!(decode("x", bad).is_err(), "{bad:?}");
        }
    }
}
