//! [`ClientCpu`]: how busy the bench kept the cores it ran on, to tell when
//! the figures may be the client's limit rather than the server's.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::units;

/// The share of its cores past which a client is taken to be the limit.
pub const CLIENT_LIMIT_SHARE: f64 = 0.9;

/// The CPU time the bench process used while it ran, against the cores it
/// could use: a client that used nearly all of them was, at least in part,
/// measuring itself.
///
/// ```
/// use std::time::Duration;
/// use echo_client::bench::ClientCpu;
///
/// let busy = ClientCpu::new(Duration::from_secs_f64(1.9), Duration::from_secs(1), 2);
/// assert_eq!(busy.busy_percent, 95.0);
/// assert!(busy.limited);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientCpu {
    /// User and system CPU time of the whole process over the run.
    #[serde(rename = "cpu_s", with = "units::seconds")]
    pub cpu: Duration,
    /// The cores the process could run on (its CPU affinity and cgroup
    /// limits count).
    pub cores: usize,
    /// `cpu / (elapsed × cores)`, as a percentage.
    pub busy_percent: f64,
    /// Whether the client used at least 90% of its cores: its figures may
    /// then show the client's limit rather than the server's.
    pub limited: bool,
}

impl ClientCpu {
    /// The figures of `cpu` time used over `elapsed` on `cores` cores.
    pub fn new(cpu: Duration, elapsed: Duration, cores: usize) -> Self {
        let capacity = elapsed.as_secs_f64() * cores.max(1) as f64;
        let share = if capacity > 0.0 {
            cpu.as_secs_f64() / capacity
        } else {
            0.0
        };
        Self {
            cpu,
            cores,
            busy_percent: (share * 1000.0).round() / 10.0,
            limited: share >= CLIENT_LIMIT_SHARE,
        }
    }
}

/// The process's CPU time and the wall clock at the start of a run.
pub(super) struct CpuClock {
    started: Instant,
    cpu: Option<Duration>,
}

impl CpuClock {
    pub(super) fn start() -> Self {
        Self {
            started: Instant::now(),
            cpu: process_cpu_time(),
        }
    }

    /// The figures since [`start`](Self::start); `None` where the system
    /// does not tell a process its CPU time.
    pub(super) fn stop(&self) -> Option<ClientCpu> {
        let used = process_cpu_time()?.checked_sub(self.cpu?)?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Some(ClientCpu::new(used, self.started.elapsed(), cores))
    }
}

/// User and system CPU time of this process so far.
#[cfg(unix)]
fn process_cpu_time() -> Option<Duration> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let micros = |time: nix::sys::time::TimeVal| {
        Duration::from_secs(time.tv_sec().try_into().unwrap_or(0))
            + Duration::from_micros(time.tv_usec().try_into().unwrap_or(0))
    };
    Some(micros(usage.user_time()) + micros(usage.system_time()))
}

#[cfg(not(unix))]
fn process_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_below_nine_tenths_of_its_cores_is_not_the_limit() {
        let calm = ClientCpu::new(Duration::from_millis(500), Duration::from_secs(1), 2);
        assert_eq!((calm.busy_percent, calm.limited), (25.0, false));
        let edge = ClientCpu::new(Duration::from_millis(900), Duration::from_secs(1), 1);
        assert!(edge.limited);
        assert!(!ClientCpu::new(Duration::ZERO, Duration::ZERO, 4).limited);
    }

    #[test]
    fn a_clock_measures_the_cpu_this_process_spends() {
        let clock = CpuClock::start();
        // Busy for a while: the CPU time grows with it.
        let started = Instant::now();
        let mut spin = 0u64;
        while started.elapsed() < Duration::from_millis(50) {
            spin = spin.wrapping_add(1);
        }
        std::hint::black_box(spin);
        let cpu = clock.stop().expect("Unix tells a process its CPU time");
        assert!(cpu.cpu > Duration::ZERO, "{cpu:?}");
        assert!(cpu.cores >= 1);
    }
}
