//! `cargo xtask ci`: every check CI runs, in order, stopping at the first
//! failure.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::e2e;

/// One cargo invocation of the CI run.
#[derive(Debug)]
struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// The cargo steps, cheapest first so that a formatting slip fails in
/// seconds rather than after a full build. The e2e suite runs after them.
const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        args: &["fmt", "--all", "--", "--check"],
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
        // Doctests are part of `cargo test` for library crates.
        name: "test",
        args: &["test", "--workspace"],
        env: &[],
    },
    Step {
        name: "doc",
        args: &["doc", "--workspace", "--no-deps"],
        env: &[("RUSTDOCFLAGS", "-D warnings")],
    },
];

/// Runs the CI steps, then the e2e suite.
pub(crate) fn run(root: &Path) -> Result<()> {
    let total = STEPS.len() + 1;
    for (index, step) in STEPS.iter().enumerate() {
        let mut command = crate::cargo(root);
        command.args(step.args).envs(step.env.iter().copied());
        header(index + 1, total, step.name, &crate::show_command(&command));
        crate::run_checked(&mut command)
            .with_context(|| format!("CI step `{}` failed", step.name))?;
    }

    header(total, total, "e2e", "cargo xtask e2e");
    let summary = e2e::run(root, &e2e::Options::default()).context("CI step `e2e` failed")?;
    if summary.failed > 0 {
        bail!(
            "CI step `e2e` failed: {} scenario(s) failed",
            summary.failed
        );
    }
    eprintln!("==> CI passed: all {total} steps succeeded");
    Ok(())
}

fn header(number: usize, total: usize, name: &str, command: &str) {
    eprintln!("==> [{number}/{total}] {name}: {command}");
}
