//! `cargo xtask ci`: every check CI runs, in order, stopping at the first
//! failure.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use crate::{bench, e2e, fleet, fuzz, process};

/// The cargo steps, cheapest first so that a formatting slip fails in
/// seconds rather than after a full build: a name and the command as typed,
/// after any `NAME=VALUE` words for its environment. The e2e tests, the
/// bench smoke run and the fuzz smoke run follow them.
///
/// The fuzz crate is a workspace of its own (so that the main build never
/// compiles libFuzzer), which `--workspace` does not reach: it gets its own
/// format and lint steps. Its lints check in the main target directory, to
/// reuse what the main lints checked; its release profile and debug setting
/// are its own manifest's, so a test keeps the debug setting the same. The
/// lints run `--locked`, so that a lock file that no longer matches its
/// manifests fails CI rather than being rewritten on the CI machine. The
/// libraries build and are tested without their default features too, as a
/// user who needs only their core gets them.
/// `cargo package` packs the published crates together, so that each one's
/// path dependencies on the others resolve to the packages being made, and
/// verifies that each builds from its package. A package carries no profile
/// (the workspace's are in the root manifest), so its build is given the
/// workspace's debug setting: it then reuses the dependencies that the steps
/// before it built, rather than building them all again.
const STEPS: &[(&str, &str)] = &[
    ("fmt", "cargo fmt --all -- --check"),
    (
        "fuzz-fmt",
        "cargo fmt --manifest-path fuzz/Cargo.toml -- --check",
    ),
    (
        "clippy",
        "cargo clippy --locked --workspace --all-targets -- -D warnings",
    ),
    (
        "fuzz-clippy",
        "cargo clippy --locked --manifest-path fuzz/Cargo.toml --target-dir target --all-targets -- -D warnings",
    ),
    // Doctests are part of `cargo test` for library crates.
    // The e2e crate runs in its own step below, against binaries built first.
    ("test", "cargo test --workspace --exclude echo-e2e"),
    (
        "proto-core-build",
        "cargo build -p echo-proto --no-default-features",
    ),
    (
        "proto-core-test",
        "cargo test -p echo-proto --no-default-features",
    ),
    (
        "client-lib-build",
        "cargo build -p echo-client --no-default-features --lib",
    ),
    (
        "client-lib-test",
        "cargo test -p echo-client --no-default-features",
    ),
    (
        "doc",
        "RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps",
    ),
    (
        "package",
        "CARGO_PROFILE_DEV_DEBUG=line-tables-only cargo package --allow-dirty -p echo-proto -p echo-server -p echo-client",
    ),
];

/// The bench smoke run: every scenario, both modes and the reference,
/// briefly, on the dev binaries that the e2e tests have just built. It
/// checks that `cargo xtask bench` works end to end (servers start, every
/// echo is verified, reports parse); its figures mean nothing.
const BENCH_SMOKE: &[&str] = &[
    "bench",
    "--dev",
    "--reference",
    "--duration=0.3",
    "--warmup=0.1",
    "--rounds=1",
    "--idle-connections=500",
];

/// The fleet's short run: every scenario with 1-second benches, on the dev
/// binaries. It needs root, network namespaces and HAProxy, and prints
/// SKIPPED without them.
const FLEET_SMOKE: &[&str] = &["fleet", "--quick"];

/// The fuzz smoke run: each target for 5 s, which replays the seeds and the
/// corpus and explores a little; longer runs are `cargo xtask fuzz`'s job.
const FUZZ_SMOKE: &[&str] = &["fuzz", "--time=5"];

/// Runs the cargo steps, then the e2e tests, the fleet's short run, the
/// bench smoke run and the fuzz smoke run, timing each: the summary at the
/// end says where the run's minutes went.
pub(crate) fn run(root: &Path) -> Result<()> {
    let total = STEPS.len() + 4;
    let mut timings = Vec::with_capacity(total);
    let mut step = |name: &str, line: &str, work: &mut dyn FnMut() -> Result<()>| {
        eprintln!("==> [{}/{total}] {name}: {line}", timings.len() + 1);
        let started = Instant::now();
        work().with_context(|| format!("CI step `{name}` failed"))?;
        let took = started.elapsed();
        eprintln!("==> {name}: ok in {}", minutes(took));
        timings.push((name.to_owned(), took));
        anyhow::Ok(())
    };
    for &(name, line) in STEPS {
        let (env, args) =
            split(line).with_context(|| format!("CI step `{name}` is not a cargo command"))?;
        step(name, line, &mut || {
            let command = env.iter().fold(
                process::cargo(args.iter().copied()),
                |command, (key, value)| command.env(key, value),
            );
            command.run()?;
            Ok(())
        })?;
    }
    let task = |args: &[&str]| format!("cargo xtask {}", args.join(" "));
    step("e2e", &task(&["e2e"]), &mut || e2e::run(root, false, &[]))?;
    step("fleet", &task(FLEET_SMOKE), &mut || {
        fleet::run(&fleet::Args::try_parse_from(FLEET_SMOKE)?)
    })?;
    step("bench-smoke", &task(BENCH_SMOKE), &mut || {
        bench::run(&bench::Args::try_parse_from(BENCH_SMOKE)?)
    })?;
    step("fuzz-smoke", &task(FUZZ_SMOKE), &mut || {
        fuzz::run(&fuzz::Args::try_parse_from(FUZZ_SMOKE)?)
    })?;
    let all: Duration = timings.iter().map(|(_, took)| *took).sum();
    eprintln!(
        "==> CI passed: all {total} steps succeeded in {}",
        minutes(all)
    );
    for (name, took) in &timings {
        eprintln!("    {name:<18} {:>8}", minutes(*took));
    }
    Ok(())
}

/// A step's time as `1m 05s`, or `4.2s` under a minute.
fn minutes(took: Duration) -> String {
    let seconds = took.as_secs();
    if seconds < 60 {
        format!("{:.1}s", took.as_secs_f64())
    } else {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    }
}

/// A step's environment, its leading `NAME=VALUE` words.
type Env<'a> = Vec<(&'a str, &'a str)>;

/// A step's environment and cargo's arguments, the words after `cargo`;
/// `None` if it is not a cargo command.
fn split(line: &str) -> Option<(Env<'_>, Vec<&str>)> {
    let mut words = line.split_whitespace().peekable();
    let env =
        std::iter::from_fn(|| words.next_if(|word| word.contains('='))?.split_once('=')).collect();
    words.next().filter(|&word| word == "cargo")?;
    Some((env, words.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoke_runs_parse_and_the_steps_are_named_once() {
        assert!(bench::Args::try_parse_from(BENCH_SMOKE).is_ok());
        assert!(fuzz::Args::try_parse_from(FUZZ_SMOKE).is_ok());
        assert!(fleet::Args::try_parse_from(FLEET_SMOKE).is_ok());
        for (name, line) in STEPS {
            assert!(split(line).is_some(), "{name}");
        }
        let (env, args) = split("RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps").unwrap();
        assert_eq!(
            (env, args),
            (
                vec![("RUSTDOCFLAGS", "-Dwarnings")],
                vec!["doc", "--no-deps"]
            )
        );
        assert_eq!(split("make all"), None);
        // The package step's debug setting is the workspace's own.
        let (_, package) = STEPS.iter().find(|(name, _)| *name == "package").unwrap();
        let (env, _) = split(package).unwrap();
        let (_, debug) = env
            .iter()
            .find(|(key, _)| *key == "CARGO_PROFILE_DEV_DEBUG")
            .unwrap();
        // So is the fuzz crate's, whose tests and lints share the main
        // target directory.
        for (manifest, text) in [
            ("Cargo.toml", include_str!("../../Cargo.toml")),
            ("fuzz/Cargo.toml", include_str!("../../fuzz/Cargo.toml")),
        ] {
            assert!(
                text.contains(&format!("[profile.dev]\ndebug = \"{debug}\"\n")),
                "{manifest}'s [profile.dev] debug is not {debug}"
            );
        }
        assert_eq!(minutes(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(minutes(Duration::from_secs(65)), "1m 05s");
        let mut names: Vec<&str> = STEPS.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), STEPS.len());
    }
}
