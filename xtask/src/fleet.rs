//! `cargo xtask fleet`: a fleet of echo-servers behind a real HAProxy, on a
//! small network of its own, and the faults such fleets live through.
//!
//! The network ([`network`]) is made of Linux network namespaces: HAProxy
//! (the distribution's package) on the balancer host, in TCP mode with a
//! PROXY v2 header on every connection and health checks on each server's
//! `/readyz`; three echo-server hosts (`--proxy-protocol --proxy-from` the
//! balancer, `--admin`, `--instance`, `--greeting`, `--drain-delay`); two
//! load hosts running echo-client. Then, each with its figures and checks:
//!
//! 1. **balance**: a bench through the balancer spreads its connections over
//!    the three instances, and the servers log the load host's address.
//! 2. **crash**: one server killed mid-bench (`kill -9`), without and with
//!    `--reconnect`: only the echoes in flight on its connections are lost,
//!    none corrupted, and with `--reconnect` none at all; how long the
//!    service was out, and how long HAProxy took to mark the server down.
//! 3. **rolling restart**: each server stopped (SIGTERM) and started again in
//!    turn under a `--reconnect` bench: nothing lost, no error.
//! 4. **impaired link**: a load host's link drops 5% of its packets
//!    (nftables): the UDP bench measures about 5% loss, TCP echoes stay
//!    exact; and a slow backend shows in ping's round trips through the
//!    balancer.
//! 5. **two load hosts**: two benches at once, merged by `echo-client merge`.
//!
//! It needs root, iproute2, nftables and HAProxy (installed with apt-get if
//! missing and possible), and says so and skips otherwise. Every wait has a
//! deadline; every process is killed and every namespace removed however the
//! task ends.

mod network;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use echo_client::bench::BenchReport;
use echo_client::report::human_duration;
use echo_testkit::{Process, Signal, Spawn};
use serde_json::{Value, json};

use self::network::{Fleet, SERVERS, SLOW_DELAY, client_address};
use crate::process::{self, cmd};

/// The options of `cargo xtask fleet`.
#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Seconds each timed bench runs (fractions allowed) [default: 3; 1
    /// with --quick].
    #[arg(
        long,
        value_name = "SECS",
        value_parser = crate::bench::seconds_above_zero,
        allow_negative_numbers = true
    )]
    duration: Option<Duration>,
    /// A short run, as CI makes it: 1-second benches, and the dev build.
    #[arg(long)]
    quick: bool,
    /// Print one JSON document instead of the human report [default: off].
    #[arg(long)]
    json: bool,
}

/// The bound on the whole task and on each wait in it.
const TASK_DEADLINE: Duration = Duration::from_secs(300);
const WAIT: Duration = Duration::from_secs(30);

/// The share of the impaired link's packets dropped, in percent.
const DROP_PERCENT: u32 = 5;

/// Frames the servers must echo before a fault is made, and again after it,
/// so that the bench measures the fleet before and after.
const FRAMES_AROUND_A_FAULT: u64 = 2_000;

/// Runs the fleet's scenarios and prints their report; fails if any check
/// failed.
pub(crate) fn run(args: &Args) -> Result<()> {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED: cargo xtask fleet: {why}");
        return Ok(());
    }
    let duration = args
        .duration
        .unwrap_or(Duration::from_secs(if args.quick { 1 } else { 3 }));
    let bins = process::build_binaries(!args.quick)?;
    let task_deadline = Instant::now() + TASK_DEADLINE;
    let mut fleet = Fleet::start(bins, 2, deadline(task_deadline))?;
    let mut scenarios = Vec::new();
    let steps: [(&str, Step); 5] = [
        ("balance", balance),
        ("crash", crash),
        ("rolling restart", rolling_restart),
        ("impaired link", impaired_link),
        ("two load hosts", two_load_hosts),
    ];
    for (name, step) in steps {
        eprintln!("==> fleet: {name}");
        let mut scenario = Scenario::new(name);
        step(&mut fleet, &mut scenario, duration, task_deadline)
            .with_context(|| format!("fleet scenario `{name}`"))?;
        scenarios.push(scenario);
    }
    let failed: Vec<&str> = scenarios
        .iter()
        .filter(|scenario| !scenario.passed())
        .map(|scenario| scenario.name)
        .collect();
    if args.json {
        let document = json!({
            "passed": failed.is_empty(),
            "scenarios": scenarios.iter().map(Scenario::to_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        for scenario in &scenarios {
            println!("{scenario}");
        }
    }
    if !failed.is_empty() {
        bail!("fleet scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Why the fleet cannot run here, if it cannot. As root, it first installs
/// what is missing of iproute2, nftables and HAProxy, when apt-get can.
fn unavailable() -> Option<String> {
    const TOOLS: [(&str, &str); 3] = [
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("haproxy", "haproxy"),
    ];
    let root = nix::unistd::geteuid().is_root();
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| !on_path(tool))
        .map(|(_, package)| *package)
        .collect();
    if root && !missing.is_empty() && on_path("apt-get") {
        let installed = cmd("apt-get", ["update"]).run().and_then(|_| {
            cmd(
                "apt-get",
                ["install", "-y"].into_iter().chain(missing.iter().copied()),
            )
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
        });
        if let Err(error) = installed {
            eprintln!("warning: could not install {}: {error}", missing.join(", "));
        }
    }
    echo_testkit::netns::unavailable(&["nft", "haproxy"])
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The deadline of one wait: [`WAIT`] from now, within the task's.
fn deadline(task_deadline: Instant) -> Instant {
    (Instant::now() + WAIT).min(task_deadline)
}

/// A scenario of the fleet.
type Step = fn(&mut Fleet, &mut Scenario, Duration, Instant) -> Result<()>;

/// What a scenario measured, and what it checked.
struct Scenario {
    name: &'static str,
    figures: serde_json::Map<String, Value>,
    /// What was checked, and whether it held.
    checks: Vec<(String, bool)>,
    /// Lines of figures for people.
    lines: Vec<String>,
}

impl Scenario {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            figures: serde_json::Map::new(),
            checks: Vec::new(),
            lines: Vec::new(),
        }
    }

    fn figure(&mut self, name: &str, value: Value) {
        self.figures.insert(name.to_owned(), value);
    }

    fn line(&mut self, line: String) {
        self.lines.push(line);
    }

    fn check(&mut self, what: impl Into<String>, holds: bool) {
        self.checks.push((what.into(), holds));
    }

    fn passed(&self) -> bool {
        self.checks.iter().all(|(_, holds)| *holds)
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "passed": self.passed(),
            "figures": self.figures,
            "checks": self.checks.iter()
                .map(|(what, holds)| json!({"check": what, "passed": holds}))
                .collect::<Vec<_>>(),
        })
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        writeln!(f, "{verdict}  {}", self.name)?;
        for line in &self.lines {
            writeln!(f, "      {line}")?;
        }
        for (what, holds) in &self.checks {
            writeln!(f, "      [{}] {what}", if *holds { "ok" } else { "FAILED" })?;
        }
        Ok(())
    }
}

/// `--addr FRONTEND [EXTRA...] bench --json ARGS...`: the client's words.
fn bench_args(addr: std::net::SocketAddr, global: &[&str], args: &[String]) -> Vec<String> {
    [format!("--addr={addr}")]
        .into_iter()
        .chain(global.iter().map(|arg| (*arg).to_owned()))
        .chain(["bench".to_owned(), "--json".to_owned()])
        .chain(args.iter().cloned())
        .collect()
}

/// Runs `spawn` (an `echo-client bench --json`) to its end: its report,
/// whatever its exit status.
fn run_bench(spawn: Spawn, task_deadline: Instant) -> Result<BenchReport> {
    let output = spawn.run(deadline(task_deadline))?;
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("echo-client printed no bench report: {output}"))
}

/// Interrupts a running bench (as Ctrl-C does: it stops sending, waits for
/// the last echoes and reports): its report.
fn interrupt_bench(mut bench: Process, task_deadline: Instant) -> Result<BenchReport> {
    bench.signal(Signal::SIGINT)?;
    let output = bench.wait(deadline(task_deadline))?;
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("echo-client printed no bench report: {output}"))
}

/// The frames all of `servers` have echoed so far.
fn frames_echoed(fleet: &Fleet, servers: &[&str], task_deadline: Instant) -> Result<u64> {
    servers
        .iter()
        .map(|name| fleet.frames_echoed(name, deadline(task_deadline)))
        .sum()
}

/// Waits until `servers` have echoed [`FRAMES_AROUND_A_FAULT`] more frames
/// than now: the load is flowing through them.
fn wait_for_echoes(fleet: &Fleet, servers: &[&str], task_deadline: Instant) -> Result<()> {
    let start = frames_echoed(fleet, servers, task_deadline)?;
    echo_testkit::wait_until(deadline(task_deadline), || {
        frames_echoed(fleet, servers, task_deadline)
            .is_ok_and(|now| now >= start + FRAMES_AROUND_A_FAULT)
    })
    .with_context(|| format!("{} echoed nothing more", servers.join(", ")))
}

/// A duration in milliseconds, for people and for the JSON.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// The p99 of a report's latencies, in microseconds.
fn p99_us(report: &BenchReport) -> Option<f64> {
    report
        .latency
        .map(|latency| (latency.p99.as_secs_f64() * 1e7).round() / 10.0)
}

/// Adds the figures every bench has: sent, echoed, errors, rate, p99.
fn bench_figures(scenario: &mut Scenario, name: &str, report: &BenchReport) {
    let errors = &report.errors;
    scenario.figure(
        name,
        json!({
            "sent": report.sent,
            "echoed": report.echoed,
            "corrupted": errors.corrupted,
            "missing": errors.missing,
            "unexpected": errors.unexpected,
            "failed_connections": report.connections.failed,
            "messages_per_s": report.messages_per_s.round(),
            "p99_us": p99_us(report),
            "reconnects": report.reconnects,
        }),
    );
    let mut line = format!(
        "{name}: {} sent, {} echoed, {} corrupted, {} missing, {} failed connections; {:.0} msgs/s, p99 {}",
        report.sent,
        report.echoed,
        errors.corrupted,
        errors.missing,
        report.connections.failed,
        report.messages_per_s,
        report
            .latency
            .map_or("-".to_owned(), |latency| human_duration(latency.p99))
    );
    if let Some(reconnects) = &report.reconnects {
        line += &format!(
            "; {} reconnects, {} messages sent again, {} failed attempts, longest outage {}",
            reconnects.reconnects,
            reconnects.resent,
            reconnects.failed_attempts,
            human_duration(reconnects.longest_outage)
        );
    }
    scenario.line(line);
}

/// The load of the scenarios through the balancer: 12 connections of 4
/// messages in flight, each reading its greeting.
fn load(seconds: f64) -> Vec<String> {
    ["-c", "12", "-d", "4", "-t"]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("{seconds}")])
        .collect()
}

/// 1. A bench through the balancer: every instance serves a share of the
///    connections, and logs the load host, not the balancer, as the client.
fn balance(
    fleet: &mut Fleet,
    scenario: &mut Scenario,
    duration: Duration,
    task_deadline: Instant,
) -> Result<()> {
    let args = bench_args(
        fleet.frontend(),
        &["--expect-greeting"],
        &load(duration.as_secs_f64()),
    );
    let report = run_bench(fleet.echo_client(0, &args)?, task_deadline)?;
    bench_figures(scenario, "bench", &report);
    let spread: Vec<(String, u64)> = report
        .instances
        .iter()
        .map(|(name, counts)| (name.clone(), counts.connections))
        .collect();
    scenario.figure("connections_per_instance", json!(report.instances));
    scenario.line(format!(
        "connections per instance: {}",
        spread
            .iter()
            .map(|(name, connections)| format!("{name} {connections}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    scenario.check(
        "every echo intact, no connection failed",
        report.succeeded() && report.echoed == report.sent,
    );
    scenario.check(
        "the connections spread over all three instances",
        SERVERS.iter().all(|name| {
            report
                .instances
                .get(*name)
                .is_some_and(|c| c.connections > 0)
        }),
    );
    let load_host = format!("client={}:", client_address(0));
    let balancer = format!("client={}:", network::BALANCER);
    let mut logged = true;
    for name in SERVERS {
        let log = fleet.server_log(name)?;
        logged &= log.contains(&load_host) && !log.contains(&balancer);
    }
    scenario.line(format!(
        "the servers log {load_host}… (the load host), the balancer only as peer="
    ));
    scenario.check(
        "each server logs the load host's address as the client, never the balancer's",
        logged,
    );
    Ok(())
}

/// 2. One server killed mid-bench, without and then with `--reconnect`.
fn crash(
    fleet: &mut Fleet,
    scenario: &mut Scenario,
    _duration: Duration,
    task_deadline: Instant,
) -> Result<()> {
    for reconnect in [false, true] {
        let mut global = vec!["--expect-greeting"];
        let mut args = load(300.0);
        if reconnect {
            args.push("--reconnect".to_owned());
        }
        global.push("--timeout=5");
        let bench = fleet
            .echo_client(0, &bench_args(fleet.frontend(), &global, &args))?
            .start()?;
        wait_for_echoes(fleet, &["s1"], task_deadline)?;
        let downs = fleet.haproxy_says("s1", "DOWN");
        let killed = Instant::now();
        fleet.kill("s1")?;
        fleet.wait_haproxy("s1", "DOWN", downs, deadline(task_deadline))?;
        let marked_down = killed.elapsed();
        wait_for_echoes(fleet, &["s2", "s3"], task_deadline)?;
        let report = interrupt_bench(bench, task_deadline)?;
        let ups = fleet.haproxy_says("s1", "UP");
        fleet.restart("s1", deadline(task_deadline))?;
        fleet.wait_haproxy("s1", "UP", ups, deadline(task_deadline))?;

        let name = if reconnect {
            "with_reconnect"
        } else {
            "without_reconnect"
        };
        bench_figures(scenario, name, &report);
        scenario.figure(
            &format!("{name}_haproxy_marked_down_ms"),
            json!(millis(marked_down)),
        );
        scenario.line(format!(
            "{name}: HAProxy marked s1 down {} after the kill",
            human_duration(marked_down)
        ));
        let errors = &report.errors;
        scenario.check(
            format!("{name}: no echo corrupted or unexpected"),
            errors.corrupted == 0 && errors.unexpected == 0,
        );
        if reconnect {
            let reconnected = report
                .reconnects
                .is_some_and(|reconnects| reconnects.reconnects > 0);
            scenario.check(
                "with --reconnect: every echo came back, no connection failed, and the \
                 killed server's connections reconnected",
                report.succeeded() && report.echoed == report.sent && reconnected,
            );
        } else {
            // Only the killed server's connections failed, and only what
            // was in flight on them is missing.
            let on_s1 = report
                .instances
                .get("s1")
                .map_or(0, |counts| counts.connections);
            let in_flight = on_s1 * 4;
            scenario.check(
                format!(
                    "without --reconnect: the {on_s1} connections on s1 failed, and at most \
                     their {in_flight} messages in flight are missing"
                ),
                on_s1 > 0
                    && report.connections.failed as u64 == on_s1
                    && errors.missing <= in_flight
                    && report.echoed + errors.missing == report.sent,
            );
        }
    }
    Ok(())
}

/// 3. Each server in turn stopped with SIGTERM (it drains, after its drain
///    delay) and started again, under a `--reconnect` bench.
fn rolling_restart(
    fleet: &mut Fleet,
    scenario: &mut Scenario,
    _duration: Duration,
    task_deadline: Instant,
) -> Result<()> {
    let mut args = load(300.0);
    args.push("--reconnect".to_owned());
    let bench = fleet
        .echo_client(
            0,
            &bench_args(fleet.frontend(), &["--expect-greeting"], &args),
        )?
        .start()?;
    wait_for_echoes(fleet, &SERVERS, task_deadline)?;
    let started = Instant::now();
    for name in SERVERS {
        let ups = fleet.haproxy_says(name, "UP");
        fleet.stop(name, deadline(task_deadline))?;
        fleet.restart(name, deadline(task_deadline))?;
        fleet.wait_haproxy(name, "UP", ups, deadline(task_deadline))?;
    }
    let restarted = started.elapsed();
    wait_for_echoes(fleet, &SERVERS, task_deadline)?;
    let report = interrupt_bench(bench, task_deadline)?;
    bench_figures(scenario, "bench", &report);
    scenario.figure("restarts_took_ms", json!(millis(restarted)));
    scenario.line(format!(
        "three servers stopped and started again in turn in {}",
        human_duration(restarted)
    ));
    scenario.check(
        "with --reconnect: zero lost echoes and zero errors",
        report.succeeded() && report.echoed == report.sent && report.errors.total == 0,
    );
    Ok(())
}

/// 4. The second load host's link drops [`DROP_PERCENT`] of its packets:
///    UDP measures the loss, TCP stays exact. Then a slow backend through
///    the balancer.
fn impaired_link(
    fleet: &mut Fleet,
    scenario: &mut Scenario,
    duration: Duration,
    task_deadline: Instant,
) -> Result<()> {
    let host = fleet.client(1)?;
    host.nft(&format!(
        "table inet impair {{\n  chain out {{\n    type filter hook output priority 0;\n    \
         oifname != \"lo\" numgen random mod 100 < {DROP_PERCENT} drop\n  }}\n}}\n"
    ))?;
    let udp = bench_args(
        fleet.udp("s1")?,
        &["--udp", "--timeout=0.2"],
        &[
            "-c",
            "2",
            "-d",
            "32",
            "-t",
            &duration.as_secs_f64().to_string(),
        ]
        .map(str::to_owned),
    );
    let report = run_bench(fleet.echo_client(1, &udp)?, task_deadline)?;
    let datagrams = report
        .datagrams
        .context("a UDP bench reports its datagrams")?;
    scenario.figure(
        "udp",
        json!({
            "sent": report.sent,
            "echoed": report.echoed,
            "lost": datagrams.lost,
            "loss_percent": (datagrams.loss_percent * 100.0).round() / 100.0,
            "jitter_us": (datagrams.jitter.as_secs_f64() * 1e7).round() / 10.0,
            "corrupted": report.errors.corrupted,
        }),
    );
    scenario.line(format!(
        "UDP through {DROP_PERCENT}% loss: {} sent, {} lost ({:.2}%), jitter {}",
        report.sent,
        datagrams.lost,
        datagrams.loss_percent,
        human_duration(datagrams.jitter)
    ));
    scenario.check(
        "UDP: the loss measured is about the 5% dropped (2% to 9%, of 1,000 datagrams or more), none corrupted",
        report.sent >= 1_000
            && (2.0..=9.0).contains(&datagrams.loss_percent)
            && report.errors.corrupted == 0,
    );
    let tcp = bench_args(
        fleet.frontend(),
        &["--timeout=10", "--expect-greeting"],
        &["-c", "4", "-d", "8", "-n", "4000"].map(str::to_owned),
    );
    let report = run_bench(fleet.echo_client(1, &tcp)?, task_deadline)?;
    bench_figures(scenario, "tcp", &report);
    scenario.check(
        "TCP through the same link and the balancer: every echo exact",
        report.succeeded() && report.echoed == 4_000,
    );
    fleet.client(1)?.nft("delete table inet impair\n")?;

    let mut rtts = Vec::new();
    // The three servers greet; the slow backend does not.
    for (name, addr, greeting) in [
        ("fast", fleet.frontend(), "--expect-greeting"),
        ("slow", fleet.slow_frontend(), "--mode=framed"),
    ] {
        let args = [
            format!("--addr={addr}"),
            greeting.to_owned(),
            "ping".to_owned(),
            "--json".to_owned(),
            "-c".to_owned(),
            "20".to_owned(),
            "-i".to_owned(),
            "0".to_owned(),
        ];
        let output = fleet.echo_client(0, &args)?.run(deadline(task_deadline))?;
        let ping: Value = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("echo-client ping printed no report: {output}"))?;
        let p50 = ping["rtt_us"]["p50"]
            .as_f64()
            .with_context(|| format!("no round trip came back from {addr}: {output}"))?;
        scenario.figure(&format!("ping_{name}_p50_us"), json!(p50));
        rtts.push(p50);
    }
    let delay_us = SLOW_DELAY.as_secs_f64() * 1e6;
    let micros = |us: f64| human_duration(Duration::from_secs_f64(us / 1e6));
    scenario.line(format!(
        "ping through the balancer: p50 {} to the servers, {} to the backend with --delay {}",
        micros(rtts[0]),
        micros(rtts[1]),
        human_duration(SLOW_DELAY)
    ));
    scenario.check(
        "the slow backend's delay shows in ping's round trips, and only there",
        rtts[1] >= delay_us && rtts[0] < delay_us,
    );
    Ok(())
}

/// 5. Both load hosts bench at once; their reports are merged.
fn two_load_hosts(
    fleet: &mut Fleet,
    scenario: &mut Scenario,
    duration: Duration,
    task_deadline: Instant,
) -> Result<()> {
    let args = bench_args(
        fleet.frontend(),
        &["--expect-greeting"],
        &[
            "-c",
            "6",
            "-d",
            "4",
            "-t",
            &duration.as_secs_f64().to_string(),
        ]
        .map(str::to_owned),
    );
    let benches = [
        fleet.echo_client(0, &args)?.start()?,
        fleet.echo_client(1, &args)?.start()?,
    ];
    let dir = std::env::temp_dir().join(format!("echo-fleet-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut echoed = 0;
    for (index, mut bench) in benches.into_iter().enumerate() {
        let output = bench.wait(deadline(task_deadline))?;
        let report: BenchReport = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("echo-client printed no bench report: {output}"))?;
        if !report.succeeded() {
            bail!(
                "the bench of load host {} failed: {}",
                index + 1,
                report.first_error.as_deref().unwrap_or("nothing came back")
            );
        }
        echoed += report.echoed;
        let file = dir.join(format!("c{}.json", index + 1));
        std::fs::write(&file, &output.stdout)?;
        files.push(file);
    }
    let merged = fleet.merge(&files, deadline(task_deadline));
    let _ = std::fs::remove_dir_all(&dir);
    let merged: BenchReport = serde_json::from_slice(&merged?)?;
    bench_figures(scenario, "merged", &merged);
    let hosts: Vec<Value> = merged
        .hosts
        .iter()
        .map(|host| {
            json!({
                "host": host.name,
                "echoed": host.echoed,
                "messages_per_s": host.messages_per_s.round(),
            })
        })
        .collect();
    scenario.figure("hosts", json!(hosts));
    for host in &merged.hosts {
        let name = Path::new(&host.name)
            .file_name()
            .map_or(host.name.as_str(), |name| name.to_str().unwrap_or_default());
        scenario.line(format!(
            "{name}: {} echoed, {:.0} msgs/s",
            host.echoed, host.messages_per_s
        ));
    }
    scenario.check(
        "the merged report has both hosts, and their echoes add up, all intact",
        merged.hosts.len() == 2 && merged.echoed == echoed && merged.succeeded(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_passes_only_if_every_check_held() {
        let mut scenario = Scenario::new("crash");
        scenario.figure("reconnects", json!(4));
        scenario.line("4 reconnects".to_owned());
        scenario.check("nothing lost", true);
        assert!(scenario.passed());
        assert_eq!(
            scenario.to_string(),
            "PASS  crash\n      4 reconnects\n      [ok] nothing lost\n"
        );
        scenario.check("nothing corrupted", false);
        assert!(!scenario.passed());
        let text = scenario.to_string();
        assert!(text.starts_with("FAIL  crash\n"), "{text}");
        assert!(text.contains("[FAILED] nothing corrupted"), "{text}");
        let json = scenario.to_json();
        assert_eq!(json["passed"], false);
        assert_eq!(json["figures"]["reconnects"], 4);
        assert_eq!(json["checks"][1]["check"], "nothing corrupted");
    }

    #[test]
    fn a_bad_duration_is_a_usage_error_naming_it() {
        use clap::Parser;
        for bad in ["0", "-1", "soon"] {
            let error = Args::try_parse_from(["fleet", "--duration", bad]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{bad}");
            assert!(error.to_string().contains("--duration"), "{error}");
        }
        let quick = Args::try_parse_from(["fleet", "--quick", "--duration", "0.5"]).unwrap();
        assert_eq!(quick.duration, Some(Duration::from_millis(500)));
    }

    #[test]
    fn the_client_s_words_put_its_options_before_the_command() {
        let addr = "198.18.0.1:7000".parse().unwrap();
        let args = bench_args(addr, &["--expect-greeting"], &load(1.5));
        assert_eq!(
            args.join(" "),
            "--addr=198.18.0.1:7000 --expect-greeting bench --json -c 12 -d 4 -t 1.5"
        );
    }
}
