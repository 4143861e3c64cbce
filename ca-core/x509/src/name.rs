//! Distinguished names as RFC 4514 strings.
//!
//! RFC 4514 section 2.1 writes the RDN sequence last element first: the DER subject
//! `C=BR, O=Acme, CN=Maria` reads `CN=Maria,O=Acme,C=BR`. The types here hold attributes in
//! DER order; the string functions reverse.

use crate::csr::{AttributeKind, SubjectAttribute};
use crate::error::CaError;

/// Formats attributes (in DER order) as an RFC 4514 string.
pub fn to_rfc4514(subject: &[SubjectAttribute]) -> String {
    let mut out = String::new();
    for (i, attr) in subject.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(attr.kind.short_name());
        out.push('=');
        escape_value(&attr.value, &mut out);
    }
    out
}

fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
}

/// Parses an RFC 4514 string such as `CN=Maria Silva,O=Acme,C=BR` into attributes in DER
/// order. Supports the attribute short names of [`AttributeKind`], backslash escapes of
/// special characters and of hex pairs; not multi-valued RDNs (`+`).
pub fn parse_rfc4514(s: &str) -> Result<Vec<SubjectAttribute>, CaError> {
    let bad = |why: &str| CaError::InvalidRequest(format!("invalid subject {s:?}: {why}"));
    let mut attrs = Vec::new();
    if s.trim().is_empty() {
        return Ok(attrs);
    }
    let mut chars = s.chars().peekable();
    loop {
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        let key = key.trim();
        let kind = AttributeKind::from_short_name(key)
            .ok_or_else(|| bad(&format!("unknown attribute type {key:?}")))?;
        let mut bytes = Vec::new();
        let mut end = false;
        loop {
            let Some(c) = chars.next() else {
                end = true;
                break;
            };
            match c {
                ',' => break,
                '+' => return Err(bad("multi-valued RDNs are not supported")),
                '\\' => {
                    let n = chars.next().ok_or_else(|| bad("dangling escape"))?;
                    if n.is_ascii_hexdigit() {
                        let m = chars.next().ok_or_else(|| bad("short hex escape"))?;
                        let pair: String = [n, m].iter().collect();
                        bytes.push(
                            u8::from_str_radix(&pair, 16).map_err(|_| bad("bad hex escape"))?,
                        );
                    } else {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(n.encode_utf8(&mut buf).as_bytes());
                    }
                }
                c => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let value = String::from_utf8(bytes).map_err(|_| bad("value is not UTF-8"))?;
        attrs.push(SubjectAttribute { kind, value });
        if end {
            break;
        }
    }
    attrs.reverse();
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_escapes() {
        for s in ["CN=Maria Silva,O=Acme\\, Inc.,C=BR", "CN=\\#1", "CN=a\\+b"] {
            let attrs = parse_rfc4514(s).unwrap();
            assert_eq!(to_rfc4514(&attrs), s);
        }
        let attrs = parse_rfc4514("CN=Maria,C=BR").unwrap();
        assert_eq!(attrs[0].kind, AttributeKind::Country);
        assert_eq!(attrs[1].value, "Maria");
        assert_eq!(parse_rfc4514("CN=caf\\c3\\a9").unwrap()[0].value, "café");
    }

    #[test]
    fn rejects_what_it_cannot_carry() {
        assert!(parse_rfc4514("XX=1").is_err());
        assert!(parse_rfc4514("CN=a+O=b").is_err());
        assert!(parse_rfc4514("CN=a\\").is_err());
    }
}
