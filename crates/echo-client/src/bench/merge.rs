//! [`merge()`]: the reports of benches run at once from several hosts, made
//! into one, as if one client had driven all their connections.
//!
//! Counts add up. Rates are those of the time span the runs had in common:
//! each host's rate is taken to hold through its own run, so the combined
//! rate over the common span is the sum of the hosts' rates. Percentiles
//! come from the hosts' histograms added together (never from averaging
//! their percentiles, which has no meaning), and the exact extremes, mean
//! and deviation from their summaries. Each host keeps a row of its own.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BenchReport, ConnectionCounts, DatagramCounts, ErrorCounts};
use crate::stats::{InterchangeError, LatencyStats, LatencySummary};
use crate::units;

/// One host's run, in a merged report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HostReport {
    /// The name it was given to [`merge()`] under (the CLI uses the file's).
    pub name: String,
    /// When its measured run began, in seconds since the Unix epoch.
    #[serde(rename = "started_unix_s")]
    pub started_unix: f64,
    /// How long its measured run lasted.
    #[serde(rename = "elapsed_s", with = "units::seconds")]
    pub elapsed: Duration,
    /// Its connections.
    pub connections: ConnectionCounts,
    /// Messages it sent after its warmup.
    pub sent: u64,
    /// Intact echoes it got back.
    pub echoed: u64,
    /// Its errors, of every kind.
    pub errors: u64,
    /// Its echoes per second.
    pub messages_per_s: f64,
    /// Its echoed megabytes per second.
    pub megabytes_per_s: f64,
    /// Its latencies.
    #[serde(rename = "latency_us")]
    pub latency: Option<LatencySummary>,
}

/// Why reports cannot be merged. Each names the host (the name given to
/// [`merge()`]) whose report is the trouble.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// Nothing to merge.
    #[error("there is no report to merge")]
    NoReports,
    /// A report measured something else than the first: another mode or
    /// message size, whose figures do not add up with the others'.
    #[error("{host} measured {field} {value}, the first report {expected}")]
    Mismatch {
        /// The host.
        host: String,
        /// `mode` or `size`.
        field: &'static str,
        /// Its value.
        value: String,
        /// The first report's.
        expected: String,
    },
    /// The runs were not at the same time: one ended before another began.
    #[error("{ended} ended before {began} began: the runs have no time in common")]
    NoCommonSpan {
        /// The host whose run ended first.
        ended: String,
        /// The host whose run began last.
        began: String,
    },
    /// A report with latencies but no histogram of them.
    #[error("{host} has latencies but no latency_histogram to merge them by")]
    MissingHistogram {
        /// The host.
        host: String,
    },
    /// A report whose histogram cannot be read.
    #[error("{host}: {source}")]
    Histogram {
        /// The host.
        host: String,
        /// Why.
        source: InterchangeError,
    },
}

/// Merges `reports`, each named by its host, into one report with a row per
/// host in [`hosts`](BenchReport::hosts). Its settings are the first
/// report's, with the connections of all; its intervals are left out.
///
/// # Errors
///
/// When there is no report, when the reports measured other modes or
/// message sizes, when their runs have no time in common, or when a
/// report's latency histogram is missing or unreadable: see [`MergeError`].
///
/// ```
/// use echo_client::bench::{self, BenchConfig, Stop};
/// # use echo_server::{Config, Server};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = Server::bind(Config { listen: "127.0.0.1:0".parse()?, ..Config::default() }).await?;
/// # let addr = server.local_addr().to_string();
/// # tokio::spawn(server.run(std::future::pending()));
/// let config = BenchConfig { addr, stop: Stop::Messages(200), ..BenchConfig::default() };
/// // Two benches at once, as two hosts would run them.
/// let (a, b) = tokio::join!(bench::run(&config), bench::run(&config));
/// let merged = bench::merge(vec![("a".to_owned(), a?), ("b".to_owned(), b?)])?;
/// assert_eq!(merged.echoed, 400);
/// assert_eq!(merged.latency.map(|latency| latency.count), Some(400));
/// assert_eq!(merged.hosts.len(), 2);
/// # Ok(())
/// # }
/// ```
pub fn merge(reports: Vec<(String, BenchReport)>) -> Result<BenchReport, MergeError> {
    let mut reports = reports.into_iter();
    let (first_host, first) = reports.next().ok_or(MergeError::NoReports)?;
    let mut merged = Merged::new(first_host, first)?;
    for (host, report) in reports {
        merged.add(host, report)?;
    }
    merged.finish()
}

/// The reports added so far.
struct Merged {
    report: BenchReport,
    stats: LatencyStats,
    /// Over UDP, the hosts' jitters weighted by their echoes, in
    /// nanoseconds, and the weight: the merged jitter is their mean.
    jitter: (f64, u64),
    /// The echoes of the hosts with a [`Fairness`], and the sum of the
    /// squares of their connections' echo counts.
    fairness: (u64, f64),
    /// The host whose run began last, and when.
    latest_start: (String, f64),
    /// The host whose run ended first, and when.
    earliest_end: (String, f64),
}

impl Merged {
    fn new(host: String, first: BenchReport) -> Result<Self, MergeError> {
        let stats = latency_stats(&host, &first)?;
        let end = first.started_unix + first.elapsed.as_secs_f64();
        let mut report = first.clone();
        report.intervals.clear();
        // Connect and handshake times are summaries, which do not add up.
        report.connect_time = None;
        report.tls_handshake_time = None;
        report.client_cpu = None;
        report.first_error = prefixed(&host, first.first_error.as_deref());
        report.hosts = vec![host_row(host.clone(), &first)];
        Ok(Self {
            report,
            stats,
            jitter: weighted_jitter(&first),
            fairness: fairness_sums(&first),
            latest_start: (host.clone(), first.started_unix),
            earliest_end: (host, end),
        })
    }

    fn add(&mut self, host: String, report: BenchReport) -> Result<(), MergeError> {
        let first = &self.report.parameters;
        let mismatch = |field, value: String, expected: String| MergeError::Mismatch {
            host: host.clone(),
            field,
            value,
            expected,
        };
        if report.parameters.mode != first.mode {
            let (value, expected) = (report.parameters.mode, first.mode);
            return Err(mismatch("mode", value.to_string(), expected.to_string()));
        }
        if report.parameters.size != first.size {
            let (value, expected) = (report.parameters.size, first.size);
            return Err(mismatch("size", value.to_string(), expected.to_string()));
        }
        self.stats.merge(&latency_stats(&host, &report)?);
        let end = report.started_unix + report.elapsed.as_secs_f64();
        if report.started_unix > self.latest_start.1 {
            self.latest_start = (host.clone(), report.started_unix);
        }
        if end < self.earliest_end.1 {
            self.earliest_end = (host.clone(), end);
        }

        let merged = &mut self.report;
        merged.parameters.connections += report.parameters.connections;
        add_connections(&mut merged.connections, &report.connections);
        merged.sent += report.sent;
        merged.echoed += report.echoed;
        add_errors(&mut merged.errors, &report.errors);
        merged.late += report.late;
        if let (Some(total), Some(more)) = (&mut merged.datagrams, &report.datagrams) {
            total.lost += more.lost;
            total.duplicated += more.duplicated;
            total.reordered += more.reordered;
        }
        let (sum, weight) = weighted_jitter(&report);
        self.jitter = (self.jitter.0 + sum, self.jitter.1 + weight);
        merged.messages_per_s += report.messages_per_s;
        merged.megabytes_per_s += report.megabytes_per_s;
        if merged.first_error.is_none() {
            merged.first_error = prefixed(&host, report.first_error.as_deref());
        }
        merged.interrupted |= report.interrupted;
        for (instance, counts) in &report.instances {
            let total = merged.instances.entry(instance.clone()).or_default();
            total.connections += counts.connections;
            total.echoed += counts.echoed;
        }
        match (&mut merged.reconnects, &report.reconnects) {
            (Some(total), Some(more)) => total.add(more),
            (total, more) => *total = total.or(*more),
        }
        match (&mut merged.fairness, report.fairness) {
            (Some(total), Some(more)) => {
                total.connections += more.connections;
                total.min_echoes = total.min_echoes.min(more.min_echoes);
                total.max_echoes = total.max_echoes.max(more.max_echoes);
            }
            (total, more) => *total = total.or(more),
        }
        merged.hosts.push(host_row(host, &report));
        let (echoed, squares) = fairness_sums(&report);
        self.fairness = (self.fairness.0 + echoed, self.fairness.1 + squares);
        Ok(())
    }

    fn finish(self) -> Result<BenchReport, MergeError> {
        let Merged {
            mut report,
            stats,
            jitter: (jitter_sum, jitter_weight),
            fairness: (fair_echoed, squares),
            latest_start: (began, start),
            earliest_end: (ended, end),
        } = self;
        if end < start {
            return Err(MergeError::NoCommonSpan { ended, began });
        }
        if let Some(datagrams) = &mut report.datagrams {
            datagrams.loss_percent = DatagramCounts::loss_percent(datagrams.lost, report.sent);
            datagrams.jitter =
                Duration::from_nanos((jitter_sum / jitter_weight.max(1) as f64).round() as u64);
        }
        if let Some(fairness) = &mut report.fairness {
            fairness.jain_index =
                (fair_echoed as f64).powi(2) / (fairness.connections as f64 * squares);
        }
        report.started_unix = start;
        report.elapsed = Duration::from_secs_f64(end - start);
        report.latency = stats.summary();
        report.latency_histogram = (stats.count() > 0).then(|| stats.to_interchange());
        report.latency_stats = stats;
        Ok(report)
    }
}

/// A report's latencies, from its histogram and summary.
fn latency_stats(host: &str, report: &BenchReport) -> Result<LatencyStats, MergeError> {
    match (&report.latency, &report.latency_histogram) {
        (None, _) => Ok(LatencyStats::new()),
        (Some(_), None) => Err(MergeError::MissingHistogram {
            host: host.to_owned(),
        }),
        (Some(summary), Some(histogram)) => LatencyStats::from_interchange(histogram, summary)
            .map_err(|source| MergeError::Histogram {
                host: host.to_owned(),
                source,
            }),
    }
}

/// A report's jitter (over UDP) times its echoes, and its echoes.
fn weighted_jitter(report: &BenchReport) -> (f64, u64) {
    match &report.datagrams {
        Some(datagrams) => (
            datagrams.jitter.as_nanos() as f64 * report.echoed as f64,
            report.echoed,
        ),
        None => (0.0, 0),
    }
}

fn host_row(name: String, report: &BenchReport) -> HostReport {
    HostReport {
        name,
        started_unix: report.started_unix,
        elapsed: report.elapsed,
        connections: report.connections,
        sent: report.sent,
        echoed: report.echoed,
        errors: report.errors.total,
        messages_per_s: report.messages_per_s,
        megabytes_per_s: report.megabytes_per_s,
        latency: report.latency,
    }
}

fn add_connections(total: &mut ConnectionCounts, more: &ConnectionCounts) {
    total.requested += more.requested;
    total.connected += more.connected;
    total.failed += more.failed;
}

fn add_errors(total: &mut ErrorCounts, more: &ErrorCounts) {
    total.total += more.total;
    total.corrupted += more.corrupted;
    total.missing += more.missing;
    total.unexpected += more.unexpected;
}

/// `error`, said to be `host`'s.
fn prefixed(host: &str, error: Option<&str>) -> Option<String> {
    error.map(|error| format!("{host}: {error}"))
}

/// A report's echoes and the sum of the squares of its connections' echo
/// counts, if it has a [`Fairness`]; nothing otherwise.
fn fairness_sums(report: &BenchReport) -> (u64, f64) {
    report.fairness.map_or((0, 0.0), |fairness| {
        (report.echoed, fairness.sum_of_squares(report.echoed))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{BenchConfig, Fairness};
    use crate::mode::Mode;

    /// A report of `echoed` echoes, one latency of `micros` µs each, whose
    /// measured run began at `started` (Unix seconds) and lasted `seconds`.
    fn report(started: f64, seconds: f64, echoed: u64, micros: u64) -> BenchReport {
        let mut stats = LatencyStats::new();
        for _ in 0..echoed {
            stats.record(Duration::from_micros(micros));
        }
        BenchReport {
            parameters: BenchConfig {
                connections: 2,
                ..BenchConfig::default()
            },
            connections: ConnectionCounts {
                requested: 2,
                connected: 2,
                failed: 0,
            },
            sent: echoed,
            echoed,
            errors: ErrorCounts::default(),
            late: 0,
            datagrams: None,
            started_unix: started,
            elapsed: Duration::from_secs_f64(seconds),
            messages_per_s: echoed as f64 / seconds,
            megabytes_per_s: echoed as f64 * 64.0 / 1e6 / seconds,
            latency: stats.summary(),
            latency_histogram: Some(stats.to_interchange()),
            connect_time: None,
            tls_handshake_time: None,
            client_cpu: None,
            intervals: Vec::new(),
            first_error: None,
            interrupted: false,
            instances: Default::default(),
            reconnects: None,
            fairness: Fairness::of(&[echoed / 2, echoed - echoed / 2]),
            hosts: Vec::new(),
            latency_stats: stats,
        }
    }

    #[test]
    fn counts_add_rates_cover_the_common_span_and_percentiles_all_echoes() {
        // Host a: 900 echoes at 10 µs over 0..10 s; host b: 100 at 1000 µs
        // over 1..11 s. They ran together from 1 s to 10 s.
        let (a, b) = (
            report(1000.0, 10.0, 900, 10),
            report(1001.0, 10.0, 100, 1000),
        );
        let merged = merge(vec![("a".into(), a.clone()), ("b".into(), b.clone())]).unwrap();
        assert_eq!((merged.sent, merged.echoed), (1000, 1000));
        assert_eq!(merged.connections.connected, 4);
        assert_eq!(merged.parameters.connections, 4);
        assert_eq!(merged.started_unix, 1001.0);
        assert_eq!(merged.elapsed, Duration::from_secs(9));
        assert_eq!(merged.messages_per_s, 100.0);
        // Fairness over all four connections: 450, 450, 50 and 50 echoes.
        let fairness = merged.fairness.unwrap();
        let expected = Fairness::of(&[450, 450, 50, 50]).unwrap();
        assert_eq!(
            (
                fairness.connections,
                fairness.min_echoes,
                fairness.max_echoes
            ),
            (4, 50, 450)
        );
        assert!(
            (fairness.jain_index - expected.jain_index).abs() < 1e-9,
            "{fairness:?}"
        );
        let latency = merged.latency.unwrap();
        // 90% of all echoes took 10 µs: the p90 is theirs, the p99 is b's.
        // Averaging the two hosts' p99s would give 505 µs.
        // The histogram keeps three significant figures: 0.1% at most.
        let near = |got: Duration, micros: u64| {
            let exact = Duration::from_micros(micros);
            got >= exact && got <= exact + exact / 1000
        };
        assert_eq!(latency.count, 1000);
        assert!(near(latency.p90, 10), "{latency:?}");
        assert!(near(latency.p99, 1000), "{latency:?}");
        assert_eq!(latency.mean, Duration::from_nanos(109_000));
        let names: Vec<&str> = merged.hosts.iter().map(|host| host.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(merged.hosts[1].latency, b.latency);
    }

    #[test]
    fn a_merged_report_reads_back_as_a_bench_report() {
        let merged = merge(vec![
            ("a".into(), report(5.0, 2.0, 10, 50)),
            ("b".into(), report(5.5, 2.0, 20, 70)),
        ])
        .unwrap();
        let back: BenchReport = serde_json::from_str(&merged.to_json()).unwrap();
        assert_eq!(back.to_json(), merged.to_json());
        assert_eq!(back.hosts, merged.hosts);
        // And merges again, as one host's report.
        let again = merge(vec![("all".into(), back)]).unwrap();
        assert_eq!(again.latency, merged.latency);
    }

    #[test]
    fn reports_that_do_not_add_up_are_refused_naming_the_host() {
        let mut raw = report(0.0, 1.0, 10, 50);
        raw.parameters.mode = Mode::Raw;
        let error = merge(vec![
            ("a".into(), report(0.0, 1.0, 10, 50)),
            ("b".into(), raw),
        ]);
        assert_eq!(
            error.unwrap_err().to_string(),
            "b measured mode raw, the first report framed"
        );
        let mut bigger = report(0.0, 1.0, 10, 50);
        bigger.parameters.size = 1000;
        let error = merge(vec![
            ("a".into(), report(0.0, 1.0, 10, 50)),
            ("b".into(), bigger),
        ]);
        assert!(matches!(
            error,
            Err(MergeError::Mismatch { field: "size", .. })
        ));

        let error = merge(vec![
            ("early".into(), report(0.0, 1.0, 10, 50)),
            ("late".into(), report(5.0, 1.0, 10, 50)),
        ]);
        assert_eq!(
            error.unwrap_err().to_string(),
            "early ended before late began: the runs have no time in common"
        );

        let mut bare = report(0.0, 1.0, 10, 50);
        bare.latency_histogram = None;
        let error = merge(vec![("bare".into(), bare)]);
        assert!(matches!(error, Err(MergeError::MissingHistogram { host }) if host == "bare"));
        let mut damaged = report(0.0, 1.0, 10, 50);
        damaged.latency_histogram = Some("####".into());
        let error = merge(vec![("damaged".into(), damaged)]).unwrap_err();
        assert!(error.to_string().starts_with("damaged: "), "{error}");
        assert!(matches!(merge(Vec::new()), Err(MergeError::NoReports)));
    }

    #[test]
    fn datagram_figures_add_up_and_the_jitter_is_weighted_by_echoes() {
        let udp = |echoed, lost, jitter_us| {
            let mut report = report(0.0, 1.0, echoed, 50);
            report.parameters.mode = Mode::Udp;
            report.sent = echoed + lost;
            report.datagrams = Some(DatagramCounts {
                lost,
                loss_percent: DatagramCounts::loss_percent(lost, echoed + lost),
                duplicated: 1,
                reordered: 2,
                jitter: Duration::from_micros(jitter_us),
            });
            report
        };
        let merged = merge(vec![
            ("a".into(), udp(300, 100, 10)),
            ("b".into(), udp(100, 0, 50)),
        ])
        .unwrap();
        let datagrams = merged.datagrams.unwrap();
        assert_eq!(
            (datagrams.lost, datagrams.duplicated, datagrams.reordered),
            (100, 2, 4)
        );
        assert_eq!(datagrams.loss_percent, 20.0);
        // (300 × 10 + 100 × 50) / 400 µs
        assert_eq!(datagrams.jitter, Duration::from_micros(20));
        assert!(merged.succeeded(), "loss is a figure, not a failure");
    }

    #[test]
    fn reconnect_figures_add_up_over_the_hosts_that_reconnected() {
        use super::super::Reconnects;
        let outage = |ms| Reconnects {
            reconnects: 4,
            resent: 16,
            failed_attempts: 1,
            longest_outage: Duration::from_millis(ms),
        };
        let (mut a, mut b) = (report(1000.0, 10.0, 900, 10), report(1000.0, 10.0, 100, 10));
        a.reconnects = Some(outage(120));
        b.reconnects = Some(outage(30));
        let plain = report(1000.0, 10.0, 100, 10);
        let merged = merge(vec![
            ("a".into(), a),
            ("b".into(), b),
            ("c".into(), plain.clone()),
        ])
        .unwrap();
        let reconnects = merged.reconnects.expect("two hosts reconnected");
        assert_eq!(
            (
                reconnects.reconnects,
                reconnects.resent,
                reconnects.failed_attempts
            ),
            (8, 32, 2)
        );
        assert_eq!(reconnects.longest_outage, Duration::from_millis(120));
        let none = merge(vec![("c".into(), plain.clone()), ("d".into(), plain)]).unwrap();
        assert_eq!(none.reconnects, None);
    }

    #[test]
    fn the_first_error_names_its_host() {
        let mut failing = report(0.0, 1.0, 10, 50);
        failing.first_error = Some("connection 0: reset".into());
        failing.errors.total = 1;
        let merged = merge(vec![
            ("ok".into(), report(0.0, 1.0, 10, 50)),
            ("bad".into(), failing),
        ])
        .unwrap();
        assert_eq!(
            merged.first_error.as_deref(),
            Some("bad: connection 0: reset")
        );
        assert_eq!(merged.errors.total, 1);
        assert!(!merged.succeeded());
    }
}
