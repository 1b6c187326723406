//! Project automation in the cargo-xtask style.
//!
//! `cargo xtask ci` runs every check CI runs; `cargo xtask e2e` builds
//! `echo-server` and `echo-client` and runs the end-to-end scenarios against
//! the real binaries; `cargo xtask fuzz` builds the fuzz targets on the
//! stable toolchain and runs each for a bounded time; `cargo xtask soak`
//! runs the release server under a long mixed load and checks that it does
//! not leak (kept out of `ci` for its length); `cargo xtask bench` measures
//! the release server beside a C epoll reference. `cargo xtask help`
//! lists the tasks and their options.
//!
//! The arguments are parsed by hand, as rust-analyzer's xtask does, so that
//! the automation builds quickly and pulls in no argument-parsing crate.
#![forbid(unsafe_code)]

mod bench;
mod ci;
mod e2e;
mod fuzz;
mod soak;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <TASK> [OPTIONS]

tasks:
  ci                          cargo fmt --check, clippy -D warnings, tests,
                              docs with -D warnings, the e2e suite, a bench
                              smoke run (bench --dev, 0.3 s per load), then a
                              fuzz smoke run (fuzz --time 5)
  e2e [--release] [NAME]...   build echo-server and echo-client, then run the
                              end-to-end scenarios (only those whose name
                              contains one of the NAMEs, when any is given)
  fuzz [--time SECS] [TARGET]...
                              build the fuzz targets of fuzz/ on stable Rust
                              and run each under libFuzzer for SECS seconds
                              (default 60; all targets unless some are named);
                              fails on any crash, naming the input to replay
  soak [--duration SECS] [--json]
                              run the release server under a mixed load with
                              churn and hostile clients for SECS seconds
                              (default 60, at least 20), sampling its memory and open
                              descriptors; fails on steady growth, a wrong
                              echo, or a server that stopped serving
  bench [--reference] [--json] [--duration SECS] [--warmup SECS]
        [--rounds N] [--idle-connections N] [--traffic framed|raw] [--dev]
        [NAME]...
                              build the release binaries and measure
                              echo-server pinned to CPU 0 with echo-client
                              bench pinned to CPU 1: pingpong, fanin,
                              pipelined and bulk (SECS each, default 3, after
                              a warm-up run, default 1; the median of N
                              rounds, default 3), framed and raw, and the
                              memory of N idle connections (default 10000);
                              --reference builds and measures the C epoll
                              server of xtask/bench beside it, drives both
                              servers with the C load generator there too
                              (fanin, pipelined), and judges the
                              performance targets; --dev measures the debug
                              binaries (a check of the task, not figures)
  help                        print this message
";

/// The task named on the command line, with its options.
#[derive(Debug, PartialEq)]
enum Task {
    Ci,
    E2e(e2e::Options),
    Fuzz(fuzz::Options),
    Soak(soak::Options),
    Bench(bench::Options),
    Help,
}

fn main() -> ExitCode {
    let task = match parse_args(std::env::args_os().skip(1)) {
        Ok(task) => task,
        Err(message) => {
            eprint!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(task) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<ExitCode> {
    match task {
        Task::Help => print!("{USAGE}"),
        Task::Ci => ci::run(&workspace_root()?)?,
        Task::E2e(options) => e2e::run(&workspace_root()?, options.release, &options.filters)?,
        Task::Fuzz(options) => {
            // The summary printed says which targets failed and why.
            if fuzz::run(&workspace_root()?, &options)? > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Task::Bench(options) => bench::run(&workspace_root()?, &options)?,
        Task::Soak(options) => {
            // The report printed names every failure.
            if !soak::run(&workspace_root()?, &options)? {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses the arguments that follow `cargo xtask`.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Task, String> {
    let mut args = args.into_iter().map(|arg| {
        arg.into_string()
            .map_err(|arg| format!("argument {arg:?} is not valid UTF-8"))
    });
    let Some(task) = args.next().transpose()? else {
        return Err("no task given".to_owned());
    };
    let rest = args.collect::<Result<Vec<String>, String>>()?;
    match task.as_str() {
        "ci" => match rest.first() {
            None => Ok(Task::Ci),
            Some(extra) => Err(format!("`ci` takes no arguments, got `{extra}`")),
        },
        "e2e" => e2e::Options::parse(rest).map(Task::E2e),
        "fuzz" => fuzz::Options::parse(rest).map(Task::Fuzz),
        "soak" => soak::Options::parse(rest).map(Task::Soak),
        "bench" => bench::Options::parse(rest).map(Task::Bench),
        "help" | "--help" | "-h" => Ok(Task::Help),
        other => Err(format!("unknown task `{other}`")),
    }
}

/// The workspace root: the parent of this crate's directory.
///
/// It comes from the path the crate was compiled from, not from the current
/// directory, so the tasks work from anywhere inside the workspace.
fn workspace_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("the xtask crate's directory has no parent directory")
}

/// A `cargo` command run from the workspace root.
///
/// It is the cargo that runs this xtask, which cargo names in `$CARGO`, so a
/// toolchain chosen with `cargo +toolchain xtask` is used throughout.
fn cargo(root: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(root);
    command
}

/// Runs `command` with inherited standard streams and fails unless it exits 0.
fn run_checked(command: &mut Command) -> Result<()> {
    let shown = show_command(command);
    let status = command
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// The command as a person would type it, for messages: the program by its
/// name alone, so that `$CARGO`'s full path into the toolchain shows as
/// `cargo`.
fn show_command(command: &Command) -> String {
    let program = Path::new(command.get_program());
    std::iter::once(program.file_name().unwrap_or(program.as_os_str()))
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Task, String> {
        parse_args(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_each_task() {
        assert_eq!(parse(&["ci"]), Ok(Task::Ci));
        assert_eq!(parse(&["help"]), Ok(Task::Help));
        assert_eq!(parse(&["--help"]), Ok(Task::Help));
        assert_eq!(parse(&["e2e"]), Ok(Task::E2e(e2e::Options::default())));
        assert_eq!(
            parse(&["e2e", "--release", "drain"]),
            Ok(Task::E2e(e2e::Options {
                release: true,
                filters: vec!["drain".to_owned()],
            }))
        );
        assert_eq!(
            parse(&["fuzz", "--time", "5"]),
            Ok(Task::Fuzz(fuzz::Options {
                time: std::time::Duration::from_secs(5),
                targets: Vec::new(),
            }))
        );
        assert_eq!(parse(&["soak"]), Ok(Task::Soak(soak::Options::default())));
        assert_eq!(
            parse(&["bench"]),
            Ok(Task::Bench(bench::Options::default()))
        );
    }

    #[test]
    fn rejects_bad_arguments_with_a_message_naming_them() {
        assert_eq!(parse(&[]), Err("no task given".to_owned()));
        assert_eq!(parse(&["deploy"]), Err("unknown task `deploy`".to_owned()));
        assert_eq!(
            parse(&["ci", "--fast"]),
            Err("`ci` takes no arguments, got `--fast`".to_owned())
        );
        assert!(parse(&["e2e", "--fast"]).unwrap_err().contains("--fast"));
        assert!(parse(&["fuzz", "--fast"]).unwrap_err().contains("--fast"));
        assert!(parse(&["soak", "--fast"]).unwrap_err().contains("--fast"));
        assert!(parse(&["bench", "--fast"]).unwrap_err().contains("--fast"));
    }

    #[cfg(unix)]
    #[test]
    fn rejects_non_utf8_arguments() {
        use std::os::unix::ffi::OsStringExt;

        let error = parse_args([OsString::from_vec(b"\xffci".to_vec())]).unwrap_err();
        assert!(error.contains("not valid UTF-8"), "{error}");
    }

    #[test]
    fn shows_commands_as_typed() {
        let mut command = Command::new("cargo");
        command.args(["fmt", "--all", "--", "--check"]);
        assert_eq!(show_command(&command), "cargo fmt --all -- --check");
        let mut command = Command::new("/root/.rustup/toolchains/stable/bin/cargo");
        command.args(["build", "-p", "echo-server"]);
        assert_eq!(show_command(&command), "cargo build -p echo-server");
    }

    #[test]
    fn finds_the_workspace_root() {
        let root = workspace_root().unwrap();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("xtask").is_dir());
    }
}
