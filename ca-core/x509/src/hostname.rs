//! Host and domain name syntax (RFC 1034 section 3.5, RFC 1123 section 2.1): what a DNS SAN
//! (RFC 5280 section 4.2.1.6) and a DNS name constraint must look like, with the reason a
//! name is refused, in the words an error message gives it.

/// Whether `name` is a syntactically valid host name (RFC 1034 section 3.5, RFC 1123
/// section 2.1): at least two labels of letters, digits and inner hyphens, each 1 to 63
/// characters, 253 in all.
pub fn is_valid_hostname(name: &str) -> bool {
    hostname_problem(name).is_none()
}

/// Why `name` is not a preferred-syntax host name (RFC 1123 section 2.1, RFC 5280 section
/// 4.2.1.6), in the words a message gives it; `None` when it is one.
pub fn hostname_problem(name: &str) -> Option<&'static str> {
    if !name.is_empty() && name.len() <= 253 && !name.contains('.') {
        return Some("a single label; give a fully qualified name");
    }
    ldh_problem(name)
}

/// Why `name` is not a domain name of LDH labels (RFC 1034 section 3.5): letters, digits and
/// inner hyphens, 1 to 63 characters each, 253 in all (one label is enough); `None` when it
/// is one.
pub fn ldh_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.len() > 253 {
        return Some("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("an empty label");
        }
        if label.len() > 63 {
            return Some("a label longer than 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a label that starts or ends with a hyphen");
        }
        if label.contains('_') {
            return Some("underscore");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Some("a character other than letters, digits and hyphens");
        }
    }
    None
}
