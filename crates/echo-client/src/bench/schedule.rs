//! [`Schedule`]: when each message of a paced (`--rate`) run is due.
//!
//! The total rate is shared evenly by the connections, and their messages are
//! interleaved: with `C` connections at `R` messages per second in all,
//! message `k` of connection `i` is due `(k·C + i) / R` seconds after the
//! start. Latencies are measured from these times, not from when a message
//! actually left, so a server that stalls delays every message scheduled
//! behind the stall, and the percentiles show it (no coordinated omission).

/// The send times of one connection's messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    /// Messages per second, all connections together.
    rate: f64,
    connections: u64,
    index: u64,
}

impl Schedule {
    /// The schedule of connection `index` of `connections`, at `rate`
    /// messages per second in all.
    pub(super) fn new(rate: f64, connections: u64, index: u64) -> Self {
        Self {
            rate,
            connections,
            index,
        }
    }

    /// When message `seq` is due, in nanoseconds from the start.
    pub(super) fn due_at(&self, seq: u64) -> u64 {
        let slot = seq as f64 * self.connections as f64 + self.index as f64;
        (slot * 1e9 / self.rate) as u64
    }

    /// How many messages are due by `now` (nanoseconds from the start): the
    /// number of the first message that is not.
    pub(super) fn due_by(&self, now: u64) -> u64 {
        // An estimate in floating point, then corrected with `due_at` itself,
        // so that the two never disagree by a rounding.
        let slots = now as f64 * self.rate / 1e9;
        let mut due = ((slots - self.index as f64) / self.connections as f64)
            .floor()
            .max(-1.0) as i64
            + 1;
        while due > 0 && self.due_at(due as u64 - 1) > now {
            due -= 1;
        }
        let mut due = due as u64;
        while self.due_at(due) <= now {
            due += 1;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn one_connection_sends_at_even_intervals() {
        let schedule = Schedule::new(1000.0, 1, 0);
        assert_eq!(schedule.due_at(0), 0);
        assert_eq!(schedule.due_at(1), MS);
        assert_eq!(schedule.due_at(250), 250 * MS);
    }

    #[test]
    fn connections_share_the_rate_and_interleave() {
        // 1000 per second over 4 connections: each sends every 4 ms, one
        // ms after the previous connection.
        let times: Vec<Vec<u64>> = (0..4)
            .map(|index| {
                let schedule = Schedule::new(1000.0, 4, index);
                (0..3).map(|seq| schedule.due_at(seq) / MS).collect()
            })
            .collect();
        assert_eq!(times, [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]);
    }

    #[test]
    fn due_by_counts_the_messages_due() {
        let schedule = Schedule::new(1000.0, 4, 1);
        // Due at 1, 5, 9 ms...
        assert_eq!(schedule.due_by(0), 0);
        assert_eq!(schedule.due_by(MS - 1), 0);
        assert_eq!(schedule.due_by(MS), 1);
        assert_eq!(schedule.due_by(5 * MS - 1), 1);
        assert_eq!(schedule.due_by(5 * MS), 2);
        assert_eq!(schedule.due_by(1000 * MS), 250);
    }

    #[test]
    fn due_by_agrees_with_due_at_for_awkward_rates() {
        for (rate, connections, index) in
            [(3.0, 7, 6), (0.5, 1, 0), (99_999.9, 13, 5), (1e6, 100, 99)]
        {
            let schedule = Schedule::new(rate, connections, index);
            for seq in 0..200 {
                let at = schedule.due_at(seq);
                assert_eq!(
                    schedule.due_by(at),
                    seq + 1,
                    "{rate} {connections} {index} {seq}"
                );
                if at > 0 {
                    assert!(schedule.due_by(at - 1) <= seq);
                }
            }
        }
    }
}
