//! `cargo xtask fuzz`: builds the fuzz targets of `fuzz/` with the stable
//! toolchain and runs each under libFuzzer for a bounded time.
//!
//! cargo-fuzz needs nightly for its default sanitizer, but libFuzzer itself
//! does not: its engine comes from the `libfuzzer-sys` crate, built as an
//! ordinary dependency, and the coverage instrumentation it feeds on is
//! LLVM's SanitizerCoverage, which stable rustc turns on with `-C passes` and
//! `-C llvm-args`. So this task passes the same flags cargo-fuzz passes with
//! `--sanitizer none`, builds through cargo, and runs the binaries itself.
//! It installs nothing: everything lands in `fuzz/target`. People with a
//! nightly toolchain and cargo-fuzz can still run `cargo fuzz run TARGET` on
//! the same crate.
//!
//! Before fuzzing it runs the fuzz crate's own tests, which check the
//! targets' reference decoder, check that the seeds match PROTOCOL.md, and
//! pass every seed through every check.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where the fuzz crate is built, from the workspace root.
const TARGET_DIR: &str = "fuzz/target";

/// How long each target runs unless `--time` says otherwise.
const DEFAULT_TIME: Duration = Duration::from_secs(60);

/// The longest input libFuzzer makes. A few KiB is room for many frames and
/// for frames larger than the server's relay buffer in the `server_relay`
/// target, while keeping each run fast.
const MAX_LEN: usize = 4096;

/// How long one input may run before libFuzzer calls it a hang and saves it.
const INPUT_TIMEOUT_SECS: u64 = 10;

/// How much longer than asked a run may take before it is killed: time for
/// libFuzzer to load its corpus and to finish the input it is on.
const RUN_GRACE: Duration = Duration::from_secs(60);

/// How often a running fuzzer is checked on.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The SanitizerCoverage flags that cargo-fuzz passes (with `--sanitizer
/// none`), all stable codegen options: edge coverage as inline 8-bit
/// counters with their table of program counters, comparison operands for
/// libFuzzer to aim at, no folding of branches that would hide edges, and
/// `--cfg fuzzing` for code that wants to know. Debug assertions, overflow
/// checks and one codegen unit come from `fuzz/Cargo.toml`'s release
/// profile instead, so that `cargo fuzz` gets them too.
const SANCOV_FLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "-Clink-dead-code",
    "--cfg",
    "fuzzing",
];

/// Added on Linux, as cargo-fuzz does: libFuzzer also rewards inputs that
/// make the stack deeper.
const LINUX_FLAGS: &[&str] = &["-Cllvm-args=-sanitizer-coverage-stack-depth"];

/// The options of `cargo xtask fuzz`.
#[derive(Debug, PartialEq)]
pub(crate) struct Options {
    /// How long each target runs.
    pub(crate) time: Duration,
    /// The targets to run; all of them if empty.
    pub(crate) targets: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time: DEFAULT_TIME,
            targets: Vec::new(),
        }
    }
}

impl Options {
    /// Parses the arguments that follow `fuzz`.
    pub(crate) fn parse(args: Vec<String>) -> Result<Self, String> {
        let mut options = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let time = match arg.strip_prefix("--time") {
                Some("") => Some(args.next().ok_or("`--time` needs a number of seconds")?),
                Some(value) if value.starts_with('=') => Some(value[1..].to_owned()),
                _ => None,
            };
            if let Some(time) = time {
                let secs: u64 = time.parse().ok().filter(|&secs| secs > 0).ok_or_else(|| {
                    format!("`--time` takes a whole number of seconds above 0, got `{time}`")
                })?;
                options.time = Duration::from_secs(secs);
            } else if arg.starts_with('-') {
                return Err(format!("unknown option `{arg}` for `fuzz`"));
            } else {
                options.targets.push(arg);
            }
        }
        Ok(options)
    }
}

/// How one target's run went.
#[derive(Debug)]
struct Run {
    target: String,
    stats: Stats,
    /// The inputs in its corpus directory afterwards.
    corpus: usize,
    seeds: usize,
    outcome: Outcome,
    /// Where libFuzzer's output went, and what it said.
    log: PathBuf,
    log_text: String,
}

/// The statistics libFuzzer prints at the end of a run (`-print_final_stats`).
#[derive(Debug, Default, PartialEq)]
struct Stats {
    executions: Option<u64>,
    per_second: Option<u64>,
    new_units: Option<u64>,
    peak_rss_mb: Option<u64>,
}

#[derive(Debug)]
enum Outcome {
    Passed,
    /// libFuzzer stopped on a failing input, which it saved.
    Crashed {
        status: ExitStatus,
        artifact: Option<PathBuf>,
    },
    /// The run outlived its time and was killed.
    Killed,
}

/// Builds the targets and runs the selected ones; returns how many failed.
pub(crate) fn run(root: &Path, options: &Options) -> Result<usize> {
    let fuzz_dir = root.join("fuzz");
    let all = targets(&fuzz_dir)?;
    let selected: Vec<String> = if options.targets.is_empty() {
        all.clone()
    } else {
        for target in &options.targets {
            if !all.contains(target) {
                bail!(
                    "no fuzz target is called `{target}`; the targets are: {}",
                    all.join(", ")
                );
            }
        }
        options.targets.clone()
    };

    // The fuzz crate's own target directory, even when CARGO_TARGET_DIR
    // names another: its builds never mix with the main ones, and the
    // binaries are where this task looks for them.
    let manifest = [
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--target-dir",
        TARGET_DIR,
    ];
    let mut tests = crate::cargo(root);
    tests.arg("test").args(manifest);
    eprintln!(
        "==> {}  (the checks' own tests: the reference decoder, the seeds against PROTOCOL.md, every seed through every check)",
        crate::show_command(&tests)
    );
    crate::run_checked(&mut tests)?;

    let triple = host_triple()?;
    let rustflags = rustflags(&triple);
    let mut build = crate::cargo(root);
    build
        .args(["build", "--release", "--bins"])
        .args(manifest)
        .args(["--target", &triple])
        .env("RUSTFLAGS", &rustflags);
    eprintln!(
        "==> RUSTFLAGS=\"{rustflags}\" {}",
        crate::show_command(&build)
    );
    crate::run_checked(&mut build).context(
        "building the fuzz targets failed (libfuzzer-sys compiles libFuzzer's C++ \
         sources, so a C++ compiler such as g++ or clang++ must be installed)",
    )?;

    let engine = match libfuzzer_version(&fuzz_dir) {
        Some(version) => format!("libFuzzer from libfuzzer-sys {version}"),
        None => "libFuzzer from libfuzzer-sys".to_owned(),
    };
    eprintln!(
        "==> fuzzing {} for {} s each with {engine}, built by stable rustc with the \
         SanitizerCoverage flags above (no sanitizer); inputs of up to {MAX_LEN} bytes",
        selected.join(", "),
        options.time.as_secs()
    );

    let binaries = Path::new(TARGET_DIR).join(&triple).join("release");
    let mut runs = Vec::new();
    for target in &selected {
        let run = fuzz_one(root, &binaries, target, options.time)?;
        eprintln!("{}", run.report_line());
        if let Some(details) = run.failure_details(&binaries) {
            eprintln!("{details}");
        }
        runs.push(run);
    }

    eprintln!(
        "==> fuzzing summary ({} s per target):",
        options.time.as_secs()
    );
    for run in &runs {
        eprintln!("    {}", run.report_line());
    }
    let failed = runs
        .iter()
        .filter(|run| !matches!(run.outcome, Outcome::Passed))
        .count();
    Ok(failed)
}

/// The targets: the files of `fuzz/fuzz_targets`, by name, sorted.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            if let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) {
                targets.push(stem.to_owned());
            }
        }
    }
    targets.sort();
    if targets.is_empty() {
        bail!("{} holds no fuzz targets", dir.display());
    }
    Ok(targets)
}

/// The host's target triple, from `rustc -vV`. The build names it
/// explicitly so that RUSTFLAGS reach the targets but not build scripts or
/// proc macros, which must not be instrumented.
fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .arg("-vV")
        .output()
        .context("could not run `rustc -vV` to find the host's target triple")?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_host(&text).with_context(|| format!("`rustc -vV` names no host: {text:?}"))
}

fn parse_host(rustc_version: &str) -> Option<String> {
    rustc_version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|host| host.trim().to_owned())
}

/// The RUSTFLAGS of the build: the coverage flags, then any the caller set.
fn rustflags(triple: &str) -> String {
    let mut flags: Vec<&str> = SANCOV_FLAGS.to_vec();
    if triple.contains("-linux-") {
        flags.extend_from_slice(LINUX_FLAGS);
    }
    let mut flags = flags.join(" ");
    if let Some(extra) = std::env::var_os("RUSTFLAGS") {
        flags.push(' ');
        flags.push_str(&extra.to_string_lossy());
    }
    flags
}

/// The version of libfuzzer-sys that `fuzz/Cargo.lock` pins.
fn libfuzzer_version(fuzz_dir: &Path) -> Option<String> {
    let lock = std::fs::read_to_string(fuzz_dir.join("Cargo.lock")).ok()?;
    locked_version(&lock, "libfuzzer-sys")
}

fn locked_version(lock: &str, package: &str) -> Option<String> {
    let mut lines = lock.lines();
    lines.find(|line| *line == format!("name = \"{package}\""))?;
    let version = lines
        .next()?
        .strip_prefix("version = \"")?
        .strip_suffix('"')?;
    Some(version.to_owned())
}

/// Runs one target for `time`, with its corpus in `fuzz/corpus/TARGET`
/// (kept between runs, out of git) and its seeds from `fuzz/seeds/TARGET`
/// (checked in, never written to: libFuzzer adds new inputs to the first
/// directory only).
fn fuzz_one(root: &Path, binaries: &Path, target: &str, time: Duration) -> Result<Run> {
    let corpus = Path::new("fuzz/corpus").join(target);
    let seeds = Path::new("fuzz/seeds").join(target);
    let artifacts = Path::new("fuzz/artifacts").join(target);
    let logs = Path::new(TARGET_DIR).join("fuzz-logs");
    for dir in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(root.join(dir))
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = File::create(root.join(&log_path))
        .with_context(|| format!("cannot create {}", log_path.display()))?;

    let mut command = Command::new(root.join(binaries).join(target));
    command
        .current_dir(root)
        .arg(format!("-max_total_time={}", time.as_secs()))
        .arg(format!("-max_len={MAX_LEN}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .arg(&corpus)
        .arg(&seeds)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    eprintln!(
        "==> {target}: {}  (log: {})",
        show_path_command(binaries, &command),
        log_path.display()
    );

    let mut child = command
        .spawn()
        .with_context(|| format!("could not start the `{target}` fuzzer"))?;
    let deadline = Instant::now() + time + RUN_GRACE;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            break None;
        }
        thread::sleep(POLL_INTERVAL);
    };

    let log_text = std::fs::read_to_string(root.join(&log_path)).unwrap_or_default();
    let outcome = match status {
        Some(status) if status.success() => Outcome::Passed,
        Some(status) => Outcome::Crashed {
            status,
            artifact: artifact_path(&log_text),
        },
        None => Outcome::Killed,
    };
    Ok(Run {
        target: target.to_owned(),
        stats: Stats::parse(&log_text),
        corpus: count_files(&root.join(&corpus)),
        seeds: count_files(&root.join(&seeds)),
        outcome,
        log: log_path,
        log_text,
    })
}

/// The command as a person would type it from the workspace root.
fn show_path_command(binaries: &Path, command: &Command) -> String {
    let program = Path::new(command.get_program());
    let shown = match program.file_name() {
        Some(name) => binaries.join(name),
        None => program.to_path_buf(),
    };
    std::iter::once(shown.display().to_string())
        .chain(
            command
                .get_args()
                .map(|arg| arg.to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ")
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.filter_map(Result::ok).count())
}

/// The input libFuzzer saved, from its `Test unit written to PATH` line.
fn artifact_path(log: &str) -> Option<PathBuf> {
    log.lines()
        .find_map(|line| line.split_once("Test unit written to "))
        .map(|(_, path)| PathBuf::from(path.trim()))
}

impl Stats {
    /// Reads the `stat::NAME: VALUE` lines of a libFuzzer log.
    fn parse(log: &str) -> Self {
        let stat = |name: &str| {
            log.lines().find_map(|line| {
                line.strip_prefix("stat::")?
                    .strip_prefix(name)?
                    .strip_prefix(':')?
                    .trim()
                    .parse()
                    .ok()
            })
        };
        Stats {
            executions: stat("number_of_executed_units"),
            per_second: stat("average_exec_per_sec"),
            new_units: stat("new_units_added"),
            peak_rss_mb: stat("peak_rss_mb"),
        }
    }
}

/// A number, or `?` when libFuzzer did not print it.
struct Maybe(Option<u64>);

impl fmt::Display for Maybe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("?"),
        }
    }
}

impl Run {
    fn report_line(&self) -> String {
        let verdict = match &self.outcome {
            Outcome::Passed => "ok".to_owned(),
            Outcome::Crashed { status, .. } => {
                format!("FAILED, libFuzzer found a failing input ({status})")
            }
            Outcome::Killed => "FAILED, it overran its time and was killed".to_owned(),
        };
        format!(
            "{}: {verdict}: {} executions ({}/s), {} inputs added to the corpus, which now holds {} files plus {} seeds, peak RSS {} MiB",
            self.target,
            Maybe(self.stats.executions),
            Maybe(self.stats.per_second),
            Maybe(self.stats.new_units),
            self.corpus,
            self.seeds,
            Maybe(self.stats.peak_rss_mb),
        )
    }

    /// What a person needs to act on a failure: the saved input, how to
    /// replay it, and the failure's own words from the log.
    fn failure_details(&self, binaries: &Path) -> Option<String> {
        let mut details = Vec::new();
        match &self.outcome {
            Outcome::Passed => return None,
            Outcome::Crashed {
                artifact: Some(artifact),
                ..
            } => {
                details.push(format!("    failing input: {}", artifact.display()));
                details.push(format!(
                    "    reproduce:     {} {}",
                    binaries.join(&self.target).display(),
                    artifact.display()
                ));
                details.push(format!(
                    "    or, with nightly and cargo-fuzz: cargo fuzz run {} {}",
                    self.target,
                    artifact.display()
                ));
            }
            Outcome::Crashed { artifact: None, .. } | Outcome::Killed => {}
        }
        details.push(format!("    log: {}", self.log.display()));
        let excerpt = failure_excerpt(&self.log_text);
        if !excerpt.is_empty() {
            details.push("    the failure, from the log:".to_owned());
            details.extend(excerpt.iter().map(|line| format!("      {line}")));
        }
        Some(details.join("\n"))
    }
}

/// How many lines of the log around a failure are shown.
const EXCERPT_LINES: usize = 12;

/// The lines of a log that say what failed: from a panic or a libFuzzer
/// error on, without the stack trace; the last lines of the log otherwise.
fn failure_excerpt(log: &str) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|line| line.contains("panicked at") || line.contains("ERROR: libFuzzer"));
    match start {
        Some(start) => lines[start..]
            .iter()
            .take_while(|line| !line.starts_with("stack backtrace:"))
            .take(EXCERPT_LINES)
            .copied()
            .collect(),
        None => lines[lines.len().saturating_sub(EXCERPT_LINES)..].to_vec(),
    }
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
        assert_eq!(Options::default().time, Duration::from_secs(60));
        let options = Options::parse(strings(&["--time", "5", "json_codec"])).unwrap();
        assert_eq!(options.time, Duration::from_secs(5));
        assert_eq!(options.targets, strings(&["json_codec"]));
        let options = Options::parse(strings(&["--time=7"])).unwrap();
        assert_eq!(options.time, Duration::from_secs(7));
    }

    #[test]
    fn rejects_bad_options_with_a_message_naming_them() {
        let error = Options::parse(strings(&["--time"])).unwrap_err();
        assert!(error.contains("needs a number"), "{error}");
        for bad in ["0", "-3", "1.5", "soon"] {
            let error = Options::parse(strings(&["--time", bad])).unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
        let error = Options::parse(strings(&["--timeout", "5"])).unwrap_err();
        assert!(error.contains("--timeout"), "{error}");
    }

    #[test]
    fn finds_the_targets_and_their_seeds() {
        let fuzz_dir = crate::workspace_root().unwrap().join("fuzz");
        let targets = targets(&fuzz_dir).unwrap();
        assert_eq!(targets, ["frame_decoder", "json_codec", "server_relay"]);
        let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).unwrap();
        for target in &targets {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "fuzz/Cargo.toml declares no binary {target}"
            );
            assert!(
                count_files(&fuzz_dir.join("seeds").join(target)) > 0,
                "fuzz/seeds/{target} is empty"
            );
        }
    }

    #[test]
    fn reads_the_host_triple_and_locked_versions() {
        let version =
            "rustc 1.95.0\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n";
        assert_eq!(
            parse_host(version).as_deref(),
            Some("x86_64-unknown-linux-gnu")
        );
        assert_eq!(parse_host("rustc 1.95.0\n"), None);
        let lock = "[[package]]\nname = \"libfuzzer-sys\"\nversion = \"0.4.13\"\n";
        assert_eq!(
            locked_version(lock, "libfuzzer-sys").as_deref(),
            Some("0.4.13")
        );
        assert_eq!(locked_version(lock, "libfuzzer"), None);
        assert!(host_triple().is_ok());
    }

    #[test]
    fn passes_the_coverage_flags_cargo_fuzz_passes() {
        let flags = rustflags("x86_64-unknown-linux-gnu");
        for flag in [
            "-Cpasses=sancov-module",
            "-sanitizer-coverage-inline-8bit-counters",
            "-sanitizer-coverage-trace-compares",
            "--cfg fuzzing",
            "-sanitizer-coverage-stack-depth",
        ] {
            assert!(flags.contains(flag), "{flags}");
        }
        assert!(!rustflags("aarch64-apple-darwin").contains("stack-depth"));
        // Nothing that needs nightly.
        assert!(!flags.contains("-Z"), "{flags}");
    }

    /// The end of a real libFuzzer log after a panic.
    const CRASH_LOG: &str = "\
#820\tNEW    cov: 599 ft: 1598 corp: 91/4091b
thread '<unnamed>' (29339) panicked at src/json_codec.rs:115:5:
assertion `left == right` failed: the value came back different
  left: Some(Number(6.341924377344583e+180))
 right: Some(Number(6.341924377344584e+180))
stack backtrace:
   0: __rustc::rust_begin_unwind
==29339== ERROR: libFuzzer: deadly signal
artifact_prefix='fuzz/artifacts/json_codec/'; Test unit written to fuzz/artifacts/json_codec/crash-1d68
Base64: RlVaWik=
stat::number_of_executed_units: 821
stat::average_exec_per_sec:     0
stat::new_units_added:          75
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              71
";

    #[test]
    fn reads_a_crash_log() {
        assert_eq!(
            Stats::parse(CRASH_LOG),
            Stats {
                executions: Some(821),
                per_second: Some(0),
                new_units: Some(75),
                peak_rss_mb: Some(71),
            }
        );
        assert_eq!(
            artifact_path(CRASH_LOG),
            Some(PathBuf::from("fuzz/artifacts/json_codec/crash-1d68"))
        );
        let excerpt = failure_excerpt(CRASH_LOG);
        assert_eq!(excerpt.len(), 4, "{excerpt:?}");
        assert!(excerpt[0].contains("panicked at src/json_codec.rs"));
        assert_eq!(Stats::parse("no stats"), Stats::default());
        assert_eq!(artifact_path("no artifact"), None);
    }

    #[test]
    fn reports_a_failure_with_its_input_and_how_to_replay_it() {
        let run = Run {
            target: "json_codec".to_owned(),
            stats: Stats::parse(CRASH_LOG),
            corpus: 91,
            seeds: 29,
            outcome: Outcome::Crashed {
                status: std::process::Command::new("false").status().unwrap(),
                artifact: artifact_path(CRASH_LOG),
            },
            log: PathBuf::from("fuzz/target/fuzz-logs/json_codec.log"),
            log_text: CRASH_LOG.to_owned(),
        };
        let line = run.report_line();
        assert!(line.starts_with("json_codec: FAILED"), "{line}");
        assert!(line.contains("821 executions"), "{line}");
        let binaries = Path::new("fuzz/target/x86_64-unknown-linux-gnu/release");
        let details = run.failure_details(binaries).unwrap();
        assert!(
            details.contains(
                "fuzz/target/x86_64-unknown-linux-gnu/release/json_codec fuzz/artifacts/json_codec/crash-1d68"
            ),
            "{details}"
        );
        assert!(details.contains("cargo fuzz run json_codec"), "{details}");
        assert!(
            details.contains("the value came back different"),
            "{details}"
        );
    }
}
