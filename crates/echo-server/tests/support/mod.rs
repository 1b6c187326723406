//! What the server's integration tests share: a server running in the
//! background, in-process or as the binary, deadlines, and frame building.

#![allow(dead_code, unreachable_pub)] // Each test file uses its own part.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use echo_proto::FrameCodec;
use echo_server::{Config, Server};
use echo_testkit::{Kind, Process, Spawn};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;

/// A bound on every wait in these tests, so a bug fails them instead of
/// hanging them.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A server running in the background, stopped by `stop`.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub udp_addr: Option<std::net::SocketAddr>,
    pub admin_addr: Option<std::net::SocketAddr>,
    pub metrics: std::sync::Arc<echo_server::Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn start(config: Config) -> Running {
        let server = Server::bind(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        })
        .await
        .expect("bind an ephemeral port");
        let addr = server.local_addr();
        let udp_addr = server.udp_addr();
        let admin_addr = server.admin_addr();
        let metrics = std::sync::Arc::clone(server.metrics());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            udp_addr,
            admin_addr,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    pub async fn framed(&self) -> Framed<TcpStream, FrameCodec> {
        let stream = within(TcpStream::connect(self.addr))
            .await
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        Framed::new(stream, FrameCodec::new())
    }

    /// Asks the server to shut down, and returns the future of its drain.
    pub fn shut_down(&mut self) -> &mut JoinHandle<()> {
        self.stop.take().expect("stopped once").send(()).unwrap();
        &mut self.task
    }
}

/// Sends `payload` as one frame and checks that its echo comes back.
pub async fn assert_echo(client: &mut Framed<TcpStream, FrameCodec>, payload: &[u8]) {
    within(client.send(Bytes::copy_from_slice(payload)))
        .await
        .unwrap();
    let echo = within(client.next()).await.expect("an echo").unwrap();
    assert_eq!(&echo[..], payload);
}

/// The `echo-server` binary that cargo built for these tests, which does not
/// inherit the caller's `ECHO_*` settings nor `RUST_LOG`.
pub fn binary() -> Spawn {
    Spawn::new(env!("CARGO_BIN_EXE_echo-server"))
}

/// The binary serving framed echo on an ephemeral port, with `args` and the
/// environment variables `envs`, once it has said where it listens.
pub fn server_process(args: &[&str], envs: &[(&str, &str)]) -> (Process, SocketAddr) {
    let spawn = envs
        .iter()
        .fold(binary(), |spawn, (name, value)| spawn.env(name, value));
    let server = spawn
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .start()
        .unwrap();
    let [addr] = server
        .listening([Kind::Framed], echo_testkit::deadline())
        .unwrap();
    (server, addr)
}

pub async fn within<F: Future>(future: F) -> F::Output {
    timeout(DEADLINE, future).await.expect("deadline passed")
}

pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// Reads until the server closes the connection, with a deadline.
pub async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    within(stream.read_to_end(&mut rest))
        .await
        .expect("read until closed");
    rest
}

/// Opens `count` connections to `addr` and sends a frame on each, `waiting
/// I` on connection I, without reading: for a server that has not accepted
/// them yet.
pub async fn connect_waiting(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = within(TcpStream::connect(addr)).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, &frame(format!("waiting {i}").as_bytes()))
            .await
            .unwrap();
        clients.push(stream);
    }
    clients
}

/// Checks that each of [`connect_waiting`]'s connections got its frame
/// back and then the end of the stream.
pub async fn assert_waiting_served(clients: Vec<TcpStream>) {
    for (i, mut stream) in clients.into_iter().enumerate() {
        assert_eq!(
            read_to_end(&mut stream).await,
            frame(format!("waiting {i}").as_bytes()),
            "connection {i}"
        );
    }
}
