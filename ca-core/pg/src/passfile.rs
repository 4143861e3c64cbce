//! libpq's password file (`PGPASSFILE`, else `~/.pgpass`; PostgreSQL documentation, section
//! 34.16 "The Password File"): lines of `hostname:port:database:username:password`, each of
//! the first four fields a literal or `*`, `\` escaping `:` and `\`. The first matching line
//! wins; libpq ignores a file that group or others may read, and so does this.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Where libpq looks: `PGPASSFILE`, else `$HOME/.pgpass`.
pub fn default_path() -> Option<PathBuf> {
    match std::env::var_os("PGPASSFILE") {
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")),
    }
}

/// The password of the first line of `text` that matches the connection.
pub fn lookup(
    text: &str,
    host: &str,
    port: u16,
    database: &str,
    user: &str,
) -> Option<Zeroizing<String>> {
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(fields)
        .find(|f| {
            [host, port.as_str(), database, user]
                .iter()
                .zip(f.iter())
                .all(|(want, have)| have.as_str() == "*" || have == want)
        })
        .map(|mut f| Zeroizing::new(std::mem::take(&mut f[4])))
}

/// The five fields of a line, unescaped; `None` for a line with fewer or more.
fn fields(line: &str) -> Option<[String; 5]> {
    let mut out: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut()?.push(c),
        }
    }
    out.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db.example:5432:ca:ca_server:first\n\
                    *:5433:*:ca_server:we\\:ird\\\\\n\
                    *:*:*:*:fallback\n\
                    short:line\n";
        let get = |h, p, d, u| lookup(text, h, p, d, u).map(|p| p.to_string());
        assert_eq!(
            get("db.example", 5432, "ca", "ca_server").as_deref(),
            Some("first")
        );
        assert_eq!(
            get("127.0.0.1", 5433, "x", "ca_server").as_deref(),
            Some("we:ird\\")
        );
        assert_eq!(
            get("127.0.0.1", 5433, "x", "other").as_deref(),
            Some("fallback")
        );
        assert_eq!(lookup("a:1:b:c\n", "a", 1, "b", "c"), None);
    }

    fn escape(field: &str) -> String {
        field.replace('\\', "\\\\").replace(':', "\\:")
    }

    proptest::proptest! {
        /// Any text is read without a panic; any five fields, escaped, read back as written.
        #[test]
        fn any_line_is_read_and_escaped_fields_round_trip(
            text in "\\PC*",
            fields in proptest::array::uniform5("[^\n\r]*"),
        ) {
            let _ = lookup(&text, "h", 5432, "d", "u");
            let line = fields.iter().map(|f| escape(f)).collect::<Vec<_>>().join(":");
            proptest::prop_assert_eq!(super::fields(&line), Some(fields.clone()));
        }
    }
}
