//! pkilint, the independent RFC 5280 / RFC 6960 linter, run from its virtual environment
//! (`$PKILINT_VENV`): certificates, CRLs and OCSP responses, its JSON report parsed strictly.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::certificates::CaCert;
use crate::command::{output_within, COMMAND_DEADLINE};
use crate::formats::to_pem;

/// The pkilint virtual environment: `$PKILINT_VENV`, by default the workspace's `.venv`.
fn pkilint_venv() -> PathBuf {
    std::env::var("PKILINT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"))
}

/// A pkilint command of the venv (`lint_pkix_cert`, `lint_crl`, ...), asserting it exists.
fn pkilint_tool(name: &str) -> PathBuf {
    let bin = pkilint_venv().join("bin").join(name);
    assert!(
        bin.is_file(),
        "pkilint is missing ({} not found). Run ./test at the workspace root, which installs it \
         (scripts/setup.sh --with-pkilint: python3 -m venv .venv && .venv/bin/pip install \
         pkilint==0.13.3), or set PKILINT_VENV.",
        bin.display()
    );
    bin
}

/// The pkilint RFC 5280 linter: `$PKILINT_VENV/bin/lint_pkix_cert`, by default in the
/// workspace's `.venv`.
pub fn pkilint_bin() -> PathBuf {
    pkilint_tool("lint_pkix_cert")
}

/// pkilint's CRL linter: `$PKILINT_VENV/bin/lint_crl`.
pub fn pkilint_crl_bin() -> PathBuf {
    pkilint_tool("lint_crl")
}

/// One finding of a pkilint report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkilintFinding {
    /// `FATAL`, `ERROR`, `WARNING`, `NOTICE` or `INFO`.
    pub severity: String,
    /// The finding code, e.g. `pkix.certificate_serial_number_out_of_range`.
    pub code: String,
    /// The message, "" when pkilint gave none.
    pub message: String,
    /// The validator that raised it.
    pub validator: String,
    /// Where in the document, e.g. `certificate.tbsCertificate.serialNumber`.
    pub node_path: String,
}

impl std::fmt::Display for PkilintFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}) at {}: {}",
            self.severity, self.code, self.validator, self.node_path, self.message
        )
    }
}

/// What one pkilint run found at severity ERROR and above, with what it printed.
#[derive(Clone, Debug)]
pub struct PkilintReport {
    /// Every finding of the report.
    pub findings: Vec<PkilintFinding>,
    /// The tool's exit status, stdout and stderr, and the file, for failure messages.
    pub output: String,
}

impl PkilintReport {
    /// Whether some finding has this code.
    pub fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// The findings' codes, in report order.
    pub fn codes(&self) -> Vec<&str> {
        self.findings.iter().map(|f| f.code.as_str()).collect()
    }
}

/// Parses the JSON report of a pkilint run (`-f JSON`) that exited with `exit_code`, refusing
/// any report of another shape than pkilint 0.13's: `{"results": [{"node_path": "...",
/// "validator": "...", "finding_descriptions": [{"severity": "...", "code": "...",
/// "message": "..." | null}, ...]}, ...]}`, where each result (pkilint lists only results
/// with findings at the threshold) has at least one finding, and the exit code is the number
/// of findings (pkilint's, capped at 255).
///
/// The checks make a renamed key, a report on stderr or a crash fail loudly instead of
/// reading as "no findings".
pub fn parse_pkilint_report(
    stdout: &str,
    exit_code: Option<i32>,
) -> Result<Vec<PkilintFinding>, String> {
    let report: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("pkilint printed no JSON report ({e})"))?;
    let Some(top) = report.as_object() else {
        return Err("pkilint's report is not a JSON object".to_string());
    };
    if let Some(other) = top.keys().find(|k| *k != "results") {
        return Err(format!("pkilint's report has an unknown key {other:?}"));
    }
    let Some(results) = top.get("results").and_then(Value::as_array) else {
        return Err("pkilint's report has no \"results\" array".to_string());
    };
    let string = |v: &Value, key: &str, what: &str| -> Result<String, String> {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{what} has no string {key:?}: {v}"))
    };
    let mut findings = Vec::new();
    for (i, result) in results.iter().enumerate() {
        let what = format!("pkilint result {i}");
        let validator = string(result, "validator", &what)?;
        let node_path = string(result, "node_path", &what)?;
        let Some(descriptions) = result.get("finding_descriptions").and_then(Value::as_array)
        else {
            return Err(format!(
                "{what} has no \"finding_descriptions\" array: {result}"
            ));
        };
        if descriptions.is_empty() {
            return Err(format!(
                "{what} has an empty \"finding_descriptions\" array (pkilint lists only results \
                 with findings): {result}"
            ));
        }
        for f in descriptions {
            let what = format!("a finding of {what}");
            let message = match f.get("message") {
                Some(Value::String(m)) => m.clone(),
                Some(Value::Null) => String::new(),
                _ => return Err(format!("{what} has no \"message\" (string or null): {f}")),
            };
            findings.push(PkilintFinding {
                severity: string(f, "severity", &what)?,
                code: string(f, "code", &what)?,
                message,
                validator: validator.clone(),
                node_path: node_path.clone(),
            });
        }
    }
    let expected = i32::try_from(findings.len().min(255)).unwrap_or(255);
    if exit_code != Some(expected) {
        return Err(format!(
            "pkilint exited with {exit_code:?}, but its report lists {} findings",
            findings.len()
        ));
    }
    Ok(findings)
}

/// Runs a pkilint tool of the venv, `TOOL lint ARGS -s ERROR -f JSON FILE`, and returns the
/// findings at ERROR and above ([`parse_pkilint_report`]); panics, showing the output and the
/// file, when the tool cannot run or its report is not of the expected shape.
pub fn pkilint_run(tool: &str, args: &[&str], file: &Path) -> PkilintReport {
    let out = output_within(
        Command::new(pkilint_tool(tool))
            .arg("lint")
            .args(args)
            .args(["-s", "ERROR", "-f", "JSON"])
            .arg(file),
        COMMAND_DEADLINE,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bytes = std::fs::read(file).unwrap_or_default();
    let shown = match String::from_utf8(bytes.clone()) {
        Ok(text) => text,
        Err(_) => to_pem("DER", &bytes),
    };
    let output = format!(
        "`{tool} lint {} {}`: {}\nstdout:\n{stdout}\nstderr:\n{}\nfile:\n{shown}",
        args.join(" "),
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
    );
    match parse_pkilint_report(&stdout, out.status.code()) {
        Ok(findings) => PkilintReport { findings, output },
        Err(why) => panic!("{why}\n{output}"),
    }
}

/// pkilint's RFC 5280 certificate linter on a PEM or DER file (`lint_pkix_cert lint`).
pub fn pkilint_cert_findings(file: &Path) -> PkilintReport {
    pkilint_run("lint_pkix_cert", &[], file)
}

/// pkilint's ETSI linter (EN 319 412-1 to -5, TS 119 495, TS 119 312) on a PEM or DER
/// certificate as the type `cert_type` (`lint_etsi_cert lint -t TYPE`, TYPE such as
/// `QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE`).
pub fn pkilint_etsi_findings(file: &Path, cert_type: &str) -> PkilintReport {
    pkilint_run("lint_etsi_cert", &["-t", cert_type], file)
}

/// The certificate type pkilint's ETSI linter detects from a certificate's policy OIDs,
/// qcStatements, subject and extendedKeyUsage (`lint_etsi_cert lint -d -o`, which names it
/// on stderr), as `-t` spells it; the findings at ERROR and above come with it.
pub fn pkilint_etsi_detected(file: &Path) -> (String, PkilintReport) {
    let report = pkilint_run("lint_etsi_cert", &["-d", "-o"], file);
    let stderr = report
        .output
        .split("\nstderr:\n")
        .nth(1)
        .and_then(|rest| rest.split("\nfile:\n").next())
        .unwrap_or_default();
    let detected = stderr.trim().replace('_', "-");
    (detected, report)
}

/// Lints a certificate file with pkilint's ETSI linter as `cert_type` (`lint_etsi_cert lint -t
/// TYPE -s ERROR -f JSON`), asserting no ERROR or FATAL finding.
pub fn pkilint_etsi(file: &Path, cert_type: &str, what: &str) {
    assert_no_pkilint_findings(&pkilint_etsi_findings(file, cert_type), |_| false, what);
}

/// pkilint's CRL linter with the PKIX profile on a CRL file (`lint_crl lint -t CRL -p PKIX`).
pub fn pkilint_crl_findings(file: &Path) -> PkilintReport {
    pkilint_run("lint_crl", &["-t", "CRL", "-p", "PKIX"], file)
}

/// pkilint's RFC 6960 linter on a DER OCSP response (`lint_ocsp_response lint`).
pub fn pkilint_ocsp_findings(file: &Path) -> PkilintReport {
    pkilint_run("lint_ocsp_response", &[], file)
}

/// Lints a PEM certificate file with pkilint, asserting no ERROR or FATAL finding.
///
/// One finding is let through: pkilint's RFC 5280 linter calls a wildcard dNSName
/// (`*.example.com`) `pkix.invalid_domain_name_syntax`, since RFC 5280 knows no wildcards; the
/// tls-server profile allows them as the CA/Browser Forum's baseline requirements do.
pub fn pkilint(file: &Path, what: &str) {
    let report = pkilint_cert_findings(file);
    let wildcard = |f: &PkilintFinding| {
        f.code == "pkix.invalid_domain_name_syntax" && f.message.contains("\"*.")
    };
    assert_no_pkilint_findings(&report, wildcard, what);
}

/// Lints a DER CRL (complete or delta) with pkilint's PKIX CRL profile
/// (`lint_crl lint -t CRL -p PKIX -s ERROR -f JSON`), asserting no ERROR or FATAL finding.
pub fn pkilint_crl(file: &Path, what: &str) {
    assert_no_pkilint_findings(&pkilint_crl_findings(file), |_| false, what);
}

/// Lints a DER OCSP response with pkilint's RFC 6960 linter (`lint_ocsp_response lint -s
/// ERROR -f JSON`), asserting no ERROR or FATAL finding.
pub fn pkilint_ocsp(file: &Path, what: &str) {
    assert_no_pkilint_findings(&pkilint_ocsp_findings(file), |_| false, what);
}

/// Panics listing every finding of `report` that `allowed` does not let through.
fn assert_no_pkilint_findings(
    report: &PkilintReport,
    allowed: impl Fn(&PkilintFinding) -> bool,
    what: &str,
) {
    let findings: Vec<String> = report
        .findings
        .iter()
        .filter(|f| !allowed(f))
        .map(ToString::to_string)
        .collect();
    assert!(
        findings.is_empty(),
        "{what}: pkilint findings:\n  {}\n{}",
        findings.join("\n  "),
        report.output
    );
}

/// Lints the CA's own certificate (the first of the chain).
pub fn pkilint_ca(ca: &CaCert, what: &str) {
    let file = ca.file.with_extension("first.pem");
    std::fs::write(&file, to_pem("CERTIFICATE", &ca.ders[0])).expect("writing the CA cert");
    pkilint(&file, what);
}
