//! `echo-client bench --json`: the load that both `bench` and `soak` put on
//! a server, and the report it prints.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use serde_json::Value;

/// One load: `connections` connections, each keeping `depth` messages of
/// `size` payload bytes in flight, as fast as the server echoes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Load {
    pub(crate) connections: usize,
    pub(crate) size: usize,
    pub(crate) depth: usize,
}

impl Load {
    /// The `echo-client` arguments that send this load to `addr` for
    /// `duration` and print the report as JSON, waiting at most
    /// `timeout_secs` to connect and for each echo.
    pub(crate) fn args(
        self,
        addr: SocketAddr,
        timeout_secs: u64,
        duration: Duration,
    ) -> Vec<String> {
        vec![
            format!("--addr={addr}"),
            format!("--timeout={timeout_secs}"),
            "bench".to_owned(),
            "--json".to_owned(),
            format!("--connections={}", self.connections),
            format!("--size={}", self.size),
            format!("--depth={}", self.depth),
            format!("--duration={}", duration.as_secs_f64()),
        ]
    }
}

/// What `bench` and `soak` take from a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Report {
    /// Intact echoes.
    pub(crate) echoed: u64,
    pub(crate) messages_per_s: f64,
    pub(crate) megabytes_per_s: f64,
    #[serde(rename = "latency_us")]
    pub(crate) latency: Latency,
}

/// Latency percentiles in microseconds, absent when nothing was timed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: Option<f64>,
    pub(crate) p99: Option<f64>,
}

/// Reads a report, which must show a run that echoed something, without an
/// error or a failed connection, from a client that exited 0.
pub(crate) fn read_report(stdout: &[u8], exited_ok: bool) -> Result<Report> {
    let report: Value =
        serde_json::from_slice(stdout).context("the bench report is not valid JSON")?;
    let number = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(Value::as_f64)
            .with_context(|| format!("the bench report has no number at {pointer}"))
    };
    let errors = number("/errors/total")?;
    let failed = number("/connections/failed")?;
    if errors > 0.0 || failed > 0.0 || !exited_ok {
        let first = report.get("first_error").cloned().unwrap_or(Value::Null);
        bail!("{errors} errors, {failed} failed connections, first error: {first}");
    }
    let echoed = report["echoed"]
        .as_u64()
        .context("the bench report has no echo count")?;
    ensure!(echoed > 0, "the bench echoed nothing");
    Ok(Report {
        echoed,
        messages_per_s: number("/messages_per_s")?,
        megabytes_per_s: number("/megabytes_per_s")?,
        latency: Latency {
            p50: report.pointer("/latency_us/p50").and_then(Value::as_f64),
            p99: report.pointer("/latency_us/p99").and_then(Value::as_f64),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_asks_the_client_for_a_json_report() {
        let load = Load {
            connections: 8,
            size: 64,
            depth: 4,
        };
        let addr = "127.0.0.1:7".parse().unwrap();
        let args = load.args(addr, 5, Duration::from_millis(1500)).join(" ");
        assert_eq!(
            args,
            "--addr=127.0.0.1:7 --timeout=5 bench --json --connections=8 --size=64 --depth=4 --duration=1.5"
        );
    }

    #[test]
    fn reports_must_be_clean() {
        let good = br#"{"echoed": 1000, "errors": {"total": 0}, "connections": {"failed": 0},
            "messages_per_s": 500.0, "megabytes_per_s": 0.032,
            "latency_us": {"p50": 50.5, "p99": 90.0}}"#;
        let report = read_report(good, true).unwrap();
        assert_eq!((report.echoed, report.latency.p99), (1000, Some(90.0)));
        assert!(read_report(good, false).is_err());
        let corrupt = br#"{"echoed": 10, "errors": {"total": 2}, "connections": {"failed": 0},
            "first_error": "connection 0: the echo of message 3 differs"}"#;
        let error = read_report(corrupt, false).unwrap_err().to_string();
        assert!(error.contains("message 3 differs"), "{error}");
        let failed = br#"{"echoed": 3, "errors": {"total": 0}, "connections": {"failed": 1}}"#;
        assert!(read_report(failed, true).is_err());
        let nothing = br#"{"echoed": 0, "errors": {"total": 0}, "connections": {"failed": 0}}"#;
        assert!(
            read_report(nothing, true)
                .unwrap_err()
                .to_string()
                .contains("echoed nothing")
        );
        assert!(read_report(b"not json", true).is_err());
    }
}
