//! The server's metrics count exactly what happened, scraped over HTTP.

mod support;

use echo_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use support::{Running, assert_echo, frame, read_to_end, within};

/// The value of the sample `name` (with its labels, if any) in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .parse()
        .unwrap()
}

/// Polls the metrics until `done` holds for them, within the deadline.
async fn until(server: &Running, done: impl Fn(&str) -> bool) -> String {
    within(async {
        loop {
            let text = server.metrics.encode();
            if done(&text) {
                return text;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[tokio::test]
async fn the_counters_match_a_known_workload() {
    let server = Running::start(Config {
        max_connections: 1,
        max_frame_len: 16,
        udp: Some("127.0.0.1:0".parse().unwrap()),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    })
    .await;

    // Three echoes of five bytes on one connection.
    let mut client = server.framed().await;
    for _ in 0..3 {
        assert_echo(&mut client, b"hello").await;
    }
    // While it is open, a second connection is over the limit.
    let mut refused = within(TcpStream::connect(server.addr)).await.unwrap();
    let _ = read_to_end(&mut refused).await;
    drop(client);
    until(&server, |text| sample(text, "echo_connections_open") == 0.0).await;

    // An oversize frame after one good frame.
    let mut oversize = within(TcpStream::connect(server.addr)).await.unwrap();
    oversize
        .write_all(&[frame(b"ok"), 17u32.to_be_bytes().to_vec()].concat())
        .await
        .unwrap();
    assert_eq!(read_to_end(&mut oversize).await, frame(b"ok"));

    // One datagram.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(b"ping", server.udp_addr.unwrap())
        .await
        .unwrap();
    within(udp.recv_from(&mut [0; 16])).await.unwrap();

    let text = until(&server, |text| {
        sample(text, "echo_connections_open") == 0.0
            && sample(text, "echo_udp_datagrams_total") == 1.0
    })
    .await;
    for (name, value) in [
        ("echo_connections_accepted_total", 2.0),
        ("echo_connections_rejected_total{reason=\"limit\"}", 1.0),
        (
            "echo_connections_rejected_total{reason=\"protocol_error\"}",
            1.0,
        ),
        ("echo_connections_rejected_total{reason=\"idle\"}", 0.0),
        (
            "echo_connections_closed_total{reason=\"client_closed\"}",
            1.0,
        ),
        (
            "echo_connections_closed_total{reason=\"protocol_error\"}",
            1.0,
        ),
        ("echo_protocol_errors_total{kind=\"frame_too_large\"}", 1.0),
        ("echo_frames_echoed_total", 4.0),
        ("echo_bytes_echoed_total", (3 * 9 + 6) as f64),
        ("echo_udp_datagrams_total", 1.0),
        ("echo_udp_bytes_total", 4.0),
    ] {
        assert_eq!(sample(&text, name), value, "{name} in:\n{text}");
    }
}

#[tokio::test]
async fn the_endpoint_serves_the_same_text_over_http() {
    let mut server = Running::start(Config {
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    })
    .await;
    let metrics_addr = server.admin_addr.expect("an admin address");
    let mut client = server.framed().await;
    assert_echo(&mut client, b"counted").await;

    let mut scrape = within(TcpStream::connect(metrics_addr)).await.unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    within(scrape.read_to_string(&mut response)).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert_eq!(sample(body, "echo_frames_echoed_total"), 1.0);
    assert_eq!(sample(body, "echo_connections_open"), 1.0);

    // The endpoint stays up through the drain, and closes after it.
    drop(client);
    within(server.shut_down()).await.unwrap();
    assert!(
        TcpStream::connect(metrics_addr).await.is_err(),
        "the endpoint closed with the server"
    );
}
