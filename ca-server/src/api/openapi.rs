//! `GET /openapi.json`: the OpenAPI 3.1 description of every route (`docs/openapi.yaml`,
//! converted to JSON by `build.rs` when the server is built, so the YAML is the single source).
//!
//! The tests of this module keep the description in step with the router (every route is
//! described, every described route exists), with the error codes the code can answer, and
//! with `docs/API.md`, the normative contract (every `METHOD /path` and every code of its error
//! table appears in both).

use axum::http::header;
use axum::response::IntoResponse;

/// The OpenAPI description as compact JSON, converted from `docs/openapi.yaml` at build time.
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// `GET /openapi.json` (public): the OpenAPI 3.1 description of this API.
pub async fn get() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

#[cfg(test)]
#[allow(clippy::panic)] // a test fails by panicking with what it found
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use super::OPENAPI_JSON;

    /// HTTP methods as OpenAPI names them (lower case) in a path item.
    const METHODS: &[&str] = &[
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// Operations that docs/openapi.yaml and docs/API.md describe ahead of a branch that adds
    /// them to the router (none now). Each entry must be absent from the router: once it is
    /// routed, `routes_match_description` fails until the entry is removed here.
    const AWAITING_MERGE: &[(&str, &str)] = &[];

    fn spec() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("the embedded description is JSON")
    }

    fn repo_file(relative: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
    }

    fn read(relative: &str) -> String {
        let path = repo_file(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// Every `(method, path)` of the description.
    fn spec_operations(spec: &Value) -> BTreeSet<(String, String)> {
        let paths = spec["paths"].as_object().expect("paths is an object");
        let mut ops = BTreeSet::new();
        for (path, item) in paths {
            let item = item.as_object().expect("a path item is an object");
            for method in item.keys().filter(|k| METHODS.contains(&k.as_str())) {
                ops.insert((method.clone(), path.clone()));
            }
        }
        ops
    }

    /// The text of the call that starts at `text` (just after its opening parenthesis), up to
    /// its matching closing parenthesis.
    fn call_arguments(text: &str) -> &str {
        let mut depth = 0usize;
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => return &text[..i],
                ')' => depth -= 1,
                _ => {}
            }
        }
        panic!(
            "unbalanced parentheses after {:?}",
            &text[..text.len().min(80)]
        );
    }

    /// The methods of an axum method-router expression such as `post(a::b).get(c::d)`: the
    /// names of its calls at the outermost level, in lower case.
    fn methods_of(expr: &str, path: &str) -> Vec<String> {
        let mut methods = Vec::new();
        let mut rest = expr.trim().trim_end_matches(',').trim_end();
        while !rest.is_empty() {
            let rest_of_dot = rest.strip_prefix('.').unwrap_or(rest).trim_start();
            let open = rest_of_dot
                .find('(')
                .unwrap_or_else(|| panic!("route {path}: cannot read {rest_of_dot:?}"));
            let name = rest_of_dot[..open].trim();
            let args = call_arguments(&rest_of_dot[open + 1..]);
            match name {
                "layer" | "route_layer" | "with_state" => {}
                m if METHODS.contains(&m) => methods.push(m.to_string()),
                other => panic!(
                    "route {path}: `{other}(...)` is not a method this test knows; teach \
                     routes_in_source about it"
                ),
            }
            rest = rest_of_dot[open + 1 + args.len() + 1..].trim_start();
        }
        methods
    }

    /// The source files of this crate, but this one (whose tests name the patterns they look
    /// for), with their text.
    fn crate_sources() -> Vec<(PathBuf, String)> {
        let this = repo_file("src/api/openapi.rs");
        let mut files = Vec::new();
        let mut dirs = vec![repo_file("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("reading src") {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && path != this {
                    let text = std::fs::read_to_string(&path).expect("reading a source file");
                    files.push((path, text));
                }
            }
        }
        files
    }

    /// Every `(method, path)` that the router's source declares with axum's `route` method
    /// (a path literal, then a method router such as `get(a).post(b)`), paths in OpenAPI form
    /// (`{*rest}` → `{rest}`), from every source file of the crate.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let needle = ".route(";
        let mut routes = BTreeSet::new();
        for (file, src) in crate_sources() {
            for other in [".nest(", ".route_service(", ".nest_service("] {
                assert!(
                    !src.contains(other),
                    "{} uses `{other}`: teach routes_in_source about it",
                    file.display()
                );
            }
            for (at, _) in src.match_indices(needle) {
                let args = call_arguments(&src[at + needle.len()..]);
                let args = args.trim_start();
                let literal = args.strip_prefix('"').unwrap_or_else(|| {
                    panic!(
                        "{}: a route whose path is not a literal: {args}",
                        file.display()
                    )
                });
                let end = literal.find('"').expect("closing quote");
                let path = &literal[..end];
                let expr = literal[end + 1..].trim_start();
                let expr = expr.strip_prefix(',').expect("a comma after the path");
                let path = path.replace("{*", "{");
                for method in methods_of(expr, &path) {
                    assert!(
                        routes.insert((method.clone(), path.clone())),
                        "{method} {path} is routed twice"
                    );
                }
            }
        }
        routes
    }

    /// The routes of ACME, EST and CMP follow their RFCs (RFC 8555, RFC 7030, RFC 9483 over
    /// RFC 9811); docs/API.md's *ACME*, *EST* and *CMP* sections describe them, not the
    /// OpenAPI description of the JSON API.
    fn is_protocol_front(path: &str) -> bool {
        path.starts_with("/acme/")
            || path.starts_with("/.well-known/est/")
            || path.starts_with("/.well-known/cmp")
    }

    #[test]
    fn routes_match_description() {
        let mut routed = routes_in_source();
        routed.retain(|(_, path)| !is_protocol_front(path));
        assert!(
            routed.contains(&("get".into(), "/healthz".into()))
                && routed.contains(&("post".into(), "/v1/certificates".into())),
            "the route extraction found too little: {routed:?}"
        );
        let described = spec_operations(&spec());
        let awaiting: BTreeSet<(String, String)> = AWAITING_MERGE
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        for op in &awaiting {
            assert!(
                !routed.contains(op),
                "{} {} is routed now: remove it from AWAITING_MERGE",
                op.0,
                op.1
            );
        }
        let undocumented: Vec<_> = routed.difference(&described).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from docs/openapi.yaml: {undocumented:?}"
        );
        let unrouted: Vec<_> = described
            .difference(&routed)
            .filter(|op| !awaiting.contains(op))
            .collect();
        assert!(
            unrouted.is_empty(),
            "docs/openapi.yaml describes operations the router does not have: {unrouted:?}"
        );
    }

    /// `/a/{x}/b` → `/a/{}/b`: docs name path parameters freely.
    fn normalized(path: &str) -> String {
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_param = true;
                    out.push_str("{}");
                }
                '}' => in_param = false,
                c if !in_param => out.push(c),
                _ => {}
            }
        }
        out
    }

    /// Every `` `METHOD /path `` that docs/API.md names (the path ends at a backtick, `?`, or
    /// a space), normalized.
    fn api_md_operations(text: &str) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for method in METHODS {
            let needle = format!("`{} /", method.to_ascii_uppercase());
            for (at, _) in text.match_indices(&needle) {
                let rest = &text[at + needle.len() - 1..];
                let end = rest
                    .find(|c: char| c == '`' || c == '?' || c.is_whitespace())
                    .unwrap_or(rest.len());
                ops.insert((method.to_string(), normalized(&rest[..end])));
            }
        }
        ops
    }

    #[test]
    fn api_md_names_every_described_operation_and_no_other() {
        let described: BTreeSet<_> = spec_operations(&spec())
            .into_iter()
            .map(|(m, p)| (m, normalized(&p)))
            .collect();
        let mut named = api_md_operations(&read("../docs/API.md"));
        named.retain(|(_, path)| !is_protocol_front(path));
        let missing_in_md: Vec<_> = described.difference(&named).collect();
        assert!(
            missing_in_md.is_empty(),
            "operations of docs/openapi.yaml that docs/API.md does not name: {missing_in_md:?}"
        );
        let missing_in_spec: Vec<_> = named.difference(&described).collect();
        assert!(
            missing_in_spec.is_empty(),
            "operations docs/API.md names that docs/openapi.yaml does not describe: \
             {missing_in_spec:?}"
        );
    }

    fn spec_error_codes(spec: &Value) -> BTreeSet<String> {
        spec["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode has an enum")
            .iter()
            .map(|c| c.as_str().expect("codes are strings").to_string())
            .collect()
    }

    /// The backticked words of a Markdown table cell, outside parentheses (which qualify a
    /// code, as in `` `san_not_allowed` (public suffix, `dns_suffixes`) ``).
    fn backticked(cell: &str) -> Vec<String> {
        let mut depth = 0usize;
        let outside: String = cell
            .chars()
            .filter(|&c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    _ => return depth == 0,
                }
                false
            })
            .collect();
        outside
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// The codes of docs/API.md's error table (`| code | status | when |`): exact codes, and
    /// prefixes of rows such as `enrollment_*`.
    fn api_md_error_codes(text: &str) -> (BTreeSet<String>, Vec<String>) {
        let mut lines = text
            .lines()
            .skip_while(|l| !l.starts_with("| code | status |"));
        assert!(
            lines.next().is_some(),
            "docs/API.md has no `| code | status | when |` table"
        );
        let (mut codes, mut prefixes) = (BTreeSet::new(), Vec::new());
        for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
            let cell = line.split('|').nth(1).unwrap_or_default();
            for word in backticked(cell) {
                match word.strip_suffix('*') {
                    Some(prefix) => prefixes.push(prefix.to_string()),
                    None => {
                        codes.insert(word);
                    }
                }
            }
        }
        (codes, prefixes)
    }

    #[test]
    fn api_md_error_table_matches_error_codes() {
        let text = read("../docs/API.md");
        let described = spec_error_codes(&spec());
        let (codes, prefixes) = api_md_error_codes(&text);
        let unknown: Vec<_> = codes.difference(&described).collect();
        assert!(
            unknown.is_empty(),
            "codes in docs/API.md's error table missing from ErrorCode in docs/openapi.yaml: \
             {unknown:?}"
        );
        for code in &described {
            if codes.contains(code) {
                continue;
            }
            assert!(
                prefixes.iter().any(|p| code.starts_with(p.as_str()))
                    && text.contains(&format!("`{code}`")),
                "ErrorCode {code} of docs/openapi.yaml is not in docs/API.md's error table"
            );
        }
        for prefix in &prefixes {
            assert!(
                described.iter().any(|c| c.starts_with(prefix.as_str())),
                "docs/API.md's `{prefix}*` row matches no ErrorCode"
            );
        }
    }

    /// The quoted snake_case word right after `pattern` and a comma (`StatusCode::X, "code"`),
    /// at every occurrence.
    fn literals_after(src: &str, pattern: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (at, _) in src.match_indices(pattern) {
            let rest = &src[at + pattern.len()..];
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
            let Some(rest) = rest.trim_start().strip_prefix(',') else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if rest[word.len()..].starts_with('"') && !word.is_empty() {
                found.push(word);
            }
        }
        found
    }

    /// Every error code the code base can answer: `CaError::code` in ca-core, each
    /// `ApiError::new(StatusCode::X, "code", ...)` in this crate, and raw JSON answers.
    fn codes_in_source() -> BTreeSet<String> {
        let mut codes = BTreeSet::new();
        let core = read("../ca-core/x509/src/error.rs");
        let code_fn = core
            .split("pub fn code(&self)")
            .nth(1)
            .and_then(|s| s.split("pub fn class(&self)").next())
            .expect("CaError::code in ca-core/x509/src/error.rs");
        for line in code_fn.lines() {
            if let Some((_, code)) = line.split_once("=> \"") {
                codes.insert(code.split('"').next().unwrap_or_default().to_string());
            }
        }
        let raw = r#"{"error":{"code":""#;
        for (_, src) in crate_sources() {
            codes.extend(literals_after(&src, "StatusCode::"));
            for (at, _) in src.match_indices(raw) {
                let rest = &src[at + raw.len()..];
                codes.insert(rest.split('"').next().unwrap_or_default().to_string());
            }
        }
        codes.retain(|c| !c.is_empty());
        codes
    }

    #[test]
    fn every_code_the_server_answers_is_described() {
        let codes = codes_in_source();
        assert!(
            codes.contains("csr_malformed")
                && codes.contains("rate_limited")
                && codes.contains("overloaded"),
            "the code extraction found too little: {codes:?}"
        );
        let described = spec_error_codes(&spec());
        let missing: Vec<_> = codes.difference(&described).collect();
        assert!(
            missing.is_empty(),
            "error codes the server answers that ErrorCode in docs/openapi.yaml lacks: {missing:?}"
        );
    }

    /// Resolves a local `$ref` (`#/components/...`).
    fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("local references only");
                let target = spec
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling reference {reference}"));
                resolve(spec, target)
            }
            None => value,
        }
    }

    /// Every `$ref` anywhere in the document.
    fn references(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        out.push(v.as_str().expect("a $ref is a string").to_string());
                    } else {
                        references(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, out)),
            _ => {}
        }
    }

    #[test]
    fn description_is_complete_and_consistent() {
        let spec = spec();
        assert!(spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")));
        let mut refs = Vec::new();
        references(&spec, &mut refs);
        for reference in &refs {
            let pointer = reference.strip_prefix('#').expect("local references only");
            assert!(
                spec.pointer(pointer).is_some(),
                "dangling reference {reference}"
            );
        }
        let bearer = serde_json::json!([{"bearerAuth": []}]);
        assert_eq!(
            spec["security"], bearer,
            "operations need a token unless they say otherwise"
        );
        let mut operation_ids = BTreeSet::new();
        for (method, path) in spec_operations(&spec) {
            let what = format!("{method} {path}");
            let op = &spec["paths"][&path][&method];
            assert!(
                operation_ids.insert(
                    op["operationId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{what} has no operationId"))
                        .to_string()
                ),
                "{what}: operationId repeated"
            );
            let responses: BTreeMap<String, Value> =
                serde_json::from_value(op["responses"].clone())
                    .unwrap_or_else(|_| panic!("{what} has no responses"));
            let public = op
                .get("security")
                .is_some_and(|s| s == &serde_json::json!([]));
            let mut needed = vec!["408", "413", "429"];
            if !public {
                needed.extend(["401", "403"]);
                let description = op["description"].as_str().unwrap_or_default();
                assert!(
                    description.contains("Role: `") || description.contains("Roles: `"),
                    "{what}: an authenticated operation names its roles in its description"
                );
            }
            for status in needed {
                assert!(
                    responses.contains_key(status),
                    "{what} does not document {status}"
                );
            }
            for (status, response) in &responses {
                assert!(
                    status.len() == 3 && status.chars().all(|c| c.is_ascii_digit()),
                    "{what}: response {status} is not a status code"
                );
                assert_ne!(status.as_str(), "500", "{what}: no operation answers 500");
                let response = resolve(&spec, response);
                assert!(
                    response["description"].is_string(),
                    "{what} {status}: no description"
                );
                if status == "204" {
                    continue;
                }
                let content = response["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{what} {status}: no content"));
                for (media, body) in content {
                    assert!(
                        body.get("schema").is_some(),
                        "{what} {status} {media}: no schema"
                    );
                }
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = resolve(&spec, &content["application/json"]["schema"]);
                    let code = resolve(&spec, &schema["properties"]["error"]["properties"]["code"]);
                    assert!(
                        code["enum"].is_array(),
                        "{what} {status}: an error answer is {{\"error\": {{\"code\", \"message\"}}}} with an enumerated code"
                    );
                }
            }
            if let Some(params) = op["parameters"].as_array() {
                for p in params {
                    let p = resolve(&spec, p);
                    if p["in"] == "path" {
                        assert!(
                            path.contains(&format!(
                                "{{{}}}",
                                p["name"].as_str().unwrap_or_default()
                            )),
                            "{what}: path parameter {} is not in the path",
                            p["name"]
                        );
                    }
                }
            }
        }
    }
}
