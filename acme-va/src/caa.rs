//! CAA (RFC 8659) with the `accounturi` and `validationmethods` parameters (RFC 8657).
//!
//! The relevant record set is the first non-empty CAA set found from the name up to its
//! top-level label (the root is not asked); NXDOMAIN on the way is an empty set, any other
//! failure stops the check (fail closed). In that set:
//!
//! - a record with the issuer critical flag and a tag the VA does not know forbids issuance
//!   (RFC 8659 section 4.1); known: `issue`, `issuewild`, `iodef`, `issuemail` (RFC 9495),
//!   `issuevmc`;
//! - for a wildcard, the `issuewild` records when there are any, else the `issue` records
//!   (RFC 8659 section 4.3); otherwise the `issue` records;
//! - no such record: issuance is allowed; otherwise one of them must name one of the CA's
//!   issuer domain names (case-insensitively) and have acceptable parameters: `accounturi`,
//!   when present, equal to the account's URI, `validationmethods`, when present, listing the
//!   challenge type (each at most once, else the record authorizes nothing); other parameters
//!   are ignored. A malformed value authorizes nothing.

use std::future::Future;

use ca_acme::problem::quote;
use ca_acme::{Problem, ProblemType};

use crate::dns::{Dns, RawCaa};
use crate::Challenge;

/// Tags with a meaning to this VA, or known to be harmless to it (RFC 8659 section 4.1 lets
/// no unknown critical tag pass).
const KNOWN_TAGS: &[&str] = &["issue", "issuewild", "iodef", "issuemail", "issuevmc"];

/// Who asks and how: what records must permit.
pub(crate) struct Request<'a> {
    pub(crate) wildcard: bool,
    pub(crate) identities: &'a [String],
    pub(crate) account_uri: &'a str,
    pub(crate) method: Challenge,
}

/// What a relevant record set says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Permit,
    Forbid(String),
}

pub(crate) async fn check(dns: &Dns, name: &str, request: &Request<'_>) -> Result<(), Problem> {
    let found = relevant_set(name, |at: String| async move { dns.caa(&at).await }).await?;
    let Some((at, records)) = found else {
        return Ok(());
    };
    match decide(&records, request) {
        Decision::Permit => Ok(()),
        Decision::Forbid(why) => {
            let listed: Vec<String> = records
                .iter()
                .map(|r| {
                    format!(
                        "{} {} \"{}\"",
                        if r.critical { 128 } else { 0 },
                        quote(&r.tag),
                        quote(&String::from_utf8_lossy(&r.value))
                    )
                })
                .collect();
            Err(Problem::new(
                ProblemType::Caa,
                format!(
                    "CAA record for {at} prevents issuance for {name}: {why} (records: {})",
                    listed.join(", ")
                ),
            ))
        }
    }
}

/// The first non-empty CAA set from `name` up (RFC 8659 section 3), with the name it is at.
pub(crate) async fn relevant_set<F, Fut>(
    name: &str,
    mut lookup: F,
) -> Result<Option<(String, Vec<RawCaa>)>, Problem>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Vec<RawCaa>, Problem>>,
{
    let mut at = name.trim_end_matches('.');
    loop {
        let records = lookup(at.to_string()).await?;
        if !records.is_empty() {
            return Ok(Some((at.to_string(), records)));
        }
        match at.split_once('.') {
            Some((_, parent)) if !parent.is_empty() => at = parent,
            _ => return Ok(None),
        }
    }
}

/// Whether the relevant set `records` lets the CA issue for `request`.
pub(crate) fn decide(records: &[RawCaa], request: &Request<'_>) -> Decision {
    if let Some(unknown) = records
        .iter()
        .find(|r| r.critical && !KNOWN_TAGS.iter().any(|t| r.tag.eq_ignore_ascii_case(t)))
    {
        return Decision::Forbid(format!(
            "the critical property \"{}\" is not understood",
            quote(&unknown.tag)
        ));
    }
    let tagged = |tag: &str| -> Vec<&RawCaa> {
        records
            .iter()
            .filter(|r| r.tag.eq_ignore_ascii_case(tag))
            .collect()
    };
    let issuewild = tagged("issuewild");
    let (tag, relevant) = if request.wildcard && !issuewild.is_empty() {
        ("issuewild", issuewild)
    } else {
        ("issue", tagged("issue"))
    };
    if relevant.is_empty() {
        return Decision::Permit;
    }
    if relevant.iter().any(|r| authorizes(r, request)) {
        return Decision::Permit;
    }
    Decision::Forbid(format!(
        "no \"{tag}\" record authorizes {} for account {} with {}",
        request.identities.join(" or "),
        request.account_uri,
        request.method
    ))
}

/// Whether one `issue`/`issuewild` record authorizes the request.
fn authorizes(record: &RawCaa, request: &Request<'_>) -> bool {
    let Some((issuer, parameters)) = parse_issue_value(&record.value) else {
        return false;
    };
    if issuer.is_empty()
        || !request
            .identities
            .iter()
            .any(|id| id.trim_end_matches('.').eq_ignore_ascii_case(issuer))
    {
        return false;
    }
    let single = |name: &str| -> Result<Option<&str>, ()> {
        let mut found = parameters
            .iter()
            .filter(|(tag, _)| tag.eq_ignore_ascii_case(name));
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some((_, value)), None) => Ok(Some(value)),
            (Some(_), Some(_)) => Err(()),
        }
    };
    match single("accounturi") {
        Ok(None) => {}
        Ok(Some(uri)) if uri == request.account_uri => {}
        _ => return false,
    }
    match single("validationmethods") {
        Ok(None) => true,
        Ok(Some(methods)) => {
            let methods: Vec<&str> = methods.split(',').collect();
            methods
                .iter()
                .all(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                && methods.contains(&request.method.name())
        }
        Err(()) => false,
    }
}

/// An `issue`/`issuewild` value (RFC 8659 section 4.2): the issuer domain name (possibly
/// empty) and the parameters' tags and values; `None` when it does not follow the grammar.
fn parse_issue_value(value: &[u8]) -> Option<(&str, Vec<(&str, &str)>)> {
    let value = std::str::from_utf8(value).ok()?;
    let wsp: &[char] = &[' ', '\t'];
    let (issuer, rest) = match value.split_once(';') {
        Some((issuer, rest)) => (issuer.trim_matches(wsp), Some(rest)),
        None => (value.trim_matches(wsp), None),
    };
    if !issuer.is_empty() && !is_issuer_domain_name(issuer) {
        return None;
    }
    let mut parameters = Vec::new();
    if let Some(rest) = rest {
        let parts: Vec<&str> = rest.split(';').collect();
        if !(parts.len() == 1 && parts[0].trim_matches(wsp).is_empty()) {
            for part in parts {
                let (tag, value) = part.split_once('=')?;
                let (tag, value) = (tag.trim_matches(wsp), value.trim_matches(wsp));
                if !is_label(tag)
                    || !value
                        .bytes()
                        .all(|b| matches!(b, 0x21..=0x3a | 0x3c..=0x7e))
                {
                    return None;
                }
                parameters.push((tag, value));
            }
        }
    }
    Some((issuer, parameters))
}

/// `label *("." label)` of RFC 8659 section 4.2.
fn is_issuer_domain_name(name: &str) -> bool {
    name.split('.').all(is_label)
}

/// `(ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))`.
fn is_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn rec(critical: bool, tag: &str, value: &str) -> RawCaa {
        RawCaa {
            critical,
            tag: tag.into(),
            value: value.as_bytes().to_vec(),
        }
    }

    fn issue(value: &str) -> RawCaa {
        rec(false, "issue", value)
    }

    const ACCOUNT: &str = "https://ca.example/acme/acct/1";

    fn ask(records: &[RawCaa], wildcard: bool, method: Challenge) -> Decision {
        let identities = vec!["ca.example".to_string(), "other-name.example".to_string()];
        decide(
            records,
            &Request {
                wildcard,
                identities: &identities,
                account_uri: ACCOUNT,
                method,
            },
        )
    }

    fn permits(records: &[RawCaa]) -> bool {
        ask(records, false, Challenge::Http01) == Decision::Permit
    }

    #[test]
    fn no_records_or_no_issue_records_permit() {
        assert!(permits(&[]));
        assert!(permits(&[rec(false, "iodef", "mailto:x@example.com")]));
        // issuewild does not apply to a name that is not a wildcard.
        assert!(permits(&[rec(false, "issuewild", ";")]));
    }

    #[test]
    fn issue_names_the_ca() {
        assert!(permits(&[issue("ca.example")]));
        assert!(permits(&[issue("  CA.Example ")]));
        assert!(permits(&[issue("other-name.example; foo=bar")]));
        assert!(permits(&[issue("ca.example;")]));
        assert!(permits(&[issue("elsewhere.example"), issue("ca.example")]));
        assert!(permits(&[rec(false, "ISSUE", "ca.example")]));
        assert!(!permits(&[issue("elsewhere.example")]));
        assert!(!permits(&[issue(";")]));
        assert!(!permits(&[issue("")]));
        assert!(!permits(&[issue("ca.example.evil")]));
        // Malformed values authorize nothing.
        assert!(!permits(&[issue("ca.example; accounturi")]));
        assert!(!permits(&[issue("ca.example; a=b; ; c=d")]));
        assert!(!permits(&[issue("-ca.example")]));
        let forbid = ask(&[issue(";")], false, Challenge::Dns01);
        assert!(
            matches!(forbid, Decision::Forbid(ref why) if why.contains("\"issue\"")),
            "{forbid:?}"
        );
    }

    #[test]
    fn issuewild_replaces_issue_for_wildcards() {
        let only_issue = [issue("ca.example")];
        assert_eq!(ask(&only_issue, true, Challenge::Dns01), Decision::Permit);
        let wild_forbids = [issue("ca.example"), rec(false, "issuewild", ";")];
        assert!(matches!(
            ask(&wild_forbids, true, Challenge::Dns01),
            Decision::Forbid(_)
        ));
        assert_eq!(
            ask(&wild_forbids, false, Challenge::Dns01),
            Decision::Permit
        );
        let wild_permits = [issue(";"), rec(false, "issuewild", "ca.example")];
        assert_eq!(ask(&wild_permits, true, Challenge::Dns01), Decision::Permit);
        assert!(matches!(
            ask(&wild_permits, false, Challenge::Dns01),
            Decision::Forbid(_)
        ));
    }

    #[test]
    fn accounturi_must_be_the_account() {
        assert!(permits(&[issue(&format!(
            "ca.example; accounturi={ACCOUNT}"
        ))]));
        assert!(!permits(&[issue(
            "ca.example; accounturi=https://ca.example/acme/acct/2"
        )]));
        assert!(!permits(&[issue(&format!(
            "ca.example; accounturi={ACCOUNT}; accounturi={ACCOUNT}"
        ))]));
        // Another record may still authorize.
        assert!(permits(&[
            issue("ca.example; accounturi=https://ca.example/acme/acct/2"),
            issue(&format!("ca.example; AccountURI={ACCOUNT}")),
        ]));
    }

    #[test]
    fn validationmethods_must_list_the_method() {
        let record = [issue("ca.example; validationmethods=dns-01,tls-alpn-01")];
        assert_eq!(ask(&record, false, Challenge::Dns01), Decision::Permit);
        assert_eq!(ask(&record, false, Challenge::TlsAlpn01), Decision::Permit);
        assert!(matches!(
            ask(&record, false, Challenge::Http01),
            Decision::Forbid(_)
        ));
        assert!(!permits(&[issue(
            "ca.example; validationmethods=http-01,,dns-01"
        )]));
        assert!(!permits(&[issue(
            "ca.example; validationmethods=http-01; validationmethods=http-01"
        )]));
        assert!(permits(&[issue(&format!(
            "ca.example; validationmethods=http-01; accounturi={ACCOUNT}"
        ))]));
    }

    #[test]
    fn an_unknown_critical_tag_forbids() {
        assert!(permits(&[issue("ca.example"), rec(false, "tbs", "x")]));
        let forbid = ask(
            &[issue("ca.example"), rec(true, "tbs", "x")],
            false,
            Challenge::Http01,
        );
        assert!(
            matches!(forbid, Decision::Forbid(ref why) if why.contains("tbs")),
            "{forbid:?}"
        );
        assert!(permits(&[
            rec(true, "issue", "ca.example"),
            rec(true, "iodef", "mailto:a@b")
        ]));
    }

    async fn climb(tree: &HashMap<&str, Vec<RawCaa>>, name: &str) -> Option<String> {
        let asked = std::sync::Mutex::new(Vec::new());
        let found = relevant_set(name, |at: String| {
            asked.lock().unwrap().push(at.clone());
            let records = tree.get(at.as_str()).cloned().unwrap_or_default();
            async move { Ok(records) }
        })
        .await
        .unwrap();
        found.map(|(at, _)| at)
    }

    #[tokio::test]
    async fn the_tree_is_climbed_to_the_first_set() {
        let mut tree = HashMap::new();
        tree.insert("example.com", vec![issue("elsewhere.example")]);
        tree.insert("child.example.com", vec![issue("ca.example")]);
        assert_eq!(
            climb(&tree, "a.b.example.com").await.as_deref(),
            Some("example.com")
        );
        assert_eq!(
            climb(&tree, "x.child.example.com").await.as_deref(),
            Some("child.example.com")
        );
        assert_eq!(climb(&tree, "example.org").await, None);
        assert_eq!(climb(&tree, "com").await, None);
    }

    #[tokio::test]
    async fn a_failed_lookup_on_the_way_fails_the_check() {
        let found = relevant_set("a.example.com", |at: String| async move {
            if at == "example.com" {
                Err(Problem::new(ProblemType::Dns, "SERVFAIL"))
            } else {
                Ok(Vec::new())
            }
        })
        .await;
        assert_eq!(found.unwrap_err().kind, ProblemType::Dns);
    }
}
