//! The `frame_decoder` target: every decoder of echo-proto, fed the same
//! chunks, must find exactly the frames the [`Reference`] finds.
//!
//! - [`FrameCodec`] (the tokio-util codec): the same frames, each as soon as
//!   it is complete, the same error at the same byte, the same truncation at
//!   the end, and a read buffer that grows with the bytes received rather
//!   than with the lengths announced;
//! - [`FrameScanner`] (the server's frame-boundary tracking): the same
//!   boundaries, chunk by chunk, and the same state between chunks;
//! - [`read_frame`] (the blocking helper), reading from a reader that
//!   returns the chunks one per call, and `Interrupted` for an empty one.

use std::io::{self, Read};

use bytes::BytesMut;
use echo_proto::{FrameCodec, FrameScanner, read_frame};
use tokio_util::codec::{Decoder, Encoder};

use crate::expect;
use crate::feed::{Outcome, feed};
use crate::input::Input;
use crate::reference::{Position, Reference};

/// The most the codec may ask its buffer to grow by in one step, as
/// echo-proto documents it.
const RESERVE_STEP: usize = 64 * 1024;

/// Checks every decoder against the reference on one input.
pub fn check(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let reference = Reference::parse(input.stream, input.limit());
    check_codec(&input, &reference);
    check_scanner(&input, &reference);
    check_blocking(&input, &reference);
}

/// The largest capacity the codec's read buffer may reach after `received`
/// bytes.
///
/// The buffer holds at most the bytes received, and the codec adds at most
/// [`RESERVE_STEP`] for the payload to come; growing a buffer may double it.
/// The rest is slack for how `BytesMut` reuses and regrows its allocations.
/// What this rules out is capacity in proportion to an announced length,
/// which can be up to 4 GiB from a four-byte header.
fn capacity_bound(received: usize) -> usize {
    2 * (received + RESERVE_STEP) + RESERVE_STEP
}

fn check_codec(input: &Input<'_>, reference: &Reference<'_>) {
    let mut codec = FrameCodec::builder().max_frame_len(input.limit()).build();
    let buffer = feed(
        input,
        reference,
        &mut codec,
        |result, buffer, received, index| {
            assert!(
                buffer.capacity() <= capacity_bound(received),
                "the codec's buffer has {} bytes of capacity after {received} bytes received",
                buffer.capacity()
            );
            match result {
                Ok(Some(frame)) => {
                    let expected = reference.frames.get(index).unwrap_or_else(|| {
                        panic!("the codec decoded a frame the stream does not hold: {frame:?}")
                    });
                    assert_eq!(&frame[..], expected.payload, "frame {index} differs");
                    Outcome::Frame
                }
                Ok(None) => Outcome::Wait,
                Err(error) => {
                    expect::too_large(reference, received, &error);
                    Outcome::Rejected
                }
            }
        },
    );
    let Some(mut buffer) = buffer else {
        return;
    };
    expect::end(reference, codec.decode_eof(&mut buffer), Option::is_none);
    // The codec is left clean, whatever the end was.
    assert!(matches!(codec.decode_eof(&mut buffer), Ok(None)));

    // Encoding the decoded frames gives back the bytes they came from.
    let mut encoder = FrameCodec::builder().max_frame_len(input.limit()).build();
    let mut wire = BytesMut::new();
    for frame in &reference.frames {
        encoder
            .encode(frame.payload, &mut wire)
            .expect("a frame that decoded under a limit encodes under it");
    }
    assert_eq!(&wire[..], &input.stream[..reference.complete_len()]);
}

fn check_scanner(input: &Input<'_>, reference: &Reference<'_>) {
    let mut scanner = FrameScanner::new(input.limit());
    let mut start = 0;
    for chunk in input.chunks() {
        let end = start + chunk.len();
        let scan = scanner.scan(chunk);

        let frames_before = reference.frames_by(start);
        let frames_by_end = reference.frames_by(end);
        assert_eq!(
            scan.frames,
            frames_by_end - frames_before,
            "chunk {start}..{end}"
        );
        let complete_len = if frames_by_end > frames_before {
            reference.frames[frames_by_end - 1].end() - start
        } else {
            0
        };
        assert_eq!(scan.complete_len, complete_len, "chunk {start}..{end}");
        assert_eq!(
            scan.accepted_len,
            reference.accepted_by(end).saturating_sub(start),
            "chunk {start}..{end}"
        );
        assert!(scan.complete_len <= scan.accepted_len && scan.accepted_len <= chunk.len());

        let position = reference.position(end);
        match (&scan.error, position) {
            (None, Position::Rejected { .. }) => {
                panic!("no error after a header over the limit, chunk {start}..{end}")
            }
            (Some(error), _) => expect::too_large(reference, end, error),
            (None, _) => {}
        }
        assert_eq!(scanner.frames_total(), frames_by_end as u64);
        assert_eq!(scanner.is_at_boundary(), position == Position::Boundary);
        let remaining = match position {
            Position::InPayload { remaining, .. } => Some(remaining),
            _ => None,
        };
        assert_eq!(scanner.payload_remaining(), remaining, "after {end} bytes");
        start = end;
    }

    expect::end(reference, scanner.finish(), |()| true);
}

/// A reader that returns the input's chunks, one per read (or less, if the
/// caller's buffer is smaller), and `Interrupted` for an empty chunk, since
/// an empty read would mean the end of the stream.
struct ChunkReader<'a> {
    chunks: crate::input::Chunks<'a>,
    current: &'a [u8],
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.current.is_empty() {
            match self.chunks.next() {
                None => return Ok(0),
                Some([]) => return Err(io::ErrorKind::Interrupted.into()),
                Some(chunk) => self.current = chunk,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = &self.current[n..];
        Ok(n)
    }
}

fn check_blocking(input: &Input<'_>, reference: &Reference<'_>) {
    let mut reader = ChunkReader {
        chunks: input.chunks(),
        current: &[],
    };
    for expected in &reference.frames {
        let frame = read_frame(&mut reader, input.limit());
        match frame {
            Ok(Some(payload)) => assert_eq!(payload, expected.payload),
            other => panic!(
                "read_frame missed the frame at {}: {other:?}",
                expected.start
            ),
        }
    }
    expect::end(
        reference,
        read_frame(&mut reader, input.limit()),
        Option::is_none,
    );
}
