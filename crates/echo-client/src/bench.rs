//! The bench: how fast is an echo endpoint, and is it correct under load?
//!
//! [`run`] opens [`BenchConfig::connections`] connections and, on each, keeps
//! up to [`depth`](BenchConfig::depth) messages in flight (pipelined), as fast
//! as the server answers or at a fixed total [`rate`](BenchConfig::rate),
//! for a duration or a number of messages. Every byte of every echo is
//! checked. The [`BenchReport`] gives the throughput, latency percentiles
//! (from an HdrHistogram), and every error: echoes corrupted, missing or
//! unexpected, and connections that failed.
//!
//! Latency is measured from when a message was sent or, when paced, from when
//! it was due to be sent: a server that stalls then delays every message due
//! during the stall, and the percentiles show it, instead of the stall
//! holding the client back and hiding (coordinated omission). The one delay
//! not counted is the client's own: its timer has a resolution of 1 ms, so a
//! paced message that was late only because the timer woke late is timed
//! from when it woke.
//!
//! ```
//! use echo_client::bench::{self, BenchConfig, Stop};
//! # use echo_server::{Config, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = Server::bind(Config { listen: "127.0.0.1:0".parse()?, ..Config::default() }).await?;
//! # let addr = server.local_addr();
//! # tokio::spawn(server.run(std::future::pending()));
//! let report = bench::run(&BenchConfig {
//!     addr: addr.to_string(),
//!     connections: 4,
//!     depth: 8,
//!     stop: Stop::Messages(2_000),
//!     ..BenchConfig::default()
//! })
//! .await?;
//! assert!(report.succeeded());
//! assert_eq!((report.sent, report.echoed), (2_000, 2_000));
//! let latency = report.latency.expect("echoes were timed");
//! assert!(latency.p50 <= latency.p99);
//! println!("{} msgs/s, p99 {:?}", report.messages_per_s, latency.p99);
//! # Ok(())
//! # }
//! ```

mod client_cpu;
mod connection;
mod dialer;
mod merge;
mod reconnect;
mod schedule;
mod sent_bytes;
mod tally;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use self::client_cpu::CpuClock;
pub use self::client_cpu::{CLIENT_LIMIT_SHARE, ClientCpu};
use self::connection::{Plan, Signal, nanos};
use self::dialer::Dialer;
pub use self::merge::{HostReport, MergeError, merge};
pub use self::reconnect::Reconnects;
use self::tally::Collector;
use crate::error::ClientError;
use crate::mode::Mode;
use crate::payload::Pattern;
use crate::proxy::ProxyProtocol;
use crate::stats::{LatencyStats, LatencySummary};
use crate::tls::TlsOptions;
use crate::units;

/// How often progress is reported and intervals are checked.
const PROGRESS_PERIOD: Duration = Duration::from_millis(100);

/// The most messages in flight per connection.
pub const MAX_DEPTH: usize = 1 << 20;

/// What to measure, and how.
///
/// In JSON (as the `parameters` of a [`BenchReport`]), durations are in
/// seconds, in fields whose names end in `_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// The server's address, as `HOST:PORT`.
    pub addr: String,
    /// How to talk to it.
    pub mode: Mode,
    /// How many connections (UDP: sockets) to open, at least 1.
    pub connections: usize,
    /// The length of each message, in bytes; see
    /// [`Mode::check_message_len`] for the range.
    pub size: usize,
    /// How many messages each connection keeps in flight, from 1 (one round
    /// trip at a time) to [`MAX_DEPTH`].
    pub depth: usize,
    /// When to stop sending.
    #[serde(flatten)]
    pub stop: Stop,
    /// How long to run before measuring: echoes of messages sent during the
    /// warmup are checked but not counted in the results.
    #[serde(rename = "warmup_s", with = "units::seconds")]
    pub warmup: Duration,
    /// Messages per second, all connections together; `None` sends as fast
    /// as the window allows (closed loop).
    pub rate: Option<f64>,
    /// How long to wait to connect, and for each echo.
    #[serde(rename = "timeout_s", with = "units::seconds")]
    pub timeout: Duration,
    /// How often to report the figures of the last interval, if at all.
    #[serde(rename = "report_interval_s", with = "units::optional_seconds")]
    pub report_interval: Option<Duration>,
    // Greetings.
    /// Whether each connection opens with a greeting to read first (a
    /// server started with `--greeting`), which names the instance that
    /// serves it: the report then counts connections and echoes per
    /// instance. Framed and raw TCP only.
    #[serde(default)]
    pub expect_greeting: bool,
    // The PROXY protocol.
    /// A PROXY protocol header to open each connection with, as a load
    /// balancer would, for a server started with `--proxy-protocol`. Framed
    /// and raw TCP only. Absent from the JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    // TLS.
    /// Echo over TLS, for a server's `--tls-listen`. Framed and raw TCP
    /// only. Absent from the JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsOptions>,
    // Reconnection.
    /// Open a connection that fails (closed or reset by the server, or
    /// silent past the timeout) again, after a short back-off, and send the
    /// messages that were in flight on it again, so that a run across a
    /// server's restart loses no echo; the report's
    /// [`reconnects`](BenchReport::reconnects) says what it cost. A
    /// connection that cannot be opened again within the timeout fails.
    /// TCP only.
    #[serde(default)]
    pub reconnect: bool,
}

/// When a bench stops sending (after the warmup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stop {
    /// After this long.
    #[serde(rename = "duration_s", with = "units::seconds")]
    Duration(Duration),
    /// After this many messages, shared evenly by the connections.
    #[serde(rename = "messages")]
    Messages(u64),
}

impl Default for BenchConfig {
    /// One connection to [`echo_proto::DEFAULT_ADDR`] (127.0.0.1:9999),
    /// framed, 64-byte messages one at a time, for 10 seconds, no warmup,
    /// unpaced, 5-second timeout.
    fn default() -> Self {
        Self {
            addr: echo_proto::DEFAULT_ADDR.to_string(),
            mode: Mode::Framed,
            connections: 1,
            size: 64,
            depth: 1,
            stop: Stop::Duration(Duration::from_secs(10)),
            warmup: Duration::ZERO,
            rate: None,
            timeout: Duration::from_secs(5),
            report_interval: None,
            expect_greeting: false,
            proxy_protocol: None,
            tls: None,
            reconnect: false,
        }
    }
}

impl BenchConfig {
    /// Checks every setting, and says what is wrong with the first bad one.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidSetting`], naming the setting.
    ///
    /// ```
    /// use echo_client::bench::BenchConfig;
    ///
    /// assert!(BenchConfig::default().validate().is_ok());
    /// let none = BenchConfig { connections: 0, ..BenchConfig::default() };
    /// assert_eq!(
    ///     none.validate().unwrap_err().to_string(),
    ///     "invalid setting: connections must be at least 1",
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ClientError> {
        let invalid = |reason: String| Err(ClientError::InvalidSetting { reason });
        if self.connections == 0 {
            return invalid("connections must be at least 1".to_owned());
        }
        if u32::try_from(self.connections).is_err() {
            return invalid(format!("connections must be at most {}", u32::MAX));
        }
        if !(1..=MAX_DEPTH).contains(&self.depth) {
            return invalid(format!(
                "depth must be 1 to {MAX_DEPTH}; {} is out of range",
                self.depth
            ));
        }
        self.mode
            .check_message_len(self.size)
            .or_else(|reason| invalid(format!("size: {reason}")))?;
        match self.stop {
            Stop::Duration(duration) if duration.is_zero() => {
                return invalid("the duration must be more than 0".to_owned());
            }
            Stop::Messages(0) => return invalid("messages must be at least 1".to_owned()),
            _ => {}
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return invalid(format!(
                    "the rate must be a positive number of messages per second, not {rate}"
                ));
            }
        }
        if self.expect_greeting && self.mode == Mode::Udp {
            return invalid("a greeting comes only over TCP (framed or raw), not UDP".to_owned());
        }
        if self.tls.is_some() && self.mode == Mode::Udp {
            return invalid("TLS goes over TCP (framed or raw), not UDP".to_owned());
        }
        if self.proxy_protocol.is_some() && self.mode == Mode::Udp {
            return invalid(
                "a PROXY protocol header goes over TCP (framed or raw), not UDP".to_owned(),
            );
        }
        if self.reconnect && self.mode == Mode::Udp {
            return invalid(
                "reconnecting is for TCP (framed or raw): a UDP socket has no connection to lose"
                    .to_owned(),
            );
        }
        if self.timeout.is_zero() {
            return invalid("the timeout must be more than 0".to_owned());
        }
        if self
            .report_interval
            .is_some_and(|interval| interval.is_zero())
        {
            return invalid("the report interval must be more than 0".to_owned());
        }
        Ok(())
    }

    /// How many messages connection `index` sends after the warmup, if the
    /// run stops after a number of messages: an even share, the first
    /// connections taking one more when the division is not exact.
    fn quota(&self, index: usize) -> Option<u64> {
        match self.stop {
            Stop::Messages(total) => {
                let connections = self.connections as u64;
                Some(total / connections + u64::from((index as u64) < total % connections))
            }
            Stop::Duration(_) => None,
        }
    }
}

/// Something that happened during a run, for a progress display.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BenchEvent {
    /// The connections are open (those that could be); the run starts.
    Connected {
        /// Connections open.
        connected: usize,
        /// Connections that could not be opened.
        failed: usize,
    },
    /// The figures so far, about every 100 ms.
    Progress(BenchProgress),
    /// The figures of the interval that just ended, every
    /// [`report_interval`](BenchConfig::report_interval).
    Interval(IntervalReport),
}

/// The figures of a run so far.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct BenchProgress {
    /// Time since the start of the run, warmup included.
    pub elapsed: Duration,
    /// Whether the warmup is over.
    pub measuring: bool,
    /// Whether sending has stopped (the run waits for the last echoes).
    pub finishing: bool,
    /// Intact echoes after the warmup.
    pub echoed: u64,
    /// Errors so far, warmup included.
    pub errors: u64,
    /// Intact echoes per second since the previous progress event, warmup
    /// included.
    pub current_rate: f64,
}

/// The figures of one interval of a run.
///
/// In JSON, times are in seconds from the end of the warmup, and latencies
/// in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IntervalReport {
    /// When the interval started, from the end of the warmup.
    #[serde(rename = "start_s", with = "units::seconds")]
    pub start: Duration,
    /// When it ended.
    #[serde(rename = "end_s", with = "units::seconds")]
    pub end: Duration,
    /// Intact echoes in the interval.
    pub echoed: u64,
    /// Errors in the interval.
    pub errors: u64,
    /// Intact echoes per second.
    pub messages_per_s: f64,
    /// Megabytes (10⁶ bytes) of echoed payload per second.
    pub megabytes_per_s: f64,
    /// The latencies of the interval's echoes.
    #[serde(rename = "latency_us")]
    pub latency: Option<LatencySummary>,
}

/// The results of a run.
///
/// In JSON: durations in seconds (`_s`), latencies in microseconds
/// (`latency_us`), throughput in messages and in megabytes (10⁶ bytes) of
/// echoed payload per second. [`BenchReport::to_json`] writes it, and serde
/// reads it back (every field but [`latency_stats`](Self::latency_stats)),
/// so that other programs take the report typed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BenchReport {
    /// The settings of the run.
    pub parameters: BenchConfig,
    /// The connections asked for, opened, and failed.
    pub connections: ConnectionCounts,
    /// Messages sent after the warmup.
    pub sent: u64,
    /// Intact echoes of messages sent after the warmup.
    pub echoed: u64,
    /// Everything that went wrong, warmup included.
    pub errors: ErrorCounts,
    /// UDP replies that came after their message had been counted lost.
    pub late: u64,
    /// Over UDP, what the network did to the datagrams: loss, duplicates,
    /// reordering and jitter, which are figures of the path measured, not
    /// errors. `None` over TCP (and then left out of the JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<DatagramCounts>,
    /// When the measured part of the run began (the end of the warmup), in
    /// seconds since the Unix epoch by this host's clock: what lines up the
    /// reports of several hosts when they are [merged](merge()).
    #[serde(rename = "started_unix_s")]
    pub started_unix: f64,
    /// From the end of the warmup to the last intact echo.
    #[serde(rename = "elapsed_s", with = "units::seconds")]
    pub elapsed: Duration,
    /// `echoed / elapsed`.
    pub messages_per_s: f64,
    /// Echoed payload bytes per second, in megabytes (10⁶ bytes): each
    /// message's bytes are counted once, although they crossed the network
    /// twice.
    pub megabytes_per_s: f64,
    /// The latencies of the intact echoes after the warmup.
    #[serde(rename = "latency_us")]
    pub latency: Option<LatencySummary>,
    /// The same latencies as a histogram, in HdrHistogram's interchange form
    /// ([`LatencyStats::to_interchange`]: V2, compressed, base64, in
    /// nanoseconds), for HdrHistogram's tools and for [`merge()`], which
    /// takes percentiles over every host's echoes. `None` when nothing was
    /// timed.
    pub latency_histogram: Option<String>,
    /// How long the connections took to open over TCP, as curl's
    /// `time_connect`, one sample a connection; `None` over UDP, when no
    /// connection opened, and in a [merged](merge()) report.
    #[serde(default, rename = "connect_time_us")]
    pub connect_time: Option<LatencySummary>,
    /// How long their TLS handshakes took after that, as curl's
    /// `time_appconnect` less `time_connect`; `None` without TLS.
    #[serde(default, rename = "tls_handshake_time_us")]
    pub tls_handshake_time: Option<LatencySummary>,
    /// How busy the client kept its cores while it sent and received:
    /// with [`ClientCpu::limited`], the figures may show the client's limit
    /// rather than the server's. `None` where the system does not say, and
    /// in a merged report.
    #[serde(default)]
    pub client_cpu: Option<ClientCpu>,
    /// The figures of each interval, if asked for.
    pub intervals: Vec<IntervalReport>,
    /// The first error, in words.
    pub first_error: Option<String>,
    /// Whether the run was interrupted before its end.
    pub interrupted: bool,
    /// With [`BenchConfig::expect_greeting`]: for each server instance that
    /// greeted, how many connections it served and how many measured echoes
    /// came back on them, which shows how a load balancer spread the load.
    /// Empty otherwise (and then left out of the JSON).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instances: BTreeMap<String, InstanceCounts>,
    /// With [`BenchConfig::reconnect`], what reconnecting cost: connections
    /// opened again, messages sent again, failed attempts, and the longest
    /// outage. `None` otherwise (and then left out of the JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<Reconnects>,
    /// How evenly the measured echoes were spread over the connections
    /// that were opened; `None` when nothing was echoed.
    #[serde(default)]
    pub fairness: Option<Fairness>,
    /// In a report [merged](merge()) from several hosts' reports, one row a
    /// host, in the order given; empty otherwise (and then left out of the
    /// JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostReport>,
    /// Every latency behind [`latency`](Self::latency), for other
    /// percentiles. Not in the JSON as such: a report read back from it has
    /// none, and [`LatencyStats::from_interchange`] makes them again from
    /// [`latency_histogram`](Self::latency_histogram).
    #[serde(skip)]
    pub latency_stats: LatencyStats,
}

/// Connections of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConnectionCounts {
    /// Asked for.
    pub requested: usize,
    /// Opened.
    pub connected: usize,
    /// Could not be opened, or failed before the end (closed, reset, or no
    /// echo within the timeout).
    pub failed: usize,
}

/// What one server instance served in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceCounts {
    /// Connections it greeted.
    pub connections: u64,
    /// Intact echoes of messages sent after the warmup, on those connections.
    pub echoed: u64,
}

/// How evenly a run's measured echoes were spread over its connections: a
/// server (or a balancer) that starves some connections to serve others
/// shows here, not in the totals.
///
/// ```
/// use echo_client::bench::Fairness;
///
/// let fair = Fairness::of(&[100, 100, 100, 100]).unwrap();
/// assert_eq!(fair.jain_index, 1.0);
/// let starved = Fairness::of(&[400, 0, 0, 0]).unwrap();
/// assert_eq!((starved.min_echoes, starved.max_echoes), (0, 400));
/// assert_eq!(starved.jain_index, 0.25);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Fairness {
    /// Connections counted: every one that was opened.
    pub connections: u64,
    /// The fewest measured echoes on one connection.
    pub min_echoes: u64,
    /// The most measured echoes on one connection.
    pub max_echoes: u64,
    /// Jain's fairness index of the connections' echo counts,
    /// (Σx)² / (n·Σx²): 1 when every connection had as many echoes as
    /// the others, 1/n when one had them all.
    pub jain_index: f64,
}

impl Fairness {
    /// The fairness of connections that had `echoes` measured echoes each;
    /// `None` when there are none or nothing was echoed.
    pub fn of(echoes: &[u64]) -> Option<Self> {
        let mut spread = tally::Spread::default();
        for &echoed in echoes {
            spread.add(echoed);
        }
        Self::from_spread(&spread)
    }

    fn from_spread(spread: &tally::Spread) -> Option<Self> {
        (spread.sum > 0).then(|| Self {
            connections: spread.connections,
            min_echoes: spread.min,
            max_echoes: spread.max,
            jain_index: (spread.sum as f64).powi(2)
                / (spread.connections as f64 * spread.sum_of_squares as f64),
        })
    }

    /// The sum of the squares of the echo counts behind this index, given
    /// their sum (the run's echoes): what merging several runs' fairness
    /// needs.
    pub(crate) fn sum_of_squares(&self, echoed: u64) -> f64 {
        (echoed as f64).powi(2) / (self.connections as f64 * self.jain_index)
    }
}

/// What the network did to a UDP run's datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DatagramCounts {
    /// Measured messages with no reply within the timeout (replies that
    /// came later are [`BenchReport::late`]).
    pub lost: u64,
    /// `lost / sent`, as a percentage; 0 when nothing was sent.
    pub loss_percent: f64,
    /// Replies to a message already answered.
    pub duplicated: u64,
    /// Replies that came after the reply to a later message of their
    /// socket.
    pub reordered: u64,
    /// The interarrival jitter of RFC 3550 ([`Jitter`](crate::stats::Jitter)),
    /// the mean over the sockets that had two replies or more.
    #[serde(rename = "jitter_us", with = "units::micros")]
    pub jitter: Duration,
}

impl DatagramCounts {
    /// The loss of `lost` messages out of `sent`, as a percentage.
    pub(crate) fn loss_percent(lost: u64, sent: u64) -> f64 {
        if sent == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / sent as f64
        }
    }
}

/// What went wrong in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorCounts {
    /// The sum of the others.
    pub total: u64,
    /// Echoes that came back different from their message.
    pub corrupted: u64,
    /// Messages whose echo never came (within the timeout, or before their
    /// connection failed).
    pub missing: u64,
    /// Echoes of nothing sent: extra bytes, frames or datagrams, duplicates.
    pub unexpected: u64,
}

impl BenchReport {
    /// Whether the endpoint passed: no error, no connection failed, and,
    /// if anything was sent, something came back. Over UDP lost datagrams
    /// are a figure of the path, not a failure, as for ping.
    pub fn succeeded(&self) -> bool {
        self.errors.total == 0
            && self.connections.failed == 0
            && (self.sent == 0 || self.echoed > 0)
    }

    /// The report as one JSON document, indented for people; scripts parse it
    /// all the same, and Rust programs read it back with serde.
    ///
    /// ```
    /// use echo_client::bench::{self, BenchConfig, BenchReport, Stop};
    /// # use echo_server::{Config, Server};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = Server::bind(Config { listen: "127.0.0.1:0".parse()?, ..Config::default() }).await?;
    /// # let addr = server.local_addr().to_string();
    /// # tokio::spawn(server.run(std::future::pending()));
    /// let config = BenchConfig { addr, stop: Stop::Messages(100), ..BenchConfig::default() };
    /// let json = bench::run(&config).await?.to_json();
    ///
    /// // Another program, given the JSON:
    /// let report: BenchReport = serde_json::from_str(&json)?;
    /// assert_eq!((report.parameters, report.echoed), (config, 100));
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain data, always serializable")
    }
}

/// Runs a bench and returns its report.
///
/// # Errors
///
/// [`ClientError::InvalidSetting`] for a bad setting, and
/// [`ClientError::Resolve`] if the address does not resolve. Connections that
/// cannot be opened do not make the run fail: they are counted in the
/// report, which the caller judges with [`BenchReport::succeeded`].
pub async fn run(config: &BenchConfig) -> Result<BenchReport, ClientError> {
    run_with(config, |_| {}, std::future::pending()).await
}

/// Runs a bench, telling `observer` of its progress, and stopping early (as
/// at the end of its duration) when `interrupt` completes.
///
/// # Errors
///
/// As for [`run`].
pub async fn run_with(
    config: &BenchConfig,
    mut observer: impl FnMut(BenchEvent),
    interrupt: impl Future<Output = ()>,
) -> Result<BenchReport, ClientError> {
    config.validate()?;
    let dialer = Arc::new(Dialer::new(config).await?);

    // Connect everything first, so that connecting is not measured.
    let mut connecting = JoinSet::new();
    for index in 0..config.connections {
        let dialer = Arc::clone(&dialer);
        connecting.spawn(async move { (index, dialer.open().await) });
    }
    let mut links = Vec::with_capacity(config.connections);
    let mut connect_errors = Vec::new();
    let (mut connect_times, mut handshake_times) = (LatencyStats::new(), LatencyStats::new());
    while let Some(joined) = connecting.join_next().await {
        match joined {
            Ok((index, Ok(link))) => {
                if config.mode.is_tcp() {
                    connect_times.record(link.link.connect_time);
                }
                if let Some(handshake) = link.link.handshake_time {
                    handshake_times.record(handshake);
                }
                links.push((index, link));
            }
            Ok((_, Err(error))) => connect_errors.push(error),
            Err(join_error) => connect_errors.push(ClientError::Connect {
                addr: config.addr.clone(),
                source: std::io::Error::other(join_error.to_string()),
            }),
        }
    }
    links.sort_by_key(|(index, _)| *index);
    observer(BenchEvent::Connected {
        connected: links.len(),
        failed: connect_errors.len(),
    });

    let plan = Arc::new(Plan {
        addr: config.addr.clone(),
        mode: config.mode,
        epoch: Instant::now(),
        warmup_nanos: nanos(config.warmup),
        depth: config.depth as u64,
        timeout: config.timeout,
        rate: config.rate,
        connections: config.connections as u64,
        pattern: Pattern::new(config.size),
        collector: Collector::new(config.report_interval.is_some()),
        reconnect: config.reconnect,
    });
    if let Some(error) = connect_errors.first() {
        let mut totals = plan.collector.lock();
        totals.failed_connections += connect_errors.len() as u64;
        totals.note_error(|| crate::error::describe(error));
    }
    let stop = Signal::default();
    let mut connections = JoinSet::new();
    let connected = links.len();
    for (index, opened) in links {
        let id = u32::try_from(index).expect("validated: at most u32::MAX connections");
        connections.spawn(connection::run(
            id,
            opened,
            config.quota(index),
            Arc::clone(&plan),
            stop.clone(),
            Arc::clone(&dialer),
        ));
    }

    let cpu_clock = CpuClock::start();
    let mut clock = Clock::new(config, &plan);
    let deadline = match config.stop {
        Stop::Duration(duration) => Some(plan.epoch + config.warmup + duration),
        Stop::Messages(_) => None,
    };
    let mut interrupted = false;
    tokio::pin!(interrupt);
    let mut ticks = tokio::time::interval(PROGRESS_PERIOD);
    loop {
        tokio::select! {
            joined = connections.join_next() => match joined {
                None => break,
                Some(Ok(())) => {}
                // A connection's task panicked: a bug, which costs that
                // connection only.
                Some(Err(_)) => plan.collector.lock().failed_connections += 1,
            },
            () = sleep_until_some(deadline), if !stop.is_raised() => stop.raise(),
            () = &mut interrupt, if !interrupted => {
                interrupted = true;
                stop.raise();
            }
            _ = ticks.tick() => clock.tick(&mut observer, stop.is_raised()),
        }
    }
    clock.finish(&mut observer);
    let mut report = clock.report(config, connected, interrupted);
    report.connect_time = connect_times.summary();
    report.tls_handshake_time = handshake_times.summary();
    report.client_cpu = cpu_clock.stop();
    Ok(report)
}

/// Sleeps until `deadline`, or for ever if there is none.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Turns the collector's running totals into progress events, interval
/// reports, and at the end the report.
struct Clock<'a> {
    plan: &'a Plan,
    size: usize,
    interval: Option<Duration>,
    /// The end of the interval in progress, from the end of the warmup.
    interval_end: Duration,
    interval_echoed: u64,
    interval_errors: u64,
    intervals: Vec<IntervalReport>,
    last_tick: Instant,
    last_echoed_all: u64,
}

impl<'a> Clock<'a> {
    fn new(config: &BenchConfig, plan: &'a Plan) -> Self {
        Self {
            plan,
            size: config.size,
            interval: config.report_interval,
            interval_end: config.report_interval.unwrap_or_default(),
            interval_echoed: 0,
            interval_errors: 0,
            intervals: Vec::new(),
            last_tick: plan.epoch,
            last_echoed_all: 0,
        }
    }

    /// Time since the end of the warmup, if it is over.
    fn measured(&self) -> Option<Duration> {
        self.plan
            .epoch
            .elapsed()
            .checked_sub(Duration::from_nanos(self.plan.warmup_nanos))
    }

    fn tick(&mut self, observer: &mut impl FnMut(BenchEvent), finishing: bool) {
        let now = Instant::now();
        let (echoed_all, echoed, errors) = {
            let totals = self.plan.collector.lock();
            (totals.echoed_all, totals.echoed, totals.errors())
        };
        let seconds = now.duration_since(self.last_tick).as_secs_f64();
        let current_rate = if seconds > 0.0 {
            (echoed_all - self.last_echoed_all) as f64 / seconds
        } else {
            0.0
        };
        (self.last_tick, self.last_echoed_all) = (now, echoed_all);
        observer(BenchEvent::Progress(BenchProgress {
            elapsed: now.duration_since(self.plan.epoch),
            measuring: self.measured().is_some(),
            finishing,
            echoed,
            errors,
            current_rate,
        }));
        if let Some(interval) = self.interval {
            while self
                .measured()
                .is_some_and(|measured| measured >= self.interval_end)
            {
                let end = self.interval_end;
                self.close_interval(observer, end - interval, end);
                self.interval_end += interval;
            }
        }
    }

    /// Reports the interval from `start` to `end`.
    fn close_interval(
        &mut self,
        observer: &mut impl FnMut(BenchEvent),
        start: Duration,
        end: Duration,
    ) {
        let (echoed, errors, latency) = {
            let mut totals = self.plan.collector.lock();
            let latency = std::mem::take(&mut totals.interval_latency);
            (totals.echoed, totals.errors(), latency)
        };
        let seconds = (end - start).as_secs_f64();
        let interval_echoed = echoed - self.interval_echoed;
        let report = IntervalReport {
            start,
            end,
            echoed: interval_echoed,
            errors: errors - self.interval_errors,
            messages_per_s: per_second(interval_echoed as f64, seconds),
            megabytes_per_s: per_second(interval_echoed as f64 * self.size as f64 / 1e6, seconds),
            latency: latency.summary(),
        };
        (self.interval_echoed, self.interval_errors) = (echoed, errors);
        self.intervals.push(report.clone());
        observer(BenchEvent::Interval(report));
    }

    /// Reports the last, partial interval, which ends with the last echo, if
    /// anything happened in it. A sliver of an interval would show a
    /// meaningless rate, so it is left out unless it is the only one.
    fn finish(&mut self, observer: &mut impl FnMut(BenchEvent)) {
        let Some(interval) = self.interval else {
            return;
        };
        let start = self.interval_end - interval;
        let (end, pending) = {
            let totals = self.plan.collector.lock();
            (
                Duration::from_nanos(
                    totals
                        .last_echo_nanos
                        .saturating_sub(self.plan.warmup_nanos),
                ),
                totals.echoed > self.interval_echoed || totals.errors() > self.interval_errors,
            )
        };
        let long_enough = end.saturating_sub(start) >= interval / 10 || self.intervals.is_empty();
        if pending && end > start && long_enough {
            self.close_interval(observer, start, end);
        }
    }

    fn report(self, config: &BenchConfig, connected: usize, interrupted: bool) -> BenchReport {
        let mut totals = self.plan.collector.lock();
        let elapsed = Duration::from_nanos(
            totals
                .last_echo_nanos
                .saturating_sub(self.plan.warmup_nanos),
        );
        let seconds = elapsed.as_secs_f64();
        let latency_stats = std::mem::take(&mut totals.latency);
        // The wall clock now, less the time measured so far.
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let started_unix = since_epoch
            .saturating_sub(self.measured().unwrap_or_default())
            .as_secs_f64();
        BenchReport {
            parameters: config.clone(),
            connections: ConnectionCounts {
                requested: config.connections,
                connected,
                failed: totals.failed_connections as usize,
            },
            sent: totals.sent,
            echoed: totals.echoed,
            errors: ErrorCounts {
                total: totals.errors(),
                corrupted: totals.corrupted,
                missing: totals.missing,
                unexpected: totals.unexpected,
            },
            late: totals.late,
            datagrams: (config.mode == Mode::Udp).then(|| {
                let datagrams = totals.datagrams;
                DatagramCounts {
                    lost: datagrams.lost,
                    loss_percent: DatagramCounts::loss_percent(datagrams.lost, totals.sent),
                    duplicated: datagrams.duplicated,
                    reordered: datagrams.reordered,
                    jitter: Duration::from_nanos(
                        (datagrams.jitter_sum_nanos / datagrams.jitter_sockets.max(1) as f64)
                            .round() as u64,
                    ),
                }
            }),
            started_unix,
            elapsed,
            messages_per_s: per_second(totals.echoed as f64, seconds),
            megabytes_per_s: per_second(totals.echoed as f64 * config.size as f64 / 1e6, seconds),
            latency: latency_stats.summary(),
            latency_histogram: (latency_stats.count() > 0).then(|| latency_stats.to_interchange()),
            connect_time: None,
            tls_handshake_time: None,
            client_cpu: None,
            intervals: self.intervals,
            first_error: totals.first_error.take(),
            interrupted,
            instances: std::mem::take(&mut totals.instances),
            reconnects: config.reconnect.then_some(totals.reconnects),
            fairness: Fairness::from_spread(&totals.spread),
            hosts: Vec::new(),
            latency_stats,
        }
    }
}

/// `amount / seconds`, or 0 for an empty span.
fn per_second(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { amount / seconds } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_shared_evenly_by_the_connections() {
        let config = BenchConfig {
            connections: 4,
            stop: Stop::Messages(10),
            ..BenchConfig::default()
        };
        let quotas: Vec<_> = (0..4).map(|index| config.quota(index)).collect();
        assert_eq!(quotas, [Some(3), Some(3), Some(2), Some(2)]);
        assert_eq!(BenchConfig::default().quota(0), None);
    }

    #[test]
    fn every_bad_setting_is_named() {
        let bad = |change: fn(&mut BenchConfig), expected: &str| {
            let mut config = BenchConfig::default();
            change(&mut config);
            let error = config.validate().unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "{error:?} should mention {expected:?}"
            );
        };
        bad(|c| c.connections = 0, "connections must be at least 1");
        bad(|c| c.depth = 0, "depth must be 1 to");
        bad(|c| c.depth = MAX_DEPTH + 1, "depth must be 1 to");
        bad(
            |c| c.size = 9 * 1024 * 1024,
            "size: framed messages must be 0 to 8388608 bytes",
        );
        bad(
            |c| {
                c.mode = Mode::Udp;
                c.size = 4;
            },
            "sequence number",
        );
        bad(
            |c| c.stop = Stop::Messages(0),
            "messages must be at least 1",
        );
        bad(|c| c.stop = Stop::Duration(Duration::ZERO), "duration");
        bad(|c| c.rate = Some(0.0), "rate");
        bad(|c| c.rate = Some(f64::NAN), "rate");
        bad(|c| c.timeout = Duration::ZERO, "timeout");
        bad(
            |c| {
                c.mode = Mode::Udp;
                c.size = 64;
                c.expect_greeting = true;
            },
            "not UDP",
        );
        bad(
            |c| c.report_interval = Some(Duration::ZERO),
            "report interval",
        );
    }

    #[test]
    fn parameters_serialize_with_units_in_their_names() {
        let config = BenchConfig {
            stop: Stop::Messages(5),
            rate: Some(100.0),
            ..BenchConfig::default()
        };
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(
            serde_json::from_value::<BenchConfig>(json.clone()).unwrap(),
            config
        );
        assert_eq!(json["messages"], 5);
        assert_eq!(json["mode"], "framed");
        assert_eq!(json["rate"], 100.0);
        assert_eq!(json["timeout_s"], 5.0);
        assert_eq!(json["warmup_s"], 0.0);
        assert!(json["report_interval_s"].is_null());
        assert!(json.get("duration_s").is_none());
        let json = serde_json::to_value(BenchConfig::default()).unwrap();
        assert_eq!(json["duration_s"], 10.0);
        assert_eq!(
            serde_json::from_value::<BenchConfig>(json).unwrap(),
            BenchConfig::default()
        );
    }
}
