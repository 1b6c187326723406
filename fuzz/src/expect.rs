//! Assertions that hold a decoder's verdicts to the [`Reference`]: the
//! frames it has given out by some point of the stream, the rejection of a
//! header over the limit, and how the stream ends.

use std::fmt::Debug;

use echo_proto::FrameError;

use crate::reference::{End, HEADER_LEN, Position, Reference};

/// Asserts that a decoder fed the first `received` bytes has given out the
/// `decoded` frames complete by then, and is not past a header over the
/// limit, which it should have rejected as soon as the header was whole.
pub fn decoded_by(reference: &Reference<'_>, received: usize, decoded: usize) {
    assert_eq!(
        decoded,
        reference.frames_by(received),
        "after {received} bytes"
    );
    assert!(
        !matches!(reference.position(received), Position::Rejected { .. }),
        "a header over the limit was not rejected after {received} bytes"
    );
}

/// Asserts that `error` is the rejection of the reference's bad header, and
/// that the first `received` bytes hold all of that header.
pub fn too_large(reference: &Reference<'_>, received: usize, error: &FrameError) {
    let Position::Rejected { len, .. } = reference.position(received) else {
        panic!(
            "{error} after {received} bytes, where the reference is at {:?}",
            reference.position(received)
        );
    };
    match error {
        FrameError::FrameTooLarge { len: got, max } => {
            assert_eq!(
                (*got, *max),
                (len as u64, reference.limit as u64),
                "the announced length and the limit"
            );
        }
        other => panic!("expected a frame over the limit, got {other:?}"),
    }
}

/// Asserts that `end`, a decoder's verdict once the whole stream is in, is
/// the reference's: `Ok` with `is_clean` at a clean end, a truncation with
/// the reference's numbers inside a frame, the rejection at a header over
/// the limit.
pub fn end<T: Debug>(
    reference: &Reference<'_>,
    end: Result<T, FrameError>,
    is_clean: impl FnOnce(&T) -> bool,
) {
    let (received, expected) = match reference.end {
        End::Clean => {
            assert!(end.as_ref().is_ok_and(is_clean), "at a clean end: {end:?}");
            return;
        }
        End::TooLarge { .. } => match end {
            Err(error) => return too_large(reference, reference.total, &error),
            Ok(value) => panic!("a header over the limit was accepted: {value:?}"),
        },
        End::InHeader { start } => (reference.total - start, HEADER_LEN),
        End::InPayload { start, len } => (reference.total - start, HEADER_LEN + len),
    };
    match end {
        Err(FrameError::Truncated {
            received: got_received,
            expected: got_expected,
        }) => assert_eq!(
            (got_received, got_expected),
            (received as u64, expected as u64),
            "the truncation's numbers"
        ),
        other => panic!("expected a truncation ({received} of {expected} bytes), got {other:?}"),
    }
}
