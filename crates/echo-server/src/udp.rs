//! UDP echo (RFC 862): each datagram is answered with an identical one.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The largest UDP payload over IPv4 (65,535 less the IP and UDP headers);
/// over IPv6 without jumbograms it is 65,527. The buffer holds either whole.
const MAX_DATAGRAM_LEN: usize = 65_535;

/// The pause after an error about the socket itself, before receiving again.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Answers every datagram on `socket` with an identical one sent to its
/// sender, until `shutdown` is cancelled. `on_datagram` is told the size of
/// each datagram echoed.
pub(crate) async fn serve_udp(
    socket: UdpSocket,
    shutdown: CancellationToken,
    on_datagram: impl Fn(usize),
) {
    // One buffer for the socket's whole life: a datagram is answered before the
    // next one is read, so nothing else needs memory.
    let mut buffer = vec![0; MAX_DATAGRAM_LEN];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            () = shutdown.cancelled() => return,
        };
        match received {
            Ok((len, peer)) => {
                debug!(%peer, len, "datagram received");
                match socket.send_to(&buffer[..len], peer).await {
                    Ok(_) => on_datagram(len),
                    Err(error) => log_send_error(&error, peer),
                }
            }
            // An earlier answer's ICMP error can surface on a later receive;
            // it concerns that peer, not this socket.
            Err(error) if is_peer_error(&error) => {
                debug!(%error, "a datagram's peer is unreachable")
            }
            Err(error) => {
                warn!(%error, retry_in = ?RECEIVE_ERROR_PAUSE, "cannot receive datagrams");
                // A lasting error (such as no buffer space) must not turn this
                // loop into a spin.
                tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
            }
        }
    }
}

fn log_send_error(error: &io::Error, peer: SocketAddr) {
    if is_peer_error(error) {
        debug!(%peer, %error, "cannot answer a datagram");
    } else {
        warn!(%peer, %error, "cannot answer a datagram");
    }
}

fn is_peer_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
