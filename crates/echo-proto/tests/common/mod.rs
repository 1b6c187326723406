//! Helpers shared by the integration tests.
//!
//! The tests need an encoder that does not go through the crate, so that a bug
//! in the crate's encoder cannot hide the same bug in its decoder: this one is
//! written straight from the specification in PROTOCOL.md.

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

/// Asserts that `result` is `FrameError::Truncated` with these numbers.
#[allow(dead_code)] // Not every test file checks truncation.
pub(crate) fn assert_truncated<T: std::fmt::Debug>(
    result: Result<T, echo_proto::FrameError>,
    expected_received: u64,
    expected_expected: u64,
) {
    match result {
        Err(echo_proto::FrameError::Truncated { received, expected }) => {
            assert_eq!((received, expected), (expected_received, expected_expected));
        }
        other => panic!(
            "expected Truncated {{ received: {expected_received}, expected: {expected_expected} }}, got {other:?}"
        ),
    }
}

/// Asserts that `result` is `FrameError::FrameTooLarge` with these numbers.
#[allow(dead_code)] // Not every test file checks the limit.
pub(crate) fn assert_too_large<T: std::fmt::Debug>(
    result: Result<T, echo_proto::FrameError>,
    expected_len: u64,
    expected_max: u64,
) {
    match result {
        Err(echo_proto::FrameError::FrameTooLarge { len, max }) => {
            assert_eq!((len, max), (expected_len, expected_max));
        }
        other => panic!(
            "expected FrameTooLarge {{ len: {expected_len}, max: {expected_max} }}, got {other:?}"
        ),
    }
}

/// A frame error reduced to what can be compared: (kind, first number, second number).
#[allow(dead_code)] // Not every test file compares errors.
pub(crate) type ErrorKey = (&'static str, u64, u64);

/// The comparable part of a framing error; there is none in an I/O error,
/// which the callers never expect.
#[allow(dead_code)] // Not every test file compares errors.
pub(crate) fn error_key(error: &echo_proto::FrameError) -> ErrorKey {
    match error {
        echo_proto::FrameError::FrameTooLarge { len, max } => ("too large", *len, *max),
        echo_proto::FrameError::Truncated { received, expected } => {
            ("truncated", *received, *expected)
        }
        other => panic!("no I/O error was expected, yet got {other:?}"),
    }
}
