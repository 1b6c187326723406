//! The bench engine against the real server in each mode, and against fakes
//! that damage, lose, duplicate or withhold echoes.

mod common;
mod support;

use std::time::Duration;

use common::{bounded, every_mode};
use echo_client::Mode;
use echo_client::bench::{self, BenchConfig, BenchEvent, BenchReport, Stop};
use echo_server::Mode as ServerMode;
use support::{Fake, STALL, UdpFake, echo_servers, fake_server, refused_addr, udp_fake};

async fn bench(config: BenchConfig) -> BenchReport {
    bounded(bench::run(&config)).await.expect("the bench runs")
}

fn config(addr: std::net::SocketAddr, mode: Mode) -> BenchConfig {
    BenchConfig {
        addr: addr.to_string(),
        mode,
        ..BenchConfig::default()
    }
}

/// Checks what holds of every clean run: counts that add up, percentiles in
/// order, a rate that follows from the counts.
#[track_caller]
fn assert_clean(report: &BenchReport, messages: u64) {
    assert!(report.succeeded(), "{report}");
    assert_eq!(
        (report.sent, report.echoed),
        (messages, messages),
        "{report}"
    );
    assert_eq!(report.errors.total, 0);
    assert_eq!(report.connections.failed, 0);
    let latency = report.latency.expect("echoes were timed");
    assert_eq!(latency.count, messages);
    assert!(
        latency.min <= latency.p50
            && latency.p50 <= latency.p90
            && latency.p90 <= latency.p99
            && latency.p99 <= latency.p99_9
            && latency.p99_9 <= latency.max,
        "{latency:?}"
    );
    assert!(report.elapsed > Duration::ZERO);
    let rate = messages as f64 / report.elapsed.as_secs_f64();
    assert!(
        (report.messages_per_s - rate).abs() < 1e-6 * rate,
        "{report:?}"
    );
    let megabytes = rate * report.parameters.size as f64 / 1e6;
    assert!((report.megabytes_per_s - megabytes).abs() < 1e-6 * megabytes.max(1e-9));
    // The client says how busy it was.
    let cpu = report
        .client_cpu
        .expect("Unix tells a process its CPU time");
    assert!(cpu.cores >= 1 && cpu.busy_percent >= 0.0, "{cpu:?}");
    assert_eq!(cpu.limited, cpu.busy_percent >= 90.0, "{cpu:?}");
    // Every connection opened is in the fairness figures, and its echoes
    // add up to the run's.
    let fairness = report.fairness.expect("something was echoed");
    let connections = report.connections.connected as u64;
    assert_eq!(fairness.connections, connections);
    assert!(
        fairness.min_echoes * connections <= messages
            && messages <= fairness.max_echoes * connections,
        "{fairness:?}"
    );
    let fewest = 1.0 / connections as f64;
    assert!(
        fairness.jain_index >= fewest - 1e-9 && fairness.jain_index <= 1.0 + 1e-9,
        "{fairness:?}"
    );
}

/// Checks that the report's first error says `expected`, among other things.
#[track_caller]
fn assert_first_error(report: &BenchReport, expected: &str) {
    let first = report.first_error.as_deref().unwrap_or_default();
    assert!(
        first.contains(expected),
        "{first:?} should say {expected:?}"
    );
}

/// Checks that the run found `count` errors, all corrupted echoes, the first
/// of them the echo of message `seq`, differing at `byte`.
#[track_caller]
fn assert_corrupted(report: &BenchReport, count: u64, seq: u64, byte: usize) {
    assert_eq!(
        (report.errors.total, report.errors.corrupted),
        (count, count),
        "{report}"
    );
    assert_first_error(
        report,
        &format!("the echo of message {seq} differs from it at byte {byte}"),
    );
}

#[tokio::test]
async fn benches_every_mode_with_many_connections_and_pipelining() {
    for (addr, mode) in every_mode().await {
        for (connections, depth) in [(1, 1), (5, 16)] {
            let report = bench(BenchConfig {
                connections,
                depth,
                stop: Stop::Messages(2_003),
                ..config(addr, mode)
            })
            .await;
            assert_clean(&report, 2_003);
            assert_eq!(report.connections.connected, connections, "{mode}");
        }
    }
}

/// Windows of thousands of messages: several 64 KiB batches in flight per
/// connection, sent from and checked against the kept ring as it wraps, in
/// both TCP modes.
#[tokio::test]
async fn wide_windows_of_many_batches_arrive_whole() {
    for (server_mode, mode) in [
        (ServerMode::Framed, Mode::Framed),
        (ServerMode::Raw, Mode::Raw),
    ] {
        let servers = echo_servers(server_mode).await;
        let report = bench(BenchConfig {
            connections: 2,
            depth: 2_000,
            stop: Stop::Messages(40_000),
            ..config(servers.tcp, mode)
        })
        .await;
        assert_clean(&report, 40_000);
    }
}

#[tokio::test]
async fn benches_large_and_empty_messages() {
    let servers = echo_servers(ServerMode::Framed).await;
    for size in [0, 1, 11, 200_000] {
        let report = bench(BenchConfig {
            size,
            depth: 4,
            stop: Stop::Messages(40),
            ..config(servers.tcp, Mode::Framed)
        })
        .await;
        assert_clean(&report, 40);
    }
}

/// The fake changes one byte of one echo on each connection: exactly one
/// error per connection, and everything else echoed.
#[tokio::test]
async fn a_corrupted_byte_is_one_error() {
    let addr = fake_server(Fake::CorruptOneFrame).await;
    let report = bench(BenchConfig {
        connections: 2,
        depth: 8,
        stop: Stop::Messages(200),
        ..config(addr, Mode::Framed)
    })
    .await;
    assert!(!report.succeeded());
    assert_corrupted(&report, 2, 3, 63);
    assert_eq!((report.sent, report.echoed), (200, 198));
    assert_eq!(report.connections.failed, 0);
}

#[tokio::test]
async fn a_corrupted_raw_byte_is_one_error() {
    let addr = fake_server(Fake::CorruptOneRawByte).await;
    let report = bench(BenchConfig {
        depth: 4,
        stop: Stop::Messages(50),
        ..config(addr, Mode::Raw)
    })
    .await;
    // Byte 100 of the stream is byte 36 of the second 64-byte message.
    assert_corrupted(&report, 1, 1, 36);
    assert_eq!(report.echoed, 49);
}

/// The fake echoes each read in one write, so pipelined echoes come back
/// many to a read, where the client verifies them in one comparison: the
/// damaged one among them is still found, and where it differs.
#[tokio::test]
async fn a_corrupted_byte_among_echoes_read_together_is_found_where_it_is() {
    let addr = fake_server(Fake::CorruptOneRawByte).await;
    let report = bench(BenchConfig {
        depth: 8,
        stop: Stop::Messages(50),
        ..config(addr, Mode::Framed)
    })
    .await;
    // Frames of 64-byte messages are 68 bytes: byte 100 of the stream is
    // byte 28 of the second message.
    assert_corrupted(&report, 1, 1, 28);
    assert_eq!((report.sent, report.echoed), (50, 49));
    assert_eq!(report.connections.failed, 0);
}

/// An extra frame puts the stream out of step: the connection fails, and
/// every message sent but not echoed by then is missing.
#[tokio::test]
async fn an_extra_echo_is_an_error_and_fails_the_connection() {
    let addr = fake_server(Fake::ExtraFrame).await;
    let report = bench(BenchConfig {
        stop: Stop::Messages(10),
        ..config(addr, Mode::Framed)
    })
    .await;
    assert!(!report.succeeded());
    assert_eq!(report.connections.failed, 1, "{report}");
    // The extra frame comes after the first echo: it is either an echo of
    // nothing (unexpected), or taken for the second message's (corrupted).
    assert!(report.echoed >= 1, "{report}");
    assert_eq!(
        report.errors.corrupted + report.errors.unexpected,
        1,
        "{report}"
    );
    assert_eq!(
        report.echoed + report.errors.corrupted + report.errors.missing,
        report.sent,
        "{report}"
    );
}

/// Every other datagram is dropped: half the messages are lost, each given
/// up after the timeout while the others go on, and the run still ends.
/// Loss is the path's figure, not an error.
#[tokio::test]
async fn lost_datagrams_are_a_loss_figure_not_errors() {
    let addr = udp_fake(UdpFake::DropEveryOther).await;
    let report = bench(BenchConfig {
        depth: 20,
        size: 32,
        stop: Stop::Messages(20),
        timeout: Duration::from_millis(200),
        ..config(addr, Mode::Udp)
    })
    .await;
    assert_eq!((report.sent, report.echoed), (20, 10), "{report}");
    let datagrams = report.datagrams.expect("a UDP run has datagram figures");
    assert_eq!(
        (datagrams.lost, datagrams.loss_percent),
        (10, 50.0),
        "{report}"
    );
    assert_eq!((report.errors.total, report.errors.missing), (0, 0));
    assert_eq!(report.connections.failed, 0);
    assert!(report.succeeded(), "{report}");
    assert!(
        report.to_string().contains("datagrams    10 lost (50%)"),
        "{report}"
    );
}

/// A path that answers nothing fails the bench, as ping fails: loss is a
/// figure only while something gets through.
#[tokio::test]
async fn a_udp_bench_with_no_reply_at_all_fails() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let report = bench(BenchConfig {
        stop: Stop::Messages(3),
        timeout: Duration::from_millis(100),
        ..config(socket.local_addr().unwrap(), Mode::Udp)
    })
    .await;
    assert_eq!((report.sent, report.echoed), (3, 0), "{report}");
    assert_eq!(report.datagrams.map(|datagrams| datagrams.lost), Some(3));
    assert!(!report.succeeded(), "{report}");
}

/// Replies that overtake each other are counted as reordered, and they show
/// in the jitter: each pair's first reply waited for the second message.
#[tokio::test]
async fn reordered_datagrams_are_counted_and_jitter_measured() {
    let addr = udp_fake(UdpFake::SwapPairs).await;
    let report = bench(BenchConfig {
        depth: 2,
        stop: Stop::Messages(40),
        ..config(addr, Mode::Udp)
    })
    .await;
    assert_eq!(report.echoed, 40, "{report}");
    let datagrams = report.datagrams.unwrap();
    assert_eq!((datagrams.reordered, datagrams.lost), (20, 0), "{report}");
    assert!(datagrams.jitter > Duration::ZERO, "{report}");
    assert!(report.succeeded(), "{report}");
}

#[tokio::test]
async fn duplicate_datagrams_are_counted_apart_not_as_errors() {
    let addr = udp_fake(UdpFake::Duplicate).await;
    let report = bench(BenchConfig {
        depth: 1,
        stop: Stop::Messages(20),
        ..config(addr, Mode::Udp)
    })
    .await;
    assert_eq!(report.echoed, 20, "{report}");
    // Each message's duplicate is read while a later message is awaited,
    // except perhaps the last one's.
    let datagrams = report.datagrams.unwrap();
    assert!((19..=20).contains(&datagrams.duplicated), "{report}");
    assert_eq!((report.errors.total, datagrams.lost), (0, 0), "{report}");
    assert!(report.succeeded(), "{report}");
}

/// A server that never answers: each connection gives up after the timeout,
/// its messages missing.
#[tokio::test]
async fn a_silent_server_fails_every_connection_after_the_timeout() {
    let addr = fake_server(Fake::Silent).await;
    let report = bench(BenchConfig {
        connections: 3,
        depth: 2,
        stop: Stop::Messages(30),
        timeout: Duration::from_millis(200),
        ..config(addr, Mode::Framed)
    })
    .await;
    assert_eq!(report.connections.failed, 3, "{report}");
    assert_eq!(
        (report.echoed, report.errors.missing),
        (0, 6),
        "two in flight each"
    );
    assert_eq!(report.latency, None);
    assert_first_error(&report, &format!("no echo from {addr} within 200ms"));
}

#[tokio::test]
async fn connections_that_cannot_open_are_counted() {
    let addr = refused_addr().await;
    let report = bench(BenchConfig {
        connections: 4,
        stop: Stop::Messages(10),
        ..config(addr, Mode::Framed)
    })
    .await;
    assert_eq!(
        (
            report.connections.requested,
            report.connections.connected,
            report.connections.failed
        ),
        (4, 0, 4)
    );
    assert_eq!((report.sent, report.echoed), (0, 0));
    assert!(!report.succeeded());
    assert_first_error(&report, &format!("cannot connect to {addr}: "));
}

#[tokio::test]
async fn a_bad_setting_is_an_error_before_anything_is_sent() {
    let error = bench::run(&BenchConfig {
        depth: 0,
        ..BenchConfig::default()
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains("depth"), "{error}");
}

/// Paced at 400 messages a second for half a second: about 200 messages,
/// whatever the speed of the machine (loose bounds: this counts messages,
/// it does not time them).
#[tokio::test]
async fn a_paced_run_sends_rate_times_duration_messages() {
    let servers = echo_servers(ServerMode::Framed).await;
    let report = bench(BenchConfig {
        connections: 4,
        depth: 8,
        rate: Some(400.0),
        stop: Stop::Duration(Duration::from_millis(500)),
        ..config(servers.tcp, Mode::Framed)
    })
    .await;
    assert!((100..=260).contains(&report.sent), "{report}");
    assert_eq!(report.echoed, report.sent);
    assert!(report.succeeded());
}

/// A server that stalls once, for 300 ms, while messages are due every 5 ms:
/// every message due during the stall is timed from when it was due, so
/// dozens of latencies show the stall, not just the one message that was
/// in flight (no coordinated omission). Counts, not timing: the stall is
/// long enough that no machine hides it.
#[tokio::test]
async fn a_stall_shows_in_the_latency_of_every_message_due_during_it() {
    let addr = fake_server(Fake::StallOnce).await;
    let report = bench(BenchConfig {
        rate: Some(200.0),
        stop: Stop::Duration(Duration::from_millis(800)),
        ..config(addr, Mode::Framed)
    })
    .await;
    assert!(report.succeeded(), "{report}");
    let histogram = report.latency_stats.histogram();
    let third_of_stall = (STALL / 3).as_nanos() as u64;
    let delayed = histogram.count_between(third_of_stall, u64::MAX);
    // About 40 messages fall due in the first two thirds of the stall.
    assert!(
        delayed >= 20,
        "{delayed} latencies over {third_of_stall} ns: {report}"
    );
    assert!(report.latency.unwrap().max >= STALL / 2, "{report}");
}

/// The warmup's messages are echoed and checked but not counted; a duration
/// run reports its intervals in order.
#[tokio::test]
async fn warmup_and_intervals() {
    let servers = echo_servers(ServerMode::Framed).await;
    let report = bench(BenchConfig {
        warmup: Duration::from_millis(100),
        stop: Stop::Messages(300),
        ..config(servers.tcp, Mode::Framed)
    })
    .await;
    assert_clean(&report, 300);

    let mut events = Vec::new();
    let config = BenchConfig {
        stop: Stop::Duration(Duration::from_millis(500)),
        report_interval: Some(Duration::from_millis(100)),
        ..config(servers.tcp, Mode::Framed)
    };
    let report = bounded(bench::run_with(
        &config,
        |event| events.push(event),
        std::future::pending(),
    ))
    .await
    .unwrap();
    assert!(report.succeeded());
    assert!(matches!(
        events.first(),
        Some(BenchEvent::Connected {
            connected: 1,
            failed: 0
        })
    ));
    assert!(
        events
            .iter()
            .any(|event| matches!(event, BenchEvent::Progress(_)))
    );
    let intervals: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            BenchEvent::Interval(interval) => Some(interval.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(intervals, report.intervals);
    assert!(intervals.len() >= 4, "{intervals:?}");
    for pair in intervals.windows(2) {
        assert_eq!(pair[0].end, pair[1].start);
    }
    assert_eq!(intervals[0].start, Duration::ZERO);
    let in_intervals: u64 = intervals.iter().map(|interval| interval.echoed).sum();
    assert!(in_intervals <= report.echoed && in_intervals > 0);
}

/// An interruption stops the sending as the deadline would, and the run
/// reports what it did.
#[tokio::test]
async fn an_interrupted_run_still_reports() {
    let servers = echo_servers(ServerMode::Framed).await;
    let config = BenchConfig {
        stop: Stop::Duration(Duration::from_secs(3600)),
        ..config(servers.tcp, Mode::Framed)
    };
    let (interrupt, interrupted) = tokio::sync::oneshot::channel::<()>();
    let mut interrupt = Some(interrupt);
    // Interrupt once the first echoes are in.
    let observer = |event: BenchEvent| {
        if let BenchEvent::Progress(progress) = event {
            if progress.echoed > 0 {
                if let Some(interrupt) = interrupt.take() {
                    let _ = interrupt.send(());
                }
            }
        }
    };
    let report = bounded(bench::run_with(&config, observer, async {
        let _ = interrupted.await;
    }))
    .await
    .unwrap();
    assert!(report.interrupted);
    assert!(report.echoed > 0);
    assert_eq!(report.echoed, report.sent);
    assert!(report.succeeded());
}

#[tokio::test]
async fn the_report_is_one_json_document_with_units_in_names() {
    let servers = echo_servers(ServerMode::Framed).await;
    let report = bench(BenchConfig {
        stop: Stop::Messages(10),
        ..config(servers.tcp, Mode::Framed)
    })
    .await;
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["parameters"]["messages"], 10);
    assert_eq!(json["parameters"]["mode"], "framed");
    assert_eq!(json["echoed"], 10);
    assert_eq!(json["errors"]["total"], 0);
    assert_eq!(json["connections"]["failed"], 0);
    for field in ["min", "mean", "max", "mdev", "p50", "p90", "p99", "p99_9"] {
        assert!(
            json["latency_us"][field]
                .as_f64()
                .is_some_and(|us| us > 0.0),
            "{field}"
        );
    }
    assert!(json["elapsed_s"].as_f64().is_some_and(|s| s > 0.0));
    assert!(
        json["messages_per_s"]
            .as_f64()
            .is_some_and(|rate| rate > 0.0)
    );
}

/// Other programs take the report typed: it reads back from its JSON to a
/// report that writes the same JSON, intervals and latencies included.
#[tokio::test]
async fn the_json_report_reads_back_to_the_same_report() {
    let servers = echo_servers(ServerMode::Framed).await;
    let report = bench(BenchConfig {
        connections: 2,
        stop: Stop::Duration(Duration::from_millis(300)),
        warmup: Duration::from_millis(50),
        rate: Some(2_000.0),
        report_interval: Some(Duration::from_millis(100)),
        ..config(servers.tcp, Mode::Framed)
    })
    .await;
    assert!(
        !report.intervals.is_empty() && report.latency.is_some(),
        "{report}"
    );
    let json = report.to_json();
    let back: BenchReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back.to_json(), json);
    assert_eq!(back.parameters, report.parameters);
    assert_eq!(back.intervals, report.intervals);
    assert_eq!(back.latency, report.latency);
    assert_eq!(back.elapsed, report.elapsed);
    // The histogram is not in the JSON.
    assert_eq!(back.latency_stats.count(), 0);
}

/// Against a server that expects a PROXY header, every connection of a
/// bench opens with one, in either version and either TCP mode: the server
/// closes a connection without a valid one, so a clean run shows they were
/// sent and valid.
#[tokio::test]
async fn every_connection_opens_with_the_proxy_header_asked_for() {
    use echo_client::{ProxyProtocol, ProxyVersion};
    for server_mode in [ServerMode::Framed, ServerMode::Raw] {
        let addr = support::proxied_echo_server(server_mode).await;
        let mode = match server_mode {
            ServerMode::Framed => Mode::Framed,
            _ => Mode::Raw,
        };
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            let report = bench(BenchConfig {
                connections: 3,
                depth: 4,
                stop: Stop::Messages(300),
                proxy_protocol: Some(ProxyProtocol {
                    version,
                    source: Some("198.18.0.9:4000".parse().unwrap()),
                }),
                ..config(addr, mode)
            })
            .await;
            assert_clean(&report, 300);
            assert_eq!(
                report.parameters.proxy_protocol.map(|proxy| proxy.version),
                Some(version)
            );
        }
        // Without the header the same server serves nothing.
        let report = bench(BenchConfig {
            stop: Stop::Messages(10),
            timeout: Duration::from_secs(1),
            ..config(addr, mode)
        })
        .await;
        assert!(!report.succeeded(), "{report}");
    }
    // Over UDP there is no connection to open with a header.
    let udp = BenchConfig {
        mode: Mode::Udp,
        proxy_protocol: Some(ProxyProtocol {
            version: ProxyVersion::V2,
            source: None,
        }),
        ..BenchConfig::default()
    };
    let error = udp.validate().unwrap_err().to_string();
    assert!(
        error.contains("PROXY protocol header goes over TCP"),
        "{error}"
    );
}

/// A client that kept its cores busy says, in its report, that the figures
/// may be its own limit; the JSON carries the same.
#[tokio::test]
async fn a_client_that_was_the_limit_says_so() {
    use echo_client::bench::ClientCpu;
    let addr = support::echo_server().await;
    let mut report = bench(BenchConfig {
        stop: Stop::Messages(100),
        ..config(addr, Mode::Framed)
    })
    .await;
    report.client_cpu = Some(ClientCpu::new(
        Duration::from_millis(1_900),
        Duration::from_secs(1),
        2,
    ));
    let text = report.to_string();
    assert!(
        text.contains("client       95% of its 2 cores busy: the client may have been the limit"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["client_cpu"]["limited"], true, "{json}");
    assert_eq!(json["client_cpu"]["cores"], 2, "{json}");
    report.client_cpu = Some(ClientCpu::new(
        Duration::from_millis(400),
        Duration::from_secs(1),
        2,
    ));
    let text = report.to_string();
    assert!(
        text.contains("client       20% of its 2 cores busy\n"),
        "{text}"
    );
}
