//! `echo-client bench --json`: the load that both `bench` and `soak` put on
//! a server, and the report it prints.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use echo_client::bench::BenchReport;
use serde::Serialize;

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
    /// Jain's index of the echoes per connection (1: an even spread), from
    /// echo-client only.
    pub(crate) fairness: Option<f64>,
}

/// Latency percentiles in microseconds, absent when nothing was timed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: Option<f64>,
    pub(crate) p99: Option<f64>,
}

/// Reads a report, which must show a run that echoed something, without an
/// error or a failed connection, from a client that exited 0.
///
/// The report is read as the client's own [`BenchReport`], so that a field
/// renamed or retyped there fails here, at compile time or with serde's
/// error naming the field, rather than as a missing number at run time.
pub(crate) fn read_report(stdout: &[u8], exited_ok: bool) -> Result<Report> {
    let report: BenchReport =
        serde_json::from_slice(stdout).context("the bench report is not a bench report")?;
    let (errors, failed) = (report.errors.total, report.connections.failed);
    if errors > 0 || failed > 0 || !exited_ok {
        let first = report.first_error.as_deref().unwrap_or("none");
        bail!("{errors} errors, {failed} failed connections, first error: {first}");
    }
    ensure!(report.echoed > 0, "the bench echoed nothing");
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    Ok(Report {
        echoed: report.echoed,
        messages_per_s: report.messages_per_s,
        megabytes_per_s: report.megabytes_per_s,
        latency: Latency {
            p50: report.latency.map(|latency| micros(latency.p50)),
            p99: report.latency.map(|latency| micros(latency.p99)),
        },
        fairness: report.fairness.map(|fairness| fairness.jain_index),
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

    /// A report as `echo-client bench --json` prints it, with the counts
    /// that decide whether the run was clean set as given.
    fn report(echoed: u64, errors: u64, failed: u64, first_error: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "parameters": {
                "addr": "127.0.0.1:9", "mode": "framed", "connections": 1, "size": 64,
                "depth": 1, "messages": 5, "warmup_s": 0.0, "rate": null, "timeout_s": 5.0,
                "report_interval_s": null, "expect_greeting": false
            },
            "connections": {"requested": 1, "connected": 1 - failed, "failed": failed},
            "sent": echoed + errors,
            "echoed": echoed,
            "errors": {"total": errors, "corrupted": errors, "missing": 0, "unexpected": 0},
            "late": 0,
            "started_unix_s": 1_800_000_000.0,
            "elapsed_s": 0.5,
            "messages_per_s": 500.0,
            "megabytes_per_s": 0.032,
            "latency_us": {
                "count": echoed, "min": 40.0, "mean": 55.0, "max": 95.0, "mdev": 9.0,
                "p50": 50.5, "p90": 80.0, "p99": 90.0, "p99_9": 95.0
            },
            "intervals": [],
            "first_error": first_error,
            "interrupted": false
        }))
        .unwrap()
    }

    #[test]
    fn reports_must_be_clean() {
        let good = report(1000, 0, 0, None);
        let read = read_report(&good, true).unwrap();
        assert_eq!(
            (read.echoed, read.latency.p50, read.latency.p99),
            (1000, Some(50.5), Some(90.0))
        );
        assert_eq!(read.messages_per_s, 500.0);
        assert!(read_report(&good, false).is_err());
        let corrupt = report(
            10,
            2,
            0,
            Some("connection 0: the echo of message 3 differs"),
        );
        let error = read_report(&corrupt, true).unwrap_err().to_string();
        assert!(error.contains("message 3 differs"), "{error}");
        assert!(read_report(&report(3, 0, 1, None), true).is_err());
        let nothing = read_report(&report(0, 0, 0, None), true).unwrap_err();
        assert!(nothing.to_string().contains("echoed nothing"), "{nothing}");
        assert!(read_report(b"not json", true).is_err());
        // A document that is JSON but not a bench report is refused too.
        assert!(read_report(br#"{"echoed": 5}"#, true).is_err());
    }
}
