//! `--greeting`: the greeting sent as each connection opens, in the bytes
//! of the connection's mode (see [`echo_proto::greeting`]).

use std::time::Duration;

use echo_proto::greeting::Greeting;
use tokio::io::AsyncWriteExt;

use crate::connection_end::ConnectionEnd;
use crate::echo_stream::EchoStream;
use crate::{Config, Mode};

/// The greeting's bytes for `config`, made once per server: `None` unless
/// `--greeting` asked for one.
pub(crate) fn bytes(config: &Config) -> Option<Box<[u8]>> {
    if !config.greeting {
        return None;
    }
    let greeting = Greeting::new(env!("CARGO_PKG_VERSION"), &*config.instance);
    Some(
        match config.mode {
            Mode::Framed => greeting.encode_framed(),
            Mode::Raw => greeting.encode_line(),
        }
        .into(),
    )
}

/// Sends the greeting, which must leave within the idle timeout like any
/// write: a client that reads nothing does not hold the connection open.
pub(crate) async fn send<S: EchoStream>(
    stream: &mut S,
    greeting: &[u8],
    idle_timeout: Duration,
) -> Result<(), ConnectionEnd> {
    let sending = async {
        stream.write_all(greeting).await?;
        stream.flush().await
    };
    match tokio::time::timeout(idle_timeout, sending).await {
        Ok(sent) => sent.map_err(ConnectionEnd::Io),
        Err(_elapsed) => Err(ConnectionEnd::IdleTimeout(idle_timeout)),
    }
}
