//! Serializers that put durations in JSON as numbers in a stated unit, the
//! unit being in the field's name (`_s` for seconds, `_us` for microseconds).
//!
//! A leaf: it uses nothing of the crate, so that every module whose types
//! serialize can use it without depending on another.

use std::time::Duration;

use serde::Serializer;

/// A duration as a number of microseconds, to the nanosecond.
pub(crate) fn micros<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_nanos() as f64 / 1e3)
}

/// A duration as a number of seconds.
pub(crate) fn seconds<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// An optional duration as a number of seconds, or null.
pub(crate) fn optional_seconds<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => seconds(duration, serializer),
        None => serializer.serialize_none(),
    }
}
