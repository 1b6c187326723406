//! Scenarios for the client as a network tool: `ping` and `bench`, over
//! framed TCP, raw TCP and UDP, in human form and in JSON, against the real
//! server binary.

use std::net::SocketAddr;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use super::Scenario;
use crate::e2e::harness::{Ctx, Listener, Output};

/// This topic's scenarios, in the order they run.
pub(super) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "ping",
        run: ping,
    },
    Scenario {
        name: "ping-raw-udp",
        run: ping_raw_udp,
    },
    Scenario {
        name: "bench-json",
        run: bench_json,
    },
    Scenario {
        name: "bench-human",
        run: bench_human,
    },
    Scenario {
        name: "bench-raw-udp",
        run: bench_raw_udp,
    },
    Scenario {
        name: "bench-rate",
        run: bench_rate,
    },
];

/// `ping -c 3`: a banner, a line per echo, the summary; exit 0.
fn ping(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        let output = ctx.client(addr, ["ping", "-c", "3", "-i", "50"], b"")?;
        let lines = success_lines(&output)?;
        expect_ping(&lines, addr, "framed", 56, 3)
    })
}

/// Ping over raw TCP and over UDP, against a server in raw mode with UDP.
fn ping_raw_udp(ctx: &Ctx<'_>) -> Result<()> {
    let server = ctx.server(&["--mode", "raw", "--udp", "127.0.0.1:0"])?;
    let checks = || -> Result<()> {
        for (listener, flag, name) in [
            (Listener::Raw, "--raw", "raw"),
            (Listener::Udp, "--udp", "udp"),
        ] {
            let addr = server.addr_of(listener)?;
            let output =
                ctx.client(addr, [flag, "ping", "-c", "2", "-i", "0", "-s", "100"], b"")?;
            let lines = success_lines(&output)?;
            expect_ping(&lines, addr, name, 100, 2).with_context(|| format!("with {flag}"))?;
        }
        Ok(())
    };
    checks().map_err(|error| server.explain(error))
}

/// `bench --json`: stdout is one JSON document whose counts add up, with no
/// error, percentiles in order, and nothing on stderr.
fn bench_json(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        let args = [
            "bench", "-n", "5000", "-c", "4", "-d", "8", "-s", "128", "--json",
        ];
        let output = ctx.client(addr, args, b"")?;
        let report = json_report(&output)?;
        expect_clean(&report, 5000)?;
        let parameters = &report["parameters"];
        ensure!(
            parameters["connections"] == 4 && parameters["depth"] == 8 && parameters["size"] == 128,
            "the parameters are not those asked for: {parameters}"
        );
        ensure!(output.stderr.is_empty(), "stderr is not empty: {output}");
        Ok(())
    })
}

/// The human report: the settings, interval lines, the results block; plain
/// text, since stdout and stderr are pipes.
fn bench_human(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        let output = ctx.client(addr, ["bench", "-t", "0.6", "-i", "0.2", "-c", "2", "-d", "4"], b"")?;
        let lines = success_lines(&output)?;
        ensure!(
            lines[0] == format!("BENCH {addr} (framed): 2 connections, depth 4, 64-byte messages, for 0.6 s, unpaced"),
            "unexpected banner: {:?}",
            lines[0]
        );
        ensure!(lines[1].starts_with("[  0.0-  0.2 s]  "), "no interval line: {output}");
        let results = lines
            .iter()
            .position(|line| *line == format!("--- {addr} bench results ---"))
            .with_context(|| format!("no results block: {output}"))?;
        let block = &lines[results..];
        for (index, start) in [(1, "messages "), (2, "throughput "), (3, "latency      min ")] {
            ensure!(
                block.get(index).is_some_and(|line| line.starts_with(start)),
                "line {index} of the results should start with {start:?}: {output}"
            );
        }
        ensure!(block.iter().any(|line| line == "errors       0"), "errors are not 0: {output}");
        ensure!(
            block.iter().any(|line| line == "connections  2 of 2 connected, 0 failed"),
            "connections: {output}"
        );
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), output.stderr_text());
        ensure!(
            !text.contains('\x1b') && !text.contains('\r'),
            "control characters in piped output: {text:?}"
        );
        Ok(())
    })
}

/// The bench over raw TCP and over UDP.
fn bench_raw_udp(ctx: &Ctx<'_>) -> Result<()> {
    let server = ctx.server(&["--mode", "raw", "--udp", "127.0.0.1:0"])?;
    let checks = || -> Result<()> {
        for (listener, flag) in [(Listener::Raw, "--raw"), (Listener::Udp, "--udp")] {
            let addr = server.addr_of(listener)?;
            let output = ctx.client(
                addr,
                [flag, "bench", "-n", "2000", "-c", "2", "-d", "8", "--json"],
                b"",
            )?;
            let report = json_report(&output).with_context(|| format!("with {flag}"))?;
            expect_clean(&report, 2000).with_context(|| format!("with {flag}"))?;
            ensure!(
                report["parameters"]["mode"] == flag[2..],
                "wrong transport: {report}"
            );
        }
        Ok(())
    };
    checks().map_err(|error| server.explain(error))
}

/// Paced at 400 messages a second for half a second: about 200 messages are
/// sent (loose bounds: this counts messages, it does not time them).
fn bench_rate(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&[], |addr| {
        let output = ctx.client(
            addr,
            [
                "bench", "--rate", "400", "-t", "0.5", "-c", "4", "-d", "8", "--json",
            ],
            b"",
        )?;
        let report = json_report(&output)?;
        let sent = report["sent"].as_u64().context("no sent count")?;
        ensure!(
            (100..=260).contains(&sent),
            "{sent} messages sent at 400/s for 0.5 s"
        );
        expect_clean(&report, sent)
    })
}

/// The lines of stdout of a run that exited 0.
fn success_lines(output: &Output) -> Result<Vec<String>> {
    ensure!(
        output.status.code() == Some(0),
        "expected exit code 0, got {output}"
    );
    let stdout = String::from_utf8(output.stdout.clone()).context("stdout is not UTF-8")?;
    Ok(stdout.lines().map(str::to_owned).collect())
}

/// Checks ping's output: the banner, `count` echo lines, and a summary with
/// no loss and ordered round-trip figures.
fn expect_ping(
    lines: &[String],
    addr: SocketAddr,
    transport: &str,
    size: usize,
    count: usize,
) -> Result<()> {
    ensure!(
        lines.len() == count + 4,
        "expected {} lines, got {lines:#?}",
        count + 4
    );
    ensure!(
        lines[0] == format!("ECHO {addr} ({transport}): {size} bytes of payload"),
        "unexpected banner: {:?}",
        lines[0]
    );
    for (seq, line) in (1..=count).zip(&lines[1..=count]) {
        let prefix = format!("{size} bytes from {addr}: seq={seq} time=");
        ensure!(
            line.starts_with(&prefix) && line.ends_with(" ms"),
            "unexpected echo line: {line:?}"
        );
    }
    let summary = &lines[count + 1..];
    ensure!(
        summary[0] == format!("--- {addr} echo statistics ---"),
        "{summary:?}"
    );
    ensure!(
        summary[1].starts_with(&format!("{count} sent, {count} received, 0% loss, time ")),
        "{summary:?}"
    );
    let figures = summary[2]
        .strip_prefix("rtt min/avg/max/mdev = ")
        .and_then(|rest| rest.split(" ms").next())
        .with_context(|| format!("no rtt line: {summary:?}"))?;
    let figures: Vec<f64> = figures
        .split('/')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("rtt figures are not numbers: {figures:?}"))?;
    ensure!(
        figures.len() == 4 && figures[0] <= figures[1] && figures[1] <= figures[2],
        "rtt figures out of order: {figures:?}"
    );
    Ok(())
}

/// The JSON report of a bench that exited 0.
fn json_report(output: &Output) -> Result<Value> {
    ensure!(
        output.status.code() == Some(0),
        "expected exit code 0, got {output}"
    );
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("stdout is not one JSON document: {output}"))
}

/// Checks a report of a run that sent `messages` and had every echo back
/// intact, with latency percentiles in order.
fn expect_clean(report: &Value, messages: u64) -> Result<()> {
    ensure!(
        report["sent"] == messages && report["echoed"] == messages,
        "expected {messages} messages sent and echoed: {report}"
    );
    ensure!(
        report["errors"]["total"] == 0 && report["connections"]["failed"] == 0,
        "errors or failed connections: {report}"
    );
    let latency = &report["latency_us"];
    let figures: Vec<f64> = ["min", "p50", "p90", "p99", "p99_9", "max"]
        .iter()
        .map(|name| {
            latency[name]
                .as_f64()
                .with_context(|| format!("no latency_us.{name}"))
        })
        .collect::<Result<_>>()?;
    ensure!(
        figures.windows(2).all(|pair| pair[0] <= pair[1]),
        "latency percentiles out of order: {latency}"
    );
    ensure!(
        report["messages_per_s"]
            .as_f64()
            .is_some_and(|rate| rate > 0.0),
        "no rate: {report}"
    );
    Ok(())
}
