//! [`Pinger`]: is the echo endpoint up, and how long does one echo take?
//!
//! Like `ping`, a pinger sends one message at a time, each carrying its
//! sequence number, and waits for its echo up to a timeout. Every echo is
//! checked byte for byte. An echo that comes after its timeout is reported
//! as late, not counted as received: the message was already counted lost.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use echo_proto::FrameError;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::ClientError;
use crate::mode::Mode;
use crate::payload::Pattern;
use crate::stats::{LatencyStats, LatencySummary};
use crate::units;

/// The stream number ping messages carry (a bench numbers its connections;
/// ping has one).
const STREAM: u32 = 0;

/// Sends timed echoes, one at a time, and keeps their statistics.
///
/// ```
/// use std::time::Duration;
/// use echo_client::Mode;
/// use echo_client::ping::{PingOutcome, Pinger};
/// # use echo_server::{Config, Server};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let config = Config { listen: "127.0.0.1:0".parse()?, ..Config::default() };
/// # let server = Server::bind(config).await?;
/// # let addr = server.local_addr();
/// # tokio::spawn(server.run(std::future::pending()));
/// let mut pinger = Pinger::connect(addr, Mode::Framed, 56, Duration::from_secs(5)).await?;
/// for expected_seq in 1..=3 {
///     let reply = pinger.ping().await?;
///     assert_eq!(reply.seq, expected_seq);
///     assert!(matches!(reply.outcome, PingOutcome::Echoed { .. }));
/// }
/// let report = pinger.report();
/// assert_eq!((report.sent, report.received, report.loss_percent), (3, 3, 0.0));
/// assert!(report.succeeded());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Pinger {
    /// The connection, whose halves the pinger drives itself, and whose
    /// timeout bounds each ping.
    client: Client,
    pattern: Pattern,
    /// The sequence number of the next ping; the first is 1, as in ping.
    next_seq: u64,
    /// Pings whose echo timed out but may still come, oldest first, with the
    /// time each was sent.
    overdue: VecDeque<(u64, Instant)>,
    /// The report so far: each ping updates its counts, and
    /// [`report`](Pinger::report) works out the figures that follow from
    /// them.
    totals: PingReport,
    rtt: LatencyStats,
    /// When the first ping was sent and the last one ended.
    first_sent: Option<Instant>,
    last_ended: Option<Instant>,
}

/// What became of one ping.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PingReply {
    /// The ping's sequence number, from 1.
    pub seq: u64,
    /// Whether its echo came back, and how.
    pub outcome: PingOutcome,
    /// Echoes of earlier pings that had timed out, which arrived while this
    /// one was awaited.
    pub late: Vec<LateEcho>,
    /// Datagrams that answered no ping, received while this one was awaited
    /// (UDP only: duplicates, or replies too damaged to tell whose they are).
    pub unexpected: u64,
}

/// Whether a ping's echo came back, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingOutcome {
    /// The echo came back identical, after `rtt`.
    Echoed {
        /// The round-trip time.
        rtt: Duration,
    },
    /// The echo came back after `rtt`, but different from the message.
    Corrupted {
        /// The round-trip time.
        rtt: Duration,
        /// The offset of the first byte that differs; when one is a prefix of
        /// the other, the length of the shorter.
        first_difference: usize,
    },
    /// No echo came back within the timeout.
    Lost,
}

/// The echo of an earlier ping that arrived after its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateEcho {
    /// The earlier ping's sequence number.
    pub seq: u64,
    /// How long after that ping was sent its echo arrived.
    pub rtt: Duration,
    /// Whether the echo was identical to the message.
    pub intact: bool,
}

/// The statistics of a series of pings, as ping prints them at the end.
///
/// In JSON, the round-trip times are in microseconds (`rtt_us`) and the
/// total time in seconds (`time_s`); serde reads it back as it wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PingReport {
    /// The address as given.
    pub addr: String,
    /// The socket address pinged.
    pub peer: SocketAddr,
    /// The mode used.
    pub mode: Mode,
    /// The length of each message, in bytes.
    pub size: usize,
    /// Pings whose outcome is known (an interrupted one is not counted).
    pub sent: u64,
    /// Pings whose echo came back in time, intact or not.
    pub received: u64,
    /// Of those received, how many echoes differed from their message.
    pub corrupted: u64,
    /// Pings with no echo within the timeout.
    pub lost: u64,
    /// Echoes that arrived after their ping had been counted lost.
    pub late: u64,
    /// Datagrams that answered no ping (UDP only).
    pub unexpected: u64,
    /// `(sent − received) / sent`, as a percentage; 0 when nothing was sent.
    pub loss_percent: f64,
    /// From the first ping's sending to the end of the last one.
    #[serde(rename = "time_s", with = "units::seconds")]
    pub time: Duration,
    /// The round-trip times of the intact echoes, if any.
    #[serde(rename = "rtt_us")]
    pub rtt: Option<LatencySummary>,
    /// How long the TCP connection took to open, as curl's `time_connect`;
    /// `None` over UDP.
    #[serde(default, rename = "connect_time_us", with = "units::optional_micros")]
    pub connect_time: Option<Duration>,
    /// How long the TLS handshake took after it; `None` without TLS.
    #[serde(
        default,
        rename = "tls_handshake_time_us",
        with = "units::optional_micros"
    )]
    pub tls_handshake_time: Option<Duration>,
}

impl PingReport {
    /// Whether the endpoint passed, by ping's rule made stricter for an echo
    /// service: at least one echo came back intact, and nothing came back
    /// wrong.
    pub fn succeeded(&self) -> bool {
        self.received > self.corrupted && self.corrupted == 0 && self.unexpected == 0
    }
}

impl Pinger {
    /// Connects to `addr` in `mode`, to send messages of `size` bytes.
    /// `timeout` bounds connecting, and then the wait for each echo.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidSetting`] when `size` does not suit the
    /// mode (see [`Mode::check_message_len`]), and otherwise as for
    /// [`Client::connect`](crate::Client::connect).
    pub async fn connect(
        addr: impl fmt::Display,
        mode: Mode,
        size: usize,
        timeout: Duration,
    ) -> Result<Pinger, ClientError> {
        mode.check_message_len(size)
            .map_err(|reason| ClientError::InvalidSetting { reason })?;
        Pinger::with_client(Client::connect_with(addr, mode, timeout).await?, size)
    }

    /// Pings over `client`, already connected (with
    /// [`Client::connect_with_options`](crate::Client::connect_with_options), say),
    /// with messages of `size` bytes, each echo waited for up to the
    /// client's timeout.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidSetting`] when `size` does not suit the
    /// client's mode (see [`Mode::check_message_len`]).
    pub fn with_client(client: Client, size: usize) -> Result<Pinger, ClientError> {
        let mode = client.mode();
        mode.check_message_len(size)
            .map_err(|reason| ClientError::InvalidSetting { reason })?;
        let totals = PingReport {
            addr: client.addr().to_owned(),
            peer: client.peer_addr(),
            mode,
            size,
            sent: 0,
            received: 0,
            corrupted: 0,
            lost: 0,
            late: 0,
            unexpected: 0,
            loss_percent: 0.0,
            time: Duration::ZERO,
            rtt: None,
            connect_time: mode.is_tcp().then(|| client.connect_time()),
            tls_handshake_time: client.tls_handshake_time(),
        };
        Ok(Pinger {
            client,
            pattern: Pattern::new(size),
            next_seq: 1,
            overdue: VecDeque::new(),
            totals,
            rtt: LatencyStats::new(),
            first_sent: None,
            last_ended: None,
        })
    }

    /// Reads the greeting of a server that greets, before the first ping:
    /// see [`Client::read_greeting`].
    ///
    /// # Errors
    ///
    /// As for [`Client::read_greeting`].
    pub async fn read_greeting(&mut self) -> Result<echo_proto::greeting::Greeting, ClientError> {
        self.client.read_greeting().await
    }

    /// The socket address being pinged.
    pub fn peer_addr(&self) -> SocketAddr {
        self.client.peer_addr()
    }

    /// The mode the pings are sent in.
    pub fn mode(&self) -> Mode {
        self.client.mode()
    }

    /// Sends the next ping and waits for its echo, up to the timeout.
    ///
    /// A lost or corrupted echo is an outcome, not an error: the pinger goes
    /// on. If the future is dropped before it returns (on Ctrl-C, say), the
    /// ping is not counted, and the pinger should not be used again.
    ///
    /// # Errors
    ///
    /// The connection failed: the server closed it, or nothing answers UDP
    /// at the address ([`ClientError::Unreachable`]). The pinger cannot go
    /// on after that, but its [`report`](Pinger::report) holds what came
    /// before.
    pub async fn ping(&mut self) -> Result<PingReply, ClientError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let message = self.pattern.message(STREAM, seq);
        let size = self.pattern.len();
        let (addr, mode, timeout, sender, receiver) = self.client.parts();
        let sent_at = Instant::now();
        self.first_sent.get_or_insert(sent_at);
        let deadline = sent_at + timeout;

        sender
            .push_with(message.len(), |batch| message.append_to(batch))
            .map_err(|source| ClientError::exchange(addr, size, source))?;
        tokio::time::timeout_at(deadline.into(), sender.flush())
            .await
            .map_err(|_elapsed| ClientError::timeout(addr, timeout))?
            .map_err(|error| ClientError::exchange(addr, size, FrameError::Io(error)))?;

        let mut reply = PingReply {
            seq,
            outcome: PingOutcome::Lost,
            late: Vec::new(),
            unexpected: 0,
        };
        loop {
            let received = tokio::time::timeout_at(deadline.into(), receiver.next_echo(size)).await;
            let now = Instant::now();
            let echo = match received {
                Err(_elapsed) => {
                    self.overdue.push_back((seq, sent_at));
                    break;
                }
                Ok(Err(error)) => return Err(ClientError::exchange(addr, size, error)),
                Ok(Ok(None)) => return Err(ClientError::closed(addr, size)),
                Ok(Ok(Some(echo))) => echo,
            };
            // Whose echo is it? Over TCP, echoes come in order, so an overdue
            // ping's comes first. Over UDP, the echo says whose it is.
            let owner = if mode == Mode::Udp {
                match Pattern::identify(echo) {
                    Some((STREAM, owner)) if owner == seq => None,
                    Some((STREAM, owner)) => {
                        match self.overdue.iter().position(|&(s, _)| s == owner) {
                            Some(index) => self.overdue.remove(index),
                            None => {
                                reply.unexpected += 1;
                                continue;
                            }
                        }
                    }
                    _ => {
                        reply.unexpected += 1;
                        continue;
                    }
                }
            } else {
                self.overdue.pop_front()
            };
            match owner {
                Some((late_seq, late_sent_at)) => {
                    let intact = self.pattern.message(STREAM, late_seq).check(echo).is_ok();
                    reply.late.push(LateEcho {
                        seq: late_seq,
                        rtt: now - late_sent_at,
                        intact,
                    });
                }
                None => {
                    let rtt = now - sent_at;
                    reply.outcome = match message.check(echo) {
                        Ok(()) => PingOutcome::Echoed { rtt },
                        Err(first_difference) => PingOutcome::Corrupted {
                            rtt,
                            first_difference,
                        },
                    };
                    break;
                }
            }
        }
        self.count(&reply);
        Ok(reply)
    }

    fn count(&mut self, reply: &PingReply) {
        let counts = &mut self.totals;
        counts.sent += 1;
        counts.late += reply.late.len() as u64;
        counts.unexpected += reply.unexpected;
        match reply.outcome {
            PingOutcome::Echoed { rtt } => {
                counts.received += 1;
                self.rtt.record(rtt);
            }
            PingOutcome::Corrupted { .. } => {
                counts.received += 1;
                counts.corrupted += 1;
            }
            PingOutcome::Lost => counts.lost += 1,
        }
        self.last_ended = Some(Instant::now());
    }

    /// The statistics so far.
    pub fn report(&self) -> PingReport {
        let (sent, received) = (self.totals.sent, self.totals.received);
        let loss_percent = if sent == 0 {
            0.0
        } else {
            (sent - received) as f64 * 100.0 / sent as f64
        };
        let time = match (self.first_sent, self.last_ended) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        };
        PingReport {
            loss_percent,
            time,
            rtt: self.rtt.summary(),
            ..self.totals.clone()
        }
    }
}
