//! Durations in JSON as numbers in a stated unit, the unit being in the
//! field's name (`_s` for seconds, `_us` for microseconds), written and read
//! back to the nanosecond: each module is for serde's `with` attribute.
//!
//! A leaf: it uses nothing of the crate, so that every module whose types
//! serialize can use it without depending on another.

use std::time::Duration;

use serde::de::{Error, Unexpected};
use serde::{Deserialize, Deserializer, Serializer};

/// A duration as a number of microseconds, to the nanosecond.
pub(crate) mod micros {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_nanos() as f64 / 1e3)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let micros = f64::deserialize(deserializer)?;
        // Rounded to the nanosecond, which is what was written: a number of
        // nanoseconds divided by 1000 multiplies back to within a tiny
        // fraction of itself.
        let nanos = (micros * 1e3).round();
        if (0.0..=u64::MAX as f64).contains(&nanos) {
            Ok(Duration::from_nanos(nanos as u64))
        } else {
            Err(out_of_range(micros, "microseconds"))
        }
    }
}

/// An optional duration as a number of microseconds, or null.
pub(crate) mod optional_micros {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => micros::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Micros(#[serde(with = "micros")] Duration);
        Ok(Option::<Micros>::deserialize(deserializer)?.map(|Micros(duration)| duration))
    }
}

/// A duration as a number of seconds.
pub(crate) mod seconds {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        from_seconds(seconds).ok_or_else(|| out_of_range(seconds, "seconds"))
    }
}

/// An optional duration as a number of seconds, or null.
pub(crate) mod optional_seconds {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => seconds::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(deserializer)? {
            Some(seconds) => from_seconds(seconds)
                .map(Some)
                .ok_or_else(|| out_of_range(seconds, "seconds")),
            None => Ok(None),
        }
    }
}

/// The duration that [`Duration::as_secs_f64`] wrote as `seconds`, to the
/// nanosecond (for durations up to about a month: beyond that, a double
/// cannot hold every nanosecond); `None` for a negative, infinite or NaN
/// number, or one too large for a duration.
///
/// The whole seconds and the fraction are taken apart, so that the
/// nanoseconds of a long duration are not lost in a product too large to
/// hold them exactly: the fraction alone multiplies back to them.
fn from_seconds(seconds: f64) -> Option<Duration> {
    // NaN compares false with everything, so it is refused by name.
    if seconds.is_nan() || seconds < 0.0 {
        return None;
    }
    let whole = seconds.trunc();
    let nanos = ((seconds - whole) * 1e9).round() as u64;
    Duration::try_from_secs_f64(whole)
        .ok()?
        .checked_add(Duration::from_nanos(nanos))
}

/// The error for a number that is no duration in `unit`.
fn out_of_range<E: Error>(value: f64, unit: &str) -> E {
    E::invalid_value(
        Unexpected::Float(value),
        &format!("a number of {unit} from 0 to 2^64 seconds").as_str(),
    )
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Durations {
        #[serde(with = "micros")]
        micros: Duration,
        #[serde(with = "seconds")]
        seconds: Duration,
        #[serde(with = "optional_seconds")]
        optional: Option<Duration>,
    }

    #[test]
    fn durations_read_back_to_the_nanosecond() {
        let nanos = Duration::from_nanos;
        for (a, b) in [
            (Duration::ZERO, Duration::ZERO),
            (nanos(1), nanos(999_999_999)),
            (nanos(61_234), nanos(10_000_123_457)),
            (nanos(3_600_000_000_001), nanos(86_400_000_000_001)),
            // A day of latency, and a 30-day run: about as long as a double
            // keeps every nanosecond of a number of seconds.
            (nanos(86_400_000_000_001), nanos(2_592_000_000_000_001)),
        ] {
            for optional in [None, Some(b)] {
                let durations = Durations {
                    micros: a,
                    seconds: b,
                    optional,
                };
                let json = serde_json::to_string(&durations).unwrap();
                let back: Durations = serde_json::from_str(&json).unwrap();
                assert_eq!(back, durations, "{json}");
            }
        }
    }

    #[test]
    fn a_number_that_is_no_duration_is_an_error_naming_it() {
        for (json, unit) in [
            (
                r#"{"micros": -1, "seconds": 0, "optional": null}"#,
                "microseconds",
            ),
            (
                r#"{"micros": 0, "seconds": -0.5, "optional": null}"#,
                "seconds",
            ),
            (
                r#"{"micros": 0, "seconds": 1e300, "optional": null}"#,
                "seconds",
            ),
            (r#"{"micros": 0, "seconds": 0, "optional": -2}"#, "seconds"),
        ] {
            let error = serde_json::from_str::<Durations>(json).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(&format!("a number of {unit}")),
                "{message}"
            );
        }
    }
}
