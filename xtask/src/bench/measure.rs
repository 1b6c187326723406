//! Measuring one server: a scenario's throughput, latency and CPU time, or
//! the memory of idle connections.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::sys::time::TimeVal;
use nix::unistd::Pid;
use serde::Serialize;
use serde_json::Value;

use super::scenario::{Mode, Scenario};
use super::servers::{CLIENT_CPU, ClientKind, Lab, ServerKind};
use crate::client::{Latency, Report, read_report};
use crate::process::{self, Server};

/// How long `echo-client` waits to connect and for each echo: generous,
/// since a timeout in a bench is a failure, not a figure.
const CLIENT_TIMEOUT_SECS: u64 = 10;

/// How long past its duration a client run may take before it is killed:
/// connecting, the last echoes, and printing the report.
const CLIENT_GRACE: Duration = Duration::from_secs(60);

/// The frame each idle connection sends once before it goes quiet: a 1-byte
/// payload, which a raw echo returns unchanged too.
const IDLE_PING: [u8; 5] = [0, 0, 0, 1, b'i'];

/// Descriptors kept free for everything but the idle connections: the
/// process's own files, pipes and the bench's connections.
const SPARE_FDS: u64 = 64;

/// Who was measured: a server in a mode, driven by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Contender {
    pub(crate) mode: Mode,
    pub(crate) server: ServerKind,
    pub(crate) client: ClientKind,
}

/// The figures of one scenario against one contender: of one client run,
/// or the medians of several. As JSON, one flat object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Run {
    #[serde(flatten)]
    pub(crate) scenario: Scenario,
    #[serde(flatten)]
    pub(crate) who: Contender,
    /// Echoes: intact ones for echo-client, which checks them; whole ones
    /// for the C load, which does not. Rates are of echoes per second and
    /// of 10⁶ payload bytes per second; latencies come from echo-client
    /// only (the C load times nothing).
    #[serde(flatten)]
    pub(crate) report: Report,
    /// Server and client CPU time (user and system) per echo, in
    /// microseconds.
    pub(crate) server_cpu_per_message_us: f64,
    pub(crate) client_cpu_per_message_us: f64,
    /// The share of one core the server and the client used.
    pub(crate) server_load: f64,
    pub(crate) client_load: f64,
}

impl Run {
    /// The figures of `runs` of one scenario against one contender, each
    /// the median of its values: one disturbed round on a shared machine
    /// moves none of them. `None` if there are no runs.
    pub(crate) fn median(runs: &[Run]) -> Option<Run> {
        let first = runs.first()?;
        let of = |figure: fn(&Run) -> f64| median(runs.iter().map(figure));
        let of_some = |figure: fn(&Run) -> Option<f64>| {
            let present: Vec<f64> = runs.iter().filter_map(figure).collect();
            (!present.is_empty()).then(|| median(present.into_iter()))
        };
        Some(Run {
            report: Report {
                echoed: of(|run| run.report.echoed as f64) as u64,
                messages_per_s: of(|run| run.report.messages_per_s),
                megabytes_per_s: of(|run| run.report.megabytes_per_s),
                latency: Latency {
                    p50: of_some(|run| run.report.latency.p50),
                    p99: of_some(|run| run.report.latency.p99),
                },
                fairness: of_some(|run| run.report.fairness),
            },
            server_cpu_per_message_us: of(|run| run.server_cpu_per_message_us),
            client_cpu_per_message_us: of(|run| run.client_cpu_per_message_us),
            server_load: of(|run| run.server_load),
            client_load: of(|run| run.client_load),
            ..first.clone()
        })
    }
}

/// The median of `values`: the middle one, or the mean of the two middle
/// ones; 0 for none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => 0.0,
        len if len % 2 == 1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    }
}

/// What the idle connections do before they go quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum IdleKind {
    /// Connect, and never send a byte: a load balancer's TCP health check,
    /// a port scanner, a pooled client not used yet.
    NeverSent,
    /// Echo one small frame, then nothing more.
    EchoedOnce,
}

impl fmt::Display for IdleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NeverSent => "never sent",
            Self::EchoedOnce => "echoed once",
        })
    }
}

/// The resident memory of a server holding idle connections: before the
/// first, with every one open, and per connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct IdleRun {
    pub(crate) mode: Mode,
    pub(crate) server: ServerKind,
    pub(crate) kind: IdleKind,
    /// echo-server's `--workers`; `None` for the C server, which has one
    /// thread.
    pub(crate) workers: Option<usize>,
    pub(crate) connections: usize,
    pub(crate) rss_before_kib: u64,
    pub(crate) rss_after_kib: u64,
    pub(crate) kib_per_connection: f64,
}

impl IdleRun {
    pub(crate) fn new(
        (mode, server): (Mode, ServerKind),
        (kind, workers): (IdleKind, Option<usize>),
        connections: usize,
        (before, after): (u64, u64),
    ) -> Self {
        let kib_per_connection = after.saturating_sub(before) as f64 / connections.max(1) as f64;
        Self {
            mode,
            server,
            kind,
            workers,
            connections,
            rss_before_kib: before,
            rss_after_kib: after,
            kib_per_connection,
        }
    }
}

impl Lab {
    /// Warms `server` up with the scenario's load from the contender's
    /// client, then measures it.
    ///
    /// The warm-up is a client run of its own, so that the server's CPU
    /// time, read before and after the measured run, covers exactly the
    /// echoes that run counts.
    pub(crate) fn measure(
        &self,
        server: &Server,
        who: Contender,
        scenario: Scenario,
    ) -> Result<Run> {
        if !self.warmup.is_zero() {
            self.client_run(server, who, scenario, self.warmup)
                .context("the warm-up run failed")?;
        }
        let server_cpu_before = process_cpu_seconds(server.pid())?;
        let children_cpu_before = reaped_children_cpu_seconds()?;
        let started = Instant::now();
        let report = self.client_run(server, who, scenario, self.duration)?;
        let wall_s = started.elapsed().as_secs_f64();
        let server_cpu_s = process_cpu_seconds(server.pid())? - server_cpu_before;
        let client_cpu_s = reaped_children_cpu_seconds()? - children_cpu_before;
        let per_message = |cpu_s: f64| cpu_s * 1e6 / report.echoed as f64;
        Ok(Run {
            scenario,
            who,
            server_cpu_per_message_us: per_message(server_cpu_s),
            client_cpu_per_message_us: per_message(client_cpu_s),
            server_load: server_cpu_s / wall_s,
            client_load: client_cpu_s / wall_s,
            report,
        })
    }

    /// One run of `duration` of the contender's client on the client's
    /// core, which must end with every echo intact (echo-client) or without
    /// a failed connection (the C load). A failure carries the client's
    /// stderr.
    fn client_run(
        &self,
        server: &Server,
        who: Contender,
        scenario: Scenario,
        duration: Duration,
    ) -> Result<Report> {
        let load = scenario.load;
        let command = match who.client {
            ClientKind::EchoClient => {
                let proxy: &[&str] = match who.server {
                    ServerKind::ProxiedEchoServer => &["--proxy-protocol", "v2"],
                    _ => &[],
                };
                let mode = who.mode.client_flags().iter().chain(proxy);
                let mode = mode.map(|&flag| flag.to_owned());
                let args = mode.chain(load.args(server.addr(), CLIENT_TIMEOUT_SECS, duration));
                self.cmd(CLIENT_CPU, &self.bins.client, args)
            }
            ClientKind::Reference => {
                let args = [
                    server.addr().port().into(),
                    load.connections,
                    load.depth,
                    load.size,
                ]
                .map(|n| n.to_string())
                .into_iter()
                .chain([duration.as_secs_f64().to_string(), who.mode.to_string()]);
                self.cmd(CLIENT_CPU, &self.reference()?.client, args)
            }
        };
        let output = process::output_by(command, Instant::now() + duration + CLIENT_GRACE)?;
        let ok = output.status.success();
        let report = match who.client {
            ClientKind::EchoClient => read_report(&output.stdout, ok),
            ClientKind::Reference => reference_report(&output.stdout, ok, load.size),
        };
        report.with_context(|| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            format!(
                "{} in {} mode, {}'s stderr: {}",
                scenario.name,
                who.mode,
                who.client,
                stderr.trim_end()
            )
        })
    }
}

/// Reads the C load generator's one line, `{"echoed": N, "seconds": S}`,
/// from a run that exited 0, for messages of `size` payload bytes.
fn reference_report(stdout: &[u8], exited_ok: bool, size: usize) -> Result<Report> {
    ensure!(exited_ok, "the C load generator failed");
    let report: Value = serde_json::from_slice(stdout)
        .with_context(|| format!("unreadable output `{}`", String::from_utf8_lossy(stdout)))?;
    let echoed = report["echoed"]
        .as_u64()
        .context("the C load's output has no echo count")?;
    ensure!(echoed > 0, "the C load echoed nothing");
    let seconds = report["seconds"].as_f64().filter(|seconds| *seconds > 0.0);
    let messages_per_s = echoed as f64 / seconds.context("the C load's output has no duration")?;
    Ok(Report {
        echoed,
        messages_per_s,
        megabytes_per_s: messages_per_s * size as f64 / 1e6,
        latency: Latency::default(),
        fairness: None,
    })
}

/// Opens `connections` connections to `server`, each echoing one small
/// frame first or never sending a byte (`kind`), and reads the server's
/// resident memory with all of them open and quiet. The connections close
/// when it returns.
///
/// Connections that never send are all accepted by the time an extra one,
/// opened after them, has had its echo: the servers accept in order.
pub(crate) fn measure_idle(
    server: &Server,
    contender: (Mode, ServerKind),
    (kind, workers): (IdleKind, Option<usize>),
    connections: usize,
    deadline: Instant,
) -> Result<IdleRun> {
    let rss_before_kib = process::rss_kib(server.pid())?;
    let left = || deadline.saturating_duration_since(Instant::now());
    let connect = || -> Result<TcpStream> {
        ensure!(!left().is_zero(), "the deadline passed");
        let stream = TcpStream::connect_timeout(&server.addr(), left())?;
        stream.set_read_timeout(Some(left()))?;
        Ok(stream)
    };
    let ping = |stream: &mut TcpStream| -> Result<()> {
        stream.write_all(&IDLE_PING)?;
        let mut echo = [0; IDLE_PING.len()];
        stream.read_exact(&mut echo)?;
        ensure!(
            echo == IDLE_PING,
            "the echo {echo:?} differs from {IDLE_PING:?}"
        );
        Ok(())
    };
    let mut open = Vec::with_capacity(connections + 1);
    for index in 0..connections {
        let mut stream = connect().with_context(|| format!("idle connection {index}"))?;
        if kind == IdleKind::EchoedOnce {
            ping(&mut stream).with_context(|| format!("idle connection {index}"))?;
        }
        open.push(stream);
    }
    if kind == IdleKind::NeverSent {
        let mut last = connect().context("the connection after the idle ones")?;
        ping(&mut last).context("the connection after the idle ones")?;
        open.push(last);
    }
    let rss_after_kib = process::rss_kib(server.pid())?;
    Ok(IdleRun::new(
        contender,
        (kind, workers),
        connections,
        (rss_before_kib, rss_after_kib),
    ))
}

/// Raises this process's open-file limit as far as allowed, for the servers
/// it starts (which inherit it) and for itself, and returns how many idle
/// connections that leaves room for.
pub(crate) fn make_room_for_connections(wanted: usize) -> Result<usize> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).context("could not read RLIMIT_NOFILE")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("could not raise RLIMIT_NOFILE")?;
    }
    let room = hard.saturating_sub(SPARE_FDS);
    Ok(wanted.min(usize::try_from(room).unwrap_or(usize::MAX)))
}

/// The CPU time, user and system, that process `pid` has used so far.
pub(crate) fn process_cpu_seconds(pid: Pid) -> Result<f64> {
    let stat = process::proc(pid)?.stat()?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// The CPU time used by every child process reaped so far: read around the
/// life of a client to know what that client used.
fn reaped_children_cpu_seconds() -> Result<f64> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage failed")?;
    let seconds = |time: TimeVal| time.tv_sec() as f64 + time.tv_usec() as f64 / 1e6;
    Ok(seconds(usage.user_time()) + seconds(usage.system_time()))
}

#[cfg(test)]
mod tests {
    use super::super::scenario::SCENARIOS;
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu() {
        assert!(process_cpu_seconds(Pid::this()).unwrap() >= 0.0);
        assert!(reaped_children_cpu_seconds().unwrap() >= 0.0);
    }

    #[test]
    fn reference_client_reports_give_rates_without_latencies() {
        let report = reference_report(br#"{"echoed": 3000, "seconds": 1.5}"#, true, 64).unwrap();
        assert_eq!((report.echoed, report.messages_per_s), (3000, 2000.0));
        assert_eq!(report.megabytes_per_s, 2000.0 * 64.0 / 1e6);
        assert_eq!(report.latency, Latency::default());
        let failed = reference_report(b"", false, 64).unwrap_err();
        assert!(failed.to_string().contains("failed"), "{failed}");
        for bad in [
            &br#"{"echoed": 0, "seconds": 1.0}"#[..],
            br#"{"echoed": 10, "seconds": 0}"#,
            br#"{"seconds": 1.0}"#,
            b"garbage",
        ] {
            assert!(reference_report(bad, true, 64).is_err());
        }
    }

    fn run(messages_per_s: f64, p50_us: f64, server_cpu_per_message_us: f64) -> Run {
        let who = Contender {
            mode: Mode::Framed,
            server: ServerKind::EchoServer,
            client: ClientKind::EchoClient,
        };
        let report = Report {
            echoed: messages_per_s as u64 * 5,
            messages_per_s,
            megabytes_per_s: messages_per_s * 64e-6,
            latency: Latency {
                p50: Some(p50_us),
                p99: Some(2.0 * p50_us),
            },
            fairness: Some(1.0),
        };
        Run {
            scenario: SCENARIOS[0],
            who,
            report,
            server_cpu_per_message_us,
            client_cpu_per_message_us: 1.0,
            server_load: 0.5,
            client_load: 0.9,
        }
    }

    #[test]
    fn the_median_run_takes_each_figure_from_the_middle() {
        let runs = [
            run(100.0, 50.0, 3.0),
            run(300.0, 10.0, 1.0),
            run(200.0, 90.0, 2.0),
        ];
        let median = Run::median(&runs).unwrap();
        assert_eq!(median.report.messages_per_s, 200.0);
        assert_eq!(
            (median.report.latency.p50, median.report.latency.p99),
            (Some(50.0), Some(100.0))
        );
        assert_eq!(median.server_cpu_per_message_us, 2.0);
        assert_eq!(median.report.echoed, 1000);
        assert_eq!(median.scenario, runs[0].scenario);
        // With an even count, the mean of the two middle values.
        assert_eq!(
            Run::median(&runs[..2]).unwrap().report.messages_per_s,
            200.0
        );
        assert_eq!(Run::median(&[]), None);
        // Latencies absent from some runs (the C load times nothing) are
        // the median of those present, and absent from all, absent.
        let mut untimed = runs.clone();
        untimed[0].report.latency.p50 = None;
        assert_eq!(
            Run::median(&untimed).unwrap().report.latency.p50,
            Some((10.0 + 90.0) / 2.0)
        );
        for run in &mut untimed {
            run.report.latency.p50 = None;
        }
        assert_eq!(Run::median(&untimed).unwrap().report.latency.p50, None);
    }

    #[test]
    fn idle_memory_per_connection() {
        let reference = (Mode::Raw, ServerKind::Reference);
        let never_sent = (IdleKind::NeverSent, None);
        let idle = IdleRun::new(reference, never_sent, 1000, (1000, 3000));
        assert_eq!(idle.kib_per_connection, 2.0);
        let shrunk = IdleRun::new(reference, never_sent, 0, (1000, 900));
        assert_eq!(shrunk.kib_per_connection, 0.0);
    }
}
