//! `BenchConfig::reconnect`: connections that fail are opened again and their
//! messages in flight sent again, against fakes that close connections in
//! the middle of a window and against the real server restarted mid-run.

mod common;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use common::bounded;
use echo_client::Mode;
use echo_client::bench::{self, BenchConfig, BenchEvent, BenchReport, Reconnects, Stop};
use echo_server::{Config, Server};
use support::{
    ECHOES_BEFORE_CLOSING, Fake, RAW_BYTES_BEFORE_CLOSING, fake_server, one_connection_server,
    silent_first_server,
};
use tokio::sync::oneshot;

async fn bench(config: BenchConfig) -> BenchReport {
    bounded(bench::run(&config)).await.expect("the bench runs")
}

/// A run of `messages` on `connections` connections to `addr`, pipelined,
/// reconnecting.
fn reconnecting(addr: SocketAddr, mode: Mode, connections: usize, messages: u64) -> BenchConfig {
    BenchConfig {
        addr: addr.to_string(),
        mode,
        connections,
        depth: 8,
        stop: Stop::Messages(messages),
        reconnect: true,
        ..BenchConfig::default()
    }
}

/// Checks that every message was echoed intact, however often its
/// connection failed, and returns what reconnecting cost.
#[track_caller]
fn assert_nothing_lost(report: &BenchReport, messages: u64) -> Reconnects {
    assert!(report.succeeded(), "{report}");
    assert_eq!(
        (report.sent, report.echoed, report.errors.total),
        (messages, messages, 0),
        "{report}"
    );
    assert_eq!(report.connections.failed, 0, "{report}");
    assert_eq!(
        report.latency.map(|latency| latency.count),
        Some(messages),
        "every echo is timed once"
    );
    report.reconnects.expect("a reconnecting run reports them")
}

#[tokio::test]
async fn framed_messages_in_flight_when_a_connection_closes_are_sent_again() {
    let addr = fake_server(Fake::CloseAfterEchoes).await;
    // Each connection's 100 messages take four connections of 25 echoes:
    // the fake closes the first three with a message read and not echoed.
    let report = bench(reconnecting(addr, Mode::Framed, 2, 200)).await;
    let reconnects = assert_nothing_lost(&report, 200);
    assert_eq!(ECHOES_BEFORE_CLOSING, 25);
    assert_eq!(reconnects.reconnects, 2 * 3, "{report}");
    assert!(
        (reconnects.reconnects..=8 * reconnects.reconnects).contains(&reconnects.resent),
        "at least the message read and not echoed, at most a window, each time: {reconnects:?}"
    );
    assert_eq!(reconnects.failed_attempts, 0);
    assert!(reconnects.longest_outage > Duration::ZERO);
    // Both halves of the report say so.
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "reconnects   6 ({} sent again, 0 failed attempts), longest outage ",
            report::count(reconnects.resent)
        )),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["reconnects"]["reconnects"], 6);
    assert_eq!(json["reconnects"]["resent"], reconnects.resent);
    assert!(json["reconnects"]["longest_outage_s"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_raw_echo_cut_in_the_middle_of_a_message_is_sent_again_whole() {
    let addr = fake_server(Fake::CloseAfterRawBytes).await;
    // 64-byte messages: each connection echoes 15 of them and a part of the
    // 16th before it closes.
    assert_eq!(RAW_BYTES_BEFORE_CLOSING / 64, 15);
    let report = bench(reconnecting(addr, Mode::Raw, 1, 100)).await;
    let reconnects = assert_nothing_lost(&report, 100);
    assert_eq!(reconnects.reconnects, 100 / 15, "{report}");
}

/// A backend that hangs: no echo within the timeout is a failure worth
/// reconnecting for, as a close is, and the messages that waited are sent
/// again to the one that answers.
#[tokio::test]
async fn a_connection_silent_past_the_timeout_is_opened_again() {
    let addr = silent_first_server().await;
    let timeout = Duration::from_millis(300);
    let report = bench(BenchConfig {
        depth: 4,
        timeout,
        ..reconnecting(addr, Mode::Framed, 1, 40)
    })
    .await;
    let reconnects = assert_nothing_lost(&report, 40);
    assert_eq!(
        (reconnects.reconnects, reconnects.resent),
        (1, 4),
        "the window that waited goes again: {report}"
    );
    assert!(reconnects.longest_outage >= timeout, "{reconnects:?}");
}

#[tokio::test]
async fn without_reconnect_a_closed_connection_fails_as_before() {
    let addr = fake_server(Fake::CloseAfterEchoes).await;
    let report = bench(BenchConfig {
        reconnect: false,
        ..reconnecting(addr, Mode::Framed, 1, 100)
    })
    .await;
    assert!(!report.succeeded());
    assert_eq!(report.connections.failed, 1, "{report}");
    assert_eq!(report.echoed, 25, "{report}");
    assert!(report.errors.missing >= 1, "{report}");
    assert_eq!(report.reconnects, None, "{report}");
    assert!(report.to_json().find("\"reconnects\"").is_none());
}

/// A server that goes away for good: the connection tries again, is
/// refused, and gives up once the timeout has passed since its last echo;
/// whatever was in flight is missing.
#[tokio::test]
async fn a_connection_refused_for_longer_than_the_timeout_gives_up() {
    let addr = one_connection_server(10).await;
    let report = bench(BenchConfig {
        depth: 1,
        timeout: Duration::from_millis(300),
        ..reconnecting(addr, Mode::Framed, 1, 100)
    })
    .await;
    assert!(!report.succeeded());
    assert_eq!(report.connections.failed, 1, "{report}");
    // The server closes after its tenth echo, before or after the eleventh
    // message went out: if it did, it is missing.
    assert_eq!(report.echoed, 10, "{report}");
    assert_eq!(
        report.echoed + report.errors.missing,
        report.sent,
        "{report}"
    );
    let reconnects = report.reconnects.expect("reconnecting");
    assert_eq!(reconnects.reconnects, 0);
    assert!(reconnects.failed_attempts >= 2, "{reconnects:?}");
    assert!(
        reconnects.longest_outage >= Duration::from_millis(300),
        "out from the last echo until it gave up: {reconnects:?}"
    );
    let first = report.first_error.as_deref().unwrap_or_default();
    assert!(
        first.contains(&format!("cannot connect to {addr}")),
        "{first}"
    );
}

/// A server that accepts and closes every connection at once is given no
/// more time than one that refuses: the timeout runs from the last echo,
/// not from the last connection.
#[tokio::test]
async fn a_server_that_closes_every_connection_at_once_is_given_up_on() {
    let addr = fake_server(Fake::CloseAfterReading).await;
    let report = bench(BenchConfig {
        depth: 1,
        timeout: Duration::from_millis(300),
        ..reconnecting(addr, Mode::Framed, 1, 10)
    })
    .await;
    assert_eq!(report.connections.failed, 1, "{report}");
    assert_eq!((report.echoed, report.errors.missing), (0, 1), "{report}");
    let reconnects = report.reconnects.expect("reconnecting");
    assert!(reconnects.reconnects >= 1, "{reconnects:?}");
    assert!(reconnects.resent >= 1, "{reconnects:?}");
}

#[tokio::test]
async fn reconnecting_is_for_tcp_only() {
    let error = bench::run(&BenchConfig {
        mode: Mode::Udp,
        reconnect: true,
        ..BenchConfig::default()
    })
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("reconnecting is for TCP"),
        "{error}"
    );
}

/// The real server, shut down (drained) in the middle of a run and started
/// again on the same port: with `reconnect`, not one echo is lost.
#[tokio::test]
async fn a_run_across_a_server_restart_loses_no_echo() {
    let first = Server::bind(Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    })
    .await
    .expect("the server binds");
    let addr = first.local_addr();
    let (stop_first, stopped) = oneshot::channel::<()>();
    let first = tokio::spawn(first.run(async {
        let _ = stopped.await;
    }));
    // Paced, so that the run is still going when the server restarts.
    let config = BenchConfig {
        rate: Some(2_000.0),
        ..reconnecting(addr, Mode::Framed, 4, 2_000)
    };
    let mut stop_first = Some(stop_first);
    let run = bench::run_with(
        &config,
        move |event| {
            if let BenchEvent::Progress(progress) = event {
                if progress.echoed >= 200 {
                    if let Some(stop) = stop_first.take() {
                        let _ = stop.send(());
                    }
                }
            }
        },
        std::future::pending(),
    );
    let restart = async {
        bounded(first).await.expect("the first server drains");
        let second = Server::bind(Config {
            listen: addr,
            ..Config::default()
        })
        .await
        .expect("the port binds again");
        tokio::spawn(second.run(std::future::pending()));
    };
    let (report, ()) = bounded(async { tokio::join!(run, restart) }).await;
    let report = report.expect("the bench runs");
    let reconnects = assert_nothing_lost(&report, 2_000);
    assert!(
        reconnects.reconnects >= 4,
        "every connection was closed by the drain: {report}"
    );
}

mod report {
    /// `n messages`, as the report words it.
    pub(crate) fn count(n: u64) -> String {
        format!("{n} message{}", if n == 1 { "" } else { "s" })
    }
}
