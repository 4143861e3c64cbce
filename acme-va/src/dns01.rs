//! `dns-01` (RFC 8555 section 8.4): a TXT record at `_acme-challenge.{name}` holds
//! base64url(SHA-256(key authorization)), without padding. Any one of the records matching is
//! enough; a CNAME at that name is followed as the resolver follows it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ca_acme::problem::quote;
use ca_acme::{Problem, ProblemType};
use tokio::time::Instant;

use crate::dns::Answer;
use crate::{key_authorization_digest, Ident, Inner, ValidationRecord};

pub(crate) async fn validate(
    inner: &Inner,
    deadline: Instant,
    ident: &Ident,
    key_authorization: &str,
) -> Result<Vec<ValidationRecord>, Problem> {
    let Ident::Dns(name) = ident else {
        return Err(Problem::malformed(format!(
            "dns-01 cannot validate the IP address {ident} (RFC 8738 section 7)"
        )));
    };
    let expected = URL_SAFE_NO_PAD.encode(key_authorization_digest(key_authorization));
    let challenge_name = format!("_acme-challenge.{name}");
    let answer = tokio::time::timeout_at(deadline, inner.dns.txt(&challenge_name))
        .await
        .map_err(|_| {
            Problem::new(
                ProblemType::Dns,
                format!("DNS problem: query timed out looking up TXT for {challenge_name}"),
            )
        })??;
    let records = match answer {
        Answer::Records(records) => records,
        Answer::Empty => {
            return Err(Problem::new(
                ProblemType::Unauthorized,
                format!("No TXT record found at {challenge_name}"),
            ))
        }
        Answer::NxDomain => {
            return Err(Problem::new(
                ProblemType::Dns,
                format!(
                    "DNS problem: NXDOMAIN looking up TXT for {challenge_name} - check that a \
                     DNS record exists for this domain"
                ),
            ))
        }
    };
    if records.contains(&expected) {
        return Ok(vec![ValidationRecord {
            url: None,
            hostname: name.clone(),
            port: None,
            addresses_resolved: Vec::new(),
            address_used: None,
        }]);
    }
    let found = records
        .first()
        .map(|value| quote(value))
        .unwrap_or_default();
    let more = match records.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Err(Problem::new(
        ProblemType::Unauthorized,
        format!(
            "Incorrect TXT record \"{found}\"{more} found at {challenge_name}, expected \
             \"{expected}\""
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_txt_value_is_the_unpadded_base64url_sha256_of_the_key_authorization() {
        // RFC 8555 section 8.4's example is not computed; this is SHA-256("abc").
        assert_eq!(
            URL_SAFE_NO_PAD.encode(key_authorization_digest("abc")),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }
}
