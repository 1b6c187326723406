//! The pinger against the real server in each mode, and against fakes that
//! lose or damage echoes.

mod common;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use common::{PATIENT, bounded, every_mode};
use echo_client::Mode;
use echo_client::ping::{PingOutcome, PingReport, Pinger};
use echo_server::Mode as ServerMode;
use support::{CORRUPTED_FRAME, Fake, UdpFake, echo_servers, fake_server, udp_fake};

/// A pinger of `size`-byte messages that waits `timeout` for each echo.
async fn connect(addr: SocketAddr, mode: Mode, size: usize, timeout: Duration) -> Pinger {
    bounded(Pinger::connect(addr, mode, size, timeout))
        .await
        .expect("the pinger connects")
}

#[tokio::test]
async fn pings_in_every_mode() {
    for (addr, mode) in every_mode().await {
        let mut pinger = connect(addr, mode, 56, PATIENT).await;
        for seq in 1..=5 {
            let reply = bounded(pinger.ping()).await.unwrap();
            assert_eq!(reply.seq, seq);
            assert!(
                matches!(reply.outcome, PingOutcome::Echoed { .. }),
                "{mode}: {reply:?}"
            );
            assert!(reply.late.is_empty());
        }
        let report = pinger.report();
        assert_eq!(
            (report.sent, report.received, report.lost),
            (5, 5, 0),
            "{mode}"
        );
        assert_eq!(report.loss_percent, 0.0);
        assert_eq!((report.mode, report.size, report.peer), (mode, 56, addr));
        let rtt = report.rtt.expect("five echoes were timed");
        assert_eq!(rtt.count, 5);
        assert!(
            rtt.min <= rtt.p50 && rtt.p50 <= rtt.p99 && rtt.p99 <= rtt.max,
            "{rtt:?}"
        );
        assert!(report.succeeded());
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<PingReport>(&json).unwrap(), report);
    }
}

#[tokio::test]
async fn a_framed_ping_can_be_empty() {
    let servers = echo_servers(ServerMode::Framed).await;
    let mut pinger = connect(servers.tcp, Mode::Framed, 0, PATIENT).await;
    let reply = bounded(pinger.ping()).await.unwrap();
    assert!(matches!(reply.outcome, PingOutcome::Echoed { .. }));
}

#[tokio::test]
async fn a_size_that_does_not_suit_the_mode_is_refused() {
    let servers = echo_servers(ServerMode::Framed).await;
    let error = Pinger::connect(servers.udp, Mode::Udp, 11, PATIENT)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("sequence number"), "{error}");
}

/// Every other datagram is dropped: the odd pings come back, the even ones
/// are lost, each after the timeout.
#[tokio::test]
async fn lost_udp_echoes_are_counted() {
    let addr = udp_fake(UdpFake::DropEveryOther).await;
    let waited = Duration::from_millis(100);
    let mut pinger = connect(addr, Mode::Udp, 32, waited).await;
    for seq in 1..=4 {
        let reply = bounded(pinger.ping()).await.unwrap();
        let lost = matches!(reply.outcome, PingOutcome::Lost);
        assert_eq!(lost, seq % 2 == 0, "{reply:?}");
    }
    let report = pinger.report();
    assert_eq!((report.sent, report.received, report.lost), (4, 2, 2));
    assert_eq!(report.loss_percent, 50.0);
    assert!(
        report.succeeded(),
        "some echoes came back and none was wrong"
    );
}

/// Every datagram is answered twice: the second copy answers no ping.
#[tokio::test]
async fn duplicate_udp_echoes_are_unexpected() {
    let addr = udp_fake(UdpFake::Duplicate).await;
    let mut pinger = connect(addr, Mode::Udp, 32, PATIENT).await;
    let first = bounded(pinger.ping()).await.unwrap();
    assert!(matches!(first.outcome, PingOutcome::Echoed { .. }));
    // The duplicate of the first is either read while the second waits, or
    // still in the socket; a third ping collects it at the latest.
    bounded(pinger.ping()).await.unwrap();
    bounded(pinger.ping()).await.unwrap();
    let report = pinger.report();
    assert!(report.unexpected >= 2, "{report:?}");
    assert_eq!(report.received, 3);
    assert!(!report.succeeded());
}

#[tokio::test]
async fn a_corrupted_echo_is_reported_where_it_differs() {
    let addr = fake_server(Fake::CorruptOneFrame).await;
    let mut pinger = connect(addr, Mode::Framed, 56, PATIENT).await;
    for index in 0..=CORRUPTED_FRAME {
        let reply = bounded(pinger.ping()).await.unwrap();
        if index == CORRUPTED_FRAME {
            assert!(
                matches!(
                    reply.outcome,
                    PingOutcome::Corrupted {
                        first_difference: 55,
                        ..
                    }
                ),
                "{reply:?}"
            );
        } else {
            assert!(
                matches!(reply.outcome, PingOutcome::Echoed { .. }),
                "{reply:?}"
            );
        }
    }
    let report = pinger.report();
    assert_eq!((report.received, report.corrupted), (4, 1));
    assert_eq!(report.rtt.map(|rtt| rtt.count), Some(3));
    assert!(!report.succeeded());
}

/// Over TCP nothing is lost, but a silent server makes each ping time out;
/// the pinger goes on, and reports the losses.
#[tokio::test]
async fn a_silent_server_loses_every_ping() {
    let addr = fake_server(Fake::Silent).await;
    let waited = Duration::from_millis(100);
    let mut pinger = connect(addr, Mode::Framed, 56, waited).await;
    for _ in 0..2 {
        assert_eq!(
            bounded(pinger.ping()).await.unwrap().outcome,
            PingOutcome::Lost
        );
    }
    let report = pinger.report();
    assert_eq!(
        (report.sent, report.lost, report.loss_percent),
        (2, 2, 100.0)
    );
    assert_eq!(report.rtt, None);
    assert!(!report.succeeded());
}

#[tokio::test]
async fn a_server_that_closes_ends_the_pinging_with_an_error() {
    let addr = fake_server(Fake::CloseAfterReading).await;
    let mut pinger = connect(addr, Mode::Framed, 56, PATIENT).await;
    let error = bounded(pinger.ping()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{addr} closed the connection before echoing a 56-byte message")
    );
}
