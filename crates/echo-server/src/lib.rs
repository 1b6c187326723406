//! The echo server: framed echo over TCP, many clients at once, graceful
//! shutdown.
//!
//! The binary (`cargo run -p echo-server`) is a thin command line over this
//! library, which tests and other programs use to run a server in-process.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`](Config) | [`Config`]: everything the server can be told, with defaults |
//! | [`server`](Server) | [`Server`]: the listener, the accept loop with back-off, and the drain on shutdown |
//! | [`connection`](EchoService) | [`EchoService`]: one client's echo, generic over any [`EchoStream`]; `connection/serving`: its loop, a state machine written by hand |
//! | `handshake_error` | [`HandshakeError`]: why a TLS handshake did not complete |
//! | `echo_stream` | [`EchoStream`]: the byte streams the echo can be served on |
//! | `connection_end` | [`ConnectionEnd`], [`ConnectionSummary`]: why a connection ended and what it carried |
//! | `connection_task` | one connection's task: its serving, told of the drain, cut short at the drain timeout, counted when it ends; its slot under the connection limit |
//! | `mode` | [`Mode`]: framed or raw echo |
//! | `relay` | the echo's decisions (what to write back, when), free of I/O |
//! | `buffer_pool` | relay buffers lent to connections while they have data in flight |
//! | `udp` | UDP echo (RFC 862), beside the TCP listener |
//! | [`metrics`](Metrics) | [`Metrics`]: the counters, in the OpenMetrics text format |
//! | `admin` | the admin endpoint on hyper: `/metrics`, `/healthz`, `/readyz`, `/info` |
//! | `accept` | accepting connections with back-off on errors |
//! | [`shutdown`](ShutdownSignal) | [`ShutdownSignal`]: Ctrl-C and SIGTERM |
//! | [`delay`](Delay) | [`Delay`]: `--delay`, each echo held back, parsed and drawn |
//! | `greeting` | `--greeting`: the greeting each connection opens with |
//! | `proxy_protocol` | `--proxy-protocol`: which peers may send a PROXY header, reading it (parsed by [`echo_proto::proxy_header`]), [`ProxyHeaderRejection`] |
//! | [`tls`](TlsConfig) | [`TlsConfig`], loading and checking the TLS files ([`tls_server_config`], I/O-free), the handshake, [`TlsReloader`] |
//! | [`listening`] | the `echo-server listening on IP:PORT (KIND)` lines the binary prints, written and parsed |
//! | `logging` (the binary's, in `src/logging.rs`) | the binary's logs: a bounded queue to stderr, the instance on every line |
//!
//! # How a connection is served
//!
//! Each connection has its own task and a fixed-size relay buffer. The task
//! reads as much as has arrived, works out with an
//! [`echo_proto::FrameScanner`] which frames are complete, and writes them all
//! back in one write, so pipelined frames cost one system call per batch rather
//! than one per frame. A frame larger than the buffer is passed back in pieces as
//! it arrives, so memory per connection stays fixed whatever the client sends,
//! and while the client does not read its echoes the task does not read either:
//! TCP's flow control holds the client back, not the server's memory.
//!
//! # Example
//!
//! ```
//! use echo_server::{Config, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::bind(Config {
//!     listen: "127.0.0.1:0".parse()?,
//!     ..Config::default()
//! })
//! .await?;
//! let addr = server.local_addr();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(server.run(async {
//!     let _ = stopped.await;
//! }));
//!
//! // A client using the blocking helpers of echo-proto.
//! let echo = tokio::task::spawn_blocking(move || {
//!     let mut stream = std::net::TcpStream::connect(addr)?;
//!     echo_proto::write_frame(&mut stream, b"Hello Echo!")?;
//!     echo_proto::read_frame(&mut stream, 1024)
//! })
//! .await??;
//! assert_eq!(echo.as_deref(), Some(&b"Hello Echo!"[..]));
//!
//! stop.send(()).ok();
//! serving.await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod accept;
mod admin;
mod buffer_pool;
mod config;
mod connection;
mod connection_end;
mod connection_task;
mod delay;
mod echo_stream;
mod greeting;
mod handshake_error;
pub mod listening;
mod metrics;
mod mode;
mod proxy_protocol;
mod relay;
mod server;
mod shutdown;
mod tls;
mod udp;

pub use config::{
    Config, DEFAULT_DRAIN_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, default_instance,
};
pub use connection::{DRAIN_SETTLE, EchoService};
pub use connection_end::{ConnectionEnd, ConnectionSummary};
pub use delay::{Delay, DelayError, MAX_DELAY};
pub use echo_stream::EchoStream;
pub use handshake_error::HandshakeError;
pub use metrics::{Metrics, RejectReason};
pub use mode::Mode;
pub use proxy_protocol::{
    PROXY_HEADER_TIMEOUT, ProxyHeaderRejection, default_proxy_from, parse_proxy_source,
};
pub use relay::{DEFAULT_RELAY_BUFFER_LEN, MAX_RELAY_BUFFER_LEN, MIN_RELAY_BUFFER_LEN};
pub use server::{Server, ServerError};
pub use shutdown::ShutdownSignal;
pub use tls::{
    DEFAULT_TLS_HANDSHAKE_TIMEOUT, TlsConfig, TlsError, TlsFile, TlsPem, TlsReloader,
    load as load_tls, server_config as tls_server_config,
};
