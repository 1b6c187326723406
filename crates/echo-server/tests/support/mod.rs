//! What the server's integration tests share: a server running in the
//! background, deadlines, and frame building.

#![allow(dead_code, unreachable_pub)] // Each test file uses its own part.

pub mod process;

use std::future::Future;
use std::time::Duration;

use echo_proto::FrameCodec;
use echo_server::{Config, Server};
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
    pub metrics_addr: Option<std::net::SocketAddr>,
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
        let metrics_addr = server.metrics_addr();
        let metrics = std::sync::Arc::clone(server.metrics());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            udp_addr,
            metrics_addr,
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
