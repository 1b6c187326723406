//! [`Reference`]: the frames of a whole stream, found straight from
//! PROTOCOL.md.
//!
//! The crate's decoders all work incrementally, a chunk at a time, with state
//! carried between chunks: that is where their bugs would be. This reference
//! looks at the whole stream at once, with none of that state, so the targets
//! can ask it what any decoder should have seen after any number of bytes.

/// The length of a frame header, as the specification states it.
pub const HEADER_LEN: usize = 4;

/// One complete frame of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Where its header starts in the stream.
    pub start: usize,
    /// Its payload.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Where it ends in the stream: the offset just after its last byte.
    pub fn end(&self) -> usize {
        self.start + HEADER_LEN + self.payload.len()
    }
}

/// How the stream ends, after its complete frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// At a frame boundary.
    Clean,
    /// Inside a header that starts at `start`.
    InHeader {
        /// Where the header starts.
        start: usize,
    },
    /// Inside the payload of an accepted frame of `len` payload bytes.
    InPayload {
        /// Where its header starts.
        start: usize,
        /// Its announced payload length.
        len: usize,
    },
    /// At a header that announces more than the limit; the stream means
    /// nothing after it.
    TooLarge {
        /// Where the header starts.
        start: usize,
        /// The announced payload length.
        len: usize,
    },
}

/// Where a decoder stands after a given number of bytes of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Between frames (or at the very start).
    Boundary,
    /// Inside a header that starts at `start`.
    InHeader {
        /// Where the header starts.
        start: usize,
    },
    /// Inside an accepted frame's payload, with `remaining` bytes to come.
    InPayload {
        /// Where its header starts.
        start: usize,
        /// Payload bytes still to come (never 0: then the frame is complete).
        remaining: usize,
    },
    /// Past a complete header that announces more than the limit.
    Rejected {
        /// Where the header starts.
        start: usize,
        /// The announced payload length.
        len: usize,
    },
}

/// The frames of a whole stream under a limit, and how the stream ends.
#[derive(Debug, Clone)]
pub struct Reference<'a> {
    /// The maximum frame length it was read with.
    pub limit: usize,
    /// The stream's length.
    pub total: usize,
    /// Every complete frame before the end, in order.
    pub frames: Vec<Frame<'a>>,
    /// What follows the complete frames.
    pub end: End,
}

impl<'a> Reference<'a> {
    /// Reads `stream` as the specification describes: a 4-byte big-endian
    /// length `N`, then `N` payload bytes, again and again; a length above
    /// `limit` is a protocol error.
    pub fn parse(stream: &'a [u8], limit: usize) -> Self {
        let mut frames = Vec::new();
        let mut start = 0;
        let end = loop {
            let rest = &stream[start..];
            if rest.is_empty() {
                break End::Clean;
            }
            if rest.len() < HEADER_LEN {
                break End::InHeader { start };
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > limit {
                break End::TooLarge { start, len };
            }
            let Some(payload) = rest[HEADER_LEN..].get(..len) else {
                break End::InPayload { start, len };
            };
            frames.push(Frame { start, payload });
            start += HEADER_LEN + len;
        };
        Reference {
            limit,
            total: stream.len(),
            frames,
            end,
        }
    }

    /// Where the complete frames end: everything before this offset is whole
    /// frames.
    pub fn complete_len(&self) -> usize {
        self.frames.last().map_or(0, Frame::end)
    }

    /// How many frames are complete within the first `received` bytes.
    pub fn frames_by(&self, received: usize) -> usize {
        self.frames.partition_point(|frame| frame.end() <= received)
    }

    /// Where a decoder stands after the first `received` bytes.
    ///
    /// # Panics
    ///
    /// If `received` is beyond the stream.
    pub fn position(&self, received: usize) -> Position {
        assert!(received <= self.total, "{received} is beyond the stream");
        // Inside one of the complete frames?
        let index = self.frames_by(received);
        if let Some(frame) = self.frames.get(index) {
            return inside(frame.start, frame.payload.len(), received);
        }
        // At or past the end of the complete frames: inside what follows.
        match self.end {
            End::Clean => Position::Boundary,
            End::InHeader { start } if received == start => Position::Boundary,
            End::InHeader { start } => Position::InHeader { start },
            End::InPayload { start, len } => inside(start, len, received),
            End::TooLarge { start, .. } if received == start => Position::Boundary,
            End::TooLarge { start, .. } if received < start + HEADER_LEN => {
                Position::InHeader { start }
            }
            End::TooLarge { start, len } => Position::Rejected { start, len },
        }
    }

    /// How much of the first `received` bytes belongs to frames whose header
    /// has been accepted: all of them, unless they end inside a header or
    /// past a rejected one, which are left out.
    pub fn accepted_by(&self, received: usize) -> usize {
        match self.position(received) {
            Position::Boundary | Position::InPayload { .. } => received,
            Position::InHeader { start } | Position::Rejected { start, .. } => start,
        }
    }
}

/// The position `received` bytes into a stream, inside (or at either end of)
/// the frame of `len` payload bytes whose header starts at `start`.
fn inside(start: usize, len: usize, received: usize) -> Position {
    let end = start + HEADER_LEN + len;
    if received == start || received == end {
        Position::Boundary
    } else if received < start + HEADER_LEN {
        Position::InHeader { start }
    } else {
        Position::InPayload {
            start,
            remaining: end - received,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_frames_of_the_spec_example() {
        // The frames `a` and the empty payload, from PROTOCOL.md.
        let stream = b"\x00\x00\x00\x01a\x00\x00\x00\x00";
        let reference = Reference::parse(stream, 8);
        assert_eq!(
            reference.frames,
            [
                Frame {
                    start: 0,
                    payload: b"a"
                },
                Frame {
                    start: 5,
                    payload: b""
                }
            ]
        );
        assert_eq!(reference.end, End::Clean);
        assert_eq!(reference.complete_len(), 9);
        let positions: Vec<Position> = (0..=9).map(|n| reference.position(n)).collect();
        assert_eq!(
            positions,
            [
                Position::Boundary,
                Position::InHeader { start: 0 },
                Position::InHeader { start: 0 },
                Position::InHeader { start: 0 },
                Position::InPayload {
                    start: 0,
                    remaining: 1
                },
                Position::Boundary,
                Position::InHeader { start: 5 },
                Position::InHeader { start: 5 },
                Position::InHeader { start: 5 },
                Position::Boundary,
            ]
        );
        assert_eq!(reference.frames_by(4), 0);
        assert_eq!(reference.frames_by(5), 1);
        assert_eq!(reference.frames_by(9), 2);
        assert_eq!(reference.accepted_by(3), 0);
        assert_eq!(reference.accepted_by(4), 4);
        assert_eq!(reference.accepted_by(7), 5);
    }

    #[test]
    fn tells_how_a_stream_ends() {
        let cases: [(&[u8], usize, End); 5] = [
            (b"", 8, End::Clean),
            (b"\x00\x00", 8, End::InHeader { start: 0 }),
            (
                b"\x00\x00\x00\x03ab",
                8,
                End::InPayload { start: 0, len: 3 },
            ),
            (b"\x00\x00\x00\x09", 8, End::TooLarge { start: 0, len: 9 }),
            (
                b"\x00\x00\x00\x00\x00\x00\x00\x09xyz",
                8,
                End::TooLarge { start: 4, len: 9 },
            ),
        ];
        for (stream, limit, end) in cases {
            assert_eq!(Reference::parse(stream, limit).end, end, "{stream:?}");
        }
    }

    #[test]
    fn positions_around_a_rejected_header() {
        let stream = b"\x00\x00\x00\x00\xff\xff\xff\xffrest";
        let reference = Reference::parse(stream, 16);
        assert_eq!(reference.position(4), Position::Boundary);
        assert_eq!(reference.position(6), Position::InHeader { start: 4 });
        let rejected = Position::Rejected {
            start: 4,
            len: u32::MAX as usize,
        };
        assert_eq!(reference.position(8), rejected);
        assert_eq!(reference.position(12), rejected);
        assert_eq!(reference.accepted_by(12), 4);
    }
}
