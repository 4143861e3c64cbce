//! Secrets in the server's output: the forms in which a token, code, password, key or CSR
//! could show up in a log ([`Secret`]), the search for them ([`leaked_secrets`]), and the
//! private numbers of a key file as openssl prints them.

use std::path::Path;

use crate::command::openssl;
use crate::formats::pem_blocks;

/// A secret and the forms in which it could show up in the server's output.
#[derive(Clone, Debug)]
pub struct Secret {
    /// What it is, for messages (never the secret itself).
    pub name: String,
    /// (how it is written, the string to look for).
    pub forms: Vec<(String, String)>,
}

/// The shortest form [`leaked_secrets`] looks for: shorter ones could occur by chance.
const MIN_SECRET_FORM: usize = 12;

impl Secret {
    fn new(name: &str, forms: Vec<(String, String)>) -> Secret {
        let mut unique: Vec<(String, String)> = Vec::new();
        for (how, form) in forms {
            assert!(
                form.chars().filter(|c| !c.is_whitespace()).count() >= MIN_SECRET_FORM,
                "{name}: the form {how} is too short to be looked for"
            );
            if !unique.iter().any(|(_, f)| *f == form) {
                unique.push((how, form));
            }
        }
        Secret {
            name: name.to_string(),
            forms: unique,
        }
    }

    /// A secret that is text (a token, a password, an enrollment code): as it is, in lower and
    /// upper case, and without dashes and spaces (as a person may type a code).
    pub fn text(name: &str, text: &str) -> Secret {
        let bare: String = text
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .collect();
        let forms = [
            ("verbatim", text.to_string()),
            ("lower case", text.to_lowercase()),
            ("upper case", text.to_uppercase()),
            ("without dashes or spaces", bare.clone()),
            ("lower case without dashes or spaces", bare.to_lowercase()),
            ("upper case without dashes or spaces", bare.to_uppercase()),
        ];
        Secret::new(
            name,
            forms
                .into_iter()
                .map(|(how, form)| (how.to_string(), form))
                .collect(),
        )
    }

    /// Secret bytes (a private scalar, a DER structure): hex in lower and upper case, with and
    /// without colons (as `openssl -text` prints them), and base64, standard and URL-safe, at
    /// each of the three byte offsets the bytes may have inside a longer base64 text (a PEM
    /// or PKCS#8 document): the complete 4-character groups of the encoding of `bytes[k..]`
    /// for k = 0, 1, 2, one of which occurs in any base64 text of data containing `bytes`.
    pub fn bytes(name: &str, bytes: &[u8]) -> Secret {
        use base64::Engine as _;
        let hex_lower = hex::encode(bytes);
        let colons = |hex: &str| {
            hex.as_bytes()
                .chunks(2)
                .map(|pair| String::from_utf8_lossy(pair).to_string())
                .collect::<Vec<_>>()
                .join(":")
        };
        let mut forms = vec![
            ("hex".to_string(), hex_lower.clone()),
            ("upper-case hex".to_string(), hex_lower.to_uppercase()),
            ("hex with colons".to_string(), colons(&hex_lower)),
            (
                "upper-case hex with colons".to_string(),
                colons(&hex_lower.to_uppercase()),
            ),
        ];
        for k in 0..3 {
            let tail = &bytes[k.min(bytes.len())..];
            let whole = &tail[..tail.len() / 3 * 3];
            forms.push((
                format!("base64 from byte {k}"),
                base64::engine::general_purpose::STANDARD.encode(whole),
            ));
            forms.push((
                format!("URL-safe base64 from byte {k}"),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(whole),
            ));
        }
        Secret::new(name, forms)
    }

    /// A PEM document (a CSR): its DER as [`Secret::bytes`], and each line of its body of at
    /// least 32 characters on its own (a body written with escaped line breaks, as in JSON).
    pub fn pem(name: &str, pem_text: &str) -> Secret {
        let (_, der) = pem_blocks(pem_text)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{name}: no PEM block"));
        let mut secret = Secret::bytes(name, &der);
        for (i, line) in pem_text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----") && l.len() >= 32)
            .enumerate()
        {
            secret
                .forms
                .push((format!("PEM body line {}", i + 1), line.to_string()));
        }
        secret
    }
}

/// The secrets `output` (a server's output, [`Server::log`](crate::server::Server::log))
/// holds, as "NAME as HOW" (never the secret itself). Looks through the output as it is and,
/// so that a secret wrapped over lines (PEM, `openssl -text`) is found too, through each of
/// its two streams with the harness's `[stdout] ` and `[stderr] ` line prefixes and all
/// whitespace removed.
pub fn leaked_secrets(output: &str, secrets: &[Secret]) -> Vec<String> {
    let joined: Vec<String> = ["[stdout] ", "[stderr] "]
        .iter()
        .map(|prefix| {
            let mut stream: String = output
                .lines()
                .filter_map(|l| l.strip_prefix(prefix))
                .collect();
            if !output.contains(prefix) {
                stream = output.to_string();
            }
            stream
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
        })
        .collect();
    let mut found = Vec::new();
    for secret in secrets {
        for (how, form) in &secret.forms {
            let bare: String = form.chars().filter(|c| !c.is_whitespace()).collect();
            if output.contains(form.as_str()) || joined.iter().any(|j| j.contains(&bare)) {
                found.push(format!("{} as {how}", secret.name));
            }
        }
    }
    found
}

/// The private numbers of a private key file, as `openssl pkey -text -noout` prints them:
/// `priv` (EC, Ed25519, X25519), or `privateExponent`, `prime1`, `prime2`, `exponent1`,
/// `exponent2` and `coefficient` (RSA); each as (name, big-endian bytes without the sign
/// byte openssl puts before a high bit).
pub fn private_numbers(key_file: &Path) -> Vec<(String, Vec<u8>)> {
    const PRIVATE: [&str; 7] = [
        "priv",
        "privateExponent",
        "prime1",
        "prime2",
        "exponent1",
        "exponent2",
        "coefficient",
    ];
    let text = openssl(&[
        "pkey",
        "-in",
        key_file.to_str().expect("UTF-8 path"),
        "-text",
        "-noout",
    ]);
    let mut numbers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some((_, hex)) = numbers.last_mut() {
                hex.extend(line.chars().filter(char::is_ascii_hexdigit));
            }
        } else if let Some(label) = line.trim_end().strip_suffix(':') {
            numbers.push((label.to_string(), String::new()));
        } else {
            // A label with its value on the same line (`publicExponent: 65537 (0x10001)`).
            numbers.push((String::new(), String::new()));
        }
    }
    let found: Vec<(String, Vec<u8>)> = numbers
        .into_iter()
        .filter(|(label, hex)| PRIVATE.contains(&label.as_str()) && !hex.is_empty())
        .map(|(label, hex)| {
            let mut bytes =
                hex::decode(&hex).unwrap_or_else(|e| panic!("{label}: not hex ({e}) in:\n{text}"));
            if bytes.len() > 1 && bytes[0] == 0 && bytes[1] >= 0x80 {
                bytes.remove(0);
            }
            (label, bytes)
        })
        .collect();
    assert!(
        !found.is_empty(),
        "no private number in `openssl pkey -text` of {}:\n{text}",
        key_file.display()
    );
    found
}
