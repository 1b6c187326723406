//! `--expect-greeting`: reading the greeting a server sends as a connection
//! opens (see [`echo_proto::greeting`]), before the first echo.

use std::time::Duration;

use echo_proto::greeting::{Greeting, MAX_GREETING_LEN};

use crate::error::ClientError;
use crate::mode::Mode;
use crate::transport::Receiver;

/// Reads the greeting from `receiver`, a connection just opened in `mode`,
/// within `timeout`. `addr` is the address as given, which errors name.
///
/// # Errors
///
/// [`ClientError::NoGreeting`] if none came within the timeout or the
/// connection ended first, [`ClientError::BadGreeting`] if what came is not
/// a greeting, [`ClientError::InvalidSetting`] over UDP (no connection
/// opens, so no greeting comes), and the errors of a failed read.
pub(crate) async fn receive(
    receiver: &mut Receiver,
    addr: &str,
    mode: Mode,
    timeout: Duration,
) -> Result<Greeting, ClientError> {
    if mode == Mode::Udp {
        return Err(ClientError::InvalidSetting {
            reason: "a greeting comes only over TCP (framed or raw), not UDP".to_owned(),
        });
    }
    let no_greeting = |why: &str| ClientError::NoGreeting {
        addr: addr.to_owned(),
        why: why.to_owned(),
    };
    let reading = async {
        match mode {
            Mode::Framed => receiver.next_echo(0).await,
            Mode::Raw | Mode::Udp => receiver.next_line(MAX_GREETING_LEN).await,
        }
    };
    let bytes = tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_elapsed| no_greeting(&format!("none came within {timeout:?}")))?
        .map_err(|error| match error {
            echo_proto::FrameError::Truncated { .. } => {
                no_greeting("the connection ended inside it")
            }
            error => ClientError::exchange(addr, 0, error),
        })?
        .ok_or_else(|| no_greeting("the connection ended before one came"))?;
    Greeting::parse(bytes).map_err(|source| ClientError::BadGreeting {
        addr: addr.to_owned(),
        source,
    })
}
