//! `--greeting`: the greeting sent as each connection opens, in the bytes
//! of the connection's mode (see [`echo_proto::greeting`]).

use echo_proto::greeting::Greeting;

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
