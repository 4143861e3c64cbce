//! The folder a benchmark report is drawn from, as `bench/run-all.sh` lays it out and
//! `bench/render-results.py` reads it: `results/LABEL.json`, one per scenario (ca-bench's
//! JSON result), and `run.json`, the run's date and machine. `ca-bench --report DIR` writes
//! each of its scenarios there and then runs the renderer on the folder, so that an
//! operator's own run gets the same RESULTS.md and figures as the project's.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

/// What writing or rendering a report folder may fail with.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A scenario label that cannot be a file name of its own in `results/`.
    #[error("the label {0:?} is not a plain file name (letters, digits, '.', '_', '-'; not starting with '.')")]
    BadLabel(String),
    /// Reading or writing a file of the folder.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A result that does not serialize to JSON.
    #[error("encoding the result as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The renderer ran and failed.
    #[error("{renderer} failed ({status}): {stderr}")]
    Renderer {
        /// The renderer's path.
        renderer: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it wrote to its standard error.
        stderr: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A scenario's label, which names its file `results/LABEL.json`: a plain file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioLabel(String);

impl ScenarioLabel {
    /// `label`, when it is a plain file name: ASCII letters, digits, `.`, `_` and `-`, not
    /// starting with `.` (no path, no hidden file).
    pub fn new(label: &str) -> Result<Self, ReportError> {
        let plain = !label.is_empty()
            && !label.starts_with('.')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if plain {
            Ok(ScenarioLabel(label.to_string()))
        } else {
            Err(ReportError::BadLabel(label.to_string()))
        }
    }

    /// The label as bench/run-all.sh names the same scenario, so that the renderer places
    /// it in its tables and figures: `[cfssl-][hsm-][KEY-](single|batchN)-cC[-der][-rateR]`,
    /// e.g. `single-c64`, `batch100-c4`, `single-c64-der`, `cfssl-single-c16`,
    /// `ed25519-batch100-c4`, `hsm-rsa3072-batch100-c4`; `acme-cC` for ACME orders.
    pub fn for_scenario(scenario: &Scenario<'_>) -> Self {
        let mut parts: Vec<String> = Vec::new();
        if scenario.acme {
            return ScenarioLabel(format!("acme-c{}", scenario.connections));
        }
        if scenario.cfssl {
            parts.push("cfssl".into());
        }
        if scenario.pkcs11 {
            parts.push("hsm".into());
        }
        if scenario.ca_key != "ec-p256" {
            let key: String = scenario
                .ca_key
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            parts.push(key);
        }
        parts.push(match scenario.batch_size {
            Some(n) => format!("batch{n}"),
            None => "single".into(),
        });
        parts.push(format!("c{}", scenario.connections));
        if scenario.der {
            parts.push("der".into());
        }
        if scenario.rate > 0.0 {
            parts.push(format!("rate{:.0}", scenario.rate));
        }
        ScenarioLabel(parts.join("-"))
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What names a scenario (`ScenarioLabel::for_scenario`).
#[derive(Clone, Copy, Debug)]
pub struct Scenario<'a> {
    /// Complete ACME orders (`--mode acme`).
    pub acme: bool,
    /// Against `cfssl serve` instead of ca-server.
    pub cfssl: bool,
    /// The CA key is in a PKCS#11 token.
    pub pkcs11: bool,
    /// The CA key's type as ca-server names it (`ec-p256`, `ed25519`, `rsa-3072`).
    pub ca_key: &'a str,
    /// Certificates per batch request; `None` for one per request.
    pub batch_size: Option<usize>,
    /// Concurrent connections.
    pub connections: usize,
    /// The DER request form.
    pub der: bool,
    /// The request rate cap per second (0: none).
    pub rate: f64,
}

/// The run's date and machine (`run.json`), shown in the report's header and figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    /// When the result was written, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// vCPUs, CPU model and kernel, e.g. `2 vCPUs, Intel(R) Xeon(R) Processor, Linux 6.1.0`.
    pub machine: String,
    /// What measured it (a fixed name: never the command line, which may hold a token).
    pub by: String,
}

impl RunInfo {
    /// This machine, now.
    pub fn now(by: &str) -> Self {
        let now = time::OffsetDateTime::now_utc();
        let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_string())
            })
            .filter(|model| !model.is_empty());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|release| format!("{} {}", std::env::consts::OS, release.trim()));
        let machine = [Some(format!("{vcpus} vCPUs")), model, kernel]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        RunInfo {
            date: format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute()
            ),
            machine,
            by: by.to_string(),
        }
    }
}

/// A report folder: results of several ca-bench runs accumulate in it, each under its label.
#[derive(Clone, Debug)]
pub struct ReportDir {
    root: PathBuf,
}

impl ReportDir {
    /// The folder at `root` (created when the first result is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ReportDir { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes one scenario's result as `results/LABEL.json` (replacing an earlier one of the
    /// same label) and the run's date and machine as `run.json`; returns the result's path.
    pub fn write<T: Serialize>(
        &self,
        label: &ScenarioLabel,
        result: &T,
        run: &RunInfo,
    ) -> Result<PathBuf, ReportError> {
        let results = self.root.join("results");
        std::fs::create_dir_all(&results).map_err(io(&results))?;
        let path = results.join(format!("{}.json", label.as_str()));
        std::fs::write(&path, serde_json::to_string_pretty(result)?).map_err(io(&path))?;
        let run_path = self.root.join("run.json");
        std::fs::write(&run_path, serde_json::to_string_pretty(run)?).map_err(io(&run_path))?;
        Ok(path)
    }

    /// Runs the renderer (`bench/render-results.py`) on the folder: RESULTS.md and the
    /// figures (PNG) land in it. When no python3 with matplotlib is found, or the renderer
    /// is not at `renderer`, says how to render later instead.
    pub fn render(&self, renderer: &Path) -> Result<Rendered, ReportError> {
        let later = |why: String, python: &str| Rendered::Later {
            why,
            command: format!(
                "{python} {} {} > {}",
                renderer.display(),
                self.root.display(),
                self.root.join("RESULTS.md").display()
            ),
        };
        if !renderer.is_file() {
            return Ok(later(
                format!(
                    "the renderer is not at {} (ca-bench --renderer PATH names it)",
                    renderer.display()
                ),
                "python3",
            ));
        }
        let Some(python) = python_with_matplotlib() else {
            return Ok(later(
                "no python3 with matplotlib here (Debian: apt-get install python3-matplotlib)"
                    .into(),
                "/usr/bin/python3",
            ));
        };
        let output = Command::new(python)
            .arg(renderer)
            .arg(&self.root)
            .arg("--figures")
            .arg(&self.root)
            .output()
            .map_err(io(renderer))?;
        if !output.status.success() {
            return Err(ReportError::Renderer {
                renderer: renderer.to_path_buf(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        let markdown = self.root.join("RESULTS.md");
        std::fs::write(&markdown, &output.stdout).map_err(io(&markdown))?;
        let mut figures: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .map_err(io(&self.root))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
            .collect();
        figures.sort();
        Ok(Rendered::Drawn { markdown, figures })
    }
}

/// What rendering a report folder gave.
#[derive(Debug)]
pub enum Rendered {
    /// RESULTS.md and its figures.
    Drawn {
        /// RESULTS.md.
        markdown: PathBuf,
        /// The figures it shows.
        figures: Vec<PathBuf>,
    },
    /// Not rendered here: why, and the command that renders the folder later.
    Later {
        /// Why not.
        why: String,
        /// The command to run once that is fixed.
        command: String,
    },
}

/// The first of `python3` (on PATH) and Debian's `/usr/bin/python3` that has matplotlib.
fn python_with_matplotlib() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import matplotlib"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario<'static> {
        Scenario {
            acme: false,
            cfssl: false,
            pkcs11: false,
            ca_key: "ec-p256",
            batch_size: None,
            connections: 64,
            der: false,
            rate: 0.0,
        }
    }

    #[test]
    fn scenarios_are_named_as_run_all_names_them() {
        let name = |s: Scenario<'_>| ScenarioLabel::for_scenario(&s).as_str().to_string();
        assert_eq!(name(scenario()), "single-c64");
        assert_eq!(
            name(Scenario {
                der: true,
                ..scenario()
            }),
            "single-c64-der"
        );
        assert_eq!(
            name(Scenario {
                batch_size: Some(100),
                connections: 4,
                ..scenario()
            }),
            "batch100-c4"
        );
        assert_eq!(
            name(Scenario {
                cfssl: true,
                connections: 16,
                ..scenario()
            }),
            "cfssl-single-c16"
        );
        assert_eq!(
            name(Scenario {
                ca_key: "ed25519",
                batch_size: Some(100),
                connections: 4,
                ..scenario()
            }),
            "ed25519-batch100-c4"
        );
        assert_eq!(
            name(Scenario {
                pkcs11: true,
                ca_key: "rsa-3072",
                batch_size: Some(100),
                connections: 4,
                ..scenario()
            }),
            "hsm-rsa3072-batch100-c4"
        );
        assert_eq!(
            name(Scenario {
                rate: 6068.0,
                ..scenario()
            }),
            "single-c64-rate6068"
        );
        assert_eq!(
            name(Scenario {
                acme: true,
                ..scenario()
            }),
            "acme-c64"
        );
    }

    #[test]
    fn a_label_is_a_plain_file_name() {
        for bad in ["", ".hidden", "../up", "a/b", "a\\b", "a b", "é"] {
            assert!(
                matches!(ScenarioLabel::new(bad), Err(ReportError::BadLabel(_))),
                "{bad:?}"
            );
        }
        for good in ["single-c64", "my_run.2", "A-1"] {
            assert_eq!(
                ScenarioLabel::new(good).map(|l| l.0).ok(),
                Some(good.into())
            );
        }
    }

    #[test]
    fn results_accumulate_under_their_labels_with_the_run_info() {
        let dir = tempfile::tempdir().expect("temp dir");
        let report = ReportDir::new(dir.path().join("report"));
        let run = RunInfo {
            date: "2026-01-02 03:04 UTC".into(),
            machine: "2 vCPUs".into(),
            by: "ca-bench --report".into(),
        };
        let single = ScenarioLabel::new("single-c64").expect("label");
        let batch = ScenarioLabel::new("batch100-c4").expect("label");
        let path = report
            .write(
                &single,
                &serde_json::json!({"certificates_per_sec": 1.0}),
                &run,
            )
            .expect("write");
        assert_eq!(path, dir.path().join("report/results/single-c64.json"));
        report
            .write(
                &batch,
                &serde_json::json!({"certificates_per_sec": 2.0}),
                &run,
            )
            .expect("write");
        // The same label again replaces its result.
        report
            .write(
                &single,
                &serde_json::json!({"certificates_per_sec": 3.0}),
                &run,
            )
            .expect("write");
        let read = |name: &str| -> serde_json::Value {
            let text = std::fs::read_to_string(dir.path().join("report").join(name)).expect(name);
            serde_json::from_str(&text).expect("JSON")
        };
        assert_eq!(read("results/single-c64.json")["certificates_per_sec"], 3.0);
        assert_eq!(
            read("results/batch100-c4.json")["certificates_per_sec"],
            2.0
        );
        assert_eq!(
            read("run.json"),
            serde_json::json!({"date": "2026-01-02 03:04 UTC", "machine": "2 vCPUs",
                               "by": "ca-bench --report"})
        );
        let mut files: Vec<String> = std::fs::read_dir(dir.path().join("report/results"))
            .expect("results")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["batch100-c4.json", "single-c64.json"]);
    }

    #[test]
    fn the_run_info_names_this_machine_and_a_utc_minute() {
        let run = RunInfo::now("ca-bench --report");
        assert!(run.machine.contains(" vCPUs"), "{}", run.machine);
        let date = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
        assert!(
            time::PrimitiveDateTime::parse(&run.date, &date).is_ok(),
            "{}",
            run.date
        );
        assert_eq!(run.by, "ca-bench --report");
    }

    #[test]
    fn without_the_renderer_it_says_how_to_render_later() {
        let dir = tempfile::tempdir().expect("temp dir");
        let report = ReportDir::new(dir.path());
        let missing = dir.path().join("no-such-renderer.py");
        match report.render(&missing).expect("render") {
            Rendered::Later { why, command } => {
                assert!(why.contains("no-such-renderer.py"), "{why}");
                assert!(command.contains("RESULTS.md"), "{command}");
            }
            other => panic!("{other:?}"),
        }
    }
}
