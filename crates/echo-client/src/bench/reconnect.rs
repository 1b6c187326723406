//! Opening a failed connection again, for
//! [`BenchConfig::reconnect`](super::BenchConfig::reconnect): after a short
//! back-off that grows with each failed attempt, until the run's timeout has
//! passed without a connection.
//!
//! An echo is idempotent, so the messages that were in flight on the
//! connection that failed are simply sent again on the new one (see
//! `connection::run`): across a server's restart or crash the application
//! loses no echo, and the report says what that cost.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::connection::Plan;
use super::dialer::{Dialer, Opened};
use crate::error::ClientError;
use crate::units;

/// The first back-off, before the first attempt to reconnect: long enough
/// for a balancer to notice a connection refused, short enough not to show
/// in an outage measured in seconds.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// The longest back-off between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// What reconnecting cost a run, in a [`BenchReport`](super::BenchReport)
/// with [`reconnect`](super::BenchConfig::reconnect) set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reconnects {
    /// Connections opened again after they had failed.
    pub reconnects: u64,
    /// Messages sent again because they were in flight on a connection that
    /// failed.
    pub resent: u64,
    /// Attempts to reconnect that failed (refused, reset, timed out, or no
    /// greeting).
    pub failed_attempts: u64,
    /// The longest time any connection went without an echo, from its last
    /// echo before it failed (or its opening) to its first one after it was
    /// opened again: how long the service was out, as one client saw it.
    #[serde(rename = "longest_outage_s", with = "units::seconds")]
    pub longest_outage: Duration,
}

impl Reconnects {
    /// Adds another run's (or connection's) figures to these.
    pub(crate) fn add(&mut self, other: &Self) {
        self.reconnects += other.reconnects;
        self.resent += other.resent;
        self.failed_attempts += other.failed_attempts;
        self.longest_outage = self.longest_outage.max(other.longest_outage);
    }
}

/// The waits between attempts to reconnect: doubling from
/// [`FIRST_BACKOFF`] up to [`MAX_BACKOFF`], each shortened by up to a half,
/// differently for each connection, so that connections that failed
/// together do not all come back in the same instant.
#[derive(Debug, Clone)]
struct Backoff {
    next: Duration,
    /// A xorshift state, seeded from the connection's number.
    state: u64,
}

impl Backoff {
    fn new(id: u32) -> Self {
        Self {
            next: FIRST_BACKOFF,
            // Never zero, which xorshift would keep for ever.
            state: (u64::from(id) << 1 | 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// How long to wait before the next attempt.
    fn wait(&mut self) -> Duration {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        // 50% to 100% of the nominal wait.
        let share = 0.5 + (self.state >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        let wait = self.next.mul_f64(share);
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }
}

/// One connection's reconnecting: its back-off, and the time by which it
/// gives up.
///
/// Both last from the failure until an echo comes back: a server that
/// accepts connections and closes them at once is given no more time than
/// one that refuses them, and is not asked ever more often.
#[derive(Debug)]
pub(super) struct Reconnector {
    id: u32,
    backoff: Backoff,
    /// When the connection, out of service since its failure, gives up.
    give_up: Option<tokio::time::Instant>,
}

impl Reconnector {
    pub(super) fn new(id: u32) -> Self {
        Self {
            id,
            backoff: Backoff::new(id),
            give_up: None,
        }
    }

    /// Records that an echo came back since the last failure: the next
    /// failure starts afresh.
    pub(super) fn served(&mut self) {
        self.backoff = Backoff::new(self.id);
        self.give_up = None;
    }

    /// Opens the connection again after it failed with `failure`, waiting a
    /// back-off before each attempt, and counting the attempts that fail in
    /// the run's figures.
    ///
    /// # Errors
    ///
    /// Once the run's timeout has passed since the connection was last in
    /// service without an echo: the last attempt's error, or `failure` if
    /// there was none.
    pub(super) async fn reopen(
        &mut self,
        failure: ClientError,
        dialer: &Dialer,
        plan: &Plan,
    ) -> Result<Opened, ClientError> {
        let give_up = *self
            .give_up
            .get_or_insert_with(|| tokio::time::Instant::now() + plan.timeout);
        let mut error = failure;
        loop {
            let now = tokio::time::Instant::now();
            if now >= give_up {
                return Err(error);
            }
            tokio::time::sleep_until(give_up.min(now + self.backoff.wait())).await;
            error = match tokio::time::timeout_at(give_up, dialer.open()).await {
                Ok(Ok(opened)) => return Ok(opened),
                Ok(Err(error)) => error,
                Err(_elapsed) => ClientError::connect_timeout(&plan.addr, plan.timeout),
            };
            plan.collector.lock().reconnects.failed_attempts += 1;
            tracing::debug!(connection = self.id, error = %crate::error::describe(&error), "could not reconnect");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_up_to_its_cap_and_differs_between_connections() {
        let waits = |id| {
            let mut backoff = Backoff::new(id);
            (0..10).map(|_| backoff.wait()).collect::<Vec<_>>()
        };
        let first = waits(0);
        for (attempt, wait) in first.iter().enumerate() {
            let nominal = (FIRST_BACKOFF * 2u32.pow(attempt as u32)).min(MAX_BACKOFF);
            assert!(
                *wait >= nominal / 2 && *wait <= nominal,
                "attempt {attempt}: {wait:?} is not within half of {nominal:?}"
            );
        }
        assert_ne!(first, waits(1));
        assert_eq!(first, waits(0));
    }

    #[test]
    fn reconnect_figures_add_up_and_keep_the_longest_outage() {
        let mut total = Reconnects {
            reconnects: 1,
            resent: 5,
            failed_attempts: 2,
            longest_outage: Duration::from_millis(300),
        };
        total.add(&Reconnects {
            reconnects: 2,
            resent: 1,
            failed_attempts: 0,
            longest_outage: Duration::from_millis(100),
        });
        assert_eq!(
            total,
            Reconnects {
                reconnects: 3,
                resent: 6,
                failed_attempts: 2,
                longest_outage: Duration::from_millis(300),
            }
        );
    }
}
