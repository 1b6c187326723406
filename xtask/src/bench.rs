//! `cargo xtask bench`: measures `echo-server` the way the performance issue
//! states its targets, beside a plain C epoll echo server when asked, and
//! `echo-client` against the client's own target.
//!
//! It builds the release binaries, starts each server pinned to one core
//! (`taskset`) and runs `echo-client bench --json`, pinned to the other core,
//! over the scenarios of [`scenario::SCENARIOS`] in framed and raw traffic.
//! Every echoed byte is verified by the client; a run with any error fails
//! the bench. Each scenario is measured several times on each server, the
//! servers taking turns, and every figure reported is the median. For each run it reads the client's throughput and latency and
//! the server's CPU time (`/proc/PID/stat`), so that a server can be judged
//! on its cost per echo where the client is the bottleneck. Then it opens
//! thousands of idle connections to fresh servers and reads their resident
//! memory. With the reference, the loads of the client's target are also
//! driven by a plain C load generator, which checks nothing: what each server
//! serves on one core when echo-client is not the client. It prints one table
//! and the issues' targets, judged as ratios to the references of the same
//! run (`--json`: one document).
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

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use self::measure::{IdleRun, LoadGenerator, Run, make_room_for_connections, measure_idle};
use self::report::{Machine, Results};
use self::scenario::{IDLE, SCENARIOS, Scenario, Traffic};
use self::servers::{ClientKind, Pinning, Programs, RunningServer, ServerKind};

/// How long a server may take to start, and to stop after SIGTERM.
const SERVER_DEADLINE: Duration = Duration::from_secs(30);

/// How long opening and echoing on every idle connection may take.
const IDLE_DEADLINE: Duration = Duration::from_secs(120);

/// The options of `cargo xtask bench`.
#[derive(Debug, PartialEq)]
pub(crate) struct Options {
    /// How long each measured run sends.
    pub(crate) duration: Duration,
    /// How long the unmeasured run before each measured one sends.
    pub(crate) warmup: Duration,
    /// How many times each scenario is measured on each server; the
    /// report gives the median of each figure.
    pub(crate) rounds: usize,
    /// Build and measure the C references too: the epoll echo server, and
    /// the load generator for the client's target.
    pub(crate) reference: bool,
    /// Print one JSON document instead of the table.
    pub(crate) json: bool,
    /// Idle connections to hold; 0 skips the idle measurement.
    pub(crate) idle_connections: usize,
    /// Measure the dev profile's binaries: a quick check that the bench
    /// works, whose figures mean nothing.
    pub(crate) dev: bool,
    /// Only this traffic, if given.
    pub(crate) traffic: Option<Traffic>,
    /// Only the scenarios (or `idle`) whose names contain one of these.
    pub(crate) filters: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(3),
            warmup: Duration::from_secs(1),
            rounds: 3,
            reference: false,
            json: false,
            idle_connections: 10_000,
            dev: false,
            traffic: None,
            filters: Vec::new(),
        }
    }
}

impl Options {
    /// Parses the arguments that follow `bench`.
    pub(crate) fn parse(args: Vec<String>) -> Result<Self, String> {
        let mut options = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |what: &str| args.next().ok_or_else(|| format!("`{arg}` needs {what}"));
            match arg.as_str() {
                "--reference" => options.reference = true,
                "--json" => options.json = true,
                "--dev" => options.dev = true,
                "--duration" => {
                    let text = value("a number of seconds")?;
                    options.duration = parse_seconds(&text, "--duration")?;
                    if options.duration.is_zero() {
                        return Err("`--duration` must be more than 0 seconds".to_owned());
                    }
                }
                "--warmup" => {
                    options.warmup = parse_seconds(&value("a number of seconds")?, "--warmup")?
                }
                "--rounds" => {
                    let text = value("a number of rounds")?;
                    options.rounds = match text.parse() {
                        Ok(rounds) if rounds > 0 => rounds,
                        _ => {
                            return Err(format!(
                                "`--rounds` must be a whole number, at least 1, got `{text}`"
                            ));
                        }
                    };
                }
                "--idle-connections" => {
                    let text = value("a number of connections")?;
                    options.idle_connections = text.parse().map_err(|_| {
                        format!("`--idle-connections` must be a whole number, got `{text}`")
                    })?;
                }
                "--traffic" => {
                    let text = value("`framed` or `raw`")?;
                    options.traffic = Some(
                        Traffic::ALL
                            .into_iter()
                            .find(|traffic| traffic.name() == text)
                            .ok_or_else(|| {
                                format!("`--traffic` must be `framed` or `raw`, got `{text}`")
                            })?,
                    );
                }
                flag if flag.starts_with('-') => {
                    return Err(format!("unknown argument `{flag}` for `bench`"));
                }
                _ => {
                    let known = SCENARIOS.iter().map(|s| s.name).chain([IDLE]);
                    if !known.clone().any(|name| name.contains(arg.as_str())) {
                        let names: Vec<&str> = known.collect();
                        return Err(format!(
                            "`{arg}` names no scenario; they are {}",
                            names.join(", ")
                        ));
                    }
                    options.filters.push(arg);
                }
            }
        }
        Ok(options)
    }

    /// Whether the scenario (or `idle`) called `name` is to be measured.
    fn selects(&self, name: &str) -> bool {
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|filter| name.contains(filter.as_str()))
    }

    fn traffics(&self) -> Vec<Traffic> {
        Traffic::ALL
            .into_iter()
            .filter(|traffic| self.traffic.is_none_or(|only| only == *traffic))
            .collect()
    }
}

/// Parses a number of seconds, fractions allowed, for `flag`.
fn parse_seconds(text: &str, flag: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("`{flag}` must be a number of seconds, got `{text}`"))
}

/// Builds what it needs, measures, and prints the report.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let bins = crate::e2e::build(root, !options.dev)?;
    let reference = if options.reference {
        let out_dir = bins
            .server
            .parent()
            .and_then(Path::parent)
            .context("the binaries have no target directory")?
            .join("xtask-bench");
        Some(servers::build_references(root, &out_dir)?)
    } else {
        None
    };
    let programs = Programs {
        server: bins.server,
        client: bins.client,
        reference,
    };
    // Before any server starts, so that the servers inherit the limit.
    let idle_connections = make_room_for_connections(options.idle_connections)?;
    let pinning = Pinning::detect();
    let kinds: Vec<ServerKind> = [
        programs
            .reference
            .is_some()
            .then_some(ServerKind::Reference),
        Some(ServerKind::EchoServer),
    ]
    .into_iter()
    .flatten()
    .collect();

    let scenarios: Vec<Scenario> = SCENARIOS
        .into_iter()
        .filter(|scenario| options.selects(scenario.name))
        .collect();
    let load = LoadGenerator {
        programs: &programs,
        pinning: &pinning,
        duration: options.duration,
        warmup: options.warmup,
    };
    let runs = measure_scenarios(
        &load,
        &scenarios,
        &options.traffics(),
        &kinds,
        options.rounds,
    )?;
    let idle = if options.selects(IDLE) && idle_connections > 0 {
        measure_idle_memory(
            &programs,
            &pinning,
            &options.traffics(),
            &kinds,
            idle_connections,
        )?
    } else {
        Vec::new()
    };

    let results = Results {
        machine: Machine::this(),
        placement: pinning.describe(),
        pinned: pinning.is_pinned(),
        dev: options.dev,
        duration: options.duration,
        warmup: options.warmup,
        rounds: options.rounds,
        runs,
        idle,
    };
    if options.json {
        println!("{:#}", results.to_json());
    } else {
        print!("{}", results.to_text());
    }
    Ok(())
}

/// Runs every scenario against every server, with each traffic, `rounds`
/// times. The servers are started once; the runs of one scenario follow each
/// other, in an order that changes from round to round, so that the figures
/// compared were taken close together and under the same conditions.
fn measure_scenarios(
    load: &LoadGenerator<'_>,
    scenarios: &[Scenario],
    traffics: &[Traffic],
    kinds: &[ServerKind],
    rounds: usize,
) -> Result<Vec<Run>> {
    if scenarios.is_empty() {
        return Ok(Vec::new());
    }
    let mut servers = Vec::new();
    for &traffic in traffics {
        for &kind in kinds {
            // The reference echoes bytes, whatever the traffic: one serves all.
            let shared = kind == ServerKind::Reference && traffic != traffics[0];
            if !shared {
                let deadline = Instant::now() + SERVER_DEADLINE;
                let server = RunningServer::start(
                    kind,
                    traffic,
                    load.programs,
                    load.pinning,
                    &[],
                    deadline,
                )?;
                servers.push((kind, traffic, server));
            }
        }
    }
    let server_for = |kind: ServerKind, traffic: Traffic| {
        servers
            .iter()
            .find(|(k, t, _)| *k == kind && (*t == traffic || kind == ServerKind::Reference))
            .map(|(_, _, server)| server)
            .context("a server was not started")
    };
    // Every server of every traffic, in the order their figures are shown:
    // driven by echo-client, then (for the client's target, when built) by
    // the C load generator.
    let clients: &[ClientKind] = if load.programs.reference.is_some() {
        &[ClientKind::EchoClient, ClientKind::Reference]
    } else {
        &[ClientKind::EchoClient]
    };
    let all_contenders: Vec<(Traffic, ServerKind, ClientKind)> = clients
        .iter()
        .flat_map(|&client| {
            traffics
                .iter()
                .flat_map(move |&traffic| kinds.iter().map(move |&kind| (traffic, kind, client)))
        })
        .collect();
    let mut runs = Vec::new();
    for &scenario in scenarios {
        let contenders: Vec<(Traffic, ServerKind, ClientKind)> = all_contenders
            .iter()
            .copied()
            .filter(|&(_, _, client)| client == ClientKind::EchoClient || scenario.client_target)
            .collect();
        let mut measured: Vec<Vec<Run>> = vec![Vec::new(); contenders.len()];
        for round in 0..rounds {
            // The contenders take turns going first, so that a drift of the
            // machine's speed during a round favours none of them.
            let mut order: Vec<usize> = (0..contenders.len()).collect();
            order.rotate_left(round % contenders.len());
            for index in order {
                let (traffic, kind, client) = contenders[index];
                let server = server_for(kind, traffic)?;
                let run = load
                    .measure(server, kind, client, traffic, scenario)
                    .with_context(|| {
                        format!(
                            "{} with {traffic} traffic from {client} to {kind}",
                            scenario.name
                        )
                    })?;
                eprintln!(
                    "==> {} {traffic} {client} -> {kind}, round {}: {:.0} msgs/s, server CPU {:.3} µs/msg, client CPU {:.3} µs/msg",
                    scenario.name,
                    round + 1,
                    run.messages_per_s,
                    run.server_cpu_per_message_us,
                    run.client_cpu_per_message_us
                );
                measured[index].push(run);
            }
        }
        runs.extend(measured.iter().filter_map(|runs| Run::median(runs)));
    }
    for (kind, _, server) in servers {
        let output = server.stop(Instant::now() + SERVER_DEADLINE)?;
        if !output.status.success() {
            eprintln!(
                "warning: {kind} did not exit cleanly after SIGTERM: {}",
                output.status
            );
        }
    }
    Ok(runs)
}

/// Measures the memory of `connections` idle connections on a fresh server
/// of each kind and traffic.
fn measure_idle_memory(
    programs: &Programs,
    pinning: &Pinning,
    traffics: &[Traffic],
    kinds: &[ServerKind],
    connections: usize,
) -> Result<Vec<IdleRun>> {
    // Room above the connections held, so that the limit is not what is
    // measured.
    let max_connections = (connections + 100).to_string();
    let mut idle = Vec::new();
    for &traffic in traffics {
        for &kind in kinds {
            let deadline = Instant::now() + SERVER_DEADLINE;
            let server = RunningServer::start(
                kind,
                traffic,
                programs,
                pinning,
                &["--max-connections", &max_connections],
                deadline,
            )?;
            let measured = measure_idle(
                &server,
                kind,
                traffic,
                connections,
                Instant::now() + IDLE_DEADLINE,
            )
            .with_context(|| format!("idle connections with {traffic} traffic to {kind}"))?;
            eprintln!(
                "==> idle {traffic} {kind}: {:.2} KiB per connection",
                measured.kib_per_connection()
            );
            idle.push(measured);
            server.stop(Instant::now() + SERVER_DEADLINE)?;
        }
    }
    Ok(idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(|arg| (*arg).to_owned()).collect())
    }

    #[test]
    fn parses_options() {
        assert_eq!(parse(&[]), Ok(Options::default()));
        let options = parse(&[
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
            "--traffic",
            "raw",
            "--dev",
            "pipe",
        ])
        .unwrap();
        assert_eq!(
            options,
            Options {
                duration: Duration::from_millis(500),
                warmup: Duration::ZERO,
                rounds: 5,
                reference: true,
                json: true,
                idle_connections: 200,
                dev: true,
                traffic: Some(Traffic::Raw),
                filters: vec!["pipe".to_owned()],
            }
        );
        assert!(options.selects("pipelined"));
        assert!(!options.selects("bulk"));
        assert!(!options.selects(IDLE));
        assert_eq!(options.traffics(), [Traffic::Raw]);
        let all = Options::default();
        assert!(all.selects("bulk") && all.selects(IDLE));
        assert_eq!(all.traffics(), Traffic::ALL);
    }

    #[test]
    fn rejects_bad_options_naming_them() {
        let error = |args: &[&str]| parse(args).unwrap_err();
        assert!(error(&["--duration"]).contains("--duration"));
        assert!(error(&["--duration", "0"]).contains("more than 0"));
        assert!(error(&["--duration", "x"]).contains("`x`"));
        assert!(error(&["--warmup", "-1"]).contains("`-1`"));
        assert!(error(&["--idle-connections", "many"]).contains("`many`"));
        assert!(error(&["--rounds", "0"]).contains("at least 1"));
        assert!(error(&["--traffic", "udp"]).contains("`udp`"));
        assert!(error(&["--fast"]).contains("--fast"));
        let unknown = error(&["pingpang"]);
        assert!(
            unknown.contains("pingpang") && unknown.contains("pingpong"),
            "{unknown}"
        );
    }
}
