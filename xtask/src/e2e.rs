//! `cargo xtask e2e`: builds `echo-server` and `echo-client`, then runs the
//! end-to-end tests of `crates/echo-e2e` against those binaries with
//! `cargo test`, which reports each test and fails if one does.
//!
//! The tests find the binaries through `ECHO_BIN_DIR` (see
//! `echo_testkit::binary`), so `--release` tests the release build.

use std::path::Path;

use anyhow::{Context, Result};

use crate::process;

/// Builds the binaries and runs the end-to-end tests whose name contains one
/// of `filters` (all of them if there is none) against them.
pub(crate) fn run(root: &Path, release: bool, filters: &[String]) -> Result<()> {
    let bins = process::build_binaries(release)?;
    let dir = bins
        .server
        .parent()
        .with_context(|| format!("{} has no directory", bins.server.display()))?;
    let mut args = vec!["test".to_owned(), "-p".to_owned(), "echo-e2e".to_owned()];
    if release {
        args.push("--release".to_owned());
    }
    if !filters.is_empty() {
        args.push("--".to_owned());
        args.extend(filters.iter().cloned());
    }
    process::cargo(args)
        .dir(root)
        .env(echo_testkit::binary::BIN_DIR_VAR, dir)
        .run()?;
    Ok(())
}
