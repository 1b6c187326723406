//! Latency statistics: exact minimum, mean, maximum and mean deviation, and
//! percentiles from an [HdrHistogram](hdrhistogram).
//!
//! The mean deviation is ping's `mdev`, the standard deviation of the samples:
//! `sqrt(mean(x²) − mean(x)²)`. It is computed from exact integer sums of
//! nanoseconds, so it does not suffer from the cancellation that the formula
//! has in floating point. Percentiles come from the histogram, which keeps
//! three significant figures (an error of at most 0.1%) over any range.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::units;

/// Significant figures kept by the histograms.
const SIGNIFICANT_FIGURES: u8 = 3;

/// The longest interchange text [`LatencyStats::from_interchange`] reads.
/// A histogram of latencies from a nanosecond to an hour at three
/// significant figures compresses to a few kilobytes; the bound keeps a
/// damaged or hostile file from making the reader inflate much more.
pub const MAX_INTERCHANGE_LEN: usize = 1024 * 1024;

/// Why an interchange text is not a histogram.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterchangeError {
    /// Longer than [`MAX_INTERCHANGE_LEN`].
    #[error("the histogram is {len} bytes long, more than the {max} bytes accepted")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not base64.
    #[error("the histogram is not base64")]
    Base64(#[source] base64::DecodeError),
    /// Not a V2 histogram.
    #[error("the histogram is not in HdrHistogram's V2 form: {0}")]
    Histogram(hdrhistogram::serialization::DeserializeError),
    /// A histogram whose count disagrees with the summary beside it.
    #[error("the histogram holds {histogram} latencies, its summary {summary}")]
    CountMismatch {
        /// In the histogram.
        histogram: u64,
        /// In the summary.
        summary: u64,
    },
}

/// Latencies recorded so far.
///
/// ```
/// use std::time::Duration;
/// use echo_client::stats::LatencyStats;
///
/// let mut stats = LatencyStats::new();
/// for ms in [1, 2, 3, 4] {
///     stats.record(Duration::from_millis(ms));
/// }
/// let summary = stats.summary().expect("four samples");
/// assert_eq!(summary.mean, Duration::from_micros(2500));
/// // sqrt(mean(x²) − mean(x)²) = sqrt(7.5 − 6.25) ms
/// assert_eq!(summary.mdev, Duration::from_nanos(1_118_034));
/// assert_eq!(summary.max, Duration::from_millis(4));
/// ```
#[derive(Debug, Clone)]
pub struct LatencyStats {
    histogram: Histogram<u64>,
    count: u64,
    /// Sums of the samples and of their squares, in nanoseconds, exact.
    sum: u128,
    sum_of_squares: u128,
    min: u64,
    max: u64,
}

/// What a set of latencies comes to.
///
/// In JSON, every duration is a number of microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// How many latencies were recorded.
    pub count: u64,
    /// The smallest, exactly.
    #[serde(with = "units::micros")]
    pub min: Duration,
    /// The mean, exactly (to the nanosecond).
    #[serde(with = "units::micros")]
    pub mean: Duration,
    /// The largest, exactly.
    #[serde(with = "units::micros")]
    pub max: Duration,
    /// The mean deviation as ping defines it: the standard deviation,
    /// `sqrt(mean(x²) − mean(x)²)`.
    #[serde(with = "units::micros")]
    pub mdev: Duration,
    /// The median.
    #[serde(with = "units::micros")]
    pub p50: Duration,
    /// The 90th percentile.
    #[serde(with = "units::micros")]
    pub p90: Duration,
    /// The 99th percentile.
    #[serde(with = "units::micros")]
    pub p99: Duration,
    /// The 99.9th percentile.
    #[serde(rename = "p99_9", with = "units::micros")]
    pub p99_9: Duration,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyStats {
    /// No latencies yet.
    pub fn new() -> Self {
        Self {
            // A histogram that grows to whatever is recorded: it starts small
            // and never refuses a value.
            histogram: Histogram::new(SIGNIFICANT_FIGURES)
                .expect("3 significant figures are within the histogram's limits"),
            count: 0,
            sum: 0,
            sum_of_squares: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_nanos(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one latency given in nanoseconds.
    pub(crate) fn record_nanos(&mut self, nanos: u64) {
        self.record_nanos_n(nanos, 1);
    }

    /// Records `count` latencies of `nanos` nanoseconds each: the echoes of
    /// one batch often share their latency, and recording them together
    /// costs one histogram update instead of one each.
    pub(crate) fn record_nanos_n(&mut self, nanos: u64, count: u64) {
        if count == 0 {
            return;
        }
        // Recording grows the histogram to fit; only a value beyond what it
        // can ever hold (centuries) is clamped to its largest.
        if self.histogram.record_n(nanos, count).is_err() {
            self.histogram.saturating_record_n(nanos, count);
        }
        self.count += count;
        // Saturating, so that absurd values (centuries) degrade the mean
        // instead of panicking.
        let total = u128::from(nanos) * u128::from(count);
        self.sum = self.sum.saturating_add(total);
        self.sum_of_squares = self
            .sum_of_squares
            .saturating_add(total.saturating_mul(u128::from(nanos)));
        self.min = self.min.min(nanos);
        self.max = self.max.max(nanos);
    }

    /// Adds every latency of `other` to these, as if they had been recorded
    /// here.
    pub fn merge(&mut self, other: &LatencyStats) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms that grow on demand accept any other");
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.sum_of_squares = self.sum_of_squares.saturating_add(other.sum_of_squares);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The histogram of every latency recorded, in nanoseconds, for
    /// percentiles or exports beyond those of [`summary`](Self::summary).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// The histogram in HdrHistogram's interchange form: V2, compressed
    /// (DEFLATE), base64; values in nanoseconds. HdrHistogram's own tools
    /// (`HistogramLogProcessor`, the libraries' decoders) read it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use echo_client::stats::LatencyStats;
    ///
    /// let mut stats = LatencyStats::new();
    /// stats.record(Duration::from_micros(20));
    /// let text = stats.to_interchange();
    /// // The cookie of a compressed V2 histogram, in base64.
    /// assert!(text.starts_with("HISTFAAA"));
    /// let back = LatencyStats::from_interchange(&text, &stats.summary().unwrap())?;
    /// assert_eq!(back.summary(), stats.summary());
    /// # Ok::<(), echo_client::stats::InterchangeError>(())
    /// ```
    pub fn to_interchange(&self) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.histogram, &mut bytes)
            .expect("a histogram serializes into memory");
        BASE64.encode(bytes)
    }

    /// The latencies of `summary` again, their histogram read from
    /// `interchange` (as [`to_interchange`](Self::to_interchange) writes
    /// it): percentiles come from the histogram, and the exact extremes,
    /// mean and deviation from the summary, so that latencies read back and
    /// [merged](Self::merge) give the figures that recording them all in
    /// one place would have.
    ///
    /// # Errors
    ///
    /// When the text is too long, not base64, not a V2 histogram, or holds
    /// another number of latencies than the summary.
    pub fn from_interchange(
        interchange: &str,
        summary: &LatencySummary,
    ) -> Result<LatencyStats, InterchangeError> {
        if interchange.len() > MAX_INTERCHANGE_LEN {
            return Err(InterchangeError::TooLong {
                len: interchange.len(),
                max: MAX_INTERCHANGE_LEN,
            });
        }
        let bytes = BASE64
            .decode(interchange.trim())
            .map_err(InterchangeError::Base64)?;
        let mut histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(InterchangeError::Histogram)?;
        if histogram.len() != summary.count {
            return Err(InterchangeError::CountMismatch {
                histogram: histogram.len(),
                summary: summary.count,
            });
        }
        // Recording into it later must grow it rather than fail.
        histogram.auto(true);
        let count = u128::from(summary.count);
        let mean = summary.mean.as_nanos();
        let mdev = summary.mdev.as_nanos();
        // mean(x²) = mdev² + mean², so Σx² = n · (mdev² + mean²).
        let sum_of_squares = count
            .saturating_mul((mdev.saturating_mul(mdev)).saturating_add(mean.saturating_mul(mean)));
        Ok(LatencyStats {
            histogram,
            count: summary.count,
            sum: count.saturating_mul(mean),
            sum_of_squares,
            min: u64::try_from(summary.min.as_nanos()).unwrap_or(u64::MAX),
            max: u64::try_from(summary.max.as_nanos()).unwrap_or(u64::MAX),
        })
    }

    /// The summary, or `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.count == 0 {
            return None;
        }
        let count = u128::from(self.count);
        // The histogram reports the highest value of a percentile's bucket,
        // which can exceed the exact maximum (or fall below the minimum) by
        // up to 0.1%; the exact extremes bound it, so that the figures of a
        // summary are always in order.
        let percentile = |quantile| {
            let nanos = self.histogram.value_at_quantile(quantile);
            Duration::from_nanos(nanos.clamp(self.min, self.max))
        };
        Some(LatencySummary {
            count: self.count,
            min: Duration::from_nanos(self.min),
            mean: nanos((self.sum as f64) / (count as f64)),
            max: Duration::from_nanos(self.max),
            mdev: nanos(self.standard_deviation()),
            p50: percentile(0.50),
            p90: percentile(0.90),
            p99: percentile(0.99),
            p99_9: percentile(0.999),
        })
    }

    /// `sqrt(mean(x²) − mean(x)²)` in nanoseconds, as
    /// `sqrt(n·Σx² − (Σx)²) / n`, whose inside is an exact integer (and never
    /// negative) unless it overflows, which takes around 10¹⁹ samples.
    fn standard_deviation(&self) -> f64 {
        let n = u128::from(self.count);
        let exact = n
            .checked_mul(self.sum_of_squares)
            .zip(self.sum.checked_mul(self.sum))
            .and_then(|(n_sum_of_squares, square_of_sum)| {
                n_sum_of_squares.checked_sub(square_of_sum)
            });
        match exact {
            Some(inside) => (inside as f64).sqrt() / n as f64,
            None => {
                let mean = self.sum as f64 / n as f64;
                (self.sum_of_squares as f64 / n as f64 - mean * mean)
                    .max(0.0)
                    .sqrt()
            }
        }
    }
}

/// The interarrival jitter of RFC 3550 (section 6.4.1), as iperf3 reports it
/// for UDP: a running estimate of how much the transit time of consecutive
/// packets varies, smoothed over about 16 packets.
///
/// For each packet in the order it arrives, `D` is the change in transit
/// time (arrival less sending) since the packet before, and the estimate
/// moves a sixteenth of the way towards `|D|`: `J += (|D| − J) / 16`.
///
/// ```
/// use std::time::Duration;
/// use echo_client::stats::Jitter;
///
/// let mut jitter = Jitter::default();
/// // Sent every 10 ms; the second arrives 2 ms later than its turn.
/// for (sent, arrived) in [(0, 5), (10, 17), (20, 25)] {
///     jitter.arrived(Duration::from_millis(sent), Duration::from_millis(arrived));
/// }
/// // |D| was 2 ms, then 2 ms: 2/16 ms, then 2/16 + (2 − 2/16)/16 ms.
/// assert_eq!(jitter.estimate(), Duration::from_nanos(242_188));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Jitter {
    /// The transit time of the packet before, in nanoseconds.
    last_transit: Option<i128>,
    /// The estimate, in nanoseconds.
    estimate: f64,
}

impl Jitter {
    /// Takes a packet sent at `sent` that arrived at `arrived`, both on the
    /// same clock, in the order packets arrive.
    pub fn arrived(&mut self, sent: Duration, arrived: Duration) {
        let transit = arrived.as_nanos() as i128 - sent.as_nanos() as i128;
        if let Some(last) = self.last_transit.replace(transit) {
            let change = (transit - last).unsigned_abs() as f64;
            self.estimate += (change - self.estimate) / 16.0;
        }
    }

    /// The estimate so far: zero until two packets have arrived.
    pub fn estimate(&self) -> Duration {
        nanos(self.estimate)
    }
}

/// A number of nanoseconds, rounded to the nearest one, as a duration.
fn nanos(value: f64) -> Duration {
    Duration::from_nanos(value.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of_nanos(samples: impl IntoIterator<Item = u64>) -> LatencyStats {
        let mut stats = LatencyStats::new();
        for sample in samples {
            stats.record_nanos(sample);
        }
        stats
    }

    #[test]
    fn latencies_read_back_merge_as_if_recorded_in_one_place() {
        let left = stats_of_nanos((1..=1000).map(|n| n * 997));
        let right = stats_of_nanos((1..=300).map(|n| n * 31_337 + 5));
        let mut together = left.clone();
        together.merge(&right);
        let read_back = |stats: &LatencyStats| {
            LatencyStats::from_interchange(&stats.to_interchange(), &stats.summary().unwrap())
                .unwrap()
        };
        let mut merged = read_back(&left);
        merged.merge(&read_back(&right));
        let (expected, got) = (together.summary().unwrap(), merged.summary().unwrap());
        assert_eq!(
            (
                got.count, got.min, got.max, got.p50, got.p90, got.p99, got.p99_9
            ),
            (
                expected.count,
                expected.min,
                expected.max,
                expected.p50,
                expected.p90,
                expected.p99,
                expected.p99_9
            )
        );
        // The mean and deviation were rounded to the nanosecond on the way.
        let close = |a: Duration, b: Duration| a.abs_diff(b) <= Duration::from_nanos(1);
        assert!(close(got.mean, expected.mean), "{got:?} {expected:?}");
        assert!(close(got.mdev, expected.mdev), "{got:?} {expected:?}");
    }

    #[test]
    fn bad_interchange_texts_are_refused_with_the_reason() {
        let stats = stats_of_nanos([1000, 2000]);
        let summary = stats.summary().unwrap();
        let error = |text: &str| LatencyStats::from_interchange(text, &summary).unwrap_err();
        assert!(matches!(error("not base64!"), InterchangeError::Base64(_)));
        assert!(matches!(error("AAAAAAAA"), InterchangeError::Histogram(_)));
        let long = "A".repeat(MAX_INTERCHANGE_LEN + 1);
        assert!(matches!(error(&long), InterchangeError::TooLong { .. }));
        let other = stats_of_nanos([1000]).to_interchange();
        assert!(matches!(
            error(&other),
            InterchangeError::CountMismatch {
                histogram: 1,
                summary: 2
            }
        ));
    }

    #[test]
    fn nothing_recorded_has_no_summary() {
        assert_eq!(LatencyStats::new().summary(), None);
        assert_eq!(LatencyStats::new().count(), 0);
    }

    #[test]
    fn one_sample_is_every_statistic() {
        let summary = stats_of_nanos([1500]).summary().unwrap();
        let d = Duration::from_nanos(1500);
        assert_eq!(
            (
                summary.min,
                summary.mean,
                summary.max,
                summary.p50,
                summary.p99_9
            ),
            (d, d, d, d, d)
        );
        assert_eq!(summary.mdev, Duration::ZERO);
        assert_eq!(summary.count, 1);
    }

    /// Values below 2048 ns are exact in a 3-significant-figure histogram, so
    /// these percentiles are exactly the hand-computed ranks: the p-th
    /// percentile of 1..=1000 is the smallest value with at least p% of the
    /// samples at or below it.
    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let summary = stats_of_nanos(1..=1000).summary().unwrap();
        let ns = Duration::from_nanos;
        assert_eq!(summary.p50, ns(500));
        assert_eq!(summary.p90, ns(900));
        assert_eq!(summary.p99, ns(990));
        assert_eq!(summary.p99_9, ns(999));
        assert_eq!(summary.min, ns(1));
        assert_eq!(summary.max, ns(1000));
        // (1 + 1000) / 2
        assert_eq!(summary.mean, ns(501));
        // sqrt((1000² − 1) / 12) = 288.675…
        assert_eq!(summary.mdev, ns(289));
    }

    /// Larger values are kept to three significant figures: each percentile is
    /// within 0.1% of the exact one.
    #[test]
    fn percentiles_of_large_values_are_within_a_tenth_of_a_percent() {
        // 1 ms to 100 ms in steps of 1 ms.
        let summary = stats_of_nanos((1..=100).map(|ms| ms * 1_000_000))
            .summary()
            .unwrap();
        for (got, exact_ms) in [(summary.p50, 50), (summary.p90, 90), (summary.p99, 99)] {
            let exact = exact_ms as f64 * 1e6;
            let error = (got.as_nanos() as f64 - exact).abs() / exact;
            assert!(error <= 0.001, "{got:?} vs {exact_ms} ms");
        }
        assert_eq!(summary.max, Duration::from_millis(100));
    }

    /// ping's example: 0.045, 0.061, 0.089 ms and two of 0.055 ms.
    #[test]
    fn mdev_matches_a_hand_computation() {
        let summary = stats_of_nanos([45_000, 61_000, 89_000, 55_000, 55_000])
            .summary()
            .unwrap();
        // mean = 305 / 5 = 61 µs
        assert_eq!(summary.mean, Duration::from_micros(61));
        // mean(x²) = (2025 + 3721 + 7921 + 3025 + 3025) / 5 = 3943.4 µs²,
        // minus 61² = 3721 gives 222.4 µs², whose root is 14.9131… µs.
        assert_eq!(summary.mdev, Duration::from_nanos(14_913));
        assert_eq!(summary.min, Duration::from_micros(45));
        assert_eq!(summary.max, Duration::from_micros(89));
    }

    #[test]
    fn recording_a_run_equals_recording_each() {
        let mut runs = LatencyStats::new();
        runs.record_nanos_n(55_000, 2);
        runs.record_nanos_n(45_000, 1);
        runs.record_nanos_n(61_000, 1);
        runs.record_nanos_n(89_000, 1);
        runs.record_nanos_n(70_000, 0);
        let each = stats_of_nanos([45_000, 61_000, 89_000, 55_000, 55_000]);
        assert_eq!(runs.summary(), each.summary());
        assert_eq!(runs.count(), 5);
    }

    #[test]
    fn percentiles_never_exceed_the_exact_extremes() {
        // 82,452 ns falls in a bucket whose highest value is 82,495 ns.
        let summary = stats_of_nanos([32_969, 82_452]).summary().unwrap();
        assert_eq!(summary.p99, Duration::from_nanos(82_452));
        assert_eq!(summary.p99_9, summary.max);
        assert!(summary.min <= summary.p50);
    }

    #[test]
    fn identical_samples_have_no_deviation() {
        let summary = stats_of_nanos([123_456_789; 1000]).summary().unwrap();
        assert_eq!(summary.mdev, Duration::ZERO);
        assert_eq!(summary.mean, Duration::from_nanos(123_456_789));
    }

    #[test]
    fn merging_is_recording_everything_in_one() {
        let mut left = stats_of_nanos(1..=500);
        let right = stats_of_nanos(501..=1000);
        left.merge(&right);
        assert_eq!(left.summary(), stats_of_nanos(1..=1000).summary());
        assert_eq!(left.count(), 1000);
        assert_eq!(left.histogram().len(), 1000);

        // Merging nothing changes nothing, and into nothing copies.
        let mut empty = LatencyStats::new();
        empty.merge(&left);
        left.merge(&LatencyStats::new());
        assert_eq!(empty.summary(), left.summary());
    }

    #[test]
    fn durations_are_recorded_in_nanoseconds() {
        let mut stats = LatencyStats::new();
        stats.record(Duration::from_micros(61));
        stats.record(Duration::from_secs(3600));
        let summary = stats.summary().unwrap();
        assert_eq!(summary.min, Duration::from_micros(61));
        assert_eq!(summary.max, Duration::from_secs(3600));
    }
}
