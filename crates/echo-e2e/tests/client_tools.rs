//! The client as a network tool, against the real server in each mode:
//! `ping` over framed TCP, raw TCP and UDP, and `bench --json` likewise.
//!
//! The flags are the shorthands (`--raw`, `--udp`), which every version of
//! the client accepts.

use std::net::SocketAddr;

use echo_e2e::{client, start_server};
use echo_testkit::{Kind, Output, deadline};
use serde_json::Value;

/// One of the server's modes, as the client reaches it.
struct Target {
    addr: SocketAddr,
    /// The client's flag for the mode, if it is not the default.
    flag: Option<&'static str>,
    /// The mode's name, as the client prints it.
    mode: &'static str,
}

/// Runs `echo-client --addr ADDR [FLAG] ARGS...` against a server in each
/// mode (a framed one, and a raw one with UDP beside it), and checks each
/// run with `check`.
fn in_every_mode(args: &[&str], check: impl Fn(&Target, &Output)) {
    let deadline = deadline();
    let (_framed, [framed]) = start_server(&[], [Kind::Framed], deadline).unwrap();
    let (_raw, [raw, udp]) = start_server(
        &["--mode", "raw", "--udp", "127.0.0.1:0"],
        [Kind::Raw, Kind::Udp],
        deadline,
    )
    .unwrap();
    let target = |addr, flag, mode| Target { addr, flag, mode };
    for target in [
        target(framed, None, "framed"),
        target(raw, Some("--raw"), "raw"),
        target(udp, Some("--udp"), "udp"),
    ] {
        let output = client(target.addr)
            .unwrap()
            .args(target.flag)
            .args(args)
            .run(deadline)
            .unwrap();
        check(&target, &output);
    }
}

/// The lines of stdout of a run that must have exited 0.
fn success_lines(output: &Output) -> Vec<String> {
    assert_eq!(output.status.code(), Some(0), "{output}");
    output.stdout_text().lines().map(str::to_owned).collect()
}

#[test]
fn ping_speaks_every_mode_of_the_server() {
    let args = ["ping", "-c", "3", "-i", "20", "-s", "100"];
    in_every_mode(&args, |&Target { addr, mode, .. }, output| {
        let lines = success_lines(output);
        // Over TCP a last line says how long connecting took.
        let tcp = mode != "udp";
        assert_eq!(lines.len(), 3 + 4 + usize::from(tcp), "{mode}: {output}");
        if tcp {
            assert!(
                lines[7].starts_with("connect ") && lines[7].ends_with(" ms"),
                "{mode}: {output}"
            );
        }
        assert_eq!(
            lines[0],
            format!("ECHO {addr} ({mode}): 100 bytes of payload"),
            "{output}"
        );
        for (seq, line) in (1..=3).zip(&lines[1..=3]) {
            let prefix = format!("100 bytes from {addr}: seq={seq} time=");
            assert!(
                line.starts_with(&prefix) && line.ends_with(" ms"),
                "{mode}: {line:?}"
            );
        }
        assert_eq!(
            lines[4],
            format!("--- {addr} echo statistics ---"),
            "{output}"
        );
        assert!(
            lines[5].starts_with("3 sent, 3 received, 0% loss, time "),
            "{output}"
        );
        let figures: Vec<f64> = lines[6]
            .strip_prefix("rtt min/avg/max/mdev = ")
            .and_then(|rest| rest.split(" ms").next())
            .unwrap_or_else(|| panic!("{mode}: no rtt line: {output}"))
            .split('/')
            .map(|figure| figure.parse().unwrap())
            .collect();
        assert_eq!(figures.len(), 4, "{output}");
        assert!(
            figures[0] <= figures[1] && figures[1] <= figures[2],
            "{mode}: rtt figures out of order: {figures:?}"
        );
    });
}

/// The report of a `bench --json` run, checked: it exited 0 with nothing on
/// stderr, every message sent came back intact on connections that all
/// opened, and the latency percentiles are in order.
fn clean_report(output: &Output, mode: &str) -> Value {
    assert_eq!(output.status.code(), Some(0), "{mode}: {output}");
    assert!(output.stderr.is_empty(), "{mode}: {output}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{mode}: not one JSON document ({error}): {output}"));
    assert_eq!(report["echoed"], report["sent"], "{mode}: {report}");
    assert_eq!(report["errors"]["total"], 0, "{mode}: {report}");
    assert_eq!(report["connections"]["failed"], 0, "{mode}: {report}");
    let latency = &report["latency_us"];
    let figures: Vec<f64> = ["min", "p50", "p90", "p99", "p99_9", "max"]
        .iter()
        .map(|name| {
            latency[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{mode}: no latency_us.{name}: {report}"))
        })
        .collect();
    assert!(
        figures.is_sorted(),
        "{mode}: latency percentiles out of order: {latency}"
    );
    assert!(
        report["messages_per_s"]
            .as_f64()
            .is_some_and(|rate| rate > 0.0),
        "{mode}: {report}"
    );
    report
}

#[test]
fn bench_json_speaks_every_mode_of_the_server() {
    let args = [
        "bench", "-n", "2000", "-c", "4", "-d", "8", "-s", "128", "--json",
    ];
    in_every_mode(&args, |&Target { mode, .. }, output| {
        let report = clean_report(output, mode);
        assert_eq!(report["sent"], 2000, "{mode}: {report}");
        let parameters = &report["parameters"];
        assert_eq!(
            [
                &parameters["connections"],
                &parameters["depth"],
                &parameters["size"]
            ],
            [4, 8, 128],
            "{mode}: {report}"
        );
    });
}

#[test]
fn bench_rate_paces_the_messages() {
    let deadline = deadline();
    let (_server, [addr]) = start_server(&[], [Kind::Framed], deadline).unwrap();
    let output = client(addr)
        .unwrap()
        .args(["bench", "--rate", "400", "-t", "0.5", "-c", "4", "-d", "8"])
        .arg("--json")
        .run(deadline)
        .unwrap();
    let report = clean_report(&output, "framed");
    // 400 messages a second for half a second: about 200. The bounds are
    // loose, since this counts messages, it does not time them.
    let sent = report["sent"].as_u64().unwrap_or_default();
    assert!((100..=260).contains(&sent), "{sent} sent: {report}");
}

/// Two benches at once, as two load hosts would run them, merged by
/// `echo-client merge`; and each report's latency histogram read by an
/// HdrHistogram implementation of its own (Python's `hdrh`), where present.
#[test]
fn reports_of_benches_run_at_once_merge_and_their_histograms_are_hdrhistograms() {
    let deadline = deadline();
    let (_server, [addr]) = start_server(&["--greeting"], [Kind::Framed], deadline).unwrap();
    let bench = |connections: &str| {
        client(addr)
            .unwrap()
            .args(["--expect-greeting", "bench", "--json", "-t", "2", "-c"])
            .arg(connections)
            .start()
            .unwrap()
    };
    let (mut a, mut b) = (bench("2"), bench("3"));
    let (a, b) = (a.wait(deadline).unwrap(), b.wait(deadline).unwrap());
    let dir = echo_testkit::certs::CertDir::new().unwrap();
    let mut files = Vec::new();
    let mut echoed = 0;
    for (name, output) in [("a.json", &a), ("b.json", &b)] {
        echoed += clean_report(output, "framed")["echoed"].as_u64().unwrap();
        files.push(dir.write(name, &output.stdout_text()).unwrap());
    }

    let merged = client(addr)
        .unwrap()
        .args(["merge", "--json"])
        .args(&files)
        .run(deadline)
        .unwrap();
    let report = clean_report(&merged, "framed");
    assert_eq!(report["echoed"], echoed, "{report}");
    assert_eq!(report["connections"]["connected"], 5, "{report}");
    assert_eq!(report["latency_us"]["count"], echoed, "{report}");
    let hosts: Vec<&str> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|host| host["name"].as_str().unwrap())
        .collect();
    assert!(
        hosts[0].ends_with("a.json") && hosts[1].ends_with("b.json"),
        "{hosts:?}"
    );
    let human = client(addr)
        .unwrap()
        .arg("merge")
        .args(&files)
        .run(deadline)
        .unwrap();
    let text = success_lines(&human).join("\n");
    assert!(text.contains("merged from 2 hosts"), "{text}");

    let Some(python) = echo_e2e::find_on_path("python3") else {
        eprintln!("SKIPPED: the HdrHistogram interop part: python3 is not installed");
        return;
    };
    let decode = "import json, sys\n\
                  from hdrh.histogram import HdrHistogram\n\
                  report = json.load(sys.stdin)\n\
                  h = HdrHistogram.decode(report['latency_histogram'])\n\
                  print(h.get_total_count(), h.get_mean_value() / 1000, h.get_max_value() / 1000)";
    let probe = echo_testkit::Spawn::new(&python)
        .args(["-c", "import hdrh"])
        .run(deadline)
        .unwrap();
    if !probe.status.success() {
        eprintln!("SKIPPED: the HdrHistogram interop part: pip install hdrhistogram");
        return;
    }
    let read = echo_testkit::Spawn::new(&python)
        .args(["-c", decode])
        .stdin(merged.stdout.clone())
        .run(deadline)
        .unwrap();
    let line = success_lines(&read).join("");
    let figures: Vec<&str> = line.split(' ').collect();
    let [count, mean, max] = figures[..] else {
        panic!("not three figures: {line}");
    };
    assert_eq!(count.parse::<u64>().unwrap(), echoed, "{line}");
    // The histogram's figures are its buckets', within 0.1% of the exact
    // ones ours are. (Percentiles are not compared: the two libraries round
    // a percentile's rank differently, and in a sparse tail one rank can
    // be a few buckets away from the next.)
    for (theirs, field) in [(mean, "mean"), (max, "max")] {
        let theirs: f64 = theirs.parse().unwrap();
        let ours = report["latency_us"][field].as_f64().unwrap();
        assert!(
            (theirs - ours).abs() <= ours / 500.0,
            "{field}: {theirs} vs {ours}"
        );
    }
}
