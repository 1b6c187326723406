//! `cargo xtask bench`: measures `echo-server` against its performance
//! targets, beside a plain C epoll echo server when asked, and `echo-client`
//! against the client's own target.
//!
//! It builds the release binaries, starts each server pinned to one core
//! (`taskset`) and runs `echo-client bench --json`, pinned to the other core,
//! over the scenarios of [`scenario::SCENARIOS`] in framed and raw mode.
//! Every echoed byte is verified by the client; a run with any error fails
//! the bench. Each scenario is measured several times on each server, the
//! servers taking turns, and every figure reported is the median. For each
//! run it reads the client's throughput and latency and the server's CPU
//! time (`/proc/PID/stat`), so that a server can be judged on its cost per
//! echo where the client is the bottleneck. Then it opens thousands of idle
//! connections to fresh servers and reads their resident memory. With the
//! reference, the loads of the client's target are also driven by a plain C
//! load generator, which checks nothing: what each server serves on one
//! core when echo-client is not the client. It prints one table and the
//! targets, judged as ratios to the references of the same run (`--json`:
//! one document).
//!
//! Missed targets do not fail the task: on a shared machine figures move
//! from run to run, and the table is for people to read.
//!
//! Layout: [`scenario`] (the loads), [`servers`] (the references' build,
//! starting pinned servers), [`measure`] (one run, the idle memory),
//! [`report`] (targets, text and JSON).

mod measure;
mod report;
mod scenario;
mod servers;
mod tls;
mod workers;

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use self::measure::{Contender, IdleKind, IdleRun, Run, make_room_for_connections, measure_idle};
use self::report::{Machine, Results};
use self::scenario::{IDLE, Mode, SCENARIOS, Scenario};
use self::servers::{ClientKind, Lab, ServerKind};
use crate::process::{self, Server};

/// The options of `cargo xtask bench`.
#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Seconds each measured run sends (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = seconds_above_zero)]
    duration: Duration,
    /// Seconds of the unmeasured run before each measured one (fractions
    /// allowed; 0 for none).
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = seconds)]
    warmup: Duration,
    /// How many times each scenario is measured on each server; the report
    /// gives the median of each figure.
    #[arg(long, value_name = "N", default_value = "3")]
    rounds: NonZeroUsize,
    /// Idle connections to hold for the memory measurement; 0 skips it.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    idle_connections: usize,
    /// Only this mode [default: both].
    #[arg(long, value_enum, value_name = "MODE")]
    mode: Option<Mode>,
    /// Build and measure the C references of xtask/bench too: the epoll echo
    /// server, and the load generator for the client's target; judge the
    /// targets against them [default: off].
    #[arg(long)]
    reference: bool,
    /// Measure the dev profile's binaries: a quick check that the bench
    /// works, whose figures mean nothing [default: off].
    #[arg(long)]
    dev: bool,
    /// Print one JSON document instead of the table [default: off].
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print the tables as Markdown instead, as docs/performance.md shows
    /// them [default: off].
    #[arg(long, conflicts_with_all = ["workers", "tls"])]
    markdown: bool,
    /// Instead of the scenarios: echo-server over TLS against itself in
    /// plaintext (bulk, pipelined), its handshakes per second against
    /// `openssl s_server`'s, and its memory per idle TLS connection
    /// [default: off].
    #[arg(long, conflicts_with = "workers")]
    tls: bool,
    /// Instead of the scenarios: echo-server with N workers, each with its
    /// own runtime and listener (`--runtime per-worker`), against one
    /// multi-threaded runtime of N threads (`--runtime shared`), on fanin
    /// and pipelined, the server free to use every core [default: off].
    #[arg(long, value_name = "N")]
    workers: Option<NonZeroUsize>,
    /// Measure only the scenarios whose names contain one of these:
    /// pingpong, fanin, pipelined, bulk, and idle for the idle connections
    /// [default: all].
    #[arg(value_name = "NAME", value_parser = scenario_filter)]
    filters: Vec<String>,
}

/// A number of seconds, fractions allowed.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is not a number of seconds"))
}

/// A number of seconds above 0.
pub(crate) fn seconds_above_zero(text: &str) -> Result<Duration, String> {
    seconds(text).and_then(|secs| match secs.is_zero() {
        true => Err("it must be more than 0 seconds".to_owned()),
        false => Ok(secs),
    })
}

/// A part of the name of a scenario, or of `idle`.
fn scenario_filter(text: &str) -> Result<String, String> {
    let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).chain([IDLE]).collect();
    match names.iter().any(|name| name.contains(text)) {
        true => Ok(text.to_owned()),
        false => Err(format!(
            "it names no scenario; they are {}",
            names.join(", ")
        )),
    }
}

impl Args {
    /// Whether the scenario (or `idle`) called `name` is to be measured.
    fn selects(&self, name: &str) -> bool {
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|filter| name.contains(filter.as_str()))
    }

    fn modes(&self) -> Vec<Mode> {
        Mode::ALL
            .into_iter()
            .filter(|mode| self.mode.is_none_or(|only| only == *mode))
            .collect()
    }
}

/// How long a server may take to stop after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// How long opening and echoing on every idle connection may take.
const IDLE_DEADLINE: Duration = Duration::from_secs(120);

/// Builds what it needs, measures, and prints the report.
pub(crate) fn run(args: &Args) -> Result<()> {
    let bins = process::build_binaries(!args.dev)?;
    let reference = if args.reference {
        let target_dir = bins.server.parent().and_then(Path::parent);
        let target_dir = target_dir.context("the binaries have no target directory")?;
        Some(servers::build_references(&target_dir.join("xtask-bench"))?)
    } else {
        None
    };
    let lab = Lab::new(bins, reference, (args.duration, args.warmup));
    if args.tls {
        let results = tls::compare(&lab, args.rounds.get())?;
        if args.json {
            println!("{:#}", serde_json::to_value(&results)?);
        } else {
            print!("{}", tls::table(&results));
        }
        return Ok(());
    }
    if let Some(workers) = args.workers {
        let runs = workers::compare(&lab, workers.get(), args.rounds.get())?;
        if args.json {
            println!("{:#}", serde_json::to_value(&runs)?);
        } else {
            print!("{}", workers::table(&runs));
        }
        return Ok(());
    }
    // Before any server starts, so that the servers inherit the limit.
    let idle_connections = make_room_for_connections(args.idle_connections)?;
    let scenarios: Vec<Scenario> = SCENARIOS
        .into_iter()
        .filter(|s| args.selects(s.name))
        .collect();
    let rounds = args.rounds.get();
    let runs = measure_scenarios(&lab, &scenarios, &args.modes(), rounds)?;
    let idle = match args.selects(IDLE) && idle_connections > 0 {
        true => measure_idle_memory(&lab, &args.modes(), idle_connections)?,
        false => Vec::new(),
    };
    let results = Results {
        machine: Machine::this(),
        placement: lab.placement(),
        pinned: lab.is_pinned(),
        dev: args.dev,
        duration: args.duration,
        warmup: args.warmup,
        rounds,
        runs,
        idle,
    };
    if args.json {
        println!("{:#}", results.to_json());
    } else if args.markdown {
        print!("{}", results.to_markdown());
    } else {
        print!("{results}");
    }
    Ok(())
}

/// Runs every scenario against every server, in each mode, `rounds` times.
/// The servers are started once; the runs of one scenario follow each other,
/// in an order that changes from round to round, so that the figures
/// compared were taken close together and under the same conditions.
fn measure_scenarios(
    lab: &Lab,
    scenarios: &[Scenario],
    modes: &[Mode],
    rounds: usize,
) -> Result<Vec<Run>> {
    if scenarios.is_empty() {
        return Ok(Vec::new());
    }
    let proxied = scenarios.iter().any(|scenario| scenario.proxied);
    let mut servers: Vec<(ServerKind, Mode, Server)> = Vec::new();
    for &mode in modes {
        for kind in lab.servers() {
            // The reference echoes bytes, whatever the mode: one serves all.
            if kind == ServerKind::EchoServer || mode == modes[0] {
                servers.push((kind, mode, lab.start(kind, mode, &[])?));
            }
        }
        if proxied {
            let kind = ServerKind::ProxiedEchoServer;
            servers.push((kind, mode, lab.start(kind, mode, &[])?));
        }
    }
    let server_for = |who: Contender| {
        let serves =
            |kind, mode| kind == who.server && (mode == who.mode || kind == ServerKind::Reference);
        let found = servers.iter().find(|&&(kind, mode, _)| serves(kind, mode));
        found
            .map(|(_, _, server)| server)
            .context("a server was not started")
    };
    // Every server in every mode, in the order their figures are shown:
    // driven by echo-client, then (for the client's target, when built) by
    // the C load generator.
    let clients = match lab.reference {
        Some(_) => &[ClientKind::EchoClient, ClientKind::Reference][..],
        None => &[ClientKind::EchoClient],
    };
    let mut all = Vec::new();
    for &client in clients {
        for &mode in modes {
            all.extend(lab.servers().into_iter().map(|server| Contender {
                mode,
                server,
                client,
            }));
        }
    }
    let mut runs = Vec::new();
    for &scenario in scenarios {
        let mut contenders: Vec<Contender> = all
            .iter()
            .copied()
            .filter(|who| who.client == ClientKind::EchoClient || scenario.client_target)
            .collect();
        // Behind PROXY headers, which only echo-client sends.
        if scenario.proxied {
            contenders.extend(modes.iter().map(|&mode| Contender {
                mode,
                server: ServerKind::ProxiedEchoServer,
                client: ClientKind::EchoClient,
            }));
        }
        let mut measured: Vec<Vec<Run>> = vec![Vec::new(); contenders.len()];
        for round in 0..rounds {
            // The contenders take turns going first, so that a drift of the
            // machine's speed during a round favours none of them.
            let mut order: Vec<usize> = (0..contenders.len()).collect();
            order.rotate_left(round % contenders.len());
            for index in order {
                let who = contenders[index];
                let Contender {
                    mode,
                    server,
                    client,
                } = who;
                let run = lab
                    .measure(server_for(who)?, who, scenario)
                    .with_context(|| {
                        format!("{} in {mode} mode from {client} to {server}", scenario.name)
                    })?;
                eprintln!(
                    "==> {} {mode} {client} -> {server}, round {}: {:.0} msgs/s, server CPU {:.3} µs/msg, \
                     client CPU {:.3} µs/msg",
                    scenario.name,
                    round + 1,
                    run.report.messages_per_s,
                    run.server_cpu_per_message_us,
                    run.client_cpu_per_message_us
                );
                measured[index].push(run);
            }
        }
        runs.extend(measured.iter().filter_map(|runs| Run::median(runs)));
    }
    for (kind, _, server) in servers {
        let output = server.stop(Instant::now() + STOP_DEADLINE)?;
        if !output.status.success() {
            eprintln!(
                "warning: {kind} did not exit cleanly after SIGTERM: {}",
                output.status
            );
        }
    }
    Ok(runs)
}

/// The memory of idle connections, of both kinds (never sent; echoed
/// once), for each server in each mode: echo-server with one worker and with
/// as many as this machine has cores (its default), both pinned as the
/// scenarios are.
fn measure_idle_memory(lab: &Lab, modes: &[Mode], connections: usize) -> Result<Vec<IdleRun>> {
    // Room above the connections held, so that the limit is not what is
    // measured.
    let max_connections = (connections + 100).to_string();
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut idle = Vec::new();
    for &mode in modes {
        for server_kind in lab.servers() {
            let workers = match server_kind {
                ServerKind::Reference => vec![None],
                _ if cores > 1 => vec![Some(1), Some(cores)],
                _ => vec![Some(1)],
            };
            for workers in workers {
                for kind in [IdleKind::NeverSent, IdleKind::EchoedOnce] {
                    let workers_arg = workers.map(|n| n.to_string());
                    let mut extra = vec!["--max-connections", &max_connections];
                    if let Some(workers) = &workers_arg {
                        extra.extend(["--workers", workers]);
                    }
                    let server = lab.start(server_kind, mode, &extra)?;
                    let measured = measure_idle(
                        &server,
                        (mode, server_kind),
                        (kind, workers),
                        connections,
                        Instant::now() + IDLE_DEADLINE,
                    )
                    .with_context(|| {
                        format!("idle connections ({kind}) in {mode} mode to {server_kind}")
                    })?;
                    eprintln!(
                        "==> idle {mode} {server_kind} {}({kind}): {:.2} KiB per connection",
                        workers.map_or(String::new(), |n| format!("{n} workers ")),
                        measured.kib_per_connection
                    );
                    idle.push(measured);
                    server.stop(Instant::now() + STOP_DEADLINE)?;
                }
            }
        }
    }
    Ok(idle)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
    }

    #[test]
    fn parses_options() {
        let all = parse(&[]).unwrap();
        assert_eq!(
            (all.duration, all.warmup, all.rounds.get()),
            (Duration::from_secs(3), Duration::from_secs(1), 3)
        );
        assert_eq!(
            (all.idle_connections, all.reference, all.json, all.dev),
            (10_000, false, false, false)
        );
        assert!(all.selects("bulk") && all.selects(IDLE));
        assert_eq!(all.modes(), Mode::ALL);
        let args = [
            "--reference",
            "--json",
            "--duration",
            "0.5",
            "--warmup",
            "0",
            "--rounds",
            "5",
            "--idle-connections",
            "200",
            "--mode",
            "raw",
            "--dev",
            "pipe",
        ];
        let some = parse(&args).unwrap();
        assert_eq!(
            (some.duration, some.warmup, some.rounds.get()),
            (Duration::from_millis(500), Duration::ZERO, 5)
        );
        assert_eq!(
            (some.idle_connections, some.reference, some.json, some.dev),
            (200, true, true, true)
        );
        assert!(some.selects("pipelined"));
        assert!(!some.selects("bulk"));
        assert!(!some.selects(IDLE));
        assert_eq!(some.modes(), [Mode::Raw]);
        assert!(!some.tls && !some.markdown);
        assert!(parse(&["--tls"]).unwrap().tls);
        assert!(parse(&["--markdown"]).unwrap().markdown);
        for clash in [
            &["--json", "--markdown"][..],
            &["--tls", "--workers", "2"],
            &["--tls", "--markdown"],
            &["--workers", "2", "--markdown"],
        ] {
            assert!(parse(clash).is_err(), "{clash:?}");
        }
    }

    #[test]
    fn rejects_bad_options_naming_them() {
        let error = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(error(&["--duration"]).contains("--duration"));
        assert!(error(&["--duration", "0"]).contains("more than 0"));
        assert!(error(&["--duration", "x"]).contains("`x`"));
        assert!(error(&["--warmup=-1"]).contains("`-1`"));
        assert!(error(&["--idle-connections", "many"]).contains("many"));
        assert!(error(&["--rounds", "0"]).contains("--rounds"));
        assert!(error(&["--mode", "udp"]).contains("udp"));
        assert!(error(&["--traffic", "raw"]).contains("--traffic"));
        let unknown = error(&["pingpang"]);
        assert!(
            unknown.contains("pingpang") && unknown.contains("pingpong"),
            "{unknown}"
        );
    }
}
