//! Helpers shared by the integration tests.
//!
//! The tests need an encoder that does not go through the crate, so that a bug
//! in the crate's encoder cannot hide the same bug in its decoder: this one is
//! written straight from the specification in PROTOCOL.md.

use echo_proto::FrameError;

/// The exact bytes of `payloads` as consecutive frames on the wire: for each, a
/// 4-byte big-endian length and then the payload.
pub(crate) fn wire<P: AsRef<[u8]>>(payloads: &[P]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for payload in payloads {
        let payload = payload.as_ref();
        let len = u32::try_from(payload.len()).expect("test payloads fit a frame header");
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(payload);
    }
    bytes
}

/// A frame error reduced to what can be compared: its kind and its two
/// numbers (0 for an I/O error, which has none).
pub(crate) type ErrorKey = (&'static str, u64, u64);

/// The comparable part of a frame error.
pub(crate) fn error_key(error: &FrameError) -> ErrorKey {
    match error {
        FrameError::FrameTooLarge { len, max } => (error.kind(), *len, *max),
        FrameError::Truncated { received, expected } => (error.kind(), *received, *expected),
        other => (other.kind(), 0, 0),
    }
}

/// Asserts that `result` is the frame error that `expected` describes.
fn assert_error<T: std::fmt::Debug>(result: Result<T, FrameError>, expected: ErrorKey) {
    match &result {
        Err(error) if error_key(error) == expected => {}
        _ => panic!("expected {expected:?}, got {result:?}"),
    }
}

/// Asserts that `result` is `FrameError::Truncated` with these numbers.
#[allow(dead_code)] // Not every test file checks truncation.
pub(crate) fn assert_truncated<T: std::fmt::Debug>(
    result: Result<T, FrameError>,
    received: u64,
    expected: u64,
) {
    assert_error(result, ("truncated", received, expected));
}

/// Asserts that `result` is `FrameError::FrameTooLarge` with these numbers.
#[allow(dead_code)] // Not every test file checks the limit.
pub(crate) fn assert_too_large<T: std::fmt::Debug>(
    result: Result<T, FrameError>,
    len: u64,
    max: u64,
) {
    assert_error(result, ("frame_too_large", len, max));
}
