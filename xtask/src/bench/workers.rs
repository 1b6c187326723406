//! `cargo xtask bench --workers N`: echo-server with N workers, each with a
//! runtime and a listener of its own (`--runtime per-worker`), against the
//! same N threads as one multi-threaded runtime behind one listener
//! (`--runtime shared`), on the loads that keep every worker busy.
//!
//! The server may use every core (it is not pinned); the client stays on
//! its own core, which it then shares with a worker. What is compared is
//! what each runtime costs the server per echo (its CPU time over the
//! echoes), the rate, the p99 latency, and how evenly the echoes were
//! spread over the connections (Jain's index, 1 for an even spread), as
//! medians of rounds in which the two take turns. The shared runtime with
//! one worker is measured beside them, for the scale-out target: N workers
//! cost at most 1.05 times one worker's CPU per echo.

use anyhow::Result;
use serde::Serialize;

use super::measure::{Contender, Run};
use super::scenario::{Mode, SCENARIOS};
use super::servers::{ClientKind, Lab, ServerKind};

/// The runtimes compared, as `echo-server --runtime` names them.
pub(crate) const RUNTIMES: [&str; 2] = ["per-worker", "shared"];

/// The most server CPU per echo N workers may cost, as a multiple of one
/// worker's.
const WORKERS_CPU_TARGET: f64 = 1.05;

/// The loads compared: many connections, and pipelined messages.
const LOADS: [&str; 2] = ["fanin", "pipelined"];

/// One load's figures on one runtime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WorkersRun {
    pub(crate) runtime: &'static str,
    pub(crate) workers: usize,
    #[serde(flatten)]
    pub(crate) run: Run,
}

/// Measures each load on each runtime, `rounds` times, the runtimes taking
/// turns; returns the medians, a load's runtimes side by side.
pub(crate) fn compare(lab: &Lab, workers: usize, rounds: usize) -> Result<Vec<WorkersRun>> {
    // Each runtime with N workers, then the shared one with one worker.
    let variants: Vec<(&'static str, usize)> = RUNTIMES
        .iter()
        .map(|&runtime| (runtime, workers))
        .chain([(RUNTIMES[1], 1)])
        .collect();
    let mut servers = Vec::new();
    for &(runtime, workers) in &variants {
        let workers = workers.to_string();
        let extra = ["--workers", &workers, "--runtime", runtime];
        servers.push(lab.start_unpinned(Mode::Framed, &extra)?);
    }
    let who = Contender {
        mode: Mode::Framed,
        server: ServerKind::EchoServer,
        client: ClientKind::EchoClient,
    };
    let mut medians = Vec::new();
    let loads = SCENARIOS
        .iter()
        .filter(|scenario| LOADS.contains(&scenario.name));
    for &scenario in loads {
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); variants.len()];
        for round in 0..rounds {
            for turn in 0..variants.len() {
                let index = (turn + round) % variants.len();
                let run = lab.measure(&servers[index], who, scenario)?;
                let (runtime, workers) = variants[index];
                eprintln!(
                    "==> workers {runtime} ×{workers} {} round {}: {:.0} msgs/s, server CPU {:.3} µs/msg",
                    scenario.name,
                    round + 1,
                    run.report.messages_per_s,
                    run.server_cpu_per_message_us
                );
                runs[index].push(run);
            }
        }
        for (index, runs) in runs.iter().enumerate() {
            if let Some(run) = Run::median(runs) {
                let (runtime, workers) = variants[index];
                medians.push(WorkersRun {
                    runtime,
                    workers,
                    run,
                });
            }
        }
    }
    for server in servers {
        server.stop(std::time::Instant::now() + std::time::Duration::from_secs(30))?;
    }
    Ok(medians)
}

/// The comparison as a table, with each load's shared runtime judged
/// against its per-worker one.
pub(crate) fn table(runs: &[WorkersRun]) -> String {
    let mut text = format!(
        "{:<10} {:<14} {:>12} {:>16} {:>10} {:>9}\n",
        "load", "runtime", "msgs/s", "server µs/msg", "p99 µs", "fairness"
    );
    for run in runs {
        let p99 = run
            .run
            .report
            .latency
            .p99
            .map_or("-".to_owned(), |p99| format!("{p99:.0}"));
        let fairness = run
            .run
            .report
            .fairness
            .map_or("-".to_owned(), |index| format!("{index:.3}"));
        text += &format!(
            "{:<10} {:<14} {:>12.0} {:>16.3} {:>10} {:>9}\n",
            run.run.scenario.name,
            format!("{} ×{}", run.runtime, run.workers),
            run.run.report.messages_per_s,
            run.run.server_cpu_per_message_us,
            p99,
            fairness
        );
    }
    for scenario in SCENARIOS
        .iter()
        .filter(|scenario| LOADS.contains(&scenario.name))
    {
        let of = |runtime, one: bool| {
            runs.iter().find(|run| {
                run.runtime == runtime
                    && (run.workers == 1) == one
                    && run.run.scenario.name == scenario.name
            })
        };
        let cpu = |run: &WorkersRun| run.run.server_cpu_per_message_us;
        if let (Some(per_worker), Some(shared)) = (of(RUNTIMES[0], false), of(RUNTIMES[1], false)) {
            text += &format!(
                "{}: shared costs {:.2}× the server CPU per echo of per-worker, at {:.2}× its rate\n",
                scenario.name,
                cpu(shared) / cpu(per_worker),
                shared.run.report.messages_per_s / per_worker.run.report.messages_per_s
            );
            if let Some(one) = of(RUNTIMES[1], true) {
                let ratio = cpu(shared) / cpu(one);
                text += &format!(
                    "{}: {} workers (shared) cost {ratio:.2}× the server CPU per echo of one worker, \
                     target ≤ {WORKERS_CPU_TARGET}×: {}\n",
                    scenario.name,
                    shared.workers,
                    if ratio <= WORKERS_CPU_TARGET {
                        "met"
                    } else {
                        "MISSED"
                    }
                );
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loads_compared_are_scenarios_of_the_bench() {
        for load in LOADS {
            assert!(
                SCENARIOS.iter().any(|scenario| scenario.name == load),
                "{load}"
            );
        }
    }
}
