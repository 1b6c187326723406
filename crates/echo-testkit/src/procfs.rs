//! What `/proc` says about a process: its memory and its open descriptors.
//!
//! [`Process`](crate::Process) has these as methods; the functions serve a
//! caller that holds only a pid, such as a thread sampling a server.

use std::path::PathBuf;

use crate::error::Error;

/// A field of `/proc/PID/status` given in kB, such as `VmRSS` (resident
/// memory now) or `VmHWM` (its peak), in KiB.
///
/// ```
/// let rss = echo_testkit::procfs::memory_kib(std::process::id(), "VmRSS")?;
/// assert!(rss > 0);
/// # Ok::<(), echo_testkit::Error>(())
/// ```
pub fn memory_kib(pid: u32, field: &str) -> Result<u64, Error> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = std::fs::read_to_string(&path).map_err(|source| Error::Proc {
        path: path.clone(),
        source,
    })?;
    parse_status_kib(&status, field).ok_or_else(|| Error::ProcField {
        path,
        field: field.to_owned(),
    })
}

/// How many file descriptors the process has open, from `/proc/PID/fd`.
///
/// ```
/// // At least stdin, stdout and stderr.
/// assert!(echo_testkit::procfs::open_fds(std::process::id())? >= 3);
/// # Ok::<(), echo_testkit::Error>(())
/// ```
pub fn open_fds(pid: u32) -> Result<usize, Error> {
    let path = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&path).map_err(|source| Error::Proc { path, source })?;
    Ok(entries.count())
}

/// Finds `FIELD:   1234 kB` in the text of a `/proc/PID/status` file.
fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix(" kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_in_kb_only() {
        let status = "Name:\techo-server\nVmHWM:\t    9876 kB\nVmRSS:\t    5432 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(5432));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(9876));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        assert_eq!(parse_status_kib(status, "Name"), None);
        // A field whose name is the start of another's is not that one.
        assert_eq!(parse_status_kib(status, "Vm"), None);
    }

    #[test]
    fn a_process_that_does_not_exist_is_an_error_naming_the_file() {
        // Pids are at most 2^22 on Linux.
        let error = memory_kib(u32::MAX, "VmRSS").unwrap_err();
        assert!(
            error.to_string().contains("/proc/4294967295/status"),
            "{error}"
        );
        assert!(open_fds(u32::MAX).is_err());
        let error = memory_kib(std::process::id(), "NoSuchField").unwrap_err();
        assert!(
            error.to_string().contains("has no `NoSuchField` in kB"),
            "{error}"
        );
    }
}
