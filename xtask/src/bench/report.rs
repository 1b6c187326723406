//! What `cargo xtask bench` found: the table, the performance targets
//! judged against the reference, and the same as JSON.

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::measure::{Contender, IdleRun, Run};
use super::scenario::{IDLE, Mode, SCENARIOS};
use super::servers::{ClientKind, ServerKind};
use crate::client::Report;

/// The share of its core above which a client is taken to be the
/// bottleneck: its server then shows its cost in CPU time per echo rather
/// than in echoes per second.
const CLIENT_BOUND_LOAD: f64 = 0.9;

/// The most server memory an idle connection may cost, in KiB, whether it
/// has sent anything or not.
const IDLE_KIB_TARGET: f64 = 1.0;

/// Everything one `cargo xtask bench` measured.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) machine: Machine,
    /// Where the server and client ran, in words, and whether pinned.
    pub(crate) placement: String,
    pub(crate) pinned: bool,
    /// Whether the dev profile's binaries were measured.
    pub(crate) dev: bool,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    /// How many runs each figure is the median of.
    pub(crate) rounds: usize,
    pub(crate) runs: Vec<Run>,
    pub(crate) idle: Vec<IdleRun>,
}

/// The machine the figures come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) kernel: String,
}

impl Machine {
    /// This machine, as `/proc` describes it; what cannot be read is
    /// `unknown`.
    pub(crate) fn this() -> Self {
        let read = |path| std::fs::read_to_string(path).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo").lines().find_map(|line| {
            Some(
                line.strip_prefix("model name")?
                    .split_once(':')?
                    .1
                    .trim()
                    .to_owned(),
            )
        });
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpu_model.unwrap_or_else(|| "unknown".to_owned()),
            kernel: if kernel.is_empty() {
                "unknown".to_owned()
            } else {
                kernel
            },
        }
    }
}

/// One performance target, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Check {
    /// The scenario (or `idle`) it is about.
    pub(crate) scenario: &'static str,
    pub(crate) mode: Mode,
    /// What is compared, e.g. `p50 latency vs C epoll`.
    pub(crate) what: String,
    /// The measured figure: a ratio, or KiB for idle memory.
    pub(crate) value: f64,
    #[serde(flatten)]
    pub(crate) bound: Bound,
    pub(crate) met: bool,
}

/// The limit a figure must keep to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

/// Judges `value` of `what` on `scenario` in `mode` against `bound`.
fn check(
    scenario: &'static str,
    mode: Mode,
    what: impl Into<String>,
    value: f64,
    bound: Bound,
) -> Check {
    let met = match bound {
        Bound::AtMost(limit) => value <= limit,
        Bound::AtLeast(limit) => value >= limit,
    };
    Check {
        scenario,
        mode,
        what: what.into(),
        value,
        bound,
        met,
    }
}

impl Check {
    fn unit(&self) -> &'static str {
        if self.what.contains("KiB") {
            " KiB"
        } else {
            "×"
        }
    }

    fn limit_text(&self) -> String {
        match self.bound {
            Bound::AtMost(limit) => format!("≤ {limit}{}", self.unit()),
            Bound::AtLeast(limit) => format!("≥ {limit}{}", self.unit()),
        }
    }
}

/// A run's row of the table of runs, as text and as Markdown show it:
/// scenario, mode, client, server, msgs/s, MB/s, p50 and p99 in µs, the
/// server's share of its core and CPU per echo in µs, the client's.
fn cells(run: &Run) -> [String; 12] {
    // The C load times nothing: its runs have no latencies.
    let us = |us: Option<f64>| us.map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"));
    [
        run.scenario.name.to_owned(),
        run.who.mode.to_string(),
        run.who.client.to_string(),
        run.who.server.to_string(),
        format!("{:.0}", run.report.messages_per_s),
        format!("{:.1}", run.report.megabytes_per_s),
        us(run.report.latency.p50),
        us(run.report.latency.p99),
        format!("{:.0}%", run.server_load * 100.0),
        format!("{:.3}", run.server_cpu_per_message_us),
        format!("{:.0}%", run.client_load * 100.0),
        format!("{:.3}", run.client_cpu_per_message_us),
    ]
}

/// The header of the table of runs, its columns as wide as
/// the report writes them.
const HEADER: &str = "scenario   mode    client       server                msgs/s      MB/s   p50 µs   p99 µs server% srv µs/msg client% cli µs/msg";

impl Results {
    /// The run of `scenario` against `server` in `mode` driven by `client`,
    /// if it was measured.
    fn run(
        &self,
        scenario: &str,
        mode: Mode,
        server: ServerKind,
        client: ClientKind,
    ) -> Option<&Run> {
        let who = Contender {
            mode,
            server,
            client,
        };
        self.runs
            .iter()
            .find(|run| run.scenario.name == scenario && run.who == who)
    }

    /// The targets that this run's measurements can judge: those against
    /// the reference need it measured in the same run, and framed against
    /// raw needs both modes.
    pub(crate) fn checks(&self) -> Vec<Check> {
        use ClientKind::EchoClient;
        use ServerKind::{EchoServer, Reference};
        let mut checks = Vec::new();
        for (mode, name) in Mode::ALL
            .into_iter()
            .flat_map(|mode| SCENARIOS.map(|s| (mode, s.name)))
        {
            let (Some(ours), Some(reference)) = (
                self.run(name, mode, EchoServer, EchoClient),
                self.run(name, mode, Reference, EchoClient),
            ) else {
                continue;
            };
            // echo-client times every echo, so both runs have latencies.
            let ratio = |of: fn(&Report) -> f64| of(&ours.report) / of(&reference.report);
            let latency =
                |of: fn(&Report) -> Option<f64>| Some(of(&ours.report)? / of(&reference.report)?);
            let mut judge = |what, value, bound| checks.push(check(name, mode, what, value, bound));
            match name {
                "pingpong" => {
                    if let Some(ratio) = latency(|report| report.latency.p50) {
                        judge("p50 latency vs C epoll", ratio, Bound::AtMost(1.05));
                    }
                }
                "bulk" => {
                    judge(
                        "MB/s vs C epoll",
                        ratio(|report| report.megabytes_per_s),
                        Bound::AtLeast(0.9),
                    );
                    if let Some(ratio) = latency(|report| report.latency.p99) {
                        judge("p99 latency vs C epoll", ratio, Bound::AtMost(2.0));
                    }
                }
                // Where the client could not keep up with the reference,
                // echoes per second measure the client: the servers' costs
                // are compared instead.
                _ if reference.client_load >= CLIENT_BOUND_LOAD => judge(
                    "server CPU/msg vs C epoll (client-bound)",
                    ours.server_cpu_per_message_us / reference.server_cpu_per_message_us,
                    Bound::AtMost(1.2),
                ),
                _ => judge(
                    "msgs/s vs C epoll",
                    ratio(|report| report.messages_per_s),
                    Bound::AtLeast(0.95),
                ),
            }
        }
        // The client's own target: pinned to one core, echo-client drives at
        // least 0.9 times the echoes per second that the plainest C load
        // generator drives against the same server, the C one, which is the
        // cheapest there is, so that the client is what runs out. (Bulk is
        // left out: checking 64 KiB echoes byte for byte costs more than
        // relaying them, by design; pingpong waits on round trips, not on a
        // core.)
        for mode in Mode::ALL {
            for name in SCENARIOS.iter().filter(|s| s.client_target).map(|s| s.name) {
                if let (Some(client), Some(c_load)) = (
                    self.run(name, mode, Reference, EchoClient),
                    self.run(name, mode, Reference, ClientKind::Reference),
                ) {
                    let ratio = client.report.messages_per_s / c_load.report.messages_per_s;
                    let what = "client msgs/s vs the C load generator's, same server";
                    checks.push(check(name, mode, what, ratio, Bound::AtLeast(0.9)));
                }
            }
        }
        // A PROXY v2 header on every connection costs one parse, not a
        // system call of its own: behind headers, echo-server keeps 95% of
        // its echoes per second without them.
        for mode in Mode::ALL {
            for name in SCENARIOS.iter().filter(|s| s.proxied).map(|s| s.name) {
                if let (Some(proxied), Some(plain)) = (
                    self.run(name, mode, ServerKind::ProxiedEchoServer, EchoClient),
                    self.run(name, mode, EchoServer, EchoClient),
                ) {
                    let ratio = proxied.report.messages_per_s / plain.report.messages_per_s;
                    let what = "msgs/s with a PROXY v2 header vs without";
                    checks.push(check(name, mode, what, ratio, Bound::AtLeast(0.95)));
                }
            }
        }
        for name in SCENARIOS.map(|s| s.name) {
            if let (Some(framed), Some(raw)) = (
                self.run(name, Mode::Framed, EchoServer, EchoClient),
                self.run(name, Mode::Raw, EchoServer, EchoClient),
            ) {
                // Where the client is the bottleneck, echoes per second
                // measure the client's framing, not the server's: echoes per
                // second of server CPU are compared instead.
                let client_bound =
                    raw.client_load >= CLIENT_BOUND_LOAD && framed.client_load >= CLIENT_BOUND_LOAD;
                let (what, value) = if client_bound {
                    let per_cpu = raw.server_cpu_per_message_us / framed.server_cpu_per_message_us;
                    ("server msgs/CPU-s vs raw (client-bound)", per_cpu)
                } else {
                    (
                        "msgs/s vs raw mode",
                        framed.report.messages_per_s / raw.report.messages_per_s,
                    )
                };
                checks.push(check(name, Mode::Framed, what, value, Bound::AtLeast(0.95)));
            }
        }
        for idle in self.idle.iter().filter(|idle| idle.server == EchoServer) {
            let workers = idle.workers.unwrap_or(1);
            let what = format!(
                "KiB of RSS per idle connection, {}, {workers} worker{}",
                idle.kind,
                if workers == 1 { "" } else { "s" }
            );
            checks.push(check(
                IDLE,
                idle.mode,
                what,
                idle.kib_per_connection,
                Bound::AtMost(IDLE_KIB_TARGET),
            ));
        }
        checks
    }

    /// The report as one JSON document: the conditions, every figure and
    /// every target.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "machine": self.machine,
            "pinned": self.pinned,
            "profile": if self.dev { "dev" } else { "release" },
            "placement": self.placement,
            "duration_s": self.duration.as_secs_f64(),
            "warmup_s": self.warmup.as_secs_f64(),
            "rounds": self.rounds,
            "runs": self.runs,
            "idle": self.idle,
            "targets": self.checks(),
        })
    }
}

impl Results {
    /// The report as Markdown, for docs/performance.md: the conditions,
    /// the runs, the idle memory and the targets with their verdicts, each
    /// a table.
    pub(crate) fn to_markdown(&self) -> String {
        let mut text = String::new();
        let Machine {
            cpus,
            cpu_model,
            kernel,
        } = &self.machine;
        let rounds = match self.rounds {
            1 => "one round".to_owned(),
            n => format!("medians of {n} rounds"),
        };
        let _ = writeln!(
            text,
            "`cargo xtask bench`: {rounds}, {} s per run after a {} s warm-up run; {}; \
             {cpus} CPUs, {cpu_model}, Linux {kernel}.\n",
            self.duration.as_secs_f64(),
            self.warmup.as_secs_f64(),
            self.placement
        );
        if !self.runs.is_empty() {
            text += "| scenario | mode | client | server | msgs/s | MB/s | p50 µs | p99 µs | server CPU | server µs/msg | client CPU | client µs/msg |\n";
            text += "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n";
            for run in &self.runs {
                let _ = writeln!(text, "| {} |", cells(run).join(" | "));
            }
            text += "\n";
        }
        if let Some(first) = self.idle.first() {
            let _ = writeln!(
                text,
                "Idle: {} connections that never sent a byte, or echoed once, then quiet.\n",
                first.connections
            );
            text += "| mode | idle connections | server | workers | KiB of RSS each |\n|---|---|---|--:|--:|\n";
            for idle in &self.idle {
                let workers = idle.workers.map_or("–".to_owned(), |n| n.to_string());
                let _ = writeln!(
                    text,
                    "| {} | {} | {} | {workers} | {:.2} |",
                    idle.mode, idle.kind, idle.server, idle.kib_per_connection
                );
            }
            text += "\n";
        }
        let checks = self.checks();
        if !checks.is_empty() {
            text += "| scenario | mode | target | measured | bound | verdict |\n|---|---|---|--:|--:|---|\n";
            for check in &checks {
                let _ = writeln!(
                    text,
                    "| {} | {} | {} | {:.3}{} | {} | {} |",
                    check.scenario,
                    check.mode,
                    check.what,
                    check.value,
                    check.unit(),
                    check.limit_text(),
                    if check.met { "met" } else { "**missed**" }
                );
            }
            let met = checks.iter().filter(|check| check.met).count();
            let _ = writeln!(text, "\n{met} of {} targets met.", checks.len());
        }
        text
    }
}

/// The report for people: the conditions, one table of runs, the idle
/// memory, and the targets.
impl fmt::Display for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounds = match self.rounds {
            1 => "one round".to_owned(),
            rounds => format!("medians of {rounds} rounds"),
        };
        let (duration, warmup) = (self.duration.as_secs_f64(), self.warmup.as_secs_f64());
        let Machine {
            cpus,
            cpu_model,
            kernel,
        } = &self.machine;
        writeln!(
            f,
            "echo bench: {rounds}, {duration} s per run after a {warmup} s warm-up run; {}\n\
             machine: {cpus} CPUs, {cpu_model}, Linux {kernel}\n",
            self.placement
        )?;
        if self.dev {
            writeln!(
                f,
                "dev binaries (--dev): a check that the bench works; the figures mean nothing\n"
            )?;
        }
        if !self.runs.is_empty() {
            writeln!(f, "{HEADER}")?;
        }
        for run in &self.runs {
            let [scenario, mode, client, server, figures @ ..] = cells(run);
            write!(f, "{scenario:<10} {mode:<7} {client:<12} {server:<17}")?;
            for (figure, width) in figures.iter().zip([10, 9, 8, 8, 7, 10, 7, 10]) {
                write!(f, " {figure:>width$}")?;
            }
            writeln!(f)?;
        }
        if let Some(first) = self.idle.first() {
            writeln!(
                f,
                "\nidle: {} connections that never sent a byte, or echoed once, then quiet",
                first.connections
            )?;
            for IdleRun {
                mode,
                server,
                kind,
                workers,
                rss_before_kib,
                rss_after_kib,
                kib_per_connection,
                ..
            } in &self.idle
            {
                let workers = workers.map_or(String::new(), |n| {
                    format!(", {n} worker{}", if n == 1 { "" } else { "s" })
                });
                let what = format!("{kind}{workers}");
                writeln!(
                    f,
                    "{IDLE:<10} {mode:<7} {what:<23} {server:<12} {kib_per_connection:>6.2} KiB of \
                     server RSS per connection ({rss_before_kib} KiB -> {rss_after_kib} KiB)"
                )?;
            }
        }
        let checks = self.checks();
        if checks.is_empty() {
            writeln!(
                f,
                "\nno targets judged: they need --reference, or both modes, or the idle measurement"
            )?;
            return Ok(());
        }
        writeln!(f, "\ntargets (judged within this run):")?;
        let width = checks.iter().map(|check| check.what.chars().count()).max();
        for check in &checks {
            writeln!(
                f,
                "{:<10} {:<7} {:<width$} {:>7.3}{:<4} {:<10} {}",
                check.scenario,
                check.mode,
                check.what,
                check.value,
                check.unit(),
                check.limit_text(),
                if check.met { "met" } else { "MISSED" },
                width = width.unwrap_or_default(),
            )?;
        }
        let met = checks.iter().filter(|check| check.met).count();
        writeln!(f, "{met} of {} targets met", checks.len())
    }
}

#[cfg(test)]
mod tests {
    use ClientKind::EchoClient;
    use Mode::{Framed, Raw};
    use ServerKind::{EchoServer, Reference};

    use super::*;
    use crate::client::Latency;

    /// A run of echo-client against `server` on scenario `name`.
    fn run(name: &str, mode: Mode, server: ServerKind, rate: f64, p50: f64) -> Run {
        let scenario = *SCENARIOS.iter().find(|s| s.name == name).unwrap();
        let report = Report {
            echoed: (rate * 5.0) as u64,
            messages_per_s: rate,
            megabytes_per_s: rate * 64e-6,
            latency: Latency {
                p50: Some(p50),
                p99: Some(p50 * 2.0),
            },
            fairness: Some(1.0),
        };
        Run {
            scenario,
            who: Contender {
                mode,
                server,
                client: EchoClient,
            },
            report,
            server_cpu_per_message_us: 4.0e6 / (rate * 5.0),
            client_cpu_per_message_us: 2.5e6 / (rate * 5.0),
            server_load: 0.8,
            client_load: 0.5,
        }
    }

    fn results(runs: Vec<Run>, idle: Vec<IdleRun>) -> Results {
        let machine = Machine {
            cpus: 2,
            cpu_model: "Test CPU".to_owned(),
            kernel: "6.0".to_owned(),
        };
        Results {
            machine,
            placement: "unpinned".to_owned(),
            pinned: false,
            dev: false,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            rounds: 1,
            runs,
            idle,
        }
    }

    fn find<'a>(checks: &'a [Check], scenario: &str, what: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.scenario == scenario && c.what.starts_with(what))
            .unwrap_or_else(|| panic!("no check of {scenario} {what} in {checks:?}"))
    }

    #[test]
    fn targets_are_ratios_to_the_reference_of_the_same_mode() {
        let runs = vec![
            run("pingpong", Framed, Reference, 16_000.0, 60.0),
            run("pingpong", Framed, EchoServer, 15_000.0, 66.0),
            run("fanin", Framed, Reference, 200_000.0, 400.0),
            run("fanin", Framed, EchoServer, 196_000.0, 400.0),
            // Raw mode has echo-server only: no target against C.
            run("fanin", Raw, EchoServer, 200_000.0, 400.0),
        ];
        let checks = results(runs, Vec::new()).checks();
        let pingpong = find(&checks, "pingpong", "p50");
        assert!((pingpong.value - 1.1).abs() < 1e-9);
        assert!(!pingpong.met, "1.1× is over the 1.05× target");
        let fanin = find(&checks, "fanin", "msgs/s vs C");
        assert!((fanin.value - 0.98).abs() < 1e-9);
        assert!(fanin.met);
        assert_eq!(fanin.mode, Framed);
        let framed_vs_raw = find(&checks, "fanin", "msgs/s vs raw");
        assert!((framed_vs_raw.value - 0.98).abs() < 1e-9);
        assert!(framed_vs_raw.met);
        // p50, fanin vs C, framed vs raw; the client's target needs the C
        // load's runs.
        assert_eq!(checks.len(), 3, "{checks:?}");
    }

    #[test]
    fn the_client_is_held_to_what_the_c_load_generator_drives() {
        let driven_by_c = |server, rate| {
            let mut run = run("pipelined", Framed, server, rate, 1.0);
            run.who.client = ClientKind::Reference;
            run.report.latency = Latency::default();
            run
        };
        let runs = vec![
            // echo-client against the C server: what the client drives.
            run("pipelined", Framed, Reference, 3_800_000.0, 80.0),
            run("pipelined", Framed, EchoServer, 3_700_000.0, 80.0),
            // The C load against each server: what the plainest client
            // drives against the same server.
            driven_by_c(Reference, 4_000_000.0),
            driven_by_c(EchoServer, 4_000_000.0),
        ];
        let results = results(runs, Vec::new());
        let checks = results.checks();
        let client = find(&checks, "pipelined", "client msgs/s");
        assert!((client.value - 0.95).abs() < 1e-9, "{client:?}");
        assert!(client.met, "0.95 of the C load is within the 0.9 target");
        // The servers are compared under echo-client only (3.7M / 3.8M),
        // not under the C load (4.0M / 4.0M).
        let servers = find(&checks, "pipelined", "msgs/s vs C epoll");
        assert!((servers.value - 3.7 / 3.8).abs() < 1e-9, "{servers:?}");
        assert_eq!(checks.len(), 2, "{checks:?}");
        let text = results.to_string();
        assert!(
            text.lines().any(|line| line.contains("C load")
                && line.contains("4000000")
                && line.contains(" - ")),
            "{text}"
        );
        let json = results.to_json();
        assert_eq!(json["runs"][3]["client"], "C load");
        assert_eq!(json["runs"][3]["latency_us"]["p50"], Value::Null);
    }

    #[test]
    fn a_client_bound_reference_run_compares_cpu_per_message() {
        let mut reference = run("pipelined", Raw, Reference, 3_000_000.0, 50.0);
        (reference.client_load, reference.server_cpu_per_message_us) = (0.96, 1.0);
        let mut ours = run("pipelined", Raw, EchoServer, 3_000_000.0, 50.0);
        ours.server_cpu_per_message_us = 1.4;
        let checks = results(vec![reference, ours], Vec::new()).checks();
        let check = find(&checks, "pipelined", "server CPU/msg");
        assert!((check.value - 1.4).abs() < 1e-9);
        assert!(!check.met, "1.4× the CPU per message is over 1.2×");
    }

    #[test]
    fn framed_against_raw_compares_server_cpu_when_the_client_is_the_bottleneck() {
        let mut framed = run("pipelined", Framed, EchoServer, 3_600_000.0, 80.0);
        (framed.client_load, framed.server_cpu_per_message_us) = (0.97, 0.25);
        let mut raw = run("pipelined", Raw, EchoServer, 4_000_000.0, 70.0);
        (raw.client_load, raw.server_cpu_per_message_us) = (0.97, 0.24);
        let checks = results(vec![framed.clone(), raw.clone()], Vec::new()).checks();
        let check = find(&checks, "pipelined", "server msgs/CPU-s vs raw");
        assert!((check.value - 0.96).abs() < 1e-9);
        assert!(
            check.met,
            "0.9× the echoes per second, but 0.96× per CPU-second"
        );
        // A client with room to spare: echoes per second say it all.
        (framed.client_load, raw.client_load) = (0.5, 0.5);
        let checks = results(vec![framed, raw], Vec::new()).checks();
        let check = find(&checks, "pipelined", "msgs/s vs raw");
        assert!((check.value - 0.9).abs() < 1e-9);
        assert!(!check.met);
    }

    #[test]
    fn bulk_is_judged_on_bytes_and_tail_latency() {
        let reference = run("bulk", Framed, Reference, 50_000.0, 100.0);
        let mut ours = run("bulk", Framed, EchoServer, 47_000.0, 100.0);
        ours.report.latency.p99 = Some(500.0);
        let checks = results(vec![reference, ours], Vec::new()).checks();
        assert!(find(&checks, "bulk", "MB/s").met);
        let tail = find(&checks, "bulk", "p99");
        assert!((tail.value - 2.5).abs() < 1e-9);
        assert!(!tail.met);
    }

    #[test]
    fn the_markdown_has_the_runs_the_idle_memory_and_the_verdicts() {
        use super::super::measure::IdleKind::NeverSent;
        let runs = vec![
            run("pingpong", Framed, Reference, 16_000.0, 60.0),
            run("pingpong", Framed, EchoServer, 16_500.0, 66.0),
        ];
        let idle = vec![IdleRun::new(
            (Framed, EchoServer),
            (NeverSent, Some(1)),
            1000,
            (4000, 6000),
        )];
        let text = results(runs, idle).to_markdown();
        assert!(
            text.starts_with("`cargo xtask bench`: one round, 5 s per run"),
            "{text}"
        );
        assert!(
            text.contains(
                "| pingpong | framed | echo-client | echo-server | 16500 | 1.1 | 66.0 | 132.0 |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| framed | never sent | echo-server | 1 | 2.00 |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| pingpong | framed | p50 latency vs C epoll | 1.100× | ≤ 1.05× | **missed** |"
            ),
            "{text}"
        );
        assert!(text.contains("0 of 2 targets met."), "{text}");
        // Every row of a table has as many cells as its header.
        for table in text.split("\n\n").filter(|block| block.starts_with('|')) {
            let cells: Vec<usize> = table
                .lines()
                .map(|line| line.matches('|').count())
                .collect();
            assert!(cells.windows(2).all(|pair| pair[0] == pair[1]), "{table}");
        }
    }

    #[test]
    fn a_proxy_header_is_judged_against_the_same_server_without_it() {
        let runs = vec![
            run("fanin", Framed, EchoServer, 100_000.0, 400.0),
            run(
                "fanin",
                Framed,
                ServerKind::ProxiedEchoServer,
                97_000.0,
                410.0,
            ),
            run("fanin", Raw, EchoServer, 100_000.0, 400.0),
            run("fanin", Raw, ServerKind::ProxiedEchoServer, 90_000.0, 440.0),
        ];
        let checks = results(runs, Vec::new()).checks();
        let proxied: Vec<&Check> = checks
            .iter()
            .filter(|check| check.what.contains("PROXY"))
            .collect();
        assert_eq!(proxied.len(), 2, "{checks:?}");
        assert!((proxied[0].value - 0.97).abs() < 1e-9 && proxied[0].met);
        assert!((proxied[1].value - 0.9).abs() < 1e-9 && !proxied[1].met);
    }

    #[test]
    fn idle_memory_is_judged_for_echo_server_only_and_for_both_kinds() {
        use super::super::measure::IdleKind::{EchoedOnce, NeverSent};
        let idle = |server, kind, workers, after| {
            IdleRun::new((Framed, server), (kind, workers), 1000, (4000, after))
        };
        let results = results(
            Vec::new(),
            vec![
                idle(Reference, NeverSent, None, 4100),
                idle(EchoServer, NeverSent, Some(1), 4900),
                idle(EchoServer, EchoedOnce, Some(2), 6500),
            ],
        );
        let checks = results.checks();
        assert_eq!(checks.len(), 2);
        assert!((checks[0].value - 0.9).abs() < 1e-9);
        assert!(checks[0].met, "{:?}", checks[0]);
        assert_eq!(
            checks[1].what,
            "KiB of RSS per idle connection, echoed once, 2 workers"
        );
        assert!((checks[1].value - 2.5).abs() < 1e-9);
        assert!(!checks[1].met);
        let text = results.to_string();
        assert!(
            text.contains(
                "echoed once, 2 workers  echo-server    2.50 KiB of server RSS per connection"
            ),
            "{text}"
        );
        assert!(text.contains("never sent"), "{text}");
        assert!(text.contains("MISSED"), "{text}");
        assert!(text.contains("1 of 2 targets met"), "{text}");
    }

    #[test]
    fn the_text_and_json_carry_every_run() {
        let runs = vec![
            run("pingpong", Framed, Reference, 16_000.0, 60.0),
            run("pingpong", Framed, EchoServer, 16_500.0, 58.0),
        ];
        let results = results(runs, Vec::new());
        let text = results.to_string();
        assert!(
            text.starts_with("echo bench: one round, 5 s per run"),
            "{text}"
        );
        assert!(text.contains("C epoll"), "{text}");
        assert!(text.contains("16500"), "{text}");
        assert!(text.contains("1 of 1 targets met"), "{text}");
        let json = results.to_json();
        assert_eq!(json["runs"].as_array().unwrap().len(), 2);
        assert_eq!(json["runs"][1]["server"], "echo-server");
        assert_eq!(json["runs"][1]["mode"], "framed");
        assert_eq!(json["runs"][1]["latency_us"]["p50"], 58.0);
        assert_eq!(json["targets"][0]["at_most"], 1.05);
        assert_eq!(json["targets"][0]["met"], true);
        assert_eq!(json["machine"]["cpus"], 2);
        let keys = |value: &Value| {
            value
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            keys(&json["runs"][0]),
            "client client_cpu_per_message_us client_load connections depth echoed fairness \
             latency_us megabytes_per_s messages_per_s mode scenario server server_cpu_per_message_us server_load size"
        );
        assert_eq!(
            keys(&json["targets"][0]),
            "at_most met mode scenario value what"
        );
    }

    #[test]
    fn without_a_reference_nothing_is_compared_to_it() {
        let results = results(
            vec![run("pingpong", Framed, EchoServer, 16_000.0, 60.0)],
            Vec::new(),
        );
        assert!(results.checks().is_empty(), "{:?}", results.checks());
        let nothing = super::tests::results(Vec::new(), Vec::new()).to_string();
        assert!(nothing.contains("no targets judged"), "{nothing}");
    }
}
