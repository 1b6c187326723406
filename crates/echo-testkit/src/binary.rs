//! Where the workspace's binaries are, built if need be.
//!
//! Two ways, tried in this order:
//!
//! 1. [`BIN_DIR_VAR`] (`ECHO_BIN_DIR`) names a directory that holds them:
//!    `cargo xtask e2e` builds them first and points there, so a release
//!    run tests release binaries.
//! 2. Otherwise the test process builds them once, with the cargo that runs
//!    it (`$CARGO build -p echo-server -p echo-client`), into the target
//!    directory and profile the test itself was built for, found from the
//!    test executable's path. Cargo then rebuilds a binary that is missing
//!    or stale and does nothing else, so `cargo test -p echo-e2e` works on a
//!    fresh checkout and after any change to the binaries.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{BuildError, Error};

/// The environment variable that names the directory of the binaries under
/// test, instead of building them.
pub const BIN_DIR_VAR: &str = "ECHO_BIN_DIR";

/// The binaries the build makes, with the packages they come from.
const WORKSPACE_BINARIES: [&str; 2] = ["echo-server", "echo-client"];

/// The path of the workspace binary `name`, such as `echo-server`.
///
/// The first call in a process may build the binaries (see the [module
/// documentation](self)); every later call waits for that build and shares
/// its outcome.
///
/// ```no_run
/// let server = echo_testkit::binary::path("echo-server")?;
/// assert!(server.ends_with("echo-server"));
/// # Ok::<(), echo_testkit::Error>(())
/// ```
pub fn path(name: &str) -> Result<PathBuf, Error> {
    let dir = match env::var_os(BIN_DIR_VAR).filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => built()?,
    };
    let path = dir.join(format!("{name}{}", env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::NoBinary {
            name: name.to_owned(),
            path,
        })
    }
}

/// Builds the binaries the first time it is called, and returns the
/// directory they are in.
fn built() -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Result<PathBuf, BuildError>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

/// Where cargo put the test executable: `TARGET/[TRIPLE/]PROFILE/deps/EXE`.
#[derive(Debug, PartialEq)]
struct Layout {
    target_dir: PathBuf,
    /// The `--target` the test was built for, if one was given.
    triple: Option<OsString>,
    /// The profile's directory, where the binaries go.
    profile_dir: PathBuf,
}

impl Layout {
    /// Reads the layout from the test executable's path. A target directory
    /// is recognised by the `CACHEDIR.TAG` cargo leaves at its top.
    fn of(exe: &Path) -> Option<Layout> {
        let deps = exe.parent().filter(|deps| deps.ends_with("deps"))?;
        let profile_dir = deps.parent()?;
        let above = profile_dir.parent()?;
        let is_target = |dir: &Path| dir.join("CACHEDIR.TAG").is_file();
        let (target_dir, triple) = if is_target(above) {
            (above, None)
        } else {
            let target_dir = above.parent().filter(|dir| is_target(dir))?;
            (target_dir, Some(above.file_name()?.to_owned()))
        };
        Some(Layout {
            target_dir: target_dir.to_path_buf(),
            triple,
            profile_dir: profile_dir.to_path_buf(),
        })
    }

    /// The cargo profile whose output goes to the profile directory: `dev`
    /// for `debug`, else the directory's own name (`release`, or a custom
    /// profile's).
    fn profile(&self) -> OsString {
        match self.profile_dir.file_name() {
            Some(name) if name != "debug" => name.to_owned(),
            _ => "dev".into(),
        }
    }

    /// The arguments of the build command, after `cargo`.
    fn build_args(&self, manifest: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "build".into(),
            "--manifest-path".into(),
            manifest.into(),
            "--target-dir".into(),
            self.target_dir.clone().into(),
            "--profile".into(),
            self.profile(),
        ];
        if let Some(triple) = &self.triple {
            args.extend(["--target".into(), triple.clone()]);
        }
        for binary in WORKSPACE_BINARIES {
            args.extend(["-p".into(), binary.into()]);
        }
        args
    }
}

/// Runs the build and returns the profile directory.
fn build() -> Result<PathBuf, BuildError> {
    let exe = env::current_exe().map_err(|error| BuildError {
        command: "cargo build".to_owned(),
        reason: format!("the test executable's path is unknown: {error}"),
    })?;
    let layout = Layout::of(&exe).ok_or_else(|| BuildError {
        command: "cargo build".to_owned(),
        reason: format!(
            "{} is not in a cargo target directory; set {BIN_DIR_VAR} to the binaries' directory",
            exe.display()
        ),
    })?;
    // The cargo running the tests names itself in $CARGO; the one that
    // compiled this crate is the fallback, for runners that do not set it.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let args = layout.build_args(&manifest);
    let command = std::iter::once("cargo".into())
        .chain(args.iter().map(|arg| arg.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new(&cargo)
        .args(&args)
        .output()
        .map_err(|error| BuildError {
            command: command.clone(),
            reason: format!("cannot run {}: {error}", Path::new(&cargo).display()),
        })?;
    if !output.status.success() {
        return Err(BuildError {
            command,
            reason: format!(
                "{}:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            ),
        });
    }
    Ok(layout.profile_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::CertDir;

    /// A fake target directory under the system's temporary directory,
    /// removed when the returned guard drops.
    fn target_dir() -> (CertDir, PathBuf) {
        let dir = CertDir::new().unwrap();
        dir.write(
            "CACHEDIR.TAG",
            "Signature: 8a477f597d28d172789f06886806bc55",
        )
        .unwrap();
        let path = dir.path().to_path_buf();
        (dir, path)
    }

    #[test]
    fn reads_the_layout_of_a_host_build() {
        let (_dir, target) = target_dir();
        let exe = target.join("debug/deps/echo_e2e-0123");
        let layout = Layout::of(&exe).unwrap();
        assert_eq!(
            layout,
            Layout {
                target_dir: target.clone(),
                triple: None,
                profile_dir: target.join("debug"),
            }
        );
        assert_eq!(layout.profile(), "dev");
        let args = layout.build_args(Path::new("/w/Cargo.toml"));
        let args: Vec<_> = args.iter().map(|arg| arg.to_string_lossy()).collect();
        let target = target.to_string_lossy();
        assert_eq!(
            args,
            [
                "build",
                "--manifest-path",
                "/w/Cargo.toml",
                "--target-dir",
                &target,
                "--profile",
                "dev",
                "-p",
                "echo-server",
                "-p",
                "echo-client"
            ]
        );
    }

    #[test]
    fn reads_the_layout_of_a_cross_build_and_other_profiles() {
        let (_dir, target) = target_dir();
        let exe = target.join("x86_64-unknown-linux-gnu/release/deps/echo_e2e-0123");
        let layout = Layout::of(&exe).unwrap();
        assert_eq!(layout.target_dir, target);
        assert_eq!(
            layout.triple.as_deref(),
            Some("x86_64-unknown-linux-gnu".as_ref())
        );
        assert_eq!(layout.profile(), "release");
        let args = layout.build_args(Path::new("Cargo.toml"));
        assert!(
            args.windows(2)
                .any(|pair| pair == ["--target", "x86_64-unknown-linux-gnu"]),
            "{args:?}"
        );
        let custom = Layout::of(&target.join("profiling/deps/t")).unwrap();
        assert_eq!(custom.profile(), "profiling");
    }

    #[test]
    fn an_executable_outside_a_target_directory_has_no_layout() {
        assert_eq!(Layout::of(Path::new("/usr/bin/deps/t")), None);
        assert_eq!(Layout::of(Path::new("/tmp/rustdoctest/rust_out")), None);
        assert_eq!(Layout::of(Path::new("t")), None);
    }
}
