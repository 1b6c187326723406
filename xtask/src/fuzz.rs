//! `cargo xtask fuzz`: runs each fuzz target of `fuzz/` under libFuzzer for
//! a bounded time, on its corpus (`fuzz/corpus/TARGET`, kept between runs,
//! out of git) and its seeds (`fuzz/seeds/TARGET`, checked in and never
//! written to: libFuzzer adds new inputs to the first directory only). It
//! first runs the fuzz crate's own tests, which check the targets' reference
//! decoder, check the seeds against PROTOCOL.md, and pass every seed through
//! every check.
//!
//! With cargo-fuzz installed, it runs `cargo fuzz`: with AddressSanitizer on
//! a nightly toolchain (`cargo +nightly xtask fuzz`), with `--sanitizer none`
//! on stable, where the `-Z` flag of a sanitizer is refused. Without it, it
//! builds the targets itself on stable Rust: libFuzzer comes from the
//! `libfuzzer-sys` crate, built as an ordinary dependency, and the coverage
//! it feeds on is LLVM's SanitizerCoverage, which stable rustc turns on with
//! the `-C` flags that cargo-fuzz passes with `--sanitizer none`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::process::{cargo, cmd, finish_by};

/// The options of `cargo xtask fuzz`.
#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Seconds each target runs.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) time: u64,
    /// The targets to run, by the names of the files of fuzz/fuzz_targets
    /// [default: all].
    #[arg(value_name = "TARGET", value_parser = target_name)]
    pub(crate) targets: Vec<String>,
}

/// The fuzz crate's manifest and the target directory of its instrumented
/// builds, from the workspace root: its own, even when CARGO_TARGET_DIR names
/// another, so that the coverage flags never touch the main build.
const MANIFEST: &str = "--manifest-path fuzz/Cargo.toml --target-dir fuzz/target";

/// The fuzz crate's tests are built without those flags, in the main target
/// directory (`target`, or CARGO_TARGET_DIR), so that they reuse the
/// dependencies that the main build has compiled: about half of them on a
/// fresh CI machine, where the two builds differ in a few crates' features.
const TEST_MANIFEST: &str = "--manifest-path fuzz/Cargo.toml";

/// libFuzzer's options: inputs of up to 4 KiB (room for many frames, and
/// for frames larger than the server's relay buffer in `server_relay`,
/// while keeping each run fast); an input running over 10 s is a hang, to
/// be saved; and the final statistics in the log.
const LIBFUZZER_OPTIONS: &str = "-max_len=4096 -timeout=10 -print_final_stats=1";

/// How much longer than asked a run may take before it is killed: time for
/// libFuzzer to load its corpus and to finish the input it is on.
const RUN_GRACE: Duration = Duration::from_secs(60);

/// The SanitizerCoverage flags that cargo-fuzz passes with `--sanitizer
/// none`, all stable: edge coverage as inline 8-bit counters with their
/// table of program counters, comparison operands for libFuzzer to aim at,
/// no folding of branches that would hide edges, and `--cfg fuzzing`. Debug
/// assertions, overflow checks and one codegen unit come from
/// `fuzz/Cargo.toml`'s release profile, so that `cargo fuzz` gets them too.
/// On Linux, as cargo-fuzz does, libFuzzer also rewards inputs that make the
/// stack deeper.
const SANCOV_FLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
    -Clink-dead-code --cfg fuzzing";
const LINUX_FLAGS: &str = "-Cllvm-args=-sanitizer-coverage-stack-depth";

/// What builds and runs the targets.
#[derive(Debug)]
enum Engine {
    /// `cargo fuzz`, with AddressSanitizer on nightly, or its flags for
    /// stable: `--sanitizer none`.
    CargoFuzz { flags: &'static str },
    /// The targets built by this task, in this directory.
    Stable { binaries: PathBuf },
}

/// Builds the targets and runs the selected ones for `args.time` seconds
/// each; fails if any failed, once all have run.
pub(crate) fn run(args: &Args) -> Result<()> {
    let all = targets(Path::new("fuzz"))?;
    let selected = if args.targets.is_empty() {
        &all
    } else {
        &args.targets
    };
    let main_target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    cargo(format!("test {TEST_MANIFEST}").split_whitespace())
        .env("CARGO_TARGET_DIR", main_target)
        .run()?;
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rustc = cmd(rustc, ["-vV"]).read()?;
    let installed = cargo(["fuzz", "--version"])
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run()?;
    let engine = if installed.status.success() {
        let flags = if rustc.contains("-nightly") {
            ""
        } else {
            "--sanitizer none"
        };
        cargo(format!("fuzz build {flags}").split_whitespace()).run()?;
        Engine::CargoFuzz { flags }
    } else {
        Engine::Stable {
            binaries: build(&rustc)?,
        }
    };
    let mut failed = Vec::new();
    for target in selected {
        match engine.fuzz(target, args.time) {
            Ok(done) => eprintln!(
                "==> {target}: ok, {} s without a failure: {done}",
                args.time
            ),
            Err(error) => {
                eprintln!("==> {target}: FAILED: {error:#}");
                failed.push(target.as_str());
            }
        }
    }
    ensure!(
        failed.is_empty(),
        "fuzz targets failed: {}",
        failed.join(", ")
    );
    Ok(())
}

/// The name of a fuzz target.
fn target_name(name: &str) -> Result<String, String> {
    let all = targets(&crate::project_root().join("fuzz")).map_err(|error| format!("{error:#}"))?;
    match all.iter().any(|target| target == name) {
        true => Ok(name.to_owned()),
        false => Err(format!(
            "no fuzz target is called so; the targets are: {}",
            all.join(", ")
        )),
    }
}

/// The targets: the files of `fuzz/fuzz_targets`, by name, sorted.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut targets: Vec<String> = files(&dir)
        .iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    targets.sort();
    ensure!(
        !targets.is_empty(),
        "{} holds no fuzz targets",
        dir.display()
    );
    Ok(targets)
}

/// Builds the targets on stable with the coverage flags; returns where the
/// binaries are. The build names the host's target triple, from `rustc -vV`,
/// so that RUSTFLAGS reach the targets but not build scripts or proc macros,
/// which must not be instrumented.
fn build(rustc_version: &str) -> Result<PathBuf> {
    let triple = rustc_version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::trim)
        .with_context(|| format!("`rustc -vV` names no host: {rustc_version:?}"))?;
    let rustflags = rustflags(triple);
    eprintln!("==> RUSTFLAGS: {rustflags}");
    cargo(format!("build --release --bins --target {triple} {MANIFEST}").split_whitespace())
        .env("RUSTFLAGS", rustflags)
        .run()
        .context(
            "building the fuzz targets failed (libfuzzer-sys compiles libFuzzer's C++ \
             sources, so a C++ compiler such as g++ or clang++ must be installed)",
        )?;
    Ok(Path::new("fuzz/target").join(triple).join("release"))
}

/// The RUSTFLAGS of the build: the coverage flags, then any the caller set.
fn rustflags(triple: &str) -> String {
    let linux = if triple.contains("-linux-") {
        LINUX_FLAGS
    } else {
        ""
    };
    let extra = std::env::var("RUSTFLAGS").unwrap_or_default();
    let flags = [SANCOV_FLAGS, linux, &extra].join(" ");
    flags.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Engine {
    /// Runs `target` for `secs` seconds, its output in a log of its own;
    /// returns libFuzzer's last word, how many inputs it ran. A failure names
    /// the inputs libFuzzer saved, how to replay each, and what the log says.
    fn fuzz(&self, target: &str, secs: u64) -> Result<String> {
        let (corpus, seeds) = (
            format!("fuzz/corpus/{target}"),
            format!("fuzz/seeds/{target}"),
        );
        let artifacts = PathBuf::from(format!("fuzz/artifacts/{target}"));
        let log = PathBuf::from(format!("fuzz/target/fuzz-logs/{target}.log"));
        for dir in [
            Path::new(&corpus),
            &artifacts,
            Path::new("fuzz/target/fuzz-logs"),
        ] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let options = format!("-max_total_time={secs} {LIBFUZZER_OPTIONS}");
        let command = match self {
            Engine::CargoFuzz { flags } => cargo(
                format!("fuzz run {target} {corpus} {seeds} {flags} -- {options}")
                    .split_whitespace(),
            ),
            Engine::Stable { binaries } => {
                let args = format!(
                    "{options} -artifact_prefix={}/ {corpus} {seeds}",
                    artifacts.display()
                );
                cmd(binaries.join(target), args.split_whitespace())
            }
        };
        eprintln!("    (its output: {})", log.display());
        let before = files(&artifacts);
        let handle = command
            .stderr_to_stdout()
            .stdout_path(&log)
            .unchecked()
            .start()?;
        let outcome = finish_by(
            handle,
            Instant::now() + Duration::from_secs(secs) + RUN_GRACE,
        );
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let why = match outcome {
            Ok(output) if output.status.success() => {
                let done = text.lines().rfind(|line| line.starts_with("Done "));
                return Ok(done.unwrap_or("no summary in the log").to_owned());
            }
            Ok(output) => format!("it exited with {}", output.status),
            Err(error) => format!("{error:#}"),
        };
        let mut report = vec![why];
        for input in files(&artifacts).difference(&before) {
            report.push(format!("failing input: {}", input.display()));
            report.push(format!("replay it with: {}", self.replay(target, input)));
        }
        report.push(format!("log: {}; the failure, from it:", log.display()));
        report.extend(excerpt(&text).iter().map(|line| format!("  {line}")));
        bail!(report.join("\n    "))
    }

    /// The command that runs `target` on `input` alone.
    fn replay(&self, target: &str, input: &Path) -> String {
        let input = input.display();
        match self {
            Engine::CargoFuzz { flags: "" } => format!("cargo +nightly fuzz run {target} {input}"),
            Engine::CargoFuzz { flags } => format!("cargo fuzz run {target} {input} {flags}"),
            Engine::Stable { binaries } => format!("{} {input}", binaries.join(target).display()),
        }
    }
}

/// The files in `dir`, none if it cannot be read.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    let entries = std::fs::read_dir(dir).into_iter().flatten();
    entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect()
}

/// The lines of a log that say what failed, at most 16: from a panic or a
/// libFuzzer error on, without the stack trace; the last lines of the log
/// otherwise.
fn excerpt(log: &str) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|line| line.contains("panicked at") || line.contains("ERROR: "))
        .unwrap_or(lines.len().saturating_sub(16));
    let failure = lines[start..]
        .iter()
        .take_while(|line| !line.starts_with("stack backtrace:"));
    failure.take(16).copied().collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn parses_options() {
        let parse = |args: &[&str]| {
            Args::try_parse_from(std::iter::once("fuzz").chain(args.iter().copied()))
        };
        let args = parse(&[]).unwrap();
        assert_eq!((args.time, args.targets.len()), (60, 0));
        let args = parse(&["--time", "5", "json_codec"]).unwrap();
        assert_eq!(
            (args.time, &args.targets[..]),
            (5, &["json_codec".to_owned()][..])
        );
        for bad in ["0", "-3", "1.5", "soon"] {
            assert!(parse(&["--time", bad]).is_err(), "{bad}");
        }
        let error = parse(&["json"]).unwrap_err().to_string();
        assert!(
            error.contains("json_codec, proxy_header, server_relay"),
            "{error}"
        );
    }

    #[test]
    fn finds_the_targets_and_their_seeds() {
        let fuzz_dir = crate::project_root().join("fuzz");
        let targets = targets(&fuzz_dir).unwrap();
        assert_eq!(
            targets,
            [
                "frame_decoder",
                "json_codec",
                "proxy_header",
                "server_relay"
            ]
        );
        let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).unwrap();
        for target in &targets {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "no binary {target}"
            );
            assert!(
                !files(&fuzz_dir.join("seeds").join(target)).is_empty(),
                "no seeds for {target}"
            );
        }
    }

    #[test]
    fn passes_the_coverage_flags_cargo_fuzz_passes() {
        let flags = rustflags("x86_64-unknown-linux-gnu");
        for flag in [
            "-Cpasses=sancov-module",
            "-sanitizer-coverage-trace-compares",
            "--cfg fuzzing",
            "stack-depth",
        ] {
            assert!(flags.contains(flag), "{flags}");
        }
        assert!(!rustflags("aarch64-apple-darwin").contains("stack-depth"));
        // Nothing that needs nightly.
        assert!(!flags.contains("-Z"), "{flags}");
        assert!(
            build("rustc 1.95.0\nrelease: 1.95.0\n")
                .unwrap_err()
                .to_string()
                .contains("no host")
        );
    }

    /// The end of a real libFuzzer log after a panic.
    const CRASH_LOG: &str = "\
#820\tNEW    cov: 599 ft: 1598 corp: 91/4091b
thread '<unnamed>' (29339) panicked at src/json_codec.rs:115:5:
assertion `left == right` failed: the value came back different
stack backtrace:
   0: __rustc::rust_begin_unwind
==29339== ERROR: libFuzzer: deadly signal
artifact_prefix='fuzz/artifacts/json_codec/'; Test unit written to fuzz/artifacts/json_codec/crash-1d68
stat::number_of_executed_units: 821
";

    #[test]
    fn a_failure_shows_the_panic_and_how_to_replay_the_input() {
        let excerpt = excerpt(CRASH_LOG);
        assert_eq!(excerpt.len(), 2, "{excerpt:?}");
        assert!(excerpt[0].contains("panicked at src/json_codec.rs"));
        assert_eq!(super::excerpt("a\nb\n"), ["a", "b"]);
        let input = Path::new("fuzz/artifacts/json_codec/crash-1d68");
        let stable = Engine::Stable {
            binaries: PathBuf::from("fuzz/target/x/release"),
        };
        let replay = stable.replay("json_codec", input);
        assert_eq!(
            replay,
            "fuzz/target/x/release/json_codec fuzz/artifacts/json_codec/crash-1d68"
        );
        let stable_cargo_fuzz = Engine::CargoFuzz {
            flags: "--sanitizer none",
        };
        let replay = stable_cargo_fuzz.replay("json_codec", input);
        assert_eq!(
            replay,
            "cargo fuzz run json_codec fuzz/artifacts/json_codec/crash-1d68 --sanitizer none"
        );
        let replay = Engine::CargoFuzz { flags: "" }.replay("json_codec", input);
        assert_eq!(
            replay,
            "cargo +nightly fuzz run json_codec fuzz/artifacts/json_codec/crash-1d68"
        );
    }
}
