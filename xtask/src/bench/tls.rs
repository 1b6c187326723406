//! `cargo xtask bench --tls`: echo-server over TLS against itself in
//! plaintext, and its TLS handshakes against `openssl s_server`'s.
//!
//! - **Throughput**: `bulk` and `pipelined`, framed and raw, each run once in
//!   plaintext and once over TLS against the same server process (it
//!   listens on both), taking turns, medians of rounds.
//! - **Handshakes**: `openssl s_time` on the client's core, opening
//!   connections for a few seconds, full handshakes (`-new`) and resumed
//!   ones (`-reuse`), against echo-server's TLS listener and against
//!   `openssl s_server` with the same certificate and key, each pinned to the
//!   server's core.
//! - **Idle memory**: the server's RSS per TLS connection that has made its
//!   handshake and sits idle.
//!
//! The certificates are made for the run (rcgen, through the test kit): an
//! ECDSA P-256 key, as most certificates issued today have.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use echo_testkit::certs::{Ca, CertDir};
use echo_testkit::{Kind, Process, Signal};
use serde::Serialize;

use super::measure::process_cpu_seconds;
use super::scenario::{Mode, SCENARIOS};
use super::servers::{CLIENT_CPU, Lab, SERVER_CPU};
use crate::client::{Report, read_report};
use crate::process::{self, output_by};

/// The loads compared over TLS and in plaintext.
const LOADS: [&str; 2] = ["bulk", "pipelined"];

/// How long each `openssl s_time` run opens connections.
const HANDSHAKE_SECS: u64 = 3;

/// `openssl s_time`'s flags for resumed handshakes: over TLS 1.2, whose
/// session IDs it resumes (over TLS 1.3 it makes a full handshake every
/// time, as the session ticket comes after the handshake it has closed).
const RESUMED: &[&str] = &["-reuse", "-tls1_2"];

/// TLS connections held open for the memory measurement.
const IDLE_TLS_CONNECTIONS: usize = 1_000;

/// The targets: TLS bulk MB/s and pipelined msgs/s as shares of
/// plaintext's, full handshakes as a share of `openssl s_server`'s, and the
/// most an idle TLS connection may cost.
const BULK_TARGET: f64 = 0.5;
const PIPELINED_TARGET: f64 = 0.7;
const HANDSHAKE_TARGET: f64 = 1.0;
const IDLE_TLS_KIB_TARGET: f64 = 16.0;

/// What the TLS comparison measured.
#[derive(Debug, Serialize)]
pub(crate) struct TlsResults {
    /// Each load in each mode, in plaintext and over TLS.
    pub(crate) throughput: Vec<Throughput>,
    /// Handshakes per second, full and resumed, of each server.
    pub(crate) handshakes: Vec<Handshakes>,
    /// KiB of server RSS per idle TLS connection.
    pub(crate) idle_kib_per_connection: f64,
}

/// One load in one mode, in plaintext and over TLS.
#[derive(Debug, Serialize)]
pub(crate) struct Throughput {
    pub(crate) scenario: &'static str,
    pub(crate) mode: Mode,
    pub(crate) plaintext: Report,
    pub(crate) tls: Report,
}

/// One server's handshakes, full and resumed.
#[derive(Debug, Serialize)]
pub(crate) struct Handshakes {
    pub(crate) server: &'static str,
    pub(crate) full: HandshakeRate,
    pub(crate) resumed: HandshakeRate,
}

/// Handshakes per second, and per second of the server's CPU time: what
/// one core of it would make if the client were not the limit.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct HandshakeRate {
    pub(crate) per_s: f64,
    pub(crate) per_server_cpu_s: f64,
    /// The share of the connections that resumed a session (`-reuse`).
    pub(crate) resumed_share: f64,
}

/// Runs the comparison, `rounds` times for the throughput.
pub(crate) fn compare(lab: &Lab, rounds: usize) -> Result<TlsResults> {
    let ca = Ca::new("echo bench CA");
    let issued = ca.issue("localhost");
    let dir = CertDir::new()?;
    let chain = dir.write("server.pem", &issued.chain_pem())?;
    let key = dir.write("server.key", &issued.key_pem)?;
    let ca_file = dir.write("ca.pem", &ca.cert_pem)?;
    let files = Files {
        chain: &chain,
        key: &key,
        ca: &ca_file,
    };

    let mut throughput = Vec::new();
    for mode in Mode::ALL {
        let server = TlsServer::start(lab, mode, &files)?;
        for scenario in SCENARIOS.iter().filter(|s| LOADS.contains(&s.name)) {
            let mut runs: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
            for round in 0..rounds {
                for turn in 0..2 {
                    let tls = (turn + round) % 2 == 1;
                    let report = client_run(lab, &server, &files, mode, scenario.name, tls)?;
                    eprintln!(
                        "==> tls {} {mode} {} round {}: {:.0} msgs/s, {:.1} MB/s",
                        scenario.name,
                        if tls { "TLS" } else { "plaintext" },
                        round + 1,
                        report.messages_per_s,
                        report.megabytes_per_s
                    );
                    runs[usize::from(tls)].push(report);
                }
            }
            let [plaintext, tls] = runs.map(|runs| median(&runs));
            throughput.push(Throughput {
                scenario: scenario.name,
                mode,
                plaintext: plaintext.context("no plaintext run")?,
                tls: tls.context("no TLS run")?,
            });
        }
        server.stop()?;
    }

    let server = TlsServer::start(lab, Mode::Framed, &files)?;
    let pid = server.process.pid();
    let mut handshakes = vec![Handshakes {
        server: "echo-server",
        full: s_time(lab, server.tls, pid, &["-new"])?,
        resumed: s_time(lab, server.tls, pid, RESUMED)?,
    }];
    server.stop()?;
    let openssl = OpensslServer::start(lab, &files)?;
    let pid = openssl.process.pid();
    handshakes.push(Handshakes {
        server: "openssl s_server",
        full: s_time(lab, openssl.addr, pid, &["-new"])?,
        resumed: s_time(lab, openssl.addr, pid, RESUMED)?,
    });
    drop(openssl);

    let idle_kib_per_connection = idle_memory(lab, &files)?;
    Ok(TlsResults {
        throughput,
        handshakes,
        idle_kib_per_connection,
    })
}

/// The certificate files of the run.
struct Files<'a> {
    chain: &'a Path,
    key: &'a Path,
    ca: &'a Path,
}

/// An echo-server listening in plaintext and over TLS, pinned to the
/// server's core, with its admin endpoint.
struct TlsServer {
    process: Process,
    plaintext: SocketAddr,
    tls: SocketAddr,
    admin: SocketAddr,
}

impl TlsServer {
    fn start(lab: &Lab, mode: Mode, files: &Files<'_>) -> Result<Self> {
        let args = [
            "--listen=127.0.0.1:0".to_owned(),
            "--tls-listen=127.0.0.1:0".to_owned(),
            "--admin=127.0.0.1:0".to_owned(),
            format!("--mode={mode}"),
            format!("--tls-cert={}", files.chain.display()),
            format!("--tls-key={}", files.key.display()),
            format!("--max-connections={}", IDLE_TLS_CONNECTIONS + 100),
        ];
        let process = lab
            .spawn_pinned(SERVER_CPU, &lab.bins.server, args)
            .start()?;
        let (plain, tls) = match mode {
            Mode::Framed => (Kind::Framed, Kind::FramedTls),
            Mode::Raw => (Kind::Raw, Kind::RawTls),
        };
        let [plaintext, tls, admin] =
            process.listening([plain, tls, Kind::Admin], Instant::now() + WAIT)?;
        Ok(Self {
            process,
            plaintext,
            tls,
            admin,
        })
    }

    fn stop(mut self) -> Result<()> {
        let output = self.process.stop(Instant::now() + WAIT)?;
        ensure!(
            output.status.success(),
            "echo-server did not exit cleanly: {output}"
        );
        Ok(())
    }

    /// The connections it has open, from its metrics.
    fn connections_open(&self) -> Result<u64> {
        let metrics = process::http_get(self.admin, "/metrics", Instant::now() + WAIT)?;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("echo_connections_open "))
            .and_then(|value| value.trim().parse().ok())
            .context("no echo_connections_open in /metrics")
    }
}

/// How long starting, stopping or reaching a server may take.
const WAIT: Duration = Duration::from_secs(30);

/// One measured run of `scenario` against `server`, over TLS or not.
fn client_run(
    lab: &Lab,
    server: &TlsServer,
    files: &Files<'_>,
    mode: Mode,
    scenario: &str,
    tls: bool,
) -> Result<Report> {
    let load = SCENARIOS
        .iter()
        .find(|s| s.name == scenario)
        .context("no such scenario")?
        .load;
    let addr = if tls { server.tls } else { server.plaintext };
    let mut args: Vec<String> = mode.client_flags().iter().map(|&f| f.to_owned()).collect();
    if tls {
        args.extend([
            "--tls".to_owned(),
            format!("--tls-ca={}", files.ca.display()),
            "--tls-server-name=localhost".to_owned(),
        ]);
    }
    for duration in [lab.warmup, lab.duration]
        .into_iter()
        .filter(|d| !d.is_zero())
    {
        let args = args.iter().cloned().chain(load.args(addr, 10, duration));
        let command = lab.cmd(CLIENT_CPU, &lab.bins.client, args);
        let output = output_by(command, Instant::now() + duration + WAIT)?;
        let report = read_report(&output.stdout, output.status.success()).with_context(|| {
            format!(
                "{scenario} over {}: {}",
                if tls { "TLS" } else { "plaintext" },
                String::from_utf8_lossy(&output.stderr).trim_end()
            )
        })?;
        if duration == lab.duration {
            return Ok(report);
        }
    }
    bail!("no measured run")
}

/// The report of the middle rate.
fn median(reports: &[Report]) -> Option<Report> {
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by(|a, b| a.messages_per_s.total_cmp(&b.messages_per_s));
    sorted.get(sorted.len() / 2).map(|report| (*report).clone())
}

/// `openssl s_server` with the same certificate and key, pinned to the
/// server's core.
struct OpensslServer {
    process: Process,
    addr: SocketAddr,
}

impl OpensslServer {
    fn start(lab: &Lab, files: &Files<'_>) -> Result<Self> {
        // s_server takes a port, not port 0: one that was free a moment ago.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let args = [
            "s_server".to_owned(),
            format!("-accept={addr}"),
            format!("-cert={}", files.chain.display()),
            format!("-key={}", files.key.display()),
            "-quiet".to_owned(),
        ];
        let process = lab
            .spawn_pinned(SERVER_CPU, Path::new("openssl"), args)
            .start()?;
        echo_testkit::wait_until(Instant::now() + WAIT, || {
            std::net::TcpStream::connect(addr).is_ok()
        })
        .with_context(|| format!("openssl s_server never listened on {addr}"))?;
        Ok(Self { process, addr })
    }
}

/// The handshakes that `openssl s_time FLAGS` makes against `addr` (the
/// server `pid`) on the client's core, per second and per second of the
/// server's CPU.
fn s_time(lab: &Lab, addr: SocketAddr, pid: u32, flags: &[&str]) -> Result<HandshakeRate> {
    let args = ["s_time".to_owned(), format!("-connect={addr}")]
        .into_iter()
        .chain(flags.iter().map(|&flag| flag.to_owned()))
        .chain([format!("-time={HANDSHAKE_SECS}")]);
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    let cpu_before = process_cpu_seconds(pid)?;
    let command = lab.cmd(CLIENT_CPU, Path::new("openssl"), args);
    let output = output_by(
        command,
        Instant::now() + Duration::from_secs(HANDSHAKE_SECS) + WAIT,
    )?;
    let server_cpu_s = process_cpu_seconds(pid)? - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout);
    let (connections, resumed_share) = parse_s_time(&text)
        .with_context(|| format!("openssl s_time {flags:?} printed no count: {text}"))?;
    ensure!(
        connections > 0.0,
        "openssl s_time {flags:?} made no connection"
    );
    Ok(HandshakeRate {
        per_s: connections / HANDSHAKE_SECS as f64,
        per_server_cpu_s: if server_cpu_s > 0.0 {
            connections / server_cpu_s
        } else {
            0.0
        },
        resumed_share,
    })
}

/// The connections `openssl s_time` made, from its line `N connections in
/// T real seconds, ...` (the last, which is the run asked for), and the
/// share of them that resumed a session: it prints `*` for each full
/// handshake and `r` for each resumed one.
fn parse_s_time(text: &str) -> Option<(f64, f64)> {
    let connections = text
        .lines()
        .filter(|line| line.contains("real seconds"))
        .filter_map(|line| line.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()?;
    let marks: String = text.lines().filter(|line| !line.contains(' ')).collect();
    let resumed = marks.matches('r').count() as f64;
    let full = marks.matches('*').count() as f64;
    Some((connections, resumed / (resumed + full).max(1.0)))
}

/// The server's RSS per TLS connection that has made its handshake and
/// waits: a fresh server, then [`IDLE_TLS_CONNECTIONS`] connections from
/// echo-client, paced so slowly that almost none ever sends.
fn idle_memory(lab: &Lab, files: &Files<'_>) -> Result<f64> {
    let server = TlsServer::start(lab, Mode::Framed, files)?;
    let pid = nix::unistd::Pid::from_raw(server.process.pid() as i32);
    let before = process::rss_kib(pid)?;
    let args = [
        format!("--addr={}", server.tls),
        "--tls".to_owned(),
        format!("--tls-ca={}", files.ca.display()),
        "--tls-server-name=localhost".to_owned(),
        "bench".to_owned(),
        "--json".to_owned(),
        format!("--connections={IDLE_TLS_CONNECTIONS}"),
        "--rate=0.001".to_owned(),
        "--duration=300".to_owned(),
    ];
    let mut bench = lab
        .spawn_pinned(CLIENT_CPU, &lab.bins.client, args)
        .start()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    echo_testkit::wait_until(deadline, || {
        server
            .connections_open()
            .is_ok_and(|open| open == IDLE_TLS_CONNECTIONS as u64)
    })
    .context("the idle TLS connections never all opened")?;
    // Each handshake ends in its connection's task: once the RSS stops
    // moving, they are all done.
    let mut last = 0;
    echo_testkit::wait_until(deadline, || {
        let now = process::rss_kib(pid).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(200));
        std::mem::replace(&mut last, now) == now
    })
    .context("the server's memory never settled")?;
    let after = process::rss_kib(pid)?;
    bench.signal(Signal::SIGINT)?;
    let output = bench.wait(deadline)?;
    let report = read_report(&output.stdout, output.status.success());
    server.stop()?;
    report.context("the idle TLS connections' bench")?;
    Ok(after.saturating_sub(before) as f64 / IDLE_TLS_CONNECTIONS as f64)
}

/// The comparison as tables, with the targets judged.
pub(crate) fn table(results: &TlsResults) -> String {
    let mut text = format!(
        "{:<10} {:<7} {:>14} {:>14} {:>9} {:>14} {:>14} {:>9}\n",
        "load", "mode", "plain msgs/s", "TLS msgs/s", "ratio", "plain MB/s", "TLS MB/s", "ratio"
    );
    let mut checks = Vec::new();
    for run in &results.throughput {
        let msgs = run.tls.messages_per_s / run.plaintext.messages_per_s;
        let bytes = run.tls.megabytes_per_s / run.plaintext.megabytes_per_s;
        let _ = writeln!(
            text,
            "{:<10} {:<7} {:>14.0} {:>14.0} {:>8.3}× {:>14.1} {:>14.1} {:>8.3}×",
            run.scenario,
            run.mode,
            run.plaintext.messages_per_s,
            run.tls.messages_per_s,
            msgs,
            run.plaintext.megabytes_per_s,
            run.tls.megabytes_per_s,
            bytes
        );
        match run.scenario {
            "bulk" => checks.push((
                format!("bulk {} MB/s over TLS vs plaintext", run.mode),
                bytes,
                BULK_TARGET,
            )),
            _ => checks.push((
                format!("{} {} msgs/s over TLS vs plaintext", run.scenario, run.mode),
                msgs,
                PIPELINED_TARGET,
            )),
        }
    }
    let _ = writeln!(
        text,
        "\n{:<18} {:<8} {:>14} {:>20} {:>9}",
        "server", "kind", "handshakes/s", "per server CPU-s", "resumed"
    );
    for handshakes in &results.handshakes {
        for (kind, rate) in [("full", handshakes.full), ("resumed", handshakes.resumed)] {
            let _ = writeln!(
                text,
                "{:<18} {kind:<8} {:>14.0} {:>20.0} {:>8.0}%",
                handshakes.server,
                rate.per_s,
                rate.per_server_cpu_s,
                rate.resumed_share * 100.0
            );
        }
    }
    if let [ours, openssl] = &results.handshakes[..] {
        checks.push((
            "full handshakes per server CPU-s vs openssl s_server".to_owned(),
            ours.full.per_server_cpu_s / openssl.full.per_server_cpu_s,
            HANDSHAKE_TARGET,
        ));
        let _ = writeln!(
            text,
            "resumed handshakes (TLS 1.2 session IDs): {:.3}× openssl s_server's per server CPU-s",
            ours.resumed.per_server_cpu_s / openssl.resumed.per_server_cpu_s
        );
    }
    let idle = results.idle_kib_per_connection;
    let _ = writeln!(
        text,
        "\nidle: {IDLE_TLS_CONNECTIONS} TLS connections after their handshake: {idle:.2} KiB of server RSS each, target ≤ {IDLE_TLS_KIB_TARGET} KiB: {}",
        verdict(idle <= IDLE_TLS_KIB_TARGET)
    );
    text += "\ntargets (judged within this run):\n";
    for (what, value, at_least) in &checks {
        let _ = writeln!(
            text,
            "{what:<52} {value:>7.3}× ≥ {at_least}×  {}",
            verdict(value >= at_least)
        );
    }
    text
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_time_s_counts_are_read_from_its_output() {
        let output = "Collecting connection statistics for 3 seconds\n\
                      *rrrr\n\n\
                      5 connections in 0.01s; 500.00 connections/user sec, bytes read 0\n\
                      5 connections in 3 real seconds, 0 bytes read per connection\n";
        let (connections, resumed) = parse_s_time(output).unwrap();
        assert_eq!(connections, 5.0);
        assert!((resumed - 0.8).abs() < 1e-9);
        assert_eq!(parse_s_time("connect: Connection refused\n"), None);
    }

    #[test]
    fn the_loads_compared_are_scenarios_of_the_bench() {
        for load in LOADS {
            assert!(SCENARIOS.iter().any(|s| s.name == load), "{load}");
        }
    }
}
