//! The server on real loopback sockets: echo, limits, bad clients, shutdown.

mod support;

use std::time::Duration;

use bytes::Bytes;
use echo_proto::FrameCodec;
use echo_server::{Config, Server, ServerError};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use support::{Running, assert_echo, frame, read_to_end, within};

#[tokio::test]
async fn echoes_frames_of_every_size_in_order() {
    let server = Running::start(Config::default()).await;
    let client = server.framed().await;
    let payloads: Vec<Bytes> = vec![
        Bytes::new(),
        Bytes::from_static(b"Hello Echo!"),
        Bytes::from((0..=255u8).collect::<Vec<u8>>()),
        Bytes::from(vec![0xa5; 1 << 20]),
        Bytes::from_static("héllo wörld ✓".as_bytes()),
    ];
    let (mut sink, mut stream) = client.split::<Bytes>();
    let to_send = payloads.clone();
    let sending = tokio::spawn(async move {
        for payload in to_send {
            sink.feed(payload).await?;
        }
        within(sink.flush()).await
    });
    for payload in &payloads {
        let echo = within(stream.next()).await.expect("an echo").unwrap();
        assert_eq!(&echo[..], &payload[..]);
    }
    sending.await.unwrap().unwrap();
}

#[tokio::test]
async fn serves_many_clients_at_once() {
    let server = Running::start(Config::default()).await;
    let mut clients = Vec::new();
    for id in 0..64 {
        let mut client = server.framed().await;
        clients.push(tokio::spawn(async move {
            for seq in 0..20 {
                assert_echo(&mut client, format!("client {id} message {seq}").as_bytes()).await;
            }
        }));
    }
    for client in clients {
        within(client).await.unwrap();
    }
}

#[tokio::test]
async fn an_oversize_frame_closes_the_connection_after_the_frames_before_it() {
    let server = Running::start(Config {
        max_frame_len: 16,
        ..Config::default()
    })
    .await;
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    let good = [frame(b"first"), frame(&[b'x'; 16])].concat();
    let bad = [
        17u32.to_be_bytes().to_vec(),
        vec![b'y'; 17],
        frame(b"after"),
    ]
    .concat();
    stream.write_all(&good).await.unwrap();
    stream.write_all(&bad).await.unwrap();
    let echoed = read_to_end(&mut stream).await;
    assert_eq!(
        echoed, good,
        "the frames before the bad one, and nothing after"
    );

    // The server itself is unaffected.
    let mut client = server.framed().await;
    assert_echo(&mut client, b"still here").await;
}

#[tokio::test]
async fn half_close_gets_every_echo_then_end_of_stream() {
    let server = Running::start(Config::default()).await;
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    let wire = [frame(b"one"), frame(b""), frame(b"three")].concat();
    stream.write_all(&wire).await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut stream).await, wire);
}

#[tokio::test]
async fn a_frame_sent_one_byte_per_write_is_echoed_whole() {
    let server = Running::start(Config::default()).await;
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    // Without Nagle's algorithm each one-byte write is its own segment, so
    // the server really does receive the frame in pieces.
    stream.set_nodelay(true).unwrap();
    let wire = frame(b"sent one byte per write");
    for byte in &wire {
        stream.write_all(std::slice::from_ref(byte)).await.unwrap();
    }
    let mut echo = vec![0; wire.len()];
    within(stream.read_exact(&mut echo)).await.unwrap();
    assert_eq!(echo, wire);
}

#[tokio::test]
async fn a_frame_cut_short_by_the_client_echoes_the_complete_ones_and_closes() {
    let server = Running::start(Config::default()).await;
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    let complete = frame(b"whole");
    stream.write_all(&complete).await.unwrap();
    stream.write_all(&frame(b"partial")[..6]).await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut stream).await, complete);
}

#[tokio::test]
async fn bad_clients_never_disturb_a_good_one() {
    let server = Running::start(Config {
        max_frame_len: 1024,
        ..Config::default()
    })
    .await;
    let mut good = server.framed().await;

    let mut round = 0;
    let mut check_good = async |good: &mut Framed<TcpStream, FrameCodec>| {
        round += 1;
        assert_echo(good, format!("round {round}").as_bytes()).await;
    };
    check_good(&mut good).await;

    // Oversize header.
    let mut oversize = within(TcpStream::connect(server.addr)).await.unwrap();
    oversize.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    check_good(&mut good).await;
    assert!(read_to_end(&mut oversize).await.is_empty());

    // Resets in the middle of a header and of a payload.
    for cut in [2, 7] {
        let mut reset = within(TcpStream::connect(server.addr)).await.unwrap();
        reset.write_all(&frame(b"abcdefgh")[..cut]).await.unwrap();
        reset.set_zero_linger().unwrap();
        drop(reset);
        check_good(&mut good).await;
    }

    // Garbage that happens to announce a plausible length, then silence.
    let mut garbage = within(TcpStream::connect(server.addr)).await.unwrap();
    garbage.write_all(&[0, 0, 1, 0, 0xde, 0xad]).await.unwrap();
    check_good(&mut good).await;

    // A client that connects and sends nothing.
    let _silent = within(TcpStream::connect(server.addr)).await.unwrap();
    check_good(&mut good).await;
}

#[tokio::test]
async fn shutdown_echoes_every_frame_received_then_closes() {
    let mut server = Running::start(Config::default()).await;
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    // Make sure the connection is being served before the shutdown.
    stream.write_all(&frame(b"hello")).await.unwrap();
    let mut first = vec![0; frame(b"hello").len()];
    within(stream.read_exact(&mut first)).await.unwrap();

    let burst: Vec<u8> = (0..100u32)
        .flat_map(|i| frame(format!("frame {i}").as_bytes()))
        .collect();
    stream.write_all(&burst).await.unwrap();
    // Half of a frame, whose rest comes after the shutdown request.
    let last = frame(b"finished during the drain");
    stream.write_all(&last[..10]).await.unwrap();
    let addr = server.addr;
    let drain = server.shut_down();

    // Once new connections are refused, the server is draining.
    within(async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    stream.write_all(&last[10..]).await.unwrap();

    let echoed = read_to_end(&mut stream).await;
    assert_eq!(echoed, [burst, last].concat());
    within(drain).await.unwrap();
}

#[tokio::test]
async fn the_drain_timeout_closes_connections_stuck_inside_a_frame() {
    let mut server = Running::start(Config {
        drain_timeout: Duration::from_millis(100),
        ..Config::default()
    })
    .await;
    let mut stuck = within(TcpStream::connect(server.addr)).await.unwrap();
    stuck.write_all(&frame(b"complete")).await.unwrap();
    let mut echo = vec![0; frame(b"complete").len()];
    within(stuck.read_exact(&mut echo)).await.unwrap();
    stuck
        .write_all(&frame(b"never finished")[..6])
        .await
        .unwrap();

    within(server.shut_down()).await.unwrap();
    assert!(
        read_to_end(&mut stuck).await.is_empty(),
        "nothing of the unfinished frame is echoed"
    );
}

#[tokio::test]
async fn binding_a_taken_address_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = Server::bind(Config {
        listen: addr,
        ..Config::default()
    })
    .await
    .expect_err("the address is taken");
    assert!(
        matches!(error, ServerError::Bind { addr: named, .. } if named == addr),
        "{error:?}"
    );
    // The cause is the error's source, so that a chain names it once.
    assert_eq!(error.to_string(), format!("cannot listen on {addr}"));
    let cause = std::error::Error::source(&error).expect("the OS error as the source");
    assert!(cause.to_string().contains("in use"), "{cause}");
}

#[tokio::test]
async fn serves_any_byte_stream_not_just_tcp() {
    let (client, server_side) = tokio::io::duplex(64);
    let service = echo_server::EchoService::new(&Config {
        relay_buffer_len: echo_server::MIN_RELAY_BUFFER_LEN,
        ..Config::default()
    });
    let shutdown = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(async move { service.serve(server_side, &shutdown).await });

    let client = Framed::new(client, FrameCodec::new());
    let payloads = [
        Bytes::from_static(b"over a pipe"),
        Bytes::from(vec![9; 10_000]),
        Bytes::new(),
    ];
    let (mut sink, mut stream) = client.split::<Bytes>();
    let to_send = payloads.clone();
    let sending = tokio::spawn(async move {
        for payload in to_send {
            within(sink.send(payload)).await.unwrap();
        }
        within(sink.close()).await.unwrap();
    });
    for payload in &payloads {
        assert_eq!(within(stream.next()).await.unwrap().unwrap(), payload);
    }
    sending.await.unwrap();
    let summary = within(serving).await.unwrap();
    assert_eq!(summary.frames, 3);
    assert!(matches!(
        summary.end,
        echo_server::ConnectionEnd::ClientClosed
    ));
    // After the client closed, the echo side ends cleanly too.
    assert!(within(stream.next()).await.is_none());
}

#[tokio::test]
async fn connections_waiting_to_be_accepted_at_shutdown_are_served_not_reset() {
    let server = Server::bind(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    })
    .await
    .unwrap();
    let addr = server.local_addr();
    // The kernel completes these connections before the server accepts any.
    let clients = support::connect_waiting(addr, 8).await;
    // A server asked to stop before it has accepted anything.
    let running = tokio::spawn(server.run(async {}));
    support::assert_waiting_served(clients).await;
    within(running).await.unwrap();
}

/// A drained connection, once its last echo is out and its sending side
/// shut, goes on reading (and dropping) what the client still sends until
/// the client closes: closed with bytes unread, a socket is reset, and the
/// reset throws away the echoes the client has not read yet.
#[tokio::test]
async fn a_drained_connection_reads_what_the_client_still_sends_until_it_closes() {
    let service = echo_server::EchoService::new(&Config::default());
    let (mut client, server_side) = tokio::io::duplex(1024);
    let drain = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn({
        let drain = drain.clone();
        async move { service.serve(server_side, &drain).await }
    });
    within(client.write_all(&frame(b"before the drain")))
        .await
        .unwrap();
    drain.cancel();
    // The echo, then the end of the server's side.
    let mut echo = vec![0; 4 + 16];
    within(client.read_exact(&mut echo)).await.unwrap();
    assert_eq!(echo, frame(b"before the drain"));
    assert_eq!(within(client.read(&mut [0; 8])).await.unwrap(), 0);
    // The server still reads: more than its side of the pipe holds goes in.
    within(client.write_all(&[7; 4096])).await.unwrap();
    tokio::task::yield_now().await;
    assert!(
        !serving.is_finished(),
        "the connection closed with bytes unread"
    );
    drop(client);
    let summary = within(serving).await.unwrap();
    assert!(
        matches!(summary.end, echo_server::ConnectionEnd::Drained),
        "{:?}",
        summary.end
    );
}
