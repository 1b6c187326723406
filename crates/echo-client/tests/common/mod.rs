//! What the library's tests share besides the servers of `support`: a bound
//! on every wait, the timeout given to clients of a well-behaved server, and
//! the real server in every mode the client speaks.

// Each test crate includes this module and uses only a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use echo_client::Mode;
use tokio::time::timeout;

use crate::support::{DEADLINE, echo_servers};

/// The timeout given to clients that talk to a well-behaved server.
pub(crate) const PATIENT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than the deadline.
pub(crate) async fn bounded<F: Future>(future: F) -> F::Output {
    timeout(DEADLINE, future)
        .await
        .expect("the operation ends within the deadline")
}

/// Starts the real echo server, framed and raw, each with UDP beside it, and
/// returns for each mode of the client an address that serves it.
pub(crate) async fn every_mode() -> [(SocketAddr, Mode); 3] {
    let framed = echo_servers(echo_server::Mode::Framed).await;
    let raw = echo_servers(echo_server::Mode::Raw).await;
    [
        (framed.tcp, Mode::Framed),
        (raw.tcp, Mode::Raw),
        (framed.udp, Mode::Udp),
    ]
}
