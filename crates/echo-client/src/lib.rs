//! A client for echo servers, and a network tool built on it: send messages
//! and check their echoes, ping an endpoint, bench it under load.
//!
//! It speaks in three [`Mode`]s: the echo protocol's framed TCP (each
//! message a 4-byte big-endian length and then its bytes, echoed whole), raw
//! TCP as in RFC 862 (bytes echoed as they arrive), and UDP (one datagram
//! each way), so it tests `echo-server` in each of its modes and any classic
//! echo server (inetd's, `nc -e cat`).
//!
//! # Layout
//!
//! Each module uses only those named in its row, all listed above it: the
//! modules form no cycle.
//!
//! | file | what it holds | uses |
//! |---|---|---|
//! | `src/units.rs` | the JSON units of durations: seconds, microseconds | |
//! | `src/payload.rs` | test messages that can be checked byte for byte without being kept | |
//! | `src/error.rs` | [`ClientError`]: every failure, each naming the address, and the constructors of those several modules report | |
//! | `src/mode.rs` | [`Mode`]: framed, raw or UDP; its name, and the messages it can carry | payload |
//! | `src/stats.rs` | [`stats::LatencyStats`]: min/avg/max/mdev and HdrHistogram percentiles | units |
//! | `src/proxy.rs` | [`ProxyProtocol`]: the PROXY protocol header a TCP connection may open with | |
//! | `src/tls.rs` | [`TlsOptions`]: what to trust, the name to check, a client certificate; the connector they make | error |
//! | `src/shared_tls.rs` | a link's TLS stream, shared by its two halves, which the sending half can hand plaintext to between polls | |
//! | `src/transport.rs` | the sending and receiving halves every mode shares, plain or TLS | error, mode, proxy, shared_tls, tls |
//! | `src/greeting.rs` | reading the greeting a server may open a connection with | error, mode, transport |
//! | `src/client.rs` | [`Client`]: connect, read a greeting, echo one message, pipeline many | error, greeting, mode, transport |
//! | `src/ping.rs` | [`ping::Pinger`]: one timed echo at a time, over a [`Client`] | client, error, mode, payload, stats, units |
//! | `src/bench/schedule.rs` | when each message of a paced bench is due | |
//! | `src/bench/sent_bytes.rs` | a pipelined connection's messages as sent: the writer sends from them, the reader verifies a read's echoes against them in one comparison | payload |
//! | `src/bench/tally.rs` | counting outcomes per connection, and for the run | stats |
//! | `src/bench/connection.rs` | one bench connection: its writer, its reader, their window | schedule, sent_bytes, tally, error, mode, payload, transport |
//! | `src/bench.rs` | [`bench::run`]: the load generator, and its [`bench::BenchReport`] | connection, tally, error, greeting, mode, payload, stats, transport, units |
//! | `src/report.rs` | rendering for people: ping's lines, the bench's banner and results | bench, mode, ping, stats |
//! | `src/lib.rs` | this overview and the public re-exports | every module |
//! | `src/main.rs` | the `echo-client` binary: logging, runtime, exit codes | the library, cli |
//! | `src/cli.rs`, `src/cli/*.rs` | the binary's command line: `send`, `ping`, `bench` | the library |
//! | `tests/` | the library and the binary against the real server and misbehaving fakes | |
//!
//! The binary's modules are not part of this library; it uses the library
//! like any other caller.
//!
//! # Features
//!
//! - `cli` (default): the `echo-client` binary, with its command line (clap),
//!   progress bar (indicatif), error chains (anyhow) and logging
//!   (tracing-subscriber). A program that embeds the library needs none of
//!   them: depend on `echo-client` with `default-features = false`.
//!
//! # Examples
//!
//! Echo one message, then pipeline many:
//!
//! ```
//! use std::time::Duration;
//! use echo_client::{Client, ClientError};
//! use echo_server::{Config, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An in-process server on a free port, for the example's sake.
//! let config = Config { listen: "127.0.0.1:0".parse()?, ..Config::default() };
//! let server = Server::bind(config).await?;
//! let addr = server.local_addr();
//! tokio::spawn(server.run(std::future::pending()));
//!
//! let mut client = Client::connect(addr, Duration::from_secs(5)).await?;
//! let echo = client.echo(b"Hello Echo!").await?;
//! assert_eq!(&echo[..], b"Hello Echo!");
//! let echoes = client.pipeline(&["one", "two", "three"]).await?;
//! assert_eq!(echoes, ["one", "two", "three"]);
//!
//! // A message over the maximum frame length (8 MiB) is refused before
//! // anything is sent.
//! let too_long = vec![0; 8 * 1024 * 1024 + 1];
//! assert!(matches!(client.echo(&too_long).await, Err(ClientError::Frame { .. })));
//! # Ok(())
//! # }
//! ```
//!
//! Ping, and the bench behind `echo-client bench` (this example is the
//! README's, kept compiling and passing here):
//!
//! ```
//! use std::time::Duration;
//! use echo_client::bench::{self, BenchConfig, Stop};
//! use echo_client::ping::Pinger;
//! use echo_client::{Client, Mode};
//! # use echo_server::{Config, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = Server::bind(Config {
//! #     listen: "127.0.0.1:0".parse()?,
//! #     udp: Some("127.0.0.1:0".parse()?),
//! #     ..Config::default()
//! # }).await?;
//! # let (addr, udp_addr) = (server.local_addr().to_string(), server.udp_addr().unwrap().to_string());
//! # tokio::spawn(server.run(std::future::pending()));
//! let timeout = Duration::from_secs(5);
//!
//! // Connect, echo one message, pipeline many (any mode).
//! let mut client = Client::connect_with(&addr, Mode::Framed, timeout).await?;
//! let echo = client.echo(b"Hello Echo!").await?; // checked identical
//! let echoes = client.pipeline(&["one", "two", "three"]).await?;
//!
//! // Ping: one timed echo at a time; the report is what `ping` prints.
//! let mut pinger = Pinger::connect(&udp_addr, Mode::Udp, 56, timeout).await?;
//! let reply = pinger.ping().await?; // seq, outcome (Echoed, Corrupted or Lost)
//! println!("{}", pinger.report()); // ping's summary; serializable with serde, and readable back
//!
//! // Bench: the engine behind `echo-client bench`.
//! let report = bench::run(&BenchConfig {
//!     addr: addr.clone(),
//!     connections: 10,
//!     depth: 32,
//!     stop: Stop::Messages(100_000),
//!     ..BenchConfig::default()
//! })
//! .await?;
//! assert!(report.succeeded()); // no error, no failed connection
//! println!("{} msgs/s, p99 {:?}", report.messages_per_s, report.latency.unwrap().p99);
//! let p99_99 = report.latency_stats.histogram().value_at_quantile(0.9999); // any percentile, ns
//! println!("{}", report.to_json());
//! # assert_eq!((&echo[..], echoes.len(), reply.seq, report.echoed), (&b"Hello Echo!"[..], 3, 1, 100_000));
//! # assert!(p99_99 > 0);
//! # Ok(())
//! # }
//! ```
//!
//! [`ping`](mod@ping) and [`bench`](mod@bench) have more, each with an example.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
mod client;
mod error;
mod greeting;
mod mode;
mod payload;
pub mod ping;
mod proxy;
pub mod report;
mod shared_tls;
pub mod stats;
mod tls;
mod transport;
mod units;

pub use client::{Client, ConnectOptions};
pub use echo_proto::greeting::Greeting;
pub use error::ClientError;
pub use mode::{MAX_DATAGRAM_LEN, Mode, ParseModeError};
pub use proxy::{ParseProxyVersionError, ProxyProtocol, ProxyVersion};
pub use tls::TlsOptions;
