//! Counting a bench's outcomes: each connection's [`Tally`], flushed in
//! batches into the run's shared [`Collector`].
//!
//! A reader records each echo in its own tally, which costs no lock and no
//! allocation, and hands its counts and latencies to the collector every 128
//! echoes or every 20 milliseconds, whichever comes first. So there is one
//! histogram per run (two with interval reports) whatever the
//! number of connections, the lock is taken rarely, and progress and interval
//! figures are never more than a flush period behind.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::InstanceCounts;
use super::reconnect::Reconnects;
use crate::stats::{Jitter, LatencyStats};

/// How many runs of equal latencies a tally holds before it flushes.
const BATCH: usize = 128;

/// The longest a tally keeps what it counted, in nanoseconds.
const FLUSH_PERIOD_NANOS: u64 = 20_000_000;

/// What a whole run has counted so far.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Latencies of intact echoes of messages sent after the warmup.
    pub(super) latency: LatencyStats,
    /// The same, since the last interval report.
    pub(super) interval_latency: LatencyStats,
    /// Intact echoes in any phase, for progress.
    pub(super) echoed_all: u64,
    /// Intact echoes of messages sent after the warmup.
    pub(super) echoed: u64,
    /// Messages sent after the warmup, added as each writer ends.
    pub(super) sent: u64,
    pub(super) corrupted: u64,
    pub(super) missing: u64,
    pub(super) unexpected: u64,
    pub(super) late: u64,
    /// When the last measured intact echo arrived, in nanoseconds from the
    /// start.
    pub(super) last_echo_nanos: u64,
    pub(super) failed_connections: u64,
    /// The first error seen, in words.
    pub(super) first_error: Option<String>,
    /// Connections and measured echoes per server instance, when greetings
    /// were expected: each connection adds its own once, as it ends.
    pub(super) instances: BTreeMap<String, InstanceCounts>,
    /// Over UDP, what became of the datagrams: each socket adds its own once,
    /// as it ends.
    pub(super) datagrams: DatagramTotals,
    /// How the measured echoes were spread over the connections: each adds
    /// its own once, as it ends.
    pub(super) spread: Spread,
    /// What reconnecting cost, with `--reconnect`.
    pub(super) reconnects: Reconnects,
}

/// The measured echoes of each connection, summed up without keeping them
/// one by one: enough for [`Fairness`](super::Fairness).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct Spread {
    pub(super) connections: u64,
    pub(super) sum: u64,
    /// The sum of the squares, exact.
    pub(super) sum_of_squares: u128,
    pub(super) min: u64,
    pub(super) max: u64,
}

impl Spread {
    /// Adds a connection that had `echoed` measured echoes.
    pub(super) fn add(&mut self, echoed: u64) {
        self.min = if self.connections == 0 {
            echoed
        } else {
            self.min.min(echoed)
        };
        self.max = self.max.max(echoed);
        self.connections += 1;
        self.sum += echoed;
        self.sum_of_squares += u128::from(echoed) * u128::from(echoed);
    }
}

/// What became of a run's datagrams, besides the echoes: figures of the
/// network, not errors.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct DatagramTotals {
    /// Measured messages with no reply within the timeout.
    pub(super) lost: u64,
    /// Replies to a message already answered.
    pub(super) duplicated: u64,
    /// Replies that came after the reply to a later message.
    pub(super) reordered: u64,
    /// The sum of the sockets' jitter estimates, in nanoseconds, and how
    /// many sockets had one.
    pub(super) jitter_sum_nanos: f64,
    pub(super) jitter_sockets: u64,
}

/// One UDP socket's [`DatagramTotals`], kept by its reader.
#[derive(Debug, Default)]
pub(super) struct Datagrams {
    pub(super) lost: u64,
    pub(super) duplicated: u64,
    pub(super) reordered: u64,
    /// The latest message answered so far, to tell a reordered reply.
    pub(super) latest_answered: Option<u64>,
    pub(super) jitter: Jitter,
    /// Whether the jitter estimate has a packet pair behind it.
    pub(super) timed: u64,
}

impl Datagrams {
    /// Adds this socket's figures to the run's.
    pub(super) fn add_to(&self, totals: &mut DatagramTotals) {
        totals.lost += self.lost;
        totals.duplicated += self.duplicated;
        totals.reordered += self.reordered;
        if self.timed >= 2 {
            totals.jitter_sum_nanos += self.jitter.estimate().as_nanos() as f64;
            totals.jitter_sockets += 1;
        }
    }
}

impl Totals {
    pub(super) fn errors(&self) -> u64 {
        self.corrupted + self.missing + self.unexpected
    }

    /// Keeps `error` if it is the first.
    pub(super) fn note_error(&mut self, error: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(error());
        }
    }
}

/// The run's totals, shared by every connection.
#[derive(Debug, Default)]
pub(super) struct Collector {
    totals: Mutex<Totals>,
    /// Whether interval reports were asked for, so that interval latencies
    /// are worth recording.
    intervals: bool,
}

impl Collector {
    pub(super) fn new(intervals: bool) -> Self {
        Self {
            totals: Mutex::default(),
            intervals,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Totals> {
        // A panic while the lock was held can only have left counts part
        // added; they are still the best figures there are.
        self.totals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One connection's counts since its last flush.
#[derive(Debug)]
pub(super) struct Tally<'a> {
    collector: &'a Collector,
    warmup_nanos: u64,
    /// Latencies in nanoseconds, as runs of equal ones: `(latency, count)`.
    /// The echoes of messages sent in one write and read back in one read
    /// share their latency, so a pipelined batch is one run.
    latencies: Vec<(u64, u64)>,
    /// The latest run, `(latency, count)`, not yet in `latencies` (a count
    /// of 0: none). Every new latency is compared with it, so it is kept
    /// here beside the counts: at the end of the vector, a connection with
    /// one echo per wake-up fetched that memory afresh for every echo.
    run: (u64, u64),
    echoed_all: u64,
    echoed: u64,
    pub(super) corrupted: u64,
    pub(super) missing: u64,
    pub(super) unexpected: u64,
    pub(super) late: u64,
    last_echo_nanos: u64,
    last_flush_nanos: u64,
    first_error: Option<String>,
    /// Measured echoes handed to the collector so far, added up at each
    /// flush rather than at each echo: the connection's share of the run.
    flushed_echoed: u64,
    /// How many of those have been counted for an instance: with
    /// reconnections, each connection opened may have been served by
    /// another.
    instance_counted: u64,
    /// When the latest echo of any phase arrived.
    latest_echo_nanos: u64,
    /// Since when the connection has been without an echo, while it is
    /// opened again after a failure.
    outage_from: Option<u64>,
    /// The longest such outage so far, ended by an echo or by the end.
    longest_outage_nanos: u64,
}

impl<'a> Tally<'a> {
    pub(super) fn new(collector: &'a Collector, warmup_nanos: u64) -> Self {
        Self {
            collector,
            warmup_nanos,
            latencies: Vec::with_capacity(BATCH),
            run: (0, 0),
            echoed_all: 0,
            echoed: 0,
            corrupted: 0,
            missing: 0,
            unexpected: 0,
            late: 0,
            last_echo_nanos: 0,
            last_flush_nanos: 0,
            first_error: None,
            flushed_echoed: 0,
            instance_counted: 0,
            latest_echo_nanos: 0,
            outage_from: None,
            longest_outage_nanos: 0,
        }
    }

    /// Counts an intact echo, of a message sent (or due) at `sent` and back
    /// at `now`, both in nanoseconds from the start. Only messages sent after
    /// the warmup count towards the results.
    pub(super) fn echoed(&mut self, sent: u64, now: u64) {
        self.echoed_many(sent, now, 1);
    }

    /// Counts `count` intact echoes that were sent together (or were due
    /// together) and came back together, as [`echoed`](Self::echoed) counts
    /// one.
    pub(super) fn echoed_many(&mut self, sent: u64, now: u64, count: u64) {
        self.echoed_all += count;
        self.latest_echo_nanos = now;
        // A branch that is never taken but after a reconnection, and no
        // store on the way: this runs for every echo.
        if self.outage_from.is_some() {
            self.outage_ended(now);
        }
        if sent >= self.warmup_nanos {
            self.echoed += count;
            let latency = now.saturating_sub(sent);
            if self.run.0 == latency {
                self.run.1 += count;
            } else {
                if self.run.1 > 0 {
                    self.latencies.push(self.run);
                }
                self.run = (latency, count);
            }
            self.last_echo_nanos = now;
        }
        // The runs held are those in the vector and the latest.
        if self.latencies.len() + 1 >= BATCH
            || now.saturating_sub(self.last_flush_nanos) >= FLUSH_PERIOD_NANOS
        {
            self.flush(now);
        }
    }

    /// Keeps the first error of this connection, in words.
    pub(super) fn note_error(&mut self, error: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(error());
        }
    }

    /// Records that the connection, opened at `opened_at` (nanoseconds from
    /// the start), has failed and is being opened again: it is out from its
    /// latest echo, or from its opening if none came since, until its next
    /// echo.
    pub(super) fn outage_began(&mut self, opened_at: u64) {
        if self.outage_from.is_none() {
            self.outage_from = Some(self.latest_echo_nanos.max(opened_at));
        }
    }

    /// Ends the outage under way, if any, at `now`: the connection ended
    /// without another echo.
    pub(super) fn outage_ended(&mut self, now: u64) {
        if let Some(from) = self.outage_from.take() {
            self.end_outage(from, now);
        }
    }

    /// Ends an outage that began at `from` at `now`.
    fn end_outage(&mut self, from: u64, now: u64) {
        self.longest_outage_nanos = self.longest_outage_nanos.max(now.saturating_sub(from));
    }

    /// Counts a connection opened, and the measured echoes flushed since the
    /// last call, for the server `instance` that greeted it. Called after a
    /// flush, once for every time the connection was opened.
    pub(super) fn count_instance(&mut self, instance: &str) {
        let echoed = self.flushed_echoed - self.instance_counted;
        self.instance_counted = self.flushed_echoed;
        let mut totals = self.collector.lock();
        let counts = totals.instances.entry(instance.to_owned()).or_default();
        counts.connections += 1;
        counts.echoed += echoed;
    }

    /// Counts this connection's measured echoes in the run's spread. Called
    /// once, after the last flush.
    pub(super) fn count_connection(&self) {
        self.collector.lock().spread.add(self.flushed_echoed);
    }

    /// Hands everything counted to the collector; `now` is the time, in
    /// nanoseconds from the start.
    pub(super) fn flush(&mut self, now: u64) {
        self.last_flush_nanos = now;
        let mut totals = self.collector.lock();
        let outage = Duration::from_nanos(self.longest_outage_nanos);
        totals.reconnects.longest_outage = totals.reconnects.longest_outage.max(outage);
        let run = std::mem::take(&mut self.run);
        let runs = self.latencies.iter().chain([&run]);
        for &(latency, count) in runs.filter(|(_, count)| *count > 0) {
            totals.latency.record_nanos_n(latency, count);
            if self.collector.intervals {
                totals.interval_latency.record_nanos_n(latency, count);
            }
        }
        self.latencies.clear();
        totals.echoed_all += std::mem::take(&mut self.echoed_all);
        self.flushed_echoed += self.echoed;
        totals.echoed += std::mem::take(&mut self.echoed);
        totals.corrupted += std::mem::take(&mut self.corrupted);
        totals.missing += std::mem::take(&mut self.missing);
        totals.unexpected += std::mem::take(&mut self.unexpected);
        totals.late += std::mem::take(&mut self.late);
        totals.last_echo_nanos = totals.last_echo_nanos.max(self.last_echo_nanos);
        if let Some(error) = self.first_error.take() {
            totals.note_error(|| error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_reaches_the_totals_when_flushed() {
        let collector = Collector::new(true);
        let mut tally = Tally::new(&collector, 1_000);
        // Sent during the warmup: counted for progress only.
        tally.echoed(999, 2_000);
        tally.echoed(1_000, 1_500);
        tally.echoed(2_000, 4_000);
        tally.corrupted += 1;
        tally.note_error(|| "first".to_owned());
        tally.note_error(|| "second".to_owned());
        assert_eq!(collector.lock().echoed_all, 0, "nothing before a flush");
        tally.flush(5_000);
        // A flush with nothing new records nothing (no latency of 0).
        tally.flush(6_000);

        let totals = collector.lock();
        assert_eq!((totals.echoed_all, totals.echoed), (3, 2));
        assert_eq!(totals.errors(), 1);
        assert_eq!(totals.last_echo_nanos, 4_000);
        assert_eq!(totals.first_error.as_deref(), Some("first"));
        let summary = totals.latency.summary().unwrap();
        assert_eq!(
            (summary.min.as_nanos(), summary.max.as_nanos()),
            (500, 2_000)
        );
        assert_eq!(totals.interval_latency.count(), 2);
    }

    #[test]
    fn instances_count_their_connections_and_measured_echoes() {
        let collector = Collector::new(false);
        for (instance, echoes) in [("a", 3), ("b", 1), ("a", 2)] {
            let mut tally = Tally::new(&collector, 1_000);
            tally.echoed(0, 10);
            tally.echoed_many(1_000, 2_000, echoes);
            tally.flush(3_000);
            tally.count_instance(instance);
        }
        let totals = collector.lock();
        let counts = |name: &str| {
            let counts = totals.instances[name];
            (counts.connections, counts.echoed)
        };
        assert_eq!((counts("a"), counts("b")), ((2, 5), (1, 1)));
        assert_eq!(totals.echoed, 6);
    }

    #[test]
    fn a_tally_flushes_by_itself_when_full_or_after_a_while() {
        let collector = Collector::new(false);
        let mut tally = Tally::new(&collector, 0);
        // Latencies that all differ: one run each.
        for i in 0..BATCH as u64 {
            tally.echoed(i, 2 * i + 10);
        }
        assert_eq!(collector.lock().echoed, BATCH as u64);
        assert_eq!(
            collector.lock().interval_latency.count(),
            0,
            "no intervals asked for"
        );

        tally.echoed(1, 2);
        assert_eq!(collector.lock().echoed, BATCH as u64);
        // Equal latencies are one run, so they do not fill the tally.
        for _ in 0..2 * BATCH {
            tally.echoed(1, 2);
        }
        assert_eq!(collector.lock().echoed, BATCH as u64);
        tally.echoed(FLUSH_PERIOD_NANOS, FLUSH_PERIOD_NANOS * 2);
        assert_eq!(collector.lock().echoed, 3 * BATCH as u64 + 2);
    }

    #[test]
    fn echoes_counted_together_count_as_many_counted_one_by_one() {
        let (together, one_by_one) = (Collector::new(true), Collector::new(true));
        let mut tally = Tally::new(&together, 1_000);
        tally.echoed_many(999, 5_000, 3);
        tally.echoed_many(1_000, 5_000, 4);
        tally.echoed_many(2_000, 5_000, 2);
        tally.flush(6_000);
        let mut tally = Tally::new(&one_by_one, 1_000);
        for (sent, count) in [(999, 3), (1_000, 4), (2_000, 2)] {
            for _ in 0..count {
                tally.echoed(sent, 5_000);
            }
        }
        tally.flush(6_000);

        let (together, one_by_one) = (together.lock(), one_by_one.lock());
        assert_eq!((together.echoed_all, together.echoed), (9, 6));
        assert_eq!(
            (
                together.echoed_all,
                together.echoed,
                together.last_echo_nanos
            ),
            (
                one_by_one.echoed_all,
                one_by_one.echoed,
                one_by_one.last_echo_nanos
            )
        );
        assert_eq!(together.latency.histogram().count_at(4_000), 4);
        assert_eq!(together.latency.histogram().count_at(3_000), 2);
        assert_eq!(together.latency.histogram(), one_by_one.latency.histogram());
    }

    #[test]
    fn runs_of_equal_latencies_count_every_echo() {
        let collector = Collector::new(false);
        let mut tally = Tally::new(&collector, 0);
        // A batch of 32 sent together and read together, then one more.
        for _ in 0..32 {
            tally.echoed(100, 600);
        }
        tally.echoed(200, 900);
        tally.flush(1_000);
        let totals = collector.lock();
        assert_eq!(totals.echoed, 33);
        let summary = totals.latency.summary().unwrap();
        assert_eq!(summary.count, 33);
        assert_eq!((summary.min.as_nanos(), summary.max.as_nanos()), (500, 700));
        assert_eq!(totals.latency.histogram().count_at(500), 32);
    }
}
