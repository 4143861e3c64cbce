//! Profile rules for otherName subject alternative names (RFC 5280 section 4.2.1.6): which
//! type OIDs a profile certifies, how each value is encoded, and its syntax.
//!
//! National schemes carry identity data this way: ICP-Brasil (DOC-ICP-04 section 7.1.3.2)
//! puts the holder's birth date, CPF, NIS and RG in `2.16.76.1.3.1` as one fixed-width
//! string of digits and letters. A rule describes such a value as a sequence of fixed-width
//! fields, each checked by its kind; the value never comes from a CSR, only from the RA's
//! request.

use serde::{Deserialize, Serialize};

use crate::csr::{OtherName, OtherNameEncoding};

/// One otherName type a profile certifies (`[[profiles.NAME.san.other_names]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherNameRule {
    /// The type-id, dotted (`2.16.76.1.3.1`).
    pub oid: String,
    /// How the value is encoded (`utf8`, `printable`, `ia5`, `octet-string`).
    #[serde(default)]
    pub encoding: OtherNameEncoding,
    /// The value's layout as fixed-width fields, in order; empty for free text of 1 to
    /// `max_length` characters.
    #[serde(default)]
    pub fields: Vec<OtherNameField>,
    /// The longest free-text value, when `fields` is empty.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Whether every certificate of the profile must carry this otherName.
    #[serde(default)]
    pub required: bool,
}

fn default_max_length() -> usize {
    255
}

/// A fixed-width field of an otherName value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherNameField {
    /// The field's name, for messages (`cpf`).
    pub name: String,
    /// What the field holds.
    pub kind: FieldKind,
    /// Its width in characters.
    pub length: usize,
}

/// The syntax of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldKind {
    /// ASCII digits.
    Digits,
    /// Upper-case ASCII letters and digits, right-padded with spaces.
    Alphanumeric,
    /// A date as `ddmmyyyy` (8 digits), a real calendar date.
    DateDdmmyyyy,
    /// A Brazilian CPF: 11 digits whose two check digits hold (mod 11), or all zeros where
    /// the scheme allows the field to be absent.
    Cpf,
}

impl OtherNameRule {
    /// Whether this rule is for `name`'s type-id.
    pub fn matches(&self, name: &OtherName) -> bool {
        name.type_id.to_string() == self.oid
    }

    /// Why `value` does not follow this rule, in a message's words; `None` when it does.
    pub fn problem(&self, value: &str) -> Option<String> {
        if !value.is_ascii() && self.encoding != OtherNameEncoding::Utf8 {
            return Some("not ASCII".into());
        }
        if value.chars().any(|c| c.is_control()) {
            return Some("a control character".into());
        }
        if self.encoding == OtherNameEncoding::Printable
            && !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c))
        {
            return Some("a character outside PrintableString".into());
        }
        if self.fields.is_empty() {
            let n = value.chars().count();
            return (n == 0 || n > self.max_length)
                .then(|| format!("must have 1 to {} characters", self.max_length));
        }
        let width: usize = self.fields.iter().map(|f| f.length).sum();
        if value.len() != width {
            return Some(format!(
                "must have exactly {width} characters ({})",
                self.layout()
            ));
        }
        let mut rest = value;
        for field in &self.fields {
            let (part, tail) = rest.split_at(field.length);
            rest = tail;
            if let Some(why) = field.kind.problem(part) {
                return Some(format!("field {} {why}", field.name));
            }
        }
        None
    }

    /// The fields as a message shows them: `birth_date 8, cpf 11`.
    fn layout(&self) -> String {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|f| format!("{} {}", f.name, f.length))
            .collect();
        parts.join(", ")
    }
}

impl FieldKind {
    fn problem(self, part: &str) -> Option<&'static str> {
        let digits = part.bytes().all(|b| b.is_ascii_digit());
        match self {
            FieldKind::Digits => (!digits).then_some("must be digits"),
            FieldKind::Alphanumeric => (!part
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '))
            .then_some("must be upper-case letters, digits and spaces"),
            FieldKind::DateDdmmyyyy if !digits => Some("must be a date as ddmmyyyy"),
            FieldKind::DateDdmmyyyy => (!is_date_ddmmyyyy(part)).then_some("is not a real date"),
            FieldKind::Cpf if !digits => Some("must be 11 digits"),
            FieldKind::Cpf => (!is_cpf(part)).then_some("has wrong check digits"),
        }
    }
}

fn is_date_ddmmyyyy(s: &str) -> bool {
    let number = |range: std::ops::Range<usize>| s.get(range).and_then(|p| p.parse::<u16>().ok());
    let (Some(day), Some(month), Some(year)) = (number(0..2), number(2..4), number(4..8)) else {
        return false;
    };
    u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .and_then(|m| {
            time::Date::from_calendar_date(i32::from(year), m, u8::try_from(day).ok()?).ok()
        })
        .is_some()
}

/// A CPF's check digits (Receita Federal): each of the last two digits is 11 minus the
/// weighted sum of those before it mod 11 (0 when that is 10 or 11). All zeros stands for
/// "not given" in ICP-Brasil's otherName layouts.
fn is_cpf(s: &str) -> bool {
    let d: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
    if d.len() != 11 {
        return false;
    }
    if d.iter().all(|x| *x == 0) {
        return true;
    }
    let check = |n: usize| {
        let sum: u32 = d[..n]
            .iter()
            .zip((2..=n as u32 + 1).rev())
            .map(|(x, w)| x * w)
            .sum();
        match 11 - sum % 11 {
            10 | 11 => 0,
            v => v,
        }
    };
    check(9) == d[9] && check(10) == d[10]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icp_pf() -> OtherNameRule {
        let field = |name: &str, kind, length| OtherNameField {
            name: name.into(),
            kind,
            length,
        };
        OtherNameRule {
            oid: "2.16.76.1.3.1".into(),
            encoding: OtherNameEncoding::OctetString,
            fields: vec![
                field("birth_date", FieldKind::DateDdmmyyyy, 8),
                field("cpf", FieldKind::Cpf, 11),
                field("nis", FieldKind::Digits, 11),
                field("rg", FieldKind::Alphanumeric, 15),
                field("rg_issuer", FieldKind::Alphanumeric, 6),
            ],
            max_length: 255,
            required: true,
        }
    }

    #[test]
    fn cpf_check_digits() {
        for good in ["52998224725", "11144477735", "00000000000"] {
            assert!(is_cpf(good), "{good}");
        }
        for bad in ["52998224724", "11144477730", "1114447773"] {
            assert!(!is_cpf(bad), "{bad}");
        }
    }

    #[test]
    fn fixed_width_fields_are_checked_one_by_one() {
        let rule = icp_pf();
        let good = [
            "15041980",
            "52998224725",
            "00000000000",
            "000001234567890",
            "SSPSP ",
        ]
        .concat();
        assert_eq!(good.len(), 51);
        assert_eq!(rule.problem(&good), None);
        let short = &good[..50];
        assert!(rule.problem(short).unwrap().contains("exactly 51"));
        let bad_date = good.replacen("1504", "3102", 1);
        assert!(rule.problem(&bad_date).unwrap().contains("birth_date"));
        let bad_cpf = good.replacen("52998224725", "52998224724", 1);
        assert!(rule.problem(&bad_cpf).unwrap().contains("cpf"));
        let lower = good.replacen("SSPSP", "sspsp", 1);
        assert!(rule.problem(&lower).unwrap().contains("rg_issuer"));
    }
}
