//! The whole API under an outside fuzzer. The live server serves its OpenAPI description at
//! `GET /openapi.json` (docs/openapi.yaml); schemathesis (PyPI, pinned in scripts/setup.sh)
//! generates valid and invalid requests for every operation from it, with a token of each
//! role in turn, and checks every answer: no 5xx but a 503 with a documented code, every
//! status documented for its operation, every body of the documented media type and matching
//! its schema (so every error is `{"error": {"code", "message"}}` with a documented code).
//! Bounded in time: `SCHEMATHESIS_SECS` seconds per role (default 40). docs/fuzzing.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::prelude::*;
use serde_json::{json, Value};

/// Operations that docs/openapi.yaml describes ahead of a branch that adds them to the router
/// (none now). Each must be unrouted here; once it is routed the test fails until the entry is
/// removed (as in ca-server/src/api/openapi.rs).
const AWAITING_MERGE: &[(&str, &str)] = &[];

/// Seconds of schemathesis per role unless `SCHEMATHESIS_SECS` says otherwise.
const DEFAULT_SECS_PER_ROLE: u64 = 40;

/// The schemathesis settings of every run (tests/schemathesis.toml): 503 is the one 5xx
/// status `not_a_server_error` lets through; its body must still match the description.
fn config_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml")
}

/// Serializers of the API's DER request bodies (tests/schemathesis_hooks.py).
fn hooks_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis_hooks.py")
}

/// The schemathesis command of scripts/setup.sh: `$SCHEMATHESIS_VENV/bin/schemathesis`, by
/// default in the venv beside pkilint's (`$PKILINT_VENV-schemathesis`, so `.venv-schemathesis`
/// at the workspace root).
fn schemathesis_bin() -> PathBuf {
    let venv = std::env::var("SCHEMATHESIS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let pkilint = std::env::var("PKILINT_VENV")
                .unwrap_or_else(|_| format!("{}/../.venv", env!("CARGO_MANIFEST_DIR")));
            PathBuf::from(format!("{pkilint}-schemathesis"))
        });
    let bin = venv.join("bin").join("schemathesis");
    assert!(
        bin.is_file(),
        "schemathesis is missing ({} not found). Run ./test at the workspace root, which installs \
         it (scripts/setup.sh --with-pkilint), or set SCHEMATHESIS_VENV.",
        bin.display()
    );
    bin
}

/// Every `(method, path)` of the description.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

/// A path of the description with each `{parameter}` replaced by `00`.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("00");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// True when the server has no route for the request: the fallback's 404 `not_found` ("no
/// such endpoint") or 405 `method_not_allowed`.
fn unrouted(r: &Resp) -> bool {
    (r.status == 404
        && r.json["error"]["code"] == "not_found"
        && r.json["error"]["message"] == "no such endpoint")
        || r.status == 405
}

fn post_json(server: &Server, path: &str, token: &str, body: &Value, status: u16) -> Value {
    let r = server.post(path, token, body);
    assert_eq!(r.status, status, "POST {path}: {r}");
    r.json
}

/// Real objects for the examples phase: a certificate (the example serial), a revoked one with
/// an invalidity date, a renewed pair and a pending enrollment, all requested by `ra`.
fn seed(server: &Server, ra: &str) -> Seeded {
    let issue = |cn: &str| {
        let csr = make_csr("ec-p256", &format!("/CN={cn}"), &[&format!("DNS:{cn}")]);
        post_json(
            server,
            "/v1/certificates",
            ra,
            &json!({"csr": csr.pem, "profile": "tls-server", "validity_days": 30}),
            201,
        )["serial"]
            .as_str()
            .expect("serial")
            .to_string()
    };
    let example = issue("fuzz-example.example.com");
    let revoked = issue("fuzz-revoked.example.com");
    post_json(
        server,
        &format!("/v1/certificates/{revoked}/revoke"),
        ra,
        // Not keyCompromise, which would block the key of every CSR the examples send.
        &json!({"reason": "superseded", "invalidity_date": "2020-01-01T00:00:00Z"}),
        200,
    );
    let held = issue("fuzz-held.example.com");
    post_json(
        server,
        &format!("/v1/certificates/{held}/revoke"),
        ra,
        &json!({"reason": "certificateHold"}),
        200,
    );
    let renewed = issue("fuzz-renewed.example.com");
    post_json(
        server,
        &format!("/v1/certificates/{renewed}/renew"),
        ra,
        &json!({}),
        201,
    );
    let enrollment = post_json(
        server,
        "/v1/enrollments",
        ra,
        &json!({"profile": "personal", "subject": "CN=Fuzz Subscriber,SN=Subscriber,GN=Fuzz",
                "sans": ["fuzz@example.com"], "expires_in_hours": 1, "max_attempts": 100}),
        201,
    );
    let field = |name: &str| enrollment[name].as_str().expect(name).to_string();
    Seeded {
        serial: example,
        enrollment: field("id"),
        code: field("code"),
    }
}

/// What [`seed`] made that the examples name.
struct Seeded {
    serial: String,
    enrollment: String,
    code: String,
}

/// The served description with examples of real objects added (the example serial, the
/// enrollment and its code, a valid CSR for issuance), so that the examples phase reaches real
/// certificates and enrollments and their answers are checked against the schemas.
fn with_examples(mut spec: Value, seeded: &Seeded) -> Value {
    let csr = make_csr(
        "ec-p256",
        "/CN=fuzz-issue.example.com",
        &["DNS:fuzz-issue.example.com"],
    );
    let subscriber = make_csr(
        "ec-p256",
        "/CN=Fuzz Subscriber",
        &["email:fuzz@example.com"],
    );
    let params = &mut spec["components"]["parameters"];
    params["Serial"]["example"] = json!(seeded.serial);
    params["EnrollmentId"]["example"] = json!(seeded.enrollment);
    let schemas = &mut spec["components"]["schemas"];
    schemas["IssueRequest"]["examples"] =
        json!([{"csr": csr.pem, "profile": "tls-server", "validity_days": 7}]);
    schemas["RenewRequest"]["examples"] = json!([{"validity_days": 7}]);
    schemas["RevokeRequest"]["examples"] = json!([{"reason": "certificateHold"}]);
    schemas["RedeemRequest"]["examples"] = json!([{"code": seeded.code, "csr": subscriber.pem}]);
    spec
}

/// Runs schemathesis against the server with `token` for `secs` seconds; returns whether it
/// passed and its output.
fn schemathesis(
    server: &Server,
    spec_file: &Path,
    token: &str,
    secs: u64,
    exclude: &[String],
) -> (bool, String) {
    let mut cmd = Command::new(schemathesis_bin());
    cmd.arg("--config-file")
        .arg(config_file())
        .arg("--no-color")
        .arg("run")
        .arg(spec_file)
        .args(["--url", &server.base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-time", &secs.to_string()])
        .args(["--max-examples", "25"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "30"])
        .args(["--generation-database", "none"])
        .args(["--max-failures", "20"]);
    for id in exclude {
        cmd.args(["--exclude-operation-id", id]);
    }
    // Reports and caches, if any, stay in the scratch directory.
    cmd.current_dir(spec_file.parent().expect("scratch dir"))
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", hooks_file());
    // Its own --max-time bounds the fuzzing; the deadline bounds the rest.
    let out = output_within(&mut cmd, Duration::from_secs(secs + 600));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The description is public JSON (OpenAPI 3.1), and every operation it describes is routed
/// (but the ones awaiting another branch's merge, which must not be). Returns the description
/// and the operationIds to leave out of the fuzzing.
fn every_described_operation_is_routed(server: &Server) -> (Value, Vec<String>) {
    // The description is public JSON.
    let r = server.get("/openapi.json", None);
    assert_eq!(r.status, 200, "GET /openapi.json: {r}");
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    let spec = r.json.clone();
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "not OpenAPI 3.1: {}",
        r.text.chars().take(200).collect::<String>()
    );

    // Every described operation is routed (but the ones awaiting another branch's merge).
    let mut exclude = Vec::new();
    for (method, path, op) in operations(&spec) {
        let m =
            reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
        let r = server.request(m, &concrete(&path), None, None);
        let awaiting = AWAITING_MERGE.contains(&(method.as_str(), path.as_str()));
        if awaiting {
            assert!(
                unrouted(&r),
                "{method} {path} is routed now: remove it from AWAITING_MERGE ({r})"
            );
            exclude.push(op["operationId"].as_str().expect("operationId").to_string());
        } else {
            assert!(
                !unrouted(&r),
                "{method} {path} is described but not routed: {r}"
            );
        }
    }
    (spec, exclude)
}

#[test]
fn schemathesis_finds_nothing_for_any_role() {
    let bin = schemathesis_bin();
    let secs = std::env::var("SCHEMATHESIS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS_PER_ROLE);
    let server = Server::fresh();

    let (spec, exclude) = every_described_operation_is_routed(&server);

    // A token of each role, made through the API.
    let mut tokens = Vec::new();
    for role in ["ra", "auditor", "operator"] {
        let created = post_json(
            &server,
            "/v1/tokens",
            &server.tokens.operator,
            &json!({"role": role, "name": format!("fuzz-{role}")}),
            201,
        );
        tokens.push((role, created["token"].as_str().expect("token").to_string()));
    }
    let seeded = seed(&server, &tokens[0].1);
    let spec_file = server.scratch().join("openapi.json");
    std::fs::write(
        &spec_file,
        serde_json::to_vec_pretty(&with_examples(spec, &seeded)).expect("JSON"),
    )
    .expect("writing the description");

    println!("schemathesis: {} ({secs} s per role)", bin.display());
    let mut failures = Vec::new();
    for (role, token) in &tokens {
        let started = Instant::now();
        let (passed, output) = schemathesis(&server, &spec_file, token, secs, &exclude);
        let cases = output
            .lines()
            .find(|l| l.contains(" generated, "))
            .unwrap_or_default()
            .trim();
        println!(
            "schemathesis as {role}: {} in {:.0?} ({cases})",
            if passed { "passed" } else { "FAILED" },
            started.elapsed()
        );
        if !passed {
            failures.push(format!("=== as {role} ===\n{output}"));
        }
    }

    // The server survived, answered no 500 and did not panic.
    let r = server.get("/healthz", None);
    assert_eq!(
        r.status, 200,
        "the server is not healthy after the fuzzing: {r}"
    );
    let log = server.log();
    for bad in ["panicked", "internal error"] {
        let lines: Vec<_> = log.lines().filter(|l| l.contains(bad)).take(20).collect();
        if !lines.is_empty() {
            failures.push(format!(
                "=== the server logged {bad:?} ===\n{}",
                lines.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "schemathesis found problems:\n{}",
        failures.join("\n")
    );
}
