//! A client for the echo protocol: connect to an `echo-server`, send messages,
//! check their echoes.
//!
//! The wire format is `echo-proto`'s: each message is one frame, a 4-byte
//! big-endian length and then the message's bytes, and the server sends each
//! frame back unchanged.
//!
//! # Layout
//!
//! | file | what it holds |
//! |---|---|
//! | `src/lib.rs` | this overview and the public re-exports |
//! | `src/client.rs` | [`Client`]: connecting, and one echo round trip |
//! | `src/error.rs` | [`ClientError`]: every failure, each naming the address |
//! | `src/main.rs` | the `echo-client` binary: logging, runtime, exit codes |
//! | `src/cli.rs` | the binary's command line: options, subcommands, help |
//! | `src/cli/send.rs` | the `send` command: messages from arguments or stdin |
//! | `tests/client.rs` | the library against the real server and misbehaving fakes |
//! | `tests/cli.rs` | the binary, run as a user would, with the same servers |
//!
//! The binary's modules are not part of this library; it uses the library
//! like any other caller.
//!
//! # Example
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
//!
//! // A message over the maximum frame length (8 MiB) is refused before
//! // anything is sent.
//! let too_long = vec![0; 8 * 1024 * 1024 + 1];
//! assert!(matches!(client.echo(&too_long).await, Err(ClientError::Frame { .. })));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod error;

pub use client::Client;
pub use error::ClientError;
