//! `cargo xtask e2e`: builds `echo-server` and `echo-client`, then runs the
//! end-to-end tests of `crates/echo-e2e` against those binaries, with
//! `cargo test`, which reports each test and fails if one does.
//!
//! The tests find the binaries through `ECHO_BIN_DIR` (see
//! `echo_testkit::binary`), so `--release` tests the release build.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

/// The options of `cargo xtask e2e`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Options {
    /// Build and test the release profile instead of the debug one.
    pub(crate) release: bool,
    /// Run only the tests whose name contains one of these; all if empty.
    pub(crate) filters: Vec<String>,
}

impl Options {
    /// Parses the arguments that follow `e2e`.
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
}

/// The binaries under test.
#[derive(Debug)]
pub(crate) struct Bins {
    pub(crate) server: PathBuf,
    pub(crate) client: PathBuf,
}

/// Builds the binaries and runs the end-to-end tests whose name contains one
/// of `filters` (all of them if there is none) against them.
pub(crate) fn run(root: &Path, release: bool, filters: &[String]) -> Result<()> {
    let bins = build(root, release)?;
    let mut command = crate::cargo(root);
    command.args(["test", "-p", "echo-e2e"]);
    if release {
        command.arg("--release");
    }
    if !filters.is_empty() {
        command.arg("--").args(filters);
    }
    let dir = bins
        .server
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", bins.server.display()))?;
    command.env(echo_testkit::binary::BIN_DIR_VAR, dir);
    eprintln!("==> {}", crate::show_command(&command));
    crate::run_checked(&mut command)
}

/// Builds the two binaries, of the release profile or the debug one, and
/// finds them.
pub(crate) fn build(root: &Path, release: bool) -> Result<Bins> {
    let mut command = crate::cargo(root);
    command.args(["build", "-p", "echo-server", "-p", "echo-client"]);
    if release {
        command.arg("--release");
    }
    eprintln!("==> {}", crate::show_command(&command));
    crate::run_checked(&mut command)?;

    let dir = binaries_dir(
        root,
        std::env::var_os("CARGO_TARGET_DIR").as_deref(),
        if release { "release" } else { "debug" },
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
    }

    #[test]
    fn rejects_unknown_options() {
        assert_eq!(
            Options::parse(strings(&["--relase"])),
            Err("unknown option `--relase` for `e2e`".to_owned())
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
}
