//! `cargo xtask ci`: every check CI runs, in order, stopping at the first
//! failure.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{bench, e2e, fuzz};

/// One cargo invocation of the CI run.
#[derive(Debug)]
struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// The cargo steps, cheapest first so that a formatting slip fails in
/// seconds rather than after a full build. The e2e suite and a short fuzzing
/// run follow them.
///
/// The fuzz crate is a workspace of its own (so that the main build never
/// compiles libFuzzer), which `--workspace` does not reach: it gets its own
/// format and lint steps.
const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        args: &["fmt", "--all", "--", "--check"],
        env: &[],
    },
    Step {
        name: "fuzz-fmt",
        args: &["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"],
        env: &[],
    },
    Step {
        name: "clippy",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        name: "fuzz-clippy",
        args: &[
            "clippy",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--target-dir",
            "fuzz/target",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        // Doctests are part of `cargo test` for library crates. The e2e
        // step runs the end-to-end tests, once.
        name: "test",
        args: &["test", "--workspace", "--exclude", "echo-e2e"],
        env: &[],
    },
    Step {
        name: "doc",
        args: &["doc", "--workspace", "--no-deps"],
        env: &[("RUSTDOCFLAGS", "-D warnings")],
    },
];

/// How long each fuzz target runs in CI: a smoke run, which replays the
/// seeds and the corpus and explores a little, not a search. Longer runs are
/// `cargo xtask fuzz`'s job.
const FUZZ_SMOKE_TIME: Duration = Duration::from_secs(5);

/// The bench smoke run: every scenario, both traffics and the reference,
/// briefly, on the dev binaries that the e2e suite has just built. It checks
/// that `cargo xtask bench` works end to end (servers start, every echo is
/// verified, reports parse); its figures mean nothing.
const BENCH_SMOKE_ARGS: &[&str] = &[
    "--dev",
    "--reference",
    "--duration",
    "0.3",
    "--warmup",
    "0.1",
    "--rounds",
    "1",
    "--idle-connections",
    "500",
];

/// Runs the CI steps, then the e2e suite, the bench smoke run and the fuzz
/// smoke run.
pub(crate) fn run(root: &Path) -> Result<()> {
    let total = STEPS.len() + 3;
    for (index, step) in STEPS.iter().enumerate() {
        let mut command = crate::cargo(root);
        command.args(step.args).envs(step.env.iter().copied());
        header(index + 1, total, step.name, &crate::show_command(&command));
        crate::run_checked(&mut command)
            .with_context(|| format!("CI step `{}` failed", step.name))?;
    }

    header(total - 2, total, "e2e", "cargo xtask e2e");
    e2e::run(root, false, &[]).context("CI step `e2e` failed")?;

    header(
        total - 1,
        total,
        "bench-smoke",
        &format!("cargo xtask bench {}", BENCH_SMOKE_ARGS.join(" ")),
    );
    let options =
        bench::Options::parse(BENCH_SMOKE_ARGS.iter().map(|&arg| arg.to_owned()).collect())
            .map_err(anyhow::Error::msg)?;
    bench::run(root, &options).context("CI step `bench-smoke` failed")?;

    let secs = FUZZ_SMOKE_TIME.as_secs();
    header(
        total,
        total,
        "fuzz-smoke",
        &format!("cargo xtask fuzz --time {secs}"),
    );
    let options = fuzz::Options {
        time: FUZZ_SMOKE_TIME,
        targets: Vec::new(),
    };
    let failed = fuzz::run(root, &options).context("CI step `fuzz-smoke` failed")?;
    if failed > 0 {
        bail!("CI step `fuzz-smoke` failed: {failed} fuzz target(s) failed");
    }
    eprintln!("==> CI passed: all {total} steps succeeded");
    Ok(())
}

fn header(number: usize, total: usize, name: &str, command: &str) {
    eprintln!("==> [{number}/{total}] {name}: {command}");
}
