//! `cargo xtask e2e`: builds `echo-server` and `echo-client` and runs the
//! end-to-end scenarios against the real binaries.
//!
//! Each scenario prints `PASS name (SECS s)` or `FAIL name (SECS s): reason`
//! as it finishes, and the last line printed is `N passed, M failed`. Every wait has a deadline:
//! each scenario's, and the suite's, so a hung server or client turns into a
//! failure instead of a hung CI job. Every process a scenario starts is killed
//! when the scenario ends, whether it passed, failed or panicked.

pub(crate) mod harness;
mod scenarios;

use std::ffi::OsStr;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use harness::{Bins, Ctx};

/// The most the whole suite may take, the build excluded.
const SUITE_TIMEOUT: Duration = Duration::from_secs(120);

/// The most one scenario may take.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(30);

/// The options of `cargo xtask e2e`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Options {
    /// Build and test the release profile instead of the debug one.
    pub(crate) release: bool,
    /// Run only the scenarios whose name contains one of these; all if empty.
    pub(crate) filters: Vec<String>,
}

impl Options {
    /// Parses the arguments that follow `e2e`.
    // ADAPTER (h-xtask): clap parses the flags now; this stays for the tests
    // of this file until the e2e test crate replaces it.
    #[cfg(test)]
    pub(crate) fn parse(args: Vec<String>) -> Result<Self, String> {
        let mut options = Options::default();
        for arg in args {
            match arg.as_str() {
                "--release" => options.release = true,
                flag if flag.starts_with('-') => {
                    return Err(format!("unknown option `{flag}` for `e2e`"));
                }
                _ => options.filters.push(arg),
            }
        }
        Ok(options)
    }

    fn profile(&self) -> &'static str {
        if self.release { "release" } else { "debug" }
    }

    fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|filter| name.contains(filter))
    }
}

/// How many scenarios passed and failed.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Summary {
    pub(crate) passed: usize,
    pub(crate) failed: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Builds the binaries and runs the selected scenarios; fails if any failed.
// ADAPTER (h-xtask): the signature the e2e test crate's `e2e.rs` will have,
// over the scenarios of today, until that file replaces this one.
pub(crate) fn run(root: &Path, release: bool, filters: &[String]) -> Result<()> {
    let options = Options {
        release,
        filters: filters.to_vec(),
    };
    let summary = run_scenarios(root, &options)?;
    if summary.failed > 0 {
        bail!("{} scenario(s) failed", summary.failed);
    }
    Ok(())
}

/// Builds the binaries and runs the selected scenarios.
///
/// A build failure is an error; a failed scenario is counted in the summary.
fn run_scenarios(root: &Path, options: &Options) -> Result<Summary> {
    let selected: Vec<_> = scenarios::all()
        .filter(|scenario| options.selects(scenario.name))
        .collect();
    if selected.is_empty() {
        bail!(
            "no scenario name contains any of {:?}; the scenarios are: {}",
            options.filters,
            scenarios::all()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let bins = build(root, options)?;
    let suite_deadline = Instant::now() + SUITE_TIMEOUT;
    let mut summary = Summary::default();
    for scenario in selected {
        let started = Instant::now();
        let outcome = if started >= suite_deadline {
            Err(anyhow!(
                "not run: the suite's deadline of {} s has passed",
                SUITE_TIMEOUT.as_secs()
            ))
        } else {
            let ctx = Ctx {
                bins: &bins,
                deadline: (started + SCENARIO_TIMEOUT).min(suite_deadline),
            };
            run_one(scenario.run, &ctx)
        };
        let took = Took(started.elapsed());
        match outcome {
            Ok(()) => {
                summary.passed += 1;
                println!("PASS {} {took}", scenario.name);
            }
            Err(error) => {
                summary.failed += 1;
                println!(
                    "FAIL {} {took}: {}",
                    scenario.name,
                    one_line(&format!("{error:#}"))
                );
            }
        }
    }
    println!("{summary}");
    Ok(summary)
}

/// Runs one scenario, turning a panic into a failure.
///
/// Unwinding drops the scenario's process guards, which kill its processes,
/// so a panicking scenario leaves nothing running either.
fn run_one(scenario: fn(&Ctx<'_>) -> Result<()>, ctx: &Ctx<'_>) -> Result<()> {
    match panic::catch_unwind(AssertUnwindSafe(|| scenario(ctx))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|message| (*message).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".to_owned());
            Err(anyhow!("the scenario panicked: {message}"))
        }
    }
}

/// How long a scenario took, as its result line shows it: `(1.23 s)`.
struct Took(Duration);

impl fmt::Display for Took {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:.2} s)", self.0.as_secs_f64())
    }
}

/// Keeps a failure reason on the `FAIL` line, so that each result stays one
/// line a person or a script can read.
fn one_line(reason: &str) -> String {
    reason.trim_end().replace('\r', "\\r").replace('\n', "\\n")
}

/// Builds the two binaries and finds them.
pub(crate) fn build(root: &Path, options: &Options) -> Result<Bins> {
    // ADAPTER (h-xtask): the build through the one command helper.
    let mut args = vec!["build", "-p", "echo-server", "-p", "echo-client"];
    if options.release {
        args.push("--release");
    }
    crate::process::cargo(args).dir(root).run()?;

    let dir = binaries_dir(
        root,
        std::env::var_os("CARGO_TARGET_DIR").as_deref(),
        options.profile(),
    );
    let find = |name: &str| {
        let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if path.is_file() {
            Ok(path)
        } else {
            Err(anyhow!(
                "`{name}` is not at {} after the build",
                path.display()
            ))
        }
    };
    Ok(Bins {
        server: find("echo-server")?,
        client: find("echo-client")?,
    })
}

/// Where cargo puts the binaries of `profile`.
///
/// A relative `CARGO_TARGET_DIR` is resolved against the workspace root,
/// because that is where the build command runs.
fn binaries_dir(root: &Path, target_dir: Option<&OsStr>, profile: &str) -> PathBuf {
    let target_dir = match target_dir {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    };
    target_dir.join(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn parses_options() {
        assert_eq!(Options::parse(vec![]), Ok(Options::default()));
        let options = Options::parse(strings(&["drain", "--release", "frame"])).unwrap();
        assert!(options.release);
        assert_eq!(options.filters, strings(&["drain", "frame"]));
        assert_eq!(options.profile(), "release");
        assert_eq!(Options::default().profile(), "debug");
    }

    #[test]
    fn rejects_unknown_options() {
        assert_eq!(
            Options::parse(strings(&["--relase"])),
            Err("unknown option `--relase` for `e2e`".to_owned())
        );
    }

    #[test]
    fn filters_select_by_substring() {
        let all = Options::default();
        assert!(all.selects("sigterm-drain"));
        let some = Options::parse(strings(&["drain", "half"])).unwrap();
        assert!(some.selects("sigterm-drain"));
        assert!(some.selects("half-close"));
        assert!(!some.selects("one-message"));
    }

    #[test]
    fn every_scenario_name_is_unique_and_filterable() {
        let mut names: Vec<_> = scenarios::all().map(|s| s.name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate scenario names");
        assert!(
            names
                .iter()
                .all(|name| !name.is_empty() && !name.contains(char::is_whitespace))
        );
    }

    #[test]
    fn finds_the_binaries_directory() {
        let root = Path::new("/repo");
        assert_eq!(
            binaries_dir(root, None, "debug"),
            Path::new("/repo/target/debug")
        );
        assert_eq!(
            binaries_dir(root, Some(OsStr::new("")), "debug"),
            Path::new("/repo/target/debug")
        );
        assert_eq!(
            binaries_dir(root, Some(OsStr::new("/tmp/t")), "release"),
            Path::new("/tmp/t/release")
        );
        assert_eq!(
            binaries_dir(root, Some(OsStr::new("out")), "debug"),
            Path::new("/repo/out/debug")
        );
    }

    #[test]
    fn summary_line_has_the_documented_form() {
        let summary = Summary {
            passed: 16,
            failed: 1,
        };
        assert_eq!(summary.to_string(), "16 passed, 1 failed");
    }

    #[test]
    fn result_lines_show_how_long_a_scenario_took() {
        assert_eq!(Took(Duration::from_millis(1234)).to_string(), "(1.23 s)");
        assert_eq!(Took(Duration::ZERO).to_string(), "(0.00 s)");
    }

    #[test]
    fn failure_reasons_stay_on_one_line() {
        assert_eq!(one_line("a\nb\r\n"), "a\\nb");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn a_panicking_scenario_is_a_failure() {
        fn panics(_: &Ctx<'_>) -> Result<()> {
            panic!("boom");
        }
        let bins = Bins {
            server: PathBuf::new(),
            client: PathBuf::new(),
        };
        let ctx = Ctx {
            bins: &bins,
            deadline: Instant::now(),
        };
        let error = run_one(panics, &ctx).unwrap_err();
        assert_eq!(error.to_string(), "the scenario panicked: boom");
    }
}
