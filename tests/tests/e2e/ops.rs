//! What an operator deploys beside the server, each checked by the tool of its ecosystem: the
//! Prometheus alerts (`promtool check rules`, `promtool test rules`), the Grafana dashboard
//! and the alerts against a live server's `/metrics` (every metric they name is exported,
//! after traffic of every kind), the systemd unit (`systemd-analyze verify` and `security`
//! against the built binary), and `ca-server --version`.
//!
//! promtool comes from Debian's `prometheus` package and systemd-analyze from `systemd`;
//! scripts/setup.sh installs them when missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e_tests::prelude::*;
use serde_json::{json, Value};

/// The repository's `deploy/` directory.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Runs `program ARGS` in `dir` with `env` added; a missing program fails the test with the
/// way to install it.
fn run_in(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: run scripts/setup.sh (Debian packages prometheus and \
         systemd)"
    );
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    for (key, value) in env {
        command.env(key, value);
    }
    output_within(&mut command, COMMAND_DEADLINE)
}

/// Standard output and error of `out`, for messages.
fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn read_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// The alerting rules of `deploy/prometheus/alerts.yml`: (alert name, expression).
fn alert_rules() -> Vec<(String, String)> {
    let rules = read_yaml(&deploy().join("prometheus/alerts.yml"));
    let mut out = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("only alerting rules");
            let expr = rule["expr"].as_str().expect("expr");
            out.push((name.to_string(), expr.to_string()));
        }
    }
    out
}

#[test]
fn alert_rules_pass_promtool_and_each_alert_is_tested_both_ways() {
    let dir = deploy().join("prometheus");
    let out = run_in(&dir, "promtool", &["check", "rules", "alerts.yml"], &[]);
    assert!(
        out.status.success(),
        "promtool check rules alerts.yml:\n{}",
        printed(&out)
    );
    let out = run_in(&dir, "promtool", &["test", "rules", "alerts.test.yml"], &[]);
    assert!(
        out.status.success(),
        "promtool test rules alerts.test.yml:\n{}",
        printed(&out)
    );

    // Every alert has a unit test where it fires, in a group that also holds series of a
    // healthy server (instance "healthy"), which it must leave alone (promtool compares the
    // firing alerts exactly).
    let tests = read_yaml(&dir.join("alerts.test.yml"));
    let mut fired: BTreeMap<String, bool> = BTreeMap::new();
    for group in tests["tests"].as_array().expect("tests") {
        let has_healthy = group["input_series"]
            .as_array()
            .expect("input_series")
            .iter()
            .any(|s| {
                s["series"]
                    .as_str()
                    .is_some_and(|s| s.contains("instance=\"healthy\""))
            });
        for case in group["alert_rule_test"]
            .as_array()
            .expect("alert_rule_test")
        {
            let name = case["alertname"].as_str().expect("alertname");
            let expected = case["exp_alerts"].as_array().expect("exp_alerts");
            for alert in expected {
                assert_ne!(
                    alert["exp_labels"]["instance"], "healthy",
                    "{name}: a healthy server must not fire"
                );
            }
            if !expected.is_empty() {
                *fired.entry(name.to_string()).or_default() |= has_healthy;
            }
        }
    }
    for (name, _) in alert_rules() {
        assert_eq!(
            fired.get(&name),
            Some(&true),
            "alerts.test.yml has no test where {name} fires beside a healthy server's series"
        );
    }
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// keywords, label names (in `{...}`, `by (...)`, `on (...)` and the like), strings, ranges,
/// numbers or Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Binary operators and modifiers, besides the keywords that take label lists.
    const KEYWORDS: [&str; 6] = ["and", "or", "unless", "bool", "offset", "atan2"];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skips a string starting at `i`; returns the index after it.
    let skip_string = |mut i: usize| {
        let quote = chars[i];
        i += 1;
        while i < chars.len() && chars[i] != quote {
            if chars[i] == '\\' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    // Skips a bracketed block (`{...}`, `[...]`, `(...)`) starting at `i`, strings included.
    let skip_block = |mut i: usize, close: char| {
        while i < chars.len() && chars[i] != close {
            if matches!(chars[i], '"' | '\'' | '`') {
                i = skip_string(i);
            } else {
                i += 1;
            }
        }
        i + 1
    };
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(i);
        } else if c == '{' {
            i = skip_block(i, '}');
        } else if c == '[' {
            i = skip_block(i, ']');
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A Grafana variable, or a number or duration (0.99, 1e6, 5m).
            i += 1;
            while i < chars.len() && (ident_char(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            // A function call, or an aggregation whose `by`/`without` comes first.
            let rest: String = chars[next..].iter().collect();
            let call = rest.starts_with('(')
                || ["by", "without"].iter().any(|clause| {
                    rest.strip_prefix(clause)
                        .is_some_and(|r| r.trim_start().starts_with('('))
                });
            if LABEL_LISTS.contains(&word.as_str()) {
                if rest.starts_with('(') {
                    i = skip_block(next, ')');
                }
            } else if KEYWORDS.contains(&word.as_str())
                || word.eq_ignore_ascii_case("inf")
                || word.eq_ignore_ascii_case("nan")
                || call
            {
                // A keyword or a function.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The dashboard's queries: (panel title, expressions), rows' nested panels included, and
/// the metrics its template variables read (`label_values(METRIC, LABEL)`).
fn dashboard_queries() -> Vec<(String, Vec<String>)> {
    let path = deploy().join("grafana/ca-core.json");
    let text = std::fs::read_to_string(&path).expect("reading the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    let mut pending: Vec<Value> = dashboard["panels"].as_array().expect("panels").clone();
    while let Some(panel) = pending.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            pending.extend(nested.iter().cloned());
        }
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("title").to_string();
        let exprs: Vec<String> = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel {title:?} has no targets"))
            .iter()
            .map(|t| t["expr"].as_str().expect("expr").to_string())
            .collect();
        assert!(!exprs.is_empty(), "panel {title:?} has no query");
        out.push((title, exprs));
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if let Some(query) = variable["definition"].as_str() {
            let metric = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.split(',').next())
                .unwrap_or_else(|| panic!("unexpected variable query {query:?}"));
            let name = variable["name"].as_str().expect("name");
            out.push((format!("variable ${name}"), vec![metric.trim().to_string()]));
        }
    }
    out
}

/// The sample names of a Prometheus text exposition (`ca_x_bucket`, `ca_x_sum`, ...).
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Traffic of every kind the dashboard and the alerts watch, so that labelled series exist:
/// single, batch and refused issuance, a renewal, a revocation, CRLs, OCSP, an enrollment
/// redeemed after a wrong code.
fn drive_traffic(s: &Server) {
    let single = s.issue(&server_csr("ops-1.example.com"), "tls-server", Some(30));
    let serial = single["serial"].as_str().expect("serial").to_string();
    let other = server_csr("ops-2.example.com");
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({"requests": [
            {"csr": other.pem, "profile": "tls-server", "validity_days": 30},
            {"csr": "garbage", "profile": "tls-server"},
        ]}),
    );
    assert_eq!(r.status, 200, "batch: {r}");
    let batch_serial = r.json["results"][0]["serial"]
        .as_str()
        .unwrap_or_else(|| panic!("batch result: {r}"))
        .to_string();
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": "garbage", "profile": "tls-server"}),
    );
    assert_error(&r, 400, "csr_malformed", "a refused request");
    let r = s.renew(&serial, None);
    assert_eq!(r.status, 201, "renewal: {r}");
    s.revoke_ok(&batch_serial, "superseded");
    s.generate_crl();
    assert_eq!(s.get("/crl", None).status, 200, "GET /crl");
    let leaf = s.leaf_file(&single);
    s.ocsp_get(&["-cert", leaf.to_str().expect("UTF-8 path")]);
    let (id, code) = s.create_enrollment(&json!({
        "profile": "tls-client", "subject": "CN=Ops Test,O=Example",
        "sans": ["ops@example.com"], "expires_in_hours": 24.0, "max_attempts": 3}));
    let redeem = |code: &str| {
        let csr = make_csr("ec-p256", "/CN=Ops Test", &[]);
        s.request(
            reqwest::Method::POST,
            &format!("/v1/enrollments/{id}/redeem"),
            None,
            Some(&json!({"code": code, "csr": csr.pem})),
        )
    };
    // The same code with its last symbol changed.
    let last = if code.ends_with('X') { 'Y' } else { 'X' };
    let wrong = format!("{}{last}", &code[..code.len() - 1]);
    assert_error(
        &redeem(&wrong),
        403,
        "enrollment_code_invalid",
        "a wrong code",
    );
    assert_eq!(redeem(&code).status, 201, "redeeming the enrollment");
}

fn scrape(s: &Server) -> String {
    let r = s.get("/metrics", Some(&s.tokens.operator));
    assert_eq!(r.status, 200, "GET /metrics: {r}");
    r.text
}

/// The value of the unlabelled sample `name`.
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn dashboard_and_alerts_read_only_metrics_a_live_server_exports() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // A delegated responder, whose certificate's expiry the alerts watch.
    std::fs::write(dir.join("config.toml"), "[ocsp]\ndelegated = true\n").expect("config");
    let s = Server::serve(dir);
    drive_traffic(&s);
    scrape(&s);
    let text = scrape(&s);
    let exported = exported_names(&text);

    let mut missing = Vec::new();
    let mut checked = BTreeSet::new();
    let dashboard = dashboard_queries();
    for (title, exprs) in &dashboard {
        for expr in exprs {
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: no metric in {expr:?}");
            for name in names {
                if !exported.contains(&name) {
                    missing.push(format!("dashboard panel {title:?}: {name} (in {expr:?})"));
                }
                checked.insert(name);
            }
        }
    }
    for (alert, expr) in alert_rules() {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{alert}: no metric in {expr:?}");
        for name in names {
            if !exported.contains(&name) {
                missing.push(format!("alert {alert}: {name} (in {expr:?})"));
            }
            checked.insert(name);
        }
    }
    assert!(
        missing.is_empty(),
        "metrics the server does not export:\n{}\n\nexported: {exported:?}",
        missing.join("\n")
    );
    assert!(
        checked.len() >= 30,
        "only {} metric names found in the dashboard and alerts: {checked:?}",
        checked.len()
    );

    // The gauges added for the alerts, with sane values.
    let now = now_unix() as f64;
    let checkpoint = gauge(&text, "ca_audit_checkpoint_time_seconds");
    assert!(
        (checkpoint - now).abs() < 600.0,
        "checkpoint time {checkpoint} vs now {now}"
    );
    assert!(gauge(&text, "ca_audit_checkpoint_seq") > 0.0);
    assert_eq!(gauge(&text, "ca_queue_capacity"), 4096.0);
    let store = gauge(&text, "ca_store_disk_bytes");
    assert!(store > 0.0, "ca_store_disk_bytes {store}");
    let avail = gauge(&text, "ca_store_filesystem_avail_bytes");
    let size = gauge(&text, "ca_store_filesystem_size_bytes");
    assert!(
        avail > 0.0 && avail <= size && store < size,
        "available {avail}, size {size}, store {store}"
    );
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            "histogram_quantile(0.99, sum by (le, stage) (rate(ca_stage_seconds_bucket\
             {instance=~\"$instance\",le!=\"x{y}\"}[$__rate_interval])))"
        ),
        ["ca_stage_seconds_bucket"]
    );
    assert_eq!(
        names(
            "(ca_crl_next_update_seconds - time()) < 0.25 * (ca_crl_next_update_seconds - \
             ignoring(kind) group_left ca_crl_this_update_seconds) and on() a:b offset 5m"
        ),
        [
            "a:b",
            "ca_crl_next_update_seconds",
            "ca_crl_this_update_seconds"
        ]
    );
    assert_eq!(
        names("sum without (kind) (x) / sum(y) by (le) + count by(a) (z)"),
        ["x", "y", "z"]
    );
    assert_eq!(names("time() - 1e6 > Inf"), Vec::<String>::new());
}

/// The unit as installed, with `ExecStart` naming `binary`, and the 443 drop-in when
/// `with_443`, in a directory of its own (`SYSTEMD_UNIT_PATH`).
fn install_unit(binary: &Path, with_443: bool) -> tempfile::TempDir {
    let unit = std::fs::read_to_string(deploy().join("systemd/ca-server.service"))
        .expect("reading the unit");
    let installed = "ExecStart=/usr/local/bin/ca-server ";
    assert_eq!(
        unit.matches(installed).count(),
        1,
        "the unit starts /usr/local/bin/ca-server, as the README installs it"
    );
    let unit = unit.replace(
        installed,
        &format!("ExecStart={} ", binary.to_str().expect("UTF-8 path")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca-server.service"), unit).expect("writing the unit");
    if with_443 {
        let dropins = dir.path().join("ca-server.service.d");
        std::fs::create_dir(&dropins).expect("drop-in directory");
        std::fs::copy(
            deploy().join("systemd/ca-server-443.conf"),
            dropins.join("443.conf"),
        )
        .expect("copying the drop-in");
    }
    dir
}

/// `systemd-analyze ARGS ca-server.service` on the unit installed in `dir`. It needs no
/// running systemd (this runs in containers whose PID 1 is not systemd): `verify` loads the
/// unit files offline; `--man=no` skips looking up the `Documentation=` man pages and
/// `--generators=no` running the system's generators, which need a booted system; the unit
/// and its drop-ins are found through `SYSTEMD_UNIT_PATH` (the trailing colon keeps the
/// system's own directories, for the targets it names).
fn systemd_analyze(dir: &Path, args: &[&str]) -> Output {
    let unit_path = format!("{}:", dir.display());
    let mut all: Vec<&str> = args.to_vec();
    all.push("ca-server.service");
    run_in(
        dir,
        "systemd-analyze",
        &all,
        &[("SYSTEMD_UNIT_PATH", &unit_path)],
    )
}

#[test]
fn systemd_unit_verifies_against_the_built_binary_and_stays_hardened() {
    let bin = server_bin();
    let verify = ["verify", "--man=no", "--generators=no"];
    for with_443 in [false, true] {
        let dir = install_unit(&bin, with_443);
        let out = systemd_analyze(dir.path(), &verify);
        // Unknown or malformed settings are only warned about: none may be printed.
        assert!(
            out.status.success() && printed(&out).trim().is_empty(),
            "systemd-analyze verify (443 drop-in: {with_443}):\n{}",
            printed(&out)
        );
        // The hardening, as systemd rates it: exposure at most 2.0 of 10 (`--threshold`
        // counts tenths).
        let out = systemd_analyze(
            dir.path(),
            &["security", "--offline=yes", "--threshold=20", "--no-pager"],
        );
        let report = printed(&out);
        assert!(
            out.status.success(),
            "systemd-analyze security (443 drop-in: {with_443}):\n{report}"
        );
        // Without the drop-in the service may bind no privileged port; with it, it may.
        let bind = report
            .lines()
            .find(|l| l.contains("CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE"))
            .unwrap_or_else(|| panic!("no CAP_NET_BIND_SERVICE line in:\n{report}"));
        assert_eq!(
            bind.trim_start().starts_with('✗'),
            with_443,
            "CAP_NET_BIND_SERVICE with the 443 drop-in {with_443}: {bind}"
        );
    }

    // The negative control: an ExecStart naming a missing file fails verification.
    let dir = install_unit(&bin.with_file_name("no-such-ca-server"), false);
    let out = systemd_analyze(dir.path(), &verify);
    assert!(
        !out.status.success() && printed(&out).contains("no-such-ca-server"),
        "systemd-analyze verify accepted a missing binary:\n{}",
        printed(&out)
    );
}

/// `pub const SCHEMA_VERSION: u32 = N;` of the store, read from its source.
fn schema_version() -> String {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ca-core/src/store/mod.rs"),
    )
    .expect("reading ca-core/src/store/mod.rs");
    source
        .lines()
        .find_map(|l| l.strip_prefix("pub const SCHEMA_VERSION: u32 = "))
        .and_then(|rest| rest.strip_suffix(';'))
        .expect("SCHEMA_VERSION in ca-core/src/store/mod.rs")
        .to_string()
}

#[test]
fn version_names_the_release_the_commit_and_the_schema() {
    let out = output_within(
        Command::new(server_bin()).arg("--version"),
        COMMAND_DEADLINE,
    );
    assert!(out.status.success(), "--version: {}", printed(&out));
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // ca-server 0.1.0 (commit 8642ae5, schema 5, sources 0123456789abcdef)
    let rest = line
        .strip_prefix(&format!("ca-server {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("--version: {line:?}"));
    let (commit, rest) = rest.split_once(", ").expect("commit");
    assert_eq!(
        rest.strip_prefix("schema ")
            .and_then(|r| r.split_once(','))
            .map(|(schema, _)| schema),
        Some(schema_version().as_str()),
        "--version: {line:?}"
    );
    // Built in a Git checkout: a commit of this repository's history (HEAD, or an ancestor
    // when commits were made since the build); elsewhere `unknown`.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(repo)
            .output()
            .ok()
    };
    match git(&["rev-parse", "--short", "HEAD"]).filter(|o| o.status.success()) {
        Some(_) => {
            assert!(
                commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
                "--version: commit {commit:?}"
            );
            let ancestor = git(&["merge-base", "--is-ancestor", commit, "HEAD"])
                .is_some_and(|o| o.status.success());
            assert!(ancestor, "--version: {commit} is not in HEAD's history");
        }
        None => assert_eq!(commit, "unknown", "--version: {line:?}"),
    }
}
