//! [`Metrics`]: the server's counters, which the admin endpoint serves to
//! Prometheus at `/metrics`.

use std::io;
use std::time::Duration;

use echo_proto::FrameError;
use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::connection_end::ConnectionEnd;
use crate::handshake_error::HandshakeError;
use crate::proxy_protocol::ProxyHeaderRejection;

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
/// | `echo_connections_closed_total` | counter | `reason`: `client_closed`, `drained`, `idle_timeout`, `protocol_error`, `io_error`, `tls_handshake`, `proxy_header` | TCP connections closed, by why |
/// | `echo_connections_rejected_total` | counter | `reason`: `limit`, `idle`, `protocol_error` | TCP connections refused at the limit or cut off by the server |
/// | `echo_protocol_errors_total` | counter | `kind`: `frame_too_large`, `truncated` | protocol errors, by kind |
/// | `echo_frames_echoed_total` | counter | | frames echoed over TCP |
/// | `echo_bytes_echoed_total` | counter | | bytes echoed over TCP, frame headers included |
/// | `echo_udp_datagrams_total` | counter | | UDP datagrams echoed |
/// | `echo_udp_bytes_total` | counter | | UDP payload bytes echoed |
/// | `echo_build_info` | gauge | `version`, `instance` | always 1, with what answers (only from [`Metrics::for_instance`]) |
/// | `echo_tls_handshake_failures_total` | counter | `reason`: `timeout`, `error` | TLS handshakes that did not complete |
/// | `echo_tls_reloads_total` | counter | `result`: `ok`, `error` | reloads of the TLS files (SIGHUP) |
/// | `echo_log_lines_dropped_total` | counter | | log lines dropped because stderr was not read fast enough (the binary's; see [`count_dropped_log_lines`](Metrics::count_dropped_log_lines)) |
/// | `echo_proxy_header_rejections_total` | counter | `reason`: `untrusted`, `invalid`, `too_long`, `timeout`, `cut` | connections closed for their PROXY header (`--proxy-protocol`) |
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
    // TLS.
    tls_handshake_failures: Family<Label, Counter>,
    tls_reloads: Family<Label, Counter>,
    // The PROXY protocol.
    proxy_header_rejections: Family<Label, Counter>,
    // Logs.
    log_lines_dropped: Counter,
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
            proxy_header_rejections: Family::default(),
            log_lines_dropped: Counter::default(),
        };
        metrics.create_labelled_series();
        metrics.register()
    }

    /// Every metric at zero, and the constant `echo_build_info` gauge, of
    /// value 1, naming this version and `instance` in its labels: which
    /// server a scrape came from.
    ///
    /// ```
    /// let exposition = echo_server::Metrics::for_instance("edge-1").encode();
    /// let version = env!("CARGO_PKG_VERSION");
    /// let expected = format!(r#"echo_build_info{{version="{version}",instance="edge-1"}} 1"#);
    /// assert!(exposition.lines().any(|line| line == expected), "{exposition}");
    /// ```
    pub fn for_instance(instance: &str) -> Self {
        let mut metrics = Self::new();
        let build_info = Family::<[(&'static str, String); 2], Gauge>::default();
        build_info
            .get_or_create(&[
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("instance", instance.to_owned()),
            ])
            .set(1);
        metrics.registry.register(
            "echo_build_info",
            "Always 1: the version of echo-server and the instance (--instance) that serves",
            build_info,
        );
        metrics
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
            ConnectionEnd::ProxyHeader(ProxyHeaderRejection::Untrusted),
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
        for reason in ProxyHeaderRejection::REASONS {
            create_at_zero(&self.proxy_header_rejections, reason_label(reason));
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
             idle_timeout, protocol_error, io_error, tls_handshake or proxy_header",
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
        registry.register(
            "echo_proxy_header_rejections",
            "Connections closed for their PROXY header (--proxy-protocol), by why: untrusted \
             (the peer is not in --proxy-from), invalid (no header, or a broken one), too_long, \
             timeout (not whole in time) or cut (closed before it was whole)",
            self.proxy_header_rejections.clone(),
        );
        registry.register(
            "echo_log_lines_dropped",
            "Log lines dropped because stderr was not read fast enough (the binary's logs \
             queue a bounded number of lines; counted every second)",
            self.log_lines_dropped.clone(),
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
            ConnectionEnd::ProxyHeader(rejection) => {
                self.proxy_header_rejections
                    .get_or_create(&reason_label(rejection.reason()))
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

    /// Raises the count of log lines dropped to `total`, the number dropped
    /// since the process started (a smaller `total` changes nothing): the
    /// binary's log writer counts them, and its reporter passes them on.
    ///
    /// ```
    /// use echo_server::Metrics;
    ///
    /// let metrics = Metrics::new();
    /// metrics.count_dropped_log_lines(5);
    /// metrics.count_dropped_log_lines(3);
    /// assert!(metrics.encode().contains("echo_log_lines_dropped_total 5\n"));
    /// ```
    pub fn count_dropped_log_lines(&self, total: u64) {
        let counted = self.log_lines_dropped.get();
        if total > counted {
            self.log_lines_dropped.inc_by(total - counted);
        }
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
        ConnectionEnd::ProxyHeader(_) => "proxy_header",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
