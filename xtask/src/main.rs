//! Project automation in the cargo-xtask style: `cargo xtask TASK`, with
//! `cargo xtask --help` for the tasks and `cargo xtask TASK --help` for
//! their flags.
//!
//! Each task lives in a module of its own and is independent of the others;
//! `ci` runs the others through their entry points. Every command runs
//! through [`process::cmd`], from the workspace root wherever xtask is
//! started.
#![forbid(unsafe_code)]

mod bench;
mod ci;
mod client;
mod e2e;
mod fleet;
mod fuzz;
mod process;
mod soak;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Project automation for the echo workspace.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Every check CI runs, stopping at the first failure: formatting,
    /// clippy, tests, docs, the feature sets, packaging, the e2e tests, the
    /// fleet's short run, a bench smoke run and a fuzz smoke run.
    Ci,
    /// Build echo-server and echo-client, then run the end-to-end tests
    /// against the real binaries.
    E2e {
        /// Build and test the release profile [default: the dev profile].
        #[arg(long)]
        release: bool,
        /// Run only the tests whose name contains one of these [default: all].
        #[arg(value_name = "FILTER")]
        filters: Vec<String>,
    },
    /// Run each fuzz target for a bounded time on its corpus and seeds
    /// (through cargo-fuzz when it is installed, else on stable Rust);
    /// fails on any crash, naming the input to replay.
    Fuzz(fuzz::Args),
    /// Run the release server under a long mixed load with churn and
    /// hostile clients, sampling its memory and descriptors; fails on steady
    /// growth, a wrong echo, or a server that stopped serving.
    Soak(soak::Args),
    /// Measure the release echo-server pinned to one core with echo-client
    /// pinned to another, beside a C epoll reference if asked, and judge the
    /// performance targets.
    Bench(bench::Args),
    /// As root: three echo-servers behind HAProxy on a network of namespaces
    /// of its own, with two load hosts; balance, a crash, a rolling restart,
    /// a lossy link and a slow backend, and two hosts' reports merged, each
    /// with its figures and checks. Skipped, saying why, where it cannot run.
    Fleet(fleet::Args),
}

fn main() -> ExitCode {
    // Usage errors exit 2, `--help` 0, as clap does.
    let cli = Cli::parse();
    let root = project_root();
    let result = std::env::set_current_dir(&root)
        .map_err(anyhow::Error::from)
        .and_then(|()| match cli.task {
            Task::Ci => ci::run(&root),
            Task::E2e { release, filters } => e2e::run(&root, release, &filters),
            Task::Fuzz(args) => fuzz::run(&args),
            Task::Soak(args) => soak::run(&args),
            Task::Bench(args) => bench::run(&args),
            Task::Fleet(args) => fleet::run(&args),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's directory, from the path
/// it was compiled from, so that the tasks work from anywhere.
fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    #[test]
    fn the_flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_each_task_and_rejects_bad_ones() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
        };
        assert!(matches!(parse(&["ci"]).unwrap().task, Task::Ci));
        let Task::E2e { release, filters } = parse(&["e2e", "--release", "drain"]).unwrap().task
        else {
            panic!("not e2e");
        };
        assert!(release);
        assert_eq!(filters, ["drain"]);
        for task in ["soak", "fuzz", "bench", "fleet"] {
            assert!(parse(&[task]).is_ok(), "{task}");
            let error = parse(&[task, "--fast"]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::UnknownArgument);
            assert_eq!(error.exit_code(), 2);
        }
        assert_eq!(parse(&["deploy"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["ci", "--fast"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&[]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn finds_the_workspace_root() {
        let root = project_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("xtask").is_dir());
    }
}
