//! `frame::parse` and `frame::frames`: what the start of a buffer holds, the
//! limit, and where a walk over a buffer's frames stops.

mod common;

use common::{assert_too_large, wire};
use echo_proto::frame::{self, HEADER_LEN, MAX_ANNOUNCEABLE_LEN, Parsed};
use echo_proto::{FrameError, FrameScanner};

#[test]
fn every_prefix_of_a_frame_says_how_many_bytes_are_missing() {
    let stream = wire(&[b"hello"]);
    for cut in 0..stream.len() {
        let needed = if cut < HEADER_LEN {
            HEADER_LEN - cut
        } else {
            stream.len() - cut
        };
        assert_eq!(
            frame::parse(&stream[..cut], 16).unwrap(),
            Parsed::Incomplete { needed },
            "{cut} bytes"
        );
    }
    assert_eq!(
        frame::parse(&stream, 16).unwrap(),
        Parsed::Frame {
            payload: b"hello",
            frame_len: 9
        }
    );
}

#[test]
fn an_empty_payload_is_a_whole_frame_of_four_bytes() {
    assert_eq!(
        frame::parse(&[0, 0, 0, 0, 0xff], 0).unwrap(),
        Parsed::Frame {
            payload: b"",
            frame_len: 4
        }
    );
}

#[test]
fn only_the_first_frame_is_looked_at() {
    // The second header is over the limit; parse does not reach it.
    let mut stream = wire(&[b"ok"]);
    stream.extend_from_slice(&[0xff; 4]);
    assert_eq!(
        frame::parse(&stream, 2).unwrap(),
        Parsed::Frame {
            payload: b"ok",
            frame_len: 6
        }
    );
}

#[test]
fn a_frame_of_exactly_the_limit_passes_and_one_byte_more_does_not() {
    let stream = wire(&[[7u8; 16]]);
    assert!(matches!(
        frame::parse(&stream, 16),
        Ok(Parsed::Frame { frame_len: 20, .. })
    ));
    assert_too_large(frame::parse(&stream, 15), 16, 15);
    // The payload being there or not makes no difference to the verdict.
    assert_too_large(frame::parse(&stream[..4], 15), 16, 15);
}

#[test]
fn a_header_over_the_limit_is_rejected_only_once_it_is_whole() {
    assert_eq!(
        frame::parse(&[0xff; 3], 16).unwrap(),
        Parsed::Incomplete { needed: 1 }
    );
    assert_too_large(frame::parse(&[0xff; 4], 16), u64::from(u32::MAX), 16);
}

#[test]
fn the_largest_announceable_frame_is_incomplete_not_an_error_without_a_limit() {
    let stream = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
    for max in [MAX_ANNOUNCEABLE_LEN, usize::MAX] {
        assert_eq!(
            frame::parse(&stream, max).unwrap(),
            Parsed::Incomplete {
                needed: MAX_ANNOUNCEABLE_LEN - 3
            }
        );
    }
}

#[test]
fn frames_walks_the_whole_frames_and_stops_at_an_incomplete_one() {
    let payloads: [&[u8]; 3] = [b"alpha", b"", b"gamma"];
    let mut buffer = wire(&payloads);
    let whole = buffer.len();
    buffer.extend_from_slice(&wire(&[b"delta"])[..6]);

    let mut frames = frame::frames(&buffer, 16);
    assert_eq!((frames.consumed(), frames.rest()), (0, &buffer[..]));
    let walked: Vec<&[u8]> = frames.by_ref().map(Result::unwrap).collect();
    assert_eq!(walked, payloads);
    assert_eq!(frames.consumed(), whole);
    assert_eq!(frames.rest(), &buffer[whole..]);
    assert!(frames.next().is_none(), "the walk is over");
    // The rest tells what the incomplete frame needs.
    assert_eq!(
        frame::parse(frames.rest(), 16).unwrap(),
        Parsed::Incomplete { needed: 3 }
    );
}

#[test]
fn frames_yields_a_rejection_once_and_stops_at_the_bad_header() {
    let mut buffer = wire(&[b"fine"]);
    buffer.extend_from_slice(&wire(&[b"far too long"]));
    buffer.extend_from_slice(&wire(&[b"never"]));

    let mut frames = frame::frames(&buffer, 8);
    assert_eq!(frames.next().unwrap().unwrap(), b"fine");
    assert_too_large(frames.next().unwrap(), 12, 8);
    assert!(frames.next().is_none());
    assert!(frames.next().is_none());
    assert_eq!(frames.consumed(), 8);
    assert_eq!(frames.rest(), &buffer[8..]);
}

#[test]
fn frames_of_an_empty_buffer_is_empty() {
    let mut frames = frame::frames(&[], 16);
    assert!(frames.next().is_none());
    assert_eq!((frames.consumed(), frames.rest()), (0, &[][..]));
}

#[test]
fn payloads_finds_what_frames_finds_without_a_limit() {
    let mut buffer = wire(&[&b"one"[..], b"", &[0; 300]]);
    buffer.extend_from_slice(&[0, 0, 0xff, 0xff, 1]);
    let checked: Vec<&[u8]> = frame::frames(&buffer, MAX_ANNOUNCEABLE_LEN)
        .collect::<Result<_, FrameError>>()
        .unwrap();
    let unchecked: Vec<&[u8]> = frame::payloads(&buffer).collect();
    assert_eq!(checked.len(), 3);
    assert_eq!(unchecked, checked);
}

#[test]
fn frames_finds_the_frames_a_scanner_reports_complete() {
    let mut buffer = wire(&[&b"x"[..], b"yz", b""]);
    buffer.extend_from_slice(&[0, 0, 0, 9, 1]);
    let scan = FrameScanner::new(16).scan(&buffer);
    let mut frames = frame::frames(&buffer, 16);
    assert_eq!(frames.by_ref().count(), scan.frames);
    assert_eq!(frames.consumed(), scan.complete_len);
}
