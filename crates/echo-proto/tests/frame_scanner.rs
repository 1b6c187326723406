//! `FrameScanner`: frame boundaries across chunk splits, rejection of an
//! oversize header, and the verdict at the end of the stream.

mod common;

use common::{assert_too_large, assert_truncated, wire};
use echo_proto::frame::{self, DEFAULT_MAX_FRAME_LEN};
use echo_proto::{FrameError, FrameScanner, Scan};

/// The interesting fields of a [`Scan`], for comparing with one `assert_eq!`:
/// (frames, complete_len, accepted_len).
fn counts(scan: &Scan) -> (usize, usize, usize) {
    (scan.frames, scan.complete_len, scan.accepted_len)
}

/// Scans `chunk`, checks that it raised no error, and returns its counts.
fn scan_ok(scanner: &mut FrameScanner, chunk: &[u8]) -> (usize, usize, usize) {
    let scan = scanner.scan(chunk);
    assert!(
        scan.error.is_none(),
        "unexpected error scanning {chunk:?}: {:?}",
        scan.error
    );
    counts(&scan)
}

/// Asserts that a scan's error is `FrameError::FrameTooLarge` with these numbers.
fn assert_rejected(error: Option<FrameError>, expected_len: u64, expected_max: u64) {
    assert_too_large(error.map_or(Ok(()), Err), expected_len, expected_max);
}

#[test]
fn a_header_split_one_and_three() {
    let mut scanner = FrameScanner::new(1024);
    // A header byte alone is not accepted yet.
    assert_eq!(scan_ok(&mut scanner, &[0]), (0, 0, 0));
    assert!(!scanner.is_at_boundary());
    // The rest of the header, then its 2-byte payload.
    assert_eq!(scan_ok(&mut scanner, &[0, 0, 2, b'h', b'i']), (1, 5, 5));
    assert!(scanner.is_at_boundary());
    assert_eq!(scanner.frames_total(), 1);
}

#[test]
fn a_header_split_two_and_two() {
    let mut scanner = FrameScanner::new(1024);
    assert_eq!(scan_ok(&mut scanner, &[0, 0]), (0, 0, 0));
    // Only the bytes of this chunk count, even though the whole header is now accepted.
    assert_eq!(scan_ok(&mut scanner, &[0, 3]), (0, 0, 2));
    assert!(!scanner.is_at_boundary());
    assert_eq!(scanner.payload_remaining(), Some(3));
    assert_eq!(scan_ok(&mut scanner, b"abc"), (1, 3, 3));
    assert!(scanner.is_at_boundary());
    assert_eq!(scanner.payload_remaining(), None);
}

#[test]
fn a_frame_scanned_one_byte_at_a_time() {
    let mut scanner = FrameScanner::new(1024);
    let stream = wire(&[b"xyz"]);
    let expected = [
        (0, 0, 0), // Header bytes are held back...
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 1), // ...until the last one makes the header acceptable.
        (0, 0, 1),
        (0, 0, 1),
        (1, 1, 1), // The last payload byte completes the frame.
    ];
    assert_eq!(stream.len(), expected.len());
    for (index, (byte, expected)) in stream.iter().zip(expected).enumerate() {
        assert_eq!(scan_ok(&mut scanner, &[*byte]), expected, "byte {index}");
        // Only the frame's last byte brings the stream back to a boundary.
        assert_eq!(
            scanner.is_at_boundary(),
            index == stream.len() - 1,
            "byte {index}"
        );
    }
    assert_eq!(scanner.frames_total(), 1);
}

#[test]
fn an_empty_frame_completes_with_its_last_header_byte() {
    let mut scanner = FrameScanner::new(0);
    assert_eq!(scan_ok(&mut scanner, &[0, 0, 0]), (0, 0, 0));
    assert_eq!(scan_ok(&mut scanner, &[0]), (1, 1, 1));
    assert!(scanner.is_at_boundary());
    // Two more empty frames in one chunk.
    assert_eq!(scan_ok(&mut scanner, &[0; 8]), (2, 8, 8));
    assert_eq!(scanner.frames_total(), 3);
}

#[test]
fn a_payload_split_across_chunks() {
    let mut scanner = FrameScanner::new(1024);
    let mut stream = wire(&[&b"0123456789"[..], b"next"]);
    stream.truncate(14 + 2);
    // The header and 4 payload bytes: all accepted, nothing complete.
    assert_eq!(scan_ok(&mut scanner, &stream[..8]), (0, 0, 8));
    assert_eq!(scanner.payload_remaining(), Some(6));
    // The payload's last 6 bytes and half the next header.
    assert_eq!(scan_ok(&mut scanner, &stream[8..]), (1, 6, 6));
    assert!(!scanner.is_at_boundary());
    assert_eq!(scanner.payload_remaining(), None);
}

#[test]
fn an_empty_chunk_changes_nothing() {
    let mut scanner = FrameScanner::new(1024);
    assert_eq!(scan_ok(&mut scanner, &[]), (0, 0, 0));
    assert!(scanner.is_at_boundary());
    scan_ok(&mut scanner, &[0, 0, 0, 5, b'a']);
    assert_eq!(scan_ok(&mut scanner, &[]), (0, 0, 0));
    assert_eq!(scanner.payload_remaining(), Some(4));
}

#[test]
fn an_oversize_header_mid_chunk_stops_the_scan_at_its_start() {
    let mut scanner = FrameScanner::new(8);
    let mut chunk = wire(&[&b"abc"[..], b"", b"12345678"]);
    let bad_header_at = chunk.len();
    chunk.extend_from_slice(&9u32.to_be_bytes());
    chunk.extend_from_slice(b"123456789");

    let scan = scanner.scan(&chunk);
    assert_eq!(counts(&scan), (3, bad_header_at, bad_header_at));
    assert_rejected(scan.error, 9, 8);
    assert_eq!(scanner.frames_total(), 3);
    assert!(!scanner.is_at_boundary());
    assert_eq!(scanner.payload_remaining(), None);

    // Nothing after the bad header is ever accepted.
    for later in [&wire(&[b"ok"])[..], &[], &[0; 100]] {
        let scan = scanner.scan(later);
        assert_eq!(counts(&scan), (0, 0, 0));
        assert_rejected(scan.error, 9, 8);
    }
    assert_eq!(scanner.frames_total(), 3);
    match scanner.finish() {
        Err(FrameError::FrameTooLarge { len: 9, max: 8 }) => {}
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}

#[test]
fn an_oversize_header_split_across_chunks() {
    let mut scanner = FrameScanner::new(8);
    let mut first = wire(&[b"ok"]);
    first.extend_from_slice(&[0x00, 0x01]);
    // The frame is complete and accepted; the header's start is held back.
    assert_eq!(scan_ok(&mut scanner, &first), (1, 6, 6));

    let scan = scanner.scan(&[0x00, 0x00, b'x']);
    // The bad header began before this chunk, so nothing of the chunk is accepted.
    assert_eq!(counts(&scan), (0, 0, 0));
    assert_rejected(scan.error, 0x0001_0000, 8);
}

#[test]
fn the_largest_header_is_rejected_at_the_default_limit() {
    let mut scanner = FrameScanner::default();
    assert_eq!(scanner.max_frame_len(), DEFAULT_MAX_FRAME_LEN);
    let scan = scanner.scan(&[0xff; 4]);
    assert_eq!(counts(&scan), (0, 0, 0));
    assert_rejected(scan.error, u64::from(u32::MAX), 8_388_608);
}

#[test]
fn a_frame_of_exactly_the_limit_is_accepted() {
    let mut scanner = FrameScanner::new(3);
    assert_eq!(scan_ok(&mut scanner, &wire(&[b"abc"])), (1, 7, 7));
}

#[test]
fn the_limit_is_clamped_to_what_a_header_can_say() {
    let mut scanner = FrameScanner::new(usize::MAX);
    assert_eq!(scanner.max_frame_len(), u32::MAX as usize);
    assert_eq!(scan_ok(&mut scanner, &[0xff; 5]), (0, 0, 5));
    assert_eq!(scanner.payload_remaining(), Some(u32::MAX as usize - 1));
}

#[test]
fn finish_on_a_clean_stream_is_ok() {
    let scanner = FrameScanner::new(16);
    assert!(scanner.finish().is_ok());

    let mut scanner = FrameScanner::new(16);
    scan_ok(&mut scanner, &wire(&[&b"one"[..], b"", b"three"]));
    assert!(scanner.finish().is_ok());
    assert_eq!(scanner.frames_total(), 3);
}

#[test]
fn finish_inside_a_header_is_a_truncation() {
    let mut scanner = FrameScanner::new(16);
    let mut stream = wire(&[b"one"]);
    stream.extend_from_slice(&[0, 0, 0]);
    scan_ok(&mut scanner, &stream);
    assert_truncated(scanner.finish(), 3, 4);
}

#[test]
fn finish_inside_a_payload_is_a_truncation() {
    let mut scanner = FrameScanner::new(16);
    scan_ok(&mut scanner, &[0, 0, 0, 10]);
    assert_truncated(scanner.finish(), 4, 14);
    scan_ok(&mut scanner, b"abc");
    assert_truncated(scanner.finish(), 7, 14);
    // finish() only reports: scanning can go on after it.
    assert_eq!(scan_ok(&mut scanner, b"defghij"), (1, 7, 7));
    assert!(scanner.finish().is_ok());
}

#[test]
fn frames_total_counts_across_chunks() {
    let payloads: Vec<Vec<u8>> = (0..10).map(|n| vec![b'.'; n]).collect();
    let stream = wire(&payloads);
    let mut scanner = FrameScanner::new(16);
    let mut frames = 0;
    for chunk in stream.chunks(7) {
        frames += scan_ok(&mut scanner, chunk).0;
    }
    assert_eq!(frames, 10);
    assert_eq!(scanner.frames_total(), 10);
    assert!(scanner.is_at_boundary());
}

#[test]
fn the_complete_span_of_a_chunk_holds_exactly_its_complete_frames() {
    let payloads: [&[u8]; 3] = [b"alpha", b"", b"gamma"];
    let mut chunk = wire(&payloads);
    chunk.extend_from_slice(&wire(&[b"delta"])[..6]);

    let mut scanner = FrameScanner::new(16);
    let (frames, complete_len, accepted_len) = scan_ok(&mut scanner, &chunk);
    assert_eq!((frames, accepted_len), (3, chunk.len()));
    let complete: Vec<&[u8]> = frame::payloads(&chunk[..complete_len]).collect();
    assert_eq!(complete, payloads);
}
