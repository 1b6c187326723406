//! [`Delay`]: `--delay`, a slow backend on demand. Each echo is held back
//! for a fixed time, or for one drawn uniformly from a range.
//!
//! Parsing is free of I/O and tested here; the connection calls
//! [`hold`] before it writes back what it has ready.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Sleep;

/// The longest delay accepted: an hour, beyond which a delay is a mistake
/// rather than a slow backend.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// How long each echo is held back.
///
/// Written as a number and a unit (`us`, `ms`, `s`; fractions allowed), or a
/// range of two such durations, `MIN..MAX`, from which each echo draws its
/// own delay uniformly.
///
/// ```
/// use std::time::Duration;
/// use echo_server::Delay;
///
/// let fixed: Delay = "1.5s".parse()?;
/// assert_eq!(fixed, Delay::Fixed(Duration::from_millis(1500)));
/// let range: Delay = "10ms..50ms".parse()?;
/// let drawn = range.draw();
/// assert!(Duration::from_millis(10) <= drawn && drawn <= Duration::from_millis(50));
/// assert_eq!(range.to_string(), "10ms..50ms");
///
/// let error = "30".parse::<Delay>().unwrap_err();
/// assert_eq!(error.to_string(), "`30` has no unit: write it as 30ms, 30s or 30us");
/// # Ok::<(), echo_server::DelayError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// Every echo waits this long.
    Fixed(Duration),
    /// Each echo waits a time drawn uniformly from `min..=max`.
    Range {
        /// The shortest delay.
        min: Duration,
        /// The longest delay.
        max: Duration,
    },
}

/// Why a `--delay` value is not a delay; each names the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DelayError {
    /// A number without a unit.
    #[error("`{0}` has no unit: write it as {0}ms, {0}s or {0}us")]
    NoUnit(String),
    /// A unit other than `us`, `ms` and `s`.
    #[error("`{value}` has an unknown unit `{unit}`: use us, ms or s")]
    UnknownUnit {
        /// The value as given.
        value: String,
        /// The unit found.
        unit: String,
    },
    /// Not a number followed by a unit.
    #[error("`{0}` is not a duration such as 30ms, 1.5s or 10ms..50ms")]
    NotADuration(String),
    /// Longer than [`MAX_DELAY`].
    #[error("`{value}` is longer than the longest delay, {max:?}", max = MAX_DELAY)]
    TooLong {
        /// The value as given.
        value: String,
    },
    /// A range whose end comes before its start.
    #[error("the range `{0}` ends before it starts")]
    Backwards(String),
}

impl Delay {
    /// A timer for one echo's wait, drawn afresh; `None` for no wait. The
    /// connection pushes its idle deadline past the wait once it is over: a
    /// connection waiting on its own delay is not idle.
    pub(crate) fn timer(&self) -> Option<Pin<Box<Sleep>>> {
        let wait = self.draw();
        (!wait.is_zero()).then(|| Box::pin(tokio::time::sleep(wait)))
    }

    /// The delay of one echo: the fixed one, or one drawn from the range.
    pub fn draw(&self) -> Duration {
        match *self {
            Delay::Fixed(delay) => delay,
            Delay::Range { min, max } => {
                // Nanoseconds: the range is at most an hour, so they fit a u64.
                let nanos = fastrand::u64(min.as_nanos() as u64..=max.as_nanos() as u64);
                Duration::from_nanos(nanos)
            }
        }
    }
}

impl FromStr for Delay {
    type Err = DelayError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        match text.split_once("..") {
            None => parse_duration(text).map(Delay::Fixed),
            Some((min, max)) => {
                let (min, max) = (parse_duration(min)?, parse_duration(max)?);
                if max < min {
                    return Err(DelayError::Backwards(text.to_owned()));
                }
                Ok(Delay::Range { min, max })
            }
        }
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delay::Fixed(delay) => write!(f, "{delay:?}"),
            Delay::Range { min, max } => write!(f, "{min:?}..{max:?}"),
        }
    }
}

/// Parses one duration: a non-negative number, then `us`, `ms` or `s`.
fn parse_duration(text: &str) -> Result<Duration, DelayError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let not_a_duration = || DelayError::NotADuration(text.to_owned());
    let value: f64 = number.parse().map_err(|_| not_a_duration())?;
    let scale = match unit.trim() {
        "" => return Err(DelayError::NoUnit(text.to_owned())),
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        unit if unit.chars().all(|c| c.is_alphabetic()) => {
            return Err(DelayError::UnknownUnit {
                value: text.to_owned(),
                unit: unit.to_owned(),
            });
        }
        _ => return Err(not_a_duration()),
    };
    match Duration::try_from_secs_f64(value * scale) {
        Ok(delay) if delay <= MAX_DELAY => Ok(delay),
        _ => Err(DelayError::TooLong {
            value: text.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delay(text: &str) -> Result<Delay, DelayError> {
        text.parse()
    }

    #[test]
    fn durations_take_a_unit_and_fractions() {
        assert_eq!(delay("30ms"), Ok(Delay::Fixed(Duration::from_millis(30))));
        assert_eq!(delay("1.5s"), Ok(Delay::Fixed(Duration::from_millis(1500))));
        assert_eq!(
            delay(" 250us "),
            Ok(Delay::Fixed(Duration::from_micros(250)))
        );
        assert_eq!(delay("0ms"), Ok(Delay::Fixed(Duration::ZERO)));
        assert_eq!(delay("3600s"), Ok(Delay::Fixed(MAX_DELAY)));
        assert_eq!(
            delay("10ms..50ms"),
            Ok(Delay::Range {
                min: Duration::from_millis(10),
                max: Duration::from_millis(50)
            })
        );
        assert_eq!(
            delay("0.5s .. 1s"),
            Ok(Delay::Range {
                min: Duration::from_millis(500),
                max: Duration::from_secs(1)
            })
        );
    }

    #[test]
    fn every_bad_value_is_named_in_its_error() {
        for (text, expected) in [
            ("30", "`30` has no unit"),
            ("5m", "`5m` has an unknown unit `m`"),
            ("fast", "`fast` is not a duration"),
            ("-5ms", "`-5ms` is not a duration"),
            ("", "`` is not a duration"),
            ("1.2.3s", "`1.2.3s` is not a duration"),
            ("5ms!", "`5ms!` is not a duration"),
            ("3601s", "`3601s` is longer than the longest delay"),
            ("50ms..10ms", "the range `50ms..10ms` ends before it starts"),
            ("10ms..", "`` is not a duration"),
            ("10ms..x", "`x` is not a duration"),
        ] {
            let error = delay(text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn draws_stay_in_the_range_and_cover_it() {
        let range = delay("10ms..20ms").unwrap();
        let draws: Vec<Duration> = (0..1000).map(|_| range.draw()).collect();
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(20));
        assert!(draws.iter().all(|d| (min..=max).contains(d)));
        // A uniform draw lands in each half of the range many times.
        let low = draws
            .iter()
            .filter(|d| **d < Duration::from_millis(15))
            .count();
        assert!(
            (300..=700).contains(&low),
            "{low} of 1000 in the lower half"
        );
        assert_eq!(delay("7ms").unwrap().draw(), Duration::from_millis(7));
    }
}
