//! [`Metrics`]: the server's counters, and [`serve_metrics`], which serves
//! them to Prometheus over a deliberately small HTTP endpoint.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use echo_proto::FrameError;
use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span};

use crate::ConnectionEnd;
use crate::accept::Acceptor;
use crate::tls::HandshakeError;

/// The path the metrics are served at.
const METRICS_PATH: &str = "/metrics";

/// The media type of the OpenMetrics text format, which Prometheus asks for
/// and understands.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The media type of the short explanations sent with errors.
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The longest request head (request line and headers) read from a scraper.
/// A scrape needs a few hundred bytes; anything longer is not a scrape.
const MAX_REQUEST_HEAD_LEN: usize = 8 * 1024;

/// How long a scraper has to send its whole request head. The bound is on
/// the whole head, not each read, so a client trickling bytes cannot hold a
/// connection open either.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a scraper has to take the response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long, at most, a connection stays open after its response, reading
/// whatever the client sent beyond its request head until the client closes,
/// and how much it reads.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_MAX_LEN: usize = 64 * 1024;

/// How many scrape connections are served at once. One Prometheus needs one;
/// the bound keeps a flood of connections to the metrics port from costing
/// the server more than a few file descriptors.
const MAX_SCRAPES: usize = 64;

/// The label set of every labelled family here: one label, such as
/// `reason="limit"`.
type Label = [(&'static str, &'static str); 1];

/// Why the server turned a connection away or cut it off, as the `reason`
/// label of `echo_connections_rejected_total` says it.
///
/// Connections closed for idling or for a protocol error are counted by
/// [`Metrics::connection_closed`] already; [`Metrics::connection_rejected`]
/// is for connections refused before they are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The server was at its connection limit (`reason="limit"`).
    Limit,
    /// The connection made no progress for the idle timeout
    /// (`reason="idle"`).
    Idle,
    /// The client broke the protocol (`reason="protocol_error"`).
    ProtocolError,
}

impl RejectReason {
    /// Every reason, for the series that exist from the start.
    const ALL: [RejectReason; 3] = [
        RejectReason::Limit,
        RejectReason::Idle,
        RejectReason::ProtocolError,
    ];

    /// The label value.
    fn label(self) -> &'static str {
        match self {
            RejectReason::Limit => "limit",
            RejectReason::Idle => "idle",
            RejectReason::ProtocolError => "protocol_error",
        }
    }
}

/// The counters of one server, in the Prometheus (OpenMetrics) text format.
///
/// Each server has its own: there is no global registry, so several servers
/// in one process (as in tests) count separately. Every series with a label
/// exists from the start at zero, so dashboards and alerts see it before the
/// first event.
///
/// | metric | type | labels | counts |
/// |---|---|---|---|
/// | `echo_connections_open` | gauge | | TCP connections open now |
/// | `echo_connections_accepted_total` | counter | | TCP connections accepted (not those refused at the limit) |
/// | `echo_connections_closed_total` | counter | `reason`: `client_closed`, `drained`, `idle_timeout`, `protocol_error`, `io_error`, `tls_handshake` | TCP connections closed, by why |
/// | `echo_connections_rejected_total` | counter | `reason`: `limit`, `idle`, `protocol_error` | TCP connections refused at the limit or cut off by the server |
/// | `echo_protocol_errors_total` | counter | `kind`: `frame_too_large`, `truncated` | protocol errors, by kind |
/// | `echo_frames_echoed_total` | counter | | frames echoed over TCP |
/// | `echo_bytes_echoed_total` | counter | | bytes echoed over TCP, frame headers included |
/// | `echo_udp_datagrams_total` | counter | | UDP datagrams echoed |
/// | `echo_udp_bytes_total` | counter | | UDP payload bytes echoed |
/// | `echo_tls_handshake_failures_total` | counter | `reason`: `timeout`, `error` | TLS handshakes that did not complete |
/// | `echo_tls_reloads_total` | counter | `result`: `ok`, `error` | reloads of the TLS files (SIGHUP) |
///
/// ```
/// use echo_server::{ConnectionEnd, Metrics};
///
/// let metrics = Metrics::new();
/// metrics.connection_accepted();
/// metrics.echoed(2, 14);
/// metrics.connection_closed(&ConnectionEnd::ClientClosed);
///
/// let exposition = metrics.encode();
/// let has = |sample: &str| exposition.lines().any(|line| line == sample);
/// assert!(has("echo_connections_open 0"));
/// assert!(has("echo_connections_accepted_total 1"));
/// assert!(has(r#"echo_connections_closed_total{reason="client_closed"} 1"#));
/// assert!(has("echo_frames_echoed_total 2"));
/// assert!(has("echo_bytes_echoed_total 14"));
/// ```
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections_open: Gauge,
    connections_accepted: Counter,
    connections_closed: Family<Label, Counter>,
    connections_rejected: Family<Label, Counter>,
    protocol_errors: Family<Label, Counter>,
    frames_echoed: Counter,
    bytes_echoed: Counter,
    udp_datagrams: Counter,
    udp_bytes: Counter,
    // TLS (issue #13).
    tls_handshake_failures: Family<Label, Counter>,
    tls_reloads: Family<Label, Counter>,
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            connections_open: Gauge::default(),
            connections_accepted: Counter::default(),
            connections_closed: Family::default(),
            connections_rejected: Family::default(),
            protocol_errors: Family::default(),
            frames_echoed: Counter::default(),
            bytes_echoed: Counter::default(),
            udp_datagrams: Counter::default(),
            udp_bytes: Counter::default(),
            tls_handshake_failures: Family::default(),
            tls_reloads: Family::default(),
        };
        metrics.create_labelled_series();
        metrics.register()
    }

    /// Creates every labelled series at zero. The labels come from the same
    /// functions the events use, given one example of each kind of event, so
    /// the two cannot disagree.
    fn create_labelled_series(&self) {
        let ends = [
            ConnectionEnd::ClientClosed,
            ConnectionEnd::Drained,
            ConnectionEnd::IdleTimeout(Duration::ZERO),
            ConnectionEnd::ProtocolError(FrameError::Truncated {
                received: 0,
                expected: 0,
            }),
            ConnectionEnd::Io(io::ErrorKind::Other.into()),
            ConnectionEnd::TlsHandshake(HandshakeError::Timeout(Duration::ZERO)),
        ];
        for end in &ends {
            create_at_zero(&self.connections_closed, reason_label(closed_reason(end)));
        }
        for rejected in RejectReason::ALL {
            create_at_zero(&self.connections_rejected, reason_label(rejected.label()));
        }
        let errors = [
            FrameError::FrameTooLarge { len: 0, max: 0 },
            FrameError::Truncated {
                received: 0,
                expected: 0,
            },
        ];
        for error in &errors {
            create_at_zero(&self.protocol_errors, kind_label(error.kind()));
        }
        for reason in HandshakeError::REASONS {
            create_at_zero(&self.tls_handshake_failures, reason_label(reason));
        }
        for ok in [true, false] {
            create_at_zero(&self.tls_reloads, result_label(ok));
        }
    }

    /// Registers every metric with its help text. The registry adds the
    /// `_total` suffix of counters, and the full stop ending each help text.
    fn register(mut self) -> Self {
        let registry = &mut self.registry;
        registry.register(
            "echo_connections_open",
            "TCP connections open now",
            self.connections_open.clone(),
        );
        registry.register(
            "echo_connections_accepted",
            "TCP connections accepted (connections refused at the connection limit are not)",
            self.connections_accepted.clone(),
        );
        registry.register(
            "echo_connections_closed",
            "TCP connections closed, by why they ended: client_closed, drained (server shutdown), \
             idle_timeout, protocol_error, io_error or tls_handshake",
            self.connections_closed.clone(),
        );
        registry.register(
            "echo_connections_rejected",
            "TCP connections the server refused or cut off, by why: limit (the connection limit \
             was reached), idle (idle timeout) or protocol_error",
            self.connections_rejected.clone(),
        );
        registry.register(
            "echo_protocol_errors",
            "Protocol errors by kind: frame_too_large (a header announced more than the maximum \
             frame length) or truncated (the stream ended inside a frame)",
            self.protocol_errors.clone(),
        );
        registry.register(
            "echo_frames_echoed",
            "Frames echoed over TCP",
            self.frames_echoed.clone(),
        );
        registry.register(
            "echo_bytes_echoed",
            "Bytes echoed over TCP, frame headers included",
            self.bytes_echoed.clone(),
        );
        registry.register(
            "echo_udp_datagrams",
            "UDP datagrams echoed",
            self.udp_datagrams.clone(),
        );
        registry.register(
            "echo_udp_bytes",
            "UDP payload bytes echoed",
            self.udp_bytes.clone(),
        );
        registry.register(
            "echo_tls_handshake_failures",
            "TLS handshakes that did not complete, by why: timeout (--tls-handshake-timeout) \
             or error (the client went away, was refused or spoke something else)",
            self.tls_handshake_failures.clone(),
        );
        registry.register(
            "echo_tls_reloads",
            "Reloads of the TLS certificate, key and client CA (SIGHUP), by result: ok or \
             error (the previous ones stay in use)",
            self.tls_reloads.clone(),
        );
        self
    }

    /// Counts a connection accepted and now open.
    pub fn connection_accepted(&self) {
        self.connections_accepted.inc();
        self.connections_open.inc();
    }

    /// Counts a connection closed (one that was
    /// [accepted](Self::connection_accepted)), by why it ended. A connection
    /// closed for idling or for breaking the protocol also counts as
    /// rejected, and a protocol error is counted by its kind.
    pub fn connection_closed(&self, end: &ConnectionEnd) {
        self.connections_open.dec();
        self.connections_closed
            .get_or_create(&reason_label(closed_reason(end)))
            .inc();
        match end {
            ConnectionEnd::IdleTimeout(_) => self.connection_rejected(RejectReason::Idle),
            ConnectionEnd::ProtocolError(error) => {
                self.connection_rejected(RejectReason::ProtocolError);
                self.protocol_errors
                    .get_or_create(&kind_label(error.kind()))
                    .inc();
            }
            ConnectionEnd::TlsHandshake(error) => {
                self.tls_handshake_failures
                    .get_or_create(&reason_label(error.reason()))
                    .inc();
            }
            ConnectionEnd::ClientClosed | ConnectionEnd::Drained | ConnectionEnd::Io(_) => {}
        }
    }

    /// Counts a connection turned away. A connection refused when it is
    /// accepted, at the connection limit, is neither accepted nor open.
    pub fn connection_rejected(&self, reason: RejectReason) {
        self.connections_rejected
            .get_or_create(&reason_label(reason.label()))
            .inc();
    }

    /// Counts what one write echoed over TCP: `frames` whole frames
    /// (0 in raw mode, or for a piece of a large frame) and `bytes` bytes,
    /// headers included.
    pub fn echoed(&self, frames: u64, bytes: u64) {
        self.frames_echoed.inc_by(frames);
        self.bytes_echoed.inc_by(bytes);
    }

    /// Counts one UDP datagram echoed, of `bytes` payload bytes.
    pub fn udp_datagram(&self, bytes: usize) {
        self.udp_datagrams.inc();
        self.udp_bytes.inc_by(bytes as u64);
    }

    /// Counts one reload of the TLS files, which succeeded or not.
    pub fn tls_reloaded(&self, ok: bool) {
        self.tls_reloads.get_or_create(&result_label(ok)).inc();
    }

    /// The metrics in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut exposition = String::new();
        // Writing to a String cannot fail, and counters and gauges always
        // encode: only a histogram without buckets can make the encoder fail.
        text::encode(&mut exposition, &self.registry)
            .expect("counters and gauges encode into a String");
        exposition
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Creates the series of `label` in `family`, at zero.
fn create_at_zero(family: &Family<Label, Counter>, label: Label) {
    // Creating it is the point; the lock guard it comes with is not needed.
    drop(family.get_or_create(&label));
}

/// A `reason` label.
fn reason_label(value: &'static str) -> Label {
    [("reason", value)]
}

/// A `result` label: `ok` or `error`.
fn result_label(ok: bool) -> Label {
    [("result", if ok { "ok" } else { "error" })]
}

/// A `kind` label.
fn kind_label(value: &'static str) -> Label {
    [("kind", value)]
}

/// Why a connection ended, as the `reason` label of
/// `echo_connections_closed_total` says it.
fn closed_reason(end: &ConnectionEnd) -> &'static str {
    match end {
        ConnectionEnd::ClientClosed => "client_closed",
        ConnectionEnd::Drained => "drained",
        ConnectionEnd::IdleTimeout(_) => "idle_timeout",
        ConnectionEnd::ProtocolError(_) => "protocol_error",
        ConnectionEnd::Io(_) => "io_error",
        ConnectionEnd::TlsHandshake(_) => "tls_handshake",
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled, then
/// returns, closing the scrape connections still open.
///
/// The endpoint is small on purpose, and hardened: each connection is served
/// by its own task, sends one request head of at most 8 KiB within 5 seconds,
/// gets one response with `Content-Length` and `Connection: close`, and is
/// closed. `GET /metrics` (with any query) is answered with the metrics;
/// another path gets 404, another method 405, anything that is not an HTTP/1
/// request 400. A failed scrape is logged at debug level and concerns only
/// its connection; at most 64 scrapes are served at once, and connections
/// beyond are closed at once.
///
/// ```
/// use std::sync::Arc;
///
/// use echo_server::{Metrics, serve_metrics};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let metrics = Arc::new(Metrics::new());
/// let shutdown = CancellationToken::new();
/// let serving = tokio::spawn(serve_metrics(listener, Arc::clone(&metrics), shutdown.clone()));
///
/// metrics.connection_accepted();
/// let mut scrape = tokio::net::TcpStream::connect(addr).await?;
/// scrape.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
/// let mut response = String::new();
/// scrape.read_to_string(&mut response).await?;
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.contains("\necho_connections_open 1\n"));
///
/// shutdown.cancel();
/// serving.await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    // Dropping the set when the loop ends aborts the scrapes in progress.
    let mut scrapes = JoinSet::new();
    let mut acceptor = Acceptor::new(&listener, "metrics");
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            // Finished scrapes are collected as they end, so that the set
            // holds only those in progress.
            _ = scrapes.join_next(), if !scrapes.is_empty() => {}
            (stream, peer) = acceptor.accept() => {
                if scrapes.len() >= MAX_SCRAPES {
                    debug!(%peer, "metrics connection refused: {MAX_SCRAPES} scrapes in progress");
                    continue;
                }
                let metrics = Arc::clone(&metrics);
                scrapes.spawn(
                    async move {
                        if let Err(error) = scrape(stream, &metrics).await {
                            debug!(%error, "metrics scrape failed");
                        }
                    }
                    .instrument(debug_span!("metrics scrape", %peer)),
                );
            }
        }
    }
}

/// What a request asks for, and so how it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `GET /metrics`: 200 with the metrics.
    Metrics,
    /// `GET` of another path: 404.
    NotFound,
    /// Another method: 405.
    MethodNotAllowed,
    /// Not an HTTP/1 request: 400.
    BadRequest,
}

/// A request head as read from a scraper.
enum Head {
    /// The head up to its blank line (and perhaps beyond).
    Complete(Vec<u8>),
    /// The client closed its side before the blank line, after sending these
    /// bytes.
    Cut(Vec<u8>),
}

/// Serves one scrape connection: reads the request head, answers, closes.
async fn scrape(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    let head = timeout(REQUEST_HEAD_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| timed_out("no complete request head", REQUEST_HEAD_TIMEOUT))??;
    let route = match head {
        Head::Complete(head) => route(request_line(&head)),
        // Connected and left without a word, as port checks do: there is no
        // one to answer.
        Head::Cut(head) if head.is_empty() => return Ok(()),
        Head::Cut(_) => Route::BadRequest,
    };
    let response = response(route, metrics);
    timeout(RESPONSE_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| timed_out("the response was not taken", RESPONSE_TIMEOUT))??;
    debug!(?route, "metrics request answered");
    linger(&mut stream).await;
    Ok(())
}

/// Reads until the blank line that ends a request head, the end of the
/// stream, or [`MAX_REQUEST_HEAD_LEN`] bytes, which is an error.
async fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let mut head = vec![0; MAX_REQUEST_HEAD_LEN];
    let mut len = 0;
    loop {
        let read = stream.read(&mut head[len..]).await?;
        if read == 0 {
            head.truncate(len);
            return Ok(Head::Cut(head));
        }
        // The blank line may straddle two reads: look back three bytes.
        let searched = len.saturating_sub(3);
        len += read;
        if ends_head(&head[searched..len]) {
            head.truncate(len);
            return Ok(Head::Complete(head));
        }
        if len == MAX_REQUEST_HEAD_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("request head longer than {MAX_REQUEST_HEAD_LEN} bytes"),
            ));
        }
    }
}

/// Whether `bytes` hold the blank line ending a request head. A bare line
/// feed is accepted as a line end, as HTTP allows.
fn ends_head(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|window| window == b"\r\n\r\n")
        || bytes.windows(2).any(|window| window == b"\n\n")
}

/// The first line of a request head, without its line end.
fn request_line(head: &[u8]) -> &[u8] {
    let line = head.split(|&byte| byte == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Where a request line (`METHOD TARGET HTTP/1.x`) leads.
fn route(request_line: &[u8]) -> Route {
    let Ok(line) = std::str::from_utf8(request_line) else {
        return Route::BadRequest;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !is_token(method) || target.is_empty() || !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Route::BadRequest;
    }
    if method != "GET" {
        return Route::MethodNotAllowed;
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    if path == METRICS_PATH {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

/// Whether `text` is an HTTP token, as a method must be.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// The whole response to a request.
fn response(route: Route, metrics: &Metrics) -> Vec<u8> {
    let (status, content_type, body) = match route {
        Route::Metrics => ("200 OK", METRICS_CONTENT_TYPE, metrics.encode()),
        Route::NotFound => (
            "404 Not Found",
            TEXT_CONTENT_TYPE,
            format!("not found: the metrics are at {METRICS_PATH}\n"),
        ),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            TEXT_CONTENT_TYPE,
            "method not allowed: the metrics are read with GET\n".to_owned(),
        ),
        Route::BadRequest => (
            "400 Bad Request",
            TEXT_CONTENT_TYPE,
            format!("bad request: expected an HTTP/1.1 request such as GET {METRICS_PATH}\n"),
        ),
    };
    let allow = if route == Route::MethodNotAllowed {
        "Allow: GET\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads and drops what the client sent beyond its request head, until it
/// closes, for at most [`LINGER`] and [`LINGER_MAX_LEN`] bytes. Closing a socket with unread data makes
/// the system reset the connection, and a reset can destroy the response
/// before the client has read it.
async fn linger(stream: &mut TcpStream) {
    let mut discarded = [0; 1024];
    let mut left = LINGER_MAX_LEN;
    // Running out of time is the expected end for a client that keeps the
    // connection open; it is closed all the same.
    let _ = timeout(LINGER, async {
        while let Ok(read @ 1..) = stream.read(&mut discarded).await {
            left = left.saturating_sub(read);
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

/// The error of a scraper that took longer than `limit`.
fn timed_out(what: &str, limit: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} within {limit:?}"))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::task::JoinHandle;

    use super::*;

    /// The bound on every wait in these tests.
    const WAIT: Duration = Duration::from_secs(10);

    /// The value of `series` (a name with its labels) in `exposition`.
    fn sample(exposition: &str, series: &str) -> Option<i64> {
        exposition.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// Asserts the value of each series.
    #[track_caller]
    fn assert_samples(metrics: &Metrics, expected: &[(&str, i64)]) {
        let exposition = metrics.encode();
        for &(series, value) in expected {
            assert_eq!(
                sample(&exposition, series),
                Some(value),
                "{series} in:\n{exposition}"
            );
        }
    }

    #[test]
    fn every_series_exists_at_zero_with_its_help_text() {
        let exposition = Metrics::new().encode();
        for series in [
            "echo_connections_open",
            "echo_connections_accepted_total",
            r#"echo_connections_closed_total{reason="client_closed"}"#,
            r#"echo_connections_closed_total{reason="drained"}"#,
            r#"echo_connections_closed_total{reason="idle_timeout"}"#,
            r#"echo_connections_closed_total{reason="protocol_error"}"#,
            r#"echo_connections_closed_total{reason="io_error"}"#,
            r#"echo_connections_rejected_total{reason="limit"}"#,
            r#"echo_connections_rejected_total{reason="idle"}"#,
            r#"echo_connections_rejected_total{reason="protocol_error"}"#,
            r#"echo_protocol_errors_total{kind="frame_too_large"}"#,
            r#"echo_protocol_errors_total{kind="truncated"}"#,
            "echo_frames_echoed_total",
            "echo_bytes_echoed_total",
            "echo_udp_datagrams_total",
            "echo_udp_bytes_total",
        ] {
            assert_eq!(
                sample(&exposition, series),
                Some(0),
                "{series} in:\n{exposition}"
            );
        }
        for (family, kind) in [
            ("echo_connections_open", "gauge"),
            ("echo_connections_accepted", "counter"),
            ("echo_connections_closed", "counter"),
            ("echo_connections_rejected", "counter"),
            ("echo_protocol_errors", "counter"),
            ("echo_frames_echoed", "counter"),
            ("echo_bytes_echoed", "counter"),
            ("echo_udp_datagrams", "counter"),
            ("echo_udp_bytes", "counter"),
        ] {
            let help = format!("# HELP {family} ");
            assert!(
                exposition.lines().any(|line| line.starts_with(&help)),
                "no help text for {family} in:\n{exposition}"
            );
            let type_line = format!("# TYPE {family} {kind}");
            assert!(
                exposition.lines().any(|line| line == type_line),
                "no `{type_line}` in:\n{exposition}"
            );
        }
        assert!(exposition.ends_with("# EOF\n"), "{exposition}");
    }

    #[test]
    fn accepted_connections_are_open_until_closed() {
        let metrics = Metrics::new();
        metrics.connection_accepted();
        metrics.connection_accepted();
        assert_samples(
            &metrics,
            &[
                ("echo_connections_open", 2),
                ("echo_connections_accepted_total", 2),
            ],
        );
        metrics.connection_closed(&ConnectionEnd::ClientClosed);
        metrics.connection_closed(&ConnectionEnd::Drained);
        assert_samples(
            &metrics,
            &[
                ("echo_connections_open", 0),
                ("echo_connections_accepted_total", 2),
                (
                    r#"echo_connections_closed_total{reason="client_closed"}"#,
                    1,
                ),
                (r#"echo_connections_closed_total{reason="drained"}"#, 1),
                (r#"echo_connections_closed_total{reason="io_error"}"#, 0),
                (r#"echo_connections_rejected_total{reason="idle"}"#, 0),
            ],
        );
    }

    #[test]
    fn idle_and_protocol_error_closes_count_as_rejections() {
        let metrics = Metrics::new();
        for _ in 0..4 {
            metrics.connection_accepted();
        }
        metrics.connection_closed(&ConnectionEnd::IdleTimeout(Duration::from_secs(300)));
        metrics.connection_closed(&ConnectionEnd::ProtocolError(FrameError::FrameTooLarge {
            len: 1 << 30,
            max: 8 << 20,
        }));
        metrics.connection_closed(&ConnectionEnd::ProtocolError(FrameError::FrameTooLarge {
            len: 9 << 20,
            max: 8 << 20,
        }));
        metrics.connection_closed(&ConnectionEnd::ProtocolError(FrameError::Truncated {
            received: 2,
            expected: 4,
        }));
        assert_samples(
            &metrics,
            &[
                ("echo_connections_open", 0),
                (r#"echo_connections_closed_total{reason="idle_timeout"}"#, 1),
                (
                    r#"echo_connections_closed_total{reason="protocol_error"}"#,
                    3,
                ),
                (r#"echo_connections_rejected_total{reason="idle"}"#, 1),
                (
                    r#"echo_connections_rejected_total{reason="protocol_error"}"#,
                    3,
                ),
                (r#"echo_connections_rejected_total{reason="limit"}"#, 0),
                (r#"echo_protocol_errors_total{kind="frame_too_large"}"#, 2),
                (r#"echo_protocol_errors_total{kind="truncated"}"#, 1),
            ],
        );
    }

    #[test]
    fn io_errors_are_closes_not_rejections() {
        let metrics = Metrics::new();
        metrics.connection_accepted();
        metrics.connection_closed(&ConnectionEnd::Io(io::ErrorKind::ConnectionReset.into()));
        assert_samples(
            &metrics,
            &[
                ("echo_connections_open", 0),
                (r#"echo_connections_closed_total{reason="io_error"}"#, 1),
                (r#"echo_connections_rejected_total{reason="idle"}"#, 0),
                (
                    r#"echo_connections_rejected_total{reason="protocol_error"}"#,
                    0,
                ),
            ],
        );
    }

    #[test]
    fn connections_refused_at_the_limit_are_never_open() {
        let metrics = Metrics::new();
        metrics.connection_rejected(RejectReason::Limit);
        metrics.connection_rejected(RejectReason::Limit);
        assert_samples(
            &metrics,
            &[
                (r#"echo_connections_rejected_total{reason="limit"}"#, 2),
                ("echo_connections_accepted_total", 0),
                ("echo_connections_open", 0),
            ],
        );
    }

    #[test]
    fn echoes_and_datagrams_add_up() {
        let metrics = Metrics::new();
        metrics.echoed(3, 4 * 3 + 30);
        metrics.echoed(0, 100);
        metrics.udp_datagram(512);
        metrics.udp_datagram(0);
        assert_samples(
            &metrics,
            &[
                ("echo_frames_echoed_total", 3),
                ("echo_bytes_echoed_total", 142),
                ("echo_udp_datagrams_total", 2),
                ("echo_udp_bytes_total", 512),
            ],
        );
    }

    #[test]
    fn each_server_counts_on_its_own() {
        let (first, second) = (Metrics::new(), Metrics::default());
        first.connection_accepted();
        assert_samples(&first, &[("echo_connections_accepted_total", 1)]);
        assert_samples(&second, &[("echo_connections_accepted_total", 0)]);
    }

    /// A metrics endpoint served for a test.
    struct Endpoint {
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        serving: JoinHandle<()>,
    }

    async fn serve() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(serve_metrics(
            listener,
            Arc::clone(&metrics),
            shutdown.clone(),
        ));
        Endpoint {
            addr,
            metrics,
            shutdown,
            serving,
        }
    }

    /// Reads until the server closes the connection: what it sent, or the
    /// error that ended the connection (a reset, when the server closed it
    /// with the client's bytes unread).
    async fn read_until_closed(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
        let mut received = Vec::new();
        timeout(WAIT, stream.read_to_end(&mut received))
            .await
            .expect("the server did not close the connection")?;
        Ok(received)
    }

    /// Sends `request` on a new connection and reads until the server closes
    /// it.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
        let mut stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        timeout(WAIT, stream.write_all(request))
            .await
            .unwrap()
            .unwrap();
        read_until_closed(&mut stream).await.unwrap()
    }

    /// A response, split up.
    #[derive(Debug)]
    struct Response {
        status: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Response {
        fn parse(bytes: &[u8]) -> Self {
            let text = std::str::from_utf8(bytes).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap().to_owned();
            let headers = lines
                .map(|line| {
                    let (name, value) = line.split_once(": ").unwrap();
                    (name.to_ascii_lowercase(), value.to_owned())
                })
                .collect();
            Self {
                status,
                headers,
                body: body.to_owned(),
            }
        }

        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(header, _)| header == name)
                .map(|(_, value)| value.as_str())
        }

        /// Asserts what every response carries: its body's length, and that
        /// the connection closes.
        #[track_caller]
        fn assert_framed(&self) {
            assert_eq!(
                self.header("content-length"),
                Some(self.body.len().to_string().as_str()),
                "{self:?}"
            );
            assert_eq!(self.header("connection"), Some("close"), "{self:?}");
        }
    }

    async fn get(addr: SocketAddr, request: &str) -> Response {
        let response = Response::parse(&exchange(addr, request.as_bytes()).await);
        response.assert_framed();
        response
    }

    #[tokio::test]
    async fn get_metrics_answers_with_the_exposition() {
        let endpoint = serve().await;
        endpoint.metrics.connection_accepted();
        endpoint.metrics.echoed(1, 9);
        for request in [
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
            "GET /metrics?name[]=echo_connections_open HTTP/1.1\r\n\r\n",
            "GET /metrics HTTP/1.0\n\n",
        ] {
            let response = get(endpoint.addr, request).await;
            assert_eq!(response.status, "HTTP/1.1 200 OK", "{request:?}");
            assert_eq!(
                response.header("content-type"),
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
            );
            assert_eq!(response.body, endpoint.metrics.encode());
            assert_eq!(sample(&response.body, "echo_connections_open"), Some(1));
            assert_eq!(sample(&response.body, "echo_bytes_echoed_total"), Some(9));
        }
    }

    #[tokio::test]
    async fn other_paths_are_not_found() {
        let endpoint = serve().await;
        for path in ["/", "/metrics/", "/metricsx", "/favicon.ico"] {
            let response = get(endpoint.addr, &format!("GET {path} HTTP/1.1\r\n\r\n")).await;
            assert_eq!(response.status, "HTTP/1.1 404 Not Found", "{path}");
            assert_eq!(response.header("content-type"), Some(TEXT_CONTENT_TYPE));
            assert!(response.body.contains("/metrics"), "{response:?}");
        }
    }

    #[tokio::test]
    async fn other_methods_are_not_allowed() {
        let endpoint = serve().await;
        for request in [
            "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "HEAD /metrics HTTP/1.1\r\n\r\n",
            "DELETE / HTTP/1.1\r\n\r\n",
        ] {
            let response = get(endpoint.addr, request).await;
            assert_eq!(
                response.status, "HTTP/1.1 405 Method Not Allowed",
                "{request:?}"
            );
            assert_eq!(response.header("allow"), Some("GET"));
        }
    }

    #[tokio::test]
    async fn the_response_outlives_unread_request_bytes() {
        let endpoint = serve().await;
        // A small receive buffer keeps most of the response in the server's
        // send buffer until this client reads it: were the server to close
        // with the request's body unread, the system would reset the
        // connection and discard what it had not sent yet.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(1024).unwrap();
        let mut stream = timeout(WAIT, socket.connect(endpoint.addr))
            .await
            .unwrap()
            .unwrap();
        let body = "x".repeat(32 * 1024);
        let request = format!(
            "GET /metrics HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        timeout(WAIT, stream.write_all(request.as_bytes()))
            .await
            .unwrap()
            .unwrap();
        let response = Response::parse(&read_until_closed(&mut stream).await.unwrap());
        response.assert_framed();
        assert_eq!(response.status, "HTTP/1.1 200 OK");
    }

    #[tokio::test]
    async fn garbage_is_a_bad_request() {
        let endpoint = serve().await;
        for request in [
            &b"hello\r\n\r\n"[..],
            b"GET /metrics\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"G(T /metrics HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",
        ] {
            let response = Response::parse(&exchange(endpoint.addr, request).await);
            response.assert_framed();
            assert_eq!(response.status, "HTTP/1.1 400 Bad Request", "{request:?}");
        }
    }

    #[tokio::test]
    async fn a_head_cut_short_is_a_bad_request_and_silence_gets_no_answer() {
        let endpoint = serve().await;
        let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let response = Response::parse(&read_until_closed(&mut stream).await.unwrap());
        assert_eq!(response.status, "HTTP/1.1 400 Bad Request");

        let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(read_until_closed(&mut stream).await.unwrap(), b"");
    }

    #[tokio::test]
    async fn an_oversized_request_head_is_closed() {
        let endpoint = serve().await;
        let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
        let mut request = b"GET /".to_vec();
        request.resize(MAX_REQUEST_HEAD_LEN + 1024, b'a');
        // The server may close before taking it all; what matters is how it
        // answers.
        let _ = timeout(WAIT, stream.write_all(&request)).await.unwrap();
        // Closed with the client's bytes unread, the connection may end with
        // a reset rather than an end of stream: either way, with no answer.
        let received = read_until_closed(&mut stream).await.unwrap_or_default();
        assert_eq!(received, b"", "{:?}", String::from_utf8_lossy(&received));

        // The endpoint still serves.
        let response = get(endpoint.addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(response.status, "HTTP/1.1 200 OK");
    }

    #[tokio::test]
    async fn a_stalled_scraper_blocks_no_one_and_is_closed_in_time() {
        let endpoint = serve().await;
        let mut stalled = TcpStream::connect(endpoint.addr).await.unwrap();
        stalled
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();

        let response = get(endpoint.addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(response.status, "HTTP/1.1 200 OK");
        // The stalled connection is still open: the scrape was answered while
        // it waited, not after it timed out.
        let mut byte = [0; 1];
        assert_eq!(
            stalled.try_read(&mut byte).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );

        // At the head timeout it is closed, unanswered.
        assert_eq!(read_until_closed(&mut stalled).await.unwrap(), b"");
    }

    #[tokio::test]
    async fn scrapes_beyond_the_limit_are_closed_at_once() {
        let endpoint = serve().await;
        let mut stalled = Vec::new();
        for _ in 0..MAX_SCRAPES {
            stalled.push(TcpStream::connect(endpoint.addr).await.unwrap());
        }
        // Accepted after all the stalled ones, this one finds no room.
        let mut refused = TcpStream::connect(endpoint.addr).await.unwrap();
        refused
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let received = read_until_closed(&mut refused).await.unwrap_or_default();
        assert_eq!(received, b"", "{:?}", String::from_utf8_lossy(&received));

        // Once they leave, scrapes are served again.
        drop(stalled);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut stream = TcpStream::connect(endpoint.addr).await.unwrap();
            // Refused, the connection may be reset under the write or read.
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
            let response = read_until_closed(&mut stream).await.unwrap_or_default();
            if response.starts_with(b"HTTP/1.1 200 OK\r\n") {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no scrape served");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn cancelling_shutdown_stops_the_endpoint_and_its_scrapes() {
        let endpoint = serve().await;
        let mut stalled = TcpStream::connect(endpoint.addr).await.unwrap();
        stalled
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        // Answered after the stalled connection was accepted (accepts are in
        // order), so that one is a scrape in progress.
        let response = get(endpoint.addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(response.status, "HTTP/1.1 200 OK");

        endpoint.shutdown.cancel();
        timeout(WAIT, endpoint.serving)
            .await
            .expect("serve_metrics did not return")
            .unwrap();
        assert_eq!(
            TcpStream::connect(endpoint.addr).await.unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        // The scrape in progress was stopped with the endpoint: finishing its
        // request gets no answer.
        let _ = stalled.write_all(b"\r\n").await;
        let received = read_until_closed(&mut stalled).await.unwrap_or_default();
        assert_eq!(received, b"", "{:?}", String::from_utf8_lossy(&received));
    }

    #[test]
    fn request_lines_route_as_documented() {
        for (line, expected) in [
            (&b"GET /metrics HTTP/1.1"[..], Route::Metrics),
            (b"GET /metrics? HTTP/1.1", Route::Metrics),
            (b"GET /metrics?a=b&c HTTP/1.0", Route::Metrics),
            (b"GET /Metrics HTTP/1.1", Route::NotFound),
            (b"GET http://host/metrics HTTP/1.1", Route::NotFound),
            (b"PUT /metrics HTTP/1.1", Route::MethodNotAllowed),
            (b"get /metrics HTTP/1.1", Route::MethodNotAllowed),
            (b"", Route::BadRequest),
            (b"GET", Route::BadRequest),
            (b"GET /metrics HTTP/1.1 ", Route::BadRequest),
            (b"GET /metrics http/1.1", Route::BadRequest),
        ] {
            assert_eq!(route(line), expected, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
