//! The client in each mode against the real server: raw TCP (RFC 862) and
//! UDP beside framed, one message and pipelined; and the failures peculiar
//! to each.

mod common;
mod support;

use common::{PATIENT, bounded, every_mode};
use echo_client::{Client, ClientError, Mode};
use echo_server::Mode as ServerMode;
use support::{Fake, closed_udp_port, echo_servers, fake_server};

async fn connect(addr: std::net::SocketAddr, mode: Mode) -> Client {
    bounded(Client::connect_with(addr, mode, PATIENT))
        .await
        .expect("the client connects")
}

#[tokio::test]
async fn every_mode_echoes_one_message_and_many_pipelined() {
    for (addr, mode) in every_mode().await {
        let mut client = connect(addr, mode).await;
        assert_eq!(client.mode(), mode);
        assert_eq!(client.peer_addr(), addr);
        let echo = bounded(client.echo(b"Hello Echo!")).await.unwrap();
        assert_eq!(&echo[..], b"Hello Echo!", "{mode}");

        let messages: Vec<Vec<u8>> = (0..200_u32)
            .map(|i| format!("message {i:03} {}", "x".repeat(i as usize % 50)).into_bytes())
            .collect();
        let echoes = bounded(client.pipeline(&messages)).await.unwrap();
        assert_eq!(echoes, messages, "{mode}");
    }
}

#[tokio::test]
async fn raw_echoes_a_large_message_and_an_empty_one() {
    let raw = echo_servers(ServerMode::Raw).await;
    let mut client = connect(raw.tcp, Mode::Raw).await;
    let message: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(bounded(client.echo(&message)).await.unwrap(), message);
    assert!(bounded(client.echo(b"")).await.unwrap().is_empty());
    assert_eq!(&bounded(client.echo(b"after")).await.unwrap()[..], b"after");
}

#[tokio::test]
async fn udp_echoes_the_largest_datagram() {
    let servers = echo_servers(ServerMode::Framed).await;
    let mut client = connect(servers.udp, Mode::Udp).await;
    let message = vec![7; echo_client::MAX_DATAGRAM_LEN];
    assert_eq!(bounded(client.echo(&message)).await.unwrap(), message);
}

#[tokio::test]
async fn raw_detects_a_corrupted_byte() {
    let addr = fake_server(Fake::CorruptOneRawByte).await;
    let mut client = connect(addr, Mode::Raw).await;
    let message = vec![b'a'; 150];
    match bounded(client.echo(&message)).await {
        Err(ClientError::Mismatch {
            sent_len: 150,
            received_len: 150,
            first_difference: 100,
            ..
        }) => {}
        other => panic!("expected a mismatch at byte 100, got {other:?}"),
    }
}

#[tokio::test]
async fn udp_to_a_closed_port_is_unreachable() {
    let addr = closed_udp_port().await;
    let mut client = connect(addr, Mode::Udp).await;
    let error = bounded(client.echo(b"anyone?")).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Unreachable { .. }),
        "{error:?}"
    );
    assert_eq!(
        format!("{:#}", anyhow::Error::new(error)),
        format!("nothing answers UDP at {addr}: Connection refused (os error 111)")
    );
}
