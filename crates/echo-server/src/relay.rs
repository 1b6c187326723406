//! [`RelayBuffer`]: the echo's state, free of I/O, framed or raw.
//!
//! The connection task reads into this buffer and writes back what it says is
//! ready. Keeping the decisions here, apart from any socket, lets tests drive
//! every case directly and lets any transport reuse them.

use std::num::NonZeroU32;

use echo_proto::{FrameError, FrameScanner};

use crate::Mode;
use crate::buffer_pool::BufferPool;

/// The default size of a connection's relay buffer: 64 KiB, the size of a
/// typical socket buffer, so one read can take in everything the kernel holds.
pub const DEFAULT_RELAY_BUFFER_LEN: usize = 64 * 1024;

/// The smallest relay buffer allowed: room for a header and some payload.
pub const MIN_RELAY_BUFFER_LEN: usize = 64;

/// The largest relay buffer: a longer one is cut to this length.
pub const MAX_RELAY_BUFFER_LEN: usize = u32::MAX as usize;

/// Bytes left unused at the front of every relay buffer, before the bytes it
/// relays, so that the echo does not start at a page boundary.
///
/// Buffers this large come page-aligned from the allocator, and a TLS record
/// puts its payload 5 bytes into a buffer of its own. Encrypting an echo then
/// copied it to a destination 5 bytes past its source's offset in a page. On
/// AMD processors since Zen 3, whose "fast short rep movsb" glibc's `memcpy`
/// uses for blocks of a few KiB and more, a copy whose destination is 1 to 31
/// bytes ahead of its source (modulo 4 KiB) runs at about 2 GB/s instead of
/// 40 to 80 (`xtask/bench/memcpy_distance.c` measures it; docs/performance.md
/// has the figures). 128 bytes keep both of the echo's copies over TLS, into
/// the buffer and out of it, well away from that distance.
pub(crate) const HEADROOM: usize = 128;

/// The capacity a pool's buffers need to relay `len` bytes at a time.
pub(crate) const fn pooled_len(len: usize) -> usize {
    HEADROOM.saturating_add(len)
}

/// A fixed-size buffer that relays bytes back to their sender.
///
/// In [`Mode::Raw`] every byte read is ready to go back at once. In
/// [`Mode::Framed`] the policy, which the protocol spec states for clients, is:
/// - A frame that fits in the buffer is echoed once it is complete, so nothing
///   of it goes back if the stream ends inside it.
/// - A frame larger than the buffer is passed back as its payload arrives,
///   from the read that brings its header on. Memory stays at one buffer
///   whatever the frame size.
/// - A header announcing more than the limit stops the relay: every frame
///   before it is echoed, nothing of it.
///
/// After each read, [`ready`](Self::ready) holds the bytes to write back.
/// Once they are written, [`consume_ready`](Self::consume_ready) moves what
/// is left (the start of an incomplete frame) to the front of the buffer,
/// just past its [`HEADROOM`], so the buffer always begins at the frame in
/// progress.
///
/// The buffer comes from a [`BufferPool`] when a read needs it and can go back
/// whenever it holds nothing, so an idle connection holds no buffer.
#[derive(Debug)]
pub(crate) struct RelayBuffer {
    /// The bytes read and not yet written back, after [`HEADROOM`] unused
    /// ones. Its capacity is the pool's buffer size while it is held, 0
    /// otherwise.
    data: Vec<u8>,
    /// The frame structure of the stream; `None` in raw mode.
    scanner: Option<FrameScanner>,
    // The offsets into `data`, counted from the end of the headroom, are
    // `u32`s, as the buffer relays at most `MAX_RELAY_BUFFER_LEN` bytes:
    // every idle connection holds a relay, and they save 24 bytes of each.
    /// How much of `data` is ready to be written back.
    ready_len: u32,
    /// How much of `data` belongs to frames whose header was accepted.
    accepted_len: u32,
    /// Whether `data` begins in the middle of a large frame whose first part
    /// has already been written back.
    relaying_large_frame: bool,
    /// Where, in `data`, the whole frames of the last read begin (0, or the
    /// end of a large frame's tail) and end. Only used to describe frames.
    whole_frames_from: u32,
    whole_frames_end: u32,
    /// The length of a large frame whose relaying began with the last read
    /// (a frame's length is a `u32`, and a large one is never empty).
    large_frame_started: Option<NonZeroU32>,
    /// How many bytes have been written back in all.
    echoed_total: u64,
}

/// An offset into a relay buffer, which is at most [`MAX_RELAY_BUFFER_LEN`]
/// bytes long.
fn offset(len: usize) -> u32 {
    u32::try_from(len).expect("a relay buffer is at most MAX_RELAY_BUFFER_LEN bytes")
}

impl RelayBuffer {
    /// A relay for `mode` that, when framed, rejects frames longer than
    /// `max_frame_len`. It holds no buffer yet.
    pub(crate) fn new(mode: Mode, max_frame_len: usize) -> Self {
        Self {
            data: Vec::new(),
            scanner: match mode {
                Mode::Framed => Some(FrameScanner::new(max_frame_len)),
                Mode::Raw => None,
            },
            ready_len: 0,
            accepted_len: 0,
            relaying_large_frame: false,
            whole_frames_from: 0,
            whole_frames_end: 0,
            large_frame_started: None,
            echoed_total: 0,
        }
    }

    /// The buffer to read into, taken from `pool` if none is held: reading
    /// appends to it, into its spare capacity, which is never empty.
    pub(crate) fn read_target(&mut self, pool: &BufferPool) -> &mut Vec<u8> {
        if self.data.capacity() == 0 {
            self.data = pool.take();
            self.data.resize(HEADROOM, 0);
        }
        debug_assert!(
            self.data.len() < self.data.capacity(),
            "consume_ready always leaves room to read"
        );
        &mut self.data
    }

    /// Takes in the `n` bytes that the last read appended, and works out what
    /// is now ready to go back.
    ///
    /// On a [`FrameError::FrameTooLarge`], [`ready`](Self::ready) still holds
    /// the complete frames before the bad header: write them, then close.
    pub(crate) fn commit_read(&mut self, n: usize) -> Result<(), FrameError> {
        let Some(scanner) = &mut self.scanner else {
            self.ready_len = offset(self.data.len() - HEADROOM);
            self.accepted_len = self.ready_len;
            return Ok(());
        };
        // Where the chunk starts among the bytes relayed.
        let chunk_start = self.data.len() - HEADROOM - n;
        // Everything before the chunk is the frame in progress. If it is a large
        // frame being relayed, the chunk first finishes its payload.
        let large_frame_tail = if self.relaying_large_frame {
            scanner.payload_remaining().unwrap_or(0)
        } else {
            0
        };
        let scan = scanner.scan(&self.data[HEADROOM + chunk_start..]);
        if scan.accepted_len > 0 {
            self.accepted_len = offset(chunk_start + scan.accepted_len);
        }
        if scan.frames > 0 {
            self.ready_len = offset(chunk_start + scan.complete_len);
            self.whole_frames_end = self.ready_len;
            if self.relaying_large_frame {
                self.relaying_large_frame = false;
                self.whole_frames_from = offset(chunk_start + large_frame_tail);
            }
        }
        if let Some(error) = scan.error {
            return Err(error);
        }
        if self.relaying_large_frame {
            // No frame ended in this read (that would have ended the relaying):
            // everything that came belongs to the large frame. Pass it on.
            self.ready_len = self.accepted_len;
        } else if let Some(remaining) = scanner.payload_remaining() {
            // The frame in progress starts where the whole frames end. If it
            // is larger than the buffer it can never be echoed whole: pass on
            // what has arrived at once, and the rest as it comes, rather than
            // move it to the front of the buffer and wait for it to fill.
            let in_progress = self.buffered().len() - self.ready_len as usize;
            if in_progress + remaining > self.data.capacity() - HEADROOM {
                self.large_frame_started = self.buffered()[self.ready_len as usize..]
                    .first_chunk()
                    .and_then(|header| NonZeroU32::new(u32::from_be_bytes(*header)));
                self.ready_len = self.accepted_len;
                self.relaying_large_frame = true;
            }
        }
        Ok(())
    }

    /// The bytes to write back now.
    pub(crate) fn ready(&self) -> &[u8] {
        &self.buffered()[..self.ready_len as usize]
    }

    /// The bytes read and not yet written back.
    fn buffered(&self) -> &[u8] {
        self.data.get(HEADROOM..).unwrap_or_default()
    }

    /// The whole frames in [`ready`](Self::ready), headers included, for
    /// describing them; the pieces of a large frame are left out, and so is
    /// everything in raw mode.
    pub(crate) fn whole_frames(&self) -> &[u8] {
        if self.scanner.is_none() {
            &[]
        } else {
            &self.buffered()[self.whole_frames_from as usize..self.whole_frames_end as usize]
        }
    }

    /// The payload length of a large frame whose relaying began with the
    /// last read, for describing it.
    pub(crate) fn large_frame_started(&self) -> Option<usize> {
        self.large_frame_started.map(|len| len.get() as usize)
    }

    /// Drops the ready bytes once they have been written back.
    pub(crate) fn consume_ready(&mut self) {
        self.echoed_total += u64::from(self.ready_len);
        if self.ready_len > 0 {
            self.data
                .drain(HEADROOM..HEADROOM + self.ready_len as usize);
        }
        self.accepted_len -= self.ready_len;
        self.ready_len = 0;
        self.whole_frames_from = 0;
        self.whole_frames_end = 0;
        self.large_frame_started = None;
    }

    /// How many bytes have been written back in all: every ready byte
    /// consumed.
    pub(crate) fn bytes_echoed(&self) -> u64 {
        self.echoed_total
    }

    /// Whether the last read filled the buffer: the peer may well have more
    /// to send at once.
    pub(crate) fn is_full(&self) -> bool {
        self.data.len() == self.data.capacity() && self.holds_buffer()
    }

    /// Whether a buffer is held.
    pub(crate) fn holds_buffer(&self) -> bool {
        self.data.capacity() > 0
    }

    /// Whether the relay follows frames (framed mode) or not (raw mode).
    pub(crate) fn is_framed(&self) -> bool {
        self.scanner.is_some()
    }

    /// Gives the buffer back to `pool` if it holds nothing.
    pub(crate) fn release_if_empty(&mut self, pool: &BufferPool) {
        if self.buffered().is_empty() && self.data.capacity() > 0 {
            pool.give(std::mem::take(&mut self.data));
        }
    }

    /// Whether the stream so far ends at a frame boundary with nothing held,
    /// so that the connection can close without cutting a frame short.
    pub(crate) fn is_idle(&self) -> bool {
        self.buffered().is_empty()
            && self
                .scanner
                .as_ref()
                .is_none_or(FrameScanner::is_at_boundary)
    }

    /// How many frames have been completed; always 0 in raw mode.
    pub(crate) fn frames(&self) -> u64 {
        self.scanner.as_ref().map_or(0, FrameScanner::frames_total)
    }

    /// Declares the end of the stream: an error if it ends inside a frame.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        self.scanner.as_ref().map_or(Ok(()), FrameScanner::finish)
    }
}

#[cfg(test)]
mod tests {
    use echo_proto::frame;

    use super::*;

    const CAPACITY: usize = MIN_RELAY_BUFFER_LEN;

    /// A pool that keeps no spare buffers, so tests running at once share
    /// nothing.
    static POOL: BufferPool = BufferPool::new(pooled_len(CAPACITY), 0);

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    /// Feeds `input` to the relay in reads of at most `read_len` bytes, the way
    /// the connection task does, and returns everything written back and the
    /// first error.
    fn feed(
        relay: &mut RelayBuffer,
        input: &[u8],
        read_len: usize,
    ) -> (Vec<u8>, Option<FrameError>) {
        let mut echoed = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let target = relay.read_target(&POOL);
            let room = target.capacity() - target.len();
            let n = room.min(read_len).min(rest.len());
            target.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            let result = relay.commit_read(n);
            echoed.extend_from_slice(relay.ready());
            relay.consume_ready();
            if let Err(error) = result {
                return (echoed, Some(error));
            }
        }
        (echoed, None)
    }

    #[test]
    fn nothing_is_allocated_before_the_first_read() {
        let relay = RelayBuffer::new(Mode::Framed, 1024);
        assert_eq!(relay.data.capacity(), 0);
        assert!(relay.is_idle());
    }

    #[test]
    fn small_frames_are_echoed_only_once_complete() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        let wire = frame(b"hello");
        let (echoed, error) = feed(&mut relay, &wire[..6], 64);
        assert!(echoed.is_empty(), "a partial frame was echoed: {echoed:?}");
        assert!(error.is_none());
        assert!(!relay.is_idle());
        let (echoed, _) = feed(&mut relay, &wire[6..], 64);
        assert_eq!(echoed, wire);
        assert!(relay.is_idle());
        assert_eq!(relay.frames(), 1);
    }

    #[test]
    fn pipelined_frames_are_echoed_together() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        let wire: Vec<u8> = [frame(b"a"), frame(b""), frame(b"bc")].concat();
        let target = relay.read_target(&POOL);
        target.extend_from_slice(&wire);
        relay.commit_read(wire.len()).unwrap();
        assert_eq!(
            relay.ready(),
            &wire[..],
            "all three frames go back in one write"
        );
        let payloads: Vec<&[u8]> = frame::payloads(relay.whole_frames()).collect();
        assert_eq!(payloads, [&b"a"[..], b"", b"bc"]);
    }

    #[test]
    fn any_split_of_any_stream_is_echoed_exactly() {
        let payloads: Vec<Vec<u8>> = vec![
            vec![],
            b"x".to_vec(),
            vec![7; CAPACITY - 4],
            vec![8; CAPACITY - 3],
            vec![9; 5 * CAPACITY + 3],
            b"tail".to_vec(),
        ];
        let wire: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        for read_len in 1..=CAPACITY + 1 {
            let mut relay = RelayBuffer::new(Mode::Framed, 1024);
            let (echoed, error) = feed(&mut relay, &wire, read_len);
            assert!(error.is_none(), "read_len {read_len}: {error:?}");
            assert_eq!(echoed, wire, "read_len {read_len}");
            assert!(relay.is_idle(), "read_len {read_len}");
            assert_eq!(relay.frames(), payloads.len() as u64);
        }
    }

    #[test]
    fn memory_stays_at_one_buffer_for_a_frame_larger_than_it() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1 << 20);
        let wire = frame(&vec![1; 100 * CAPACITY]);
        let (echoed, error) = feed(&mut relay, &wire, CAPACITY);
        assert!(error.is_none());
        assert_eq!(echoed, wire);
        assert_eq!(relay.data.capacity(), pooled_len(CAPACITY));
    }

    #[test]
    fn a_large_frame_is_relayed_in_pieces_and_described_once() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        let payload = vec![3; 2 * CAPACITY];
        let wire: Vec<u8> = [frame(&payload), frame(b"after")].concat();
        let target = relay.read_target(&POOL);
        target.extend_from_slice(&wire[..CAPACITY]);
        relay.commit_read(CAPACITY).unwrap();
        assert_eq!(
            relay.ready(),
            &wire[..CAPACITY],
            "a full buffer of a large frame goes back"
        );
        assert_eq!(relay.large_frame_started(), Some(payload.len()));
        assert!(relay.whole_frames().is_empty());
        relay.consume_ready();

        // The rest of the large frame and the whole next frame.
        let rest = &wire[CAPACITY..];
        let mut echoed = wire[..CAPACITY].to_vec();
        let (more, error) = feed(&mut relay, rest, CAPACITY);
        assert!(error.is_none());
        echoed.extend_from_slice(&more);
        assert_eq!(echoed, wire);
    }

    #[test]
    fn a_frame_larger_than_the_buffer_is_relayed_from_its_first_bytes() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        // The header and ten bytes of a 1000-byte payload: it can never fit.
        let start: Vec<u8> = [&1000u32.to_be_bytes()[..], &[7; 10]].concat();
        relay.read_target(&POOL).extend_from_slice(&start);
        relay.commit_read(start.len()).unwrap();
        assert_eq!(
            relay.ready(),
            &start[..],
            "waiting for a full buffer would add latency for nothing"
        );
        assert_eq!(relay.large_frame_started(), Some(1000));
        relay.consume_ready();
        relay.read_target(&POOL).extend_from_slice(&[8; 3]);
        relay.commit_read(3).unwrap();
        assert_eq!(relay.ready(), &[8; 3], "and the rest as it comes");
    }

    #[test]
    fn a_large_frame_after_whole_ones_in_one_read_is_relayed_at_once() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        // Two whole frames, then the header and first bytes of a frame that
        // cannot fit: nothing is held back, so nothing is moved.
        let start: Vec<u8> = [
            frame(b"one"),
            frame(b"two"),
            [&500u32.to_be_bytes()[..], &[9; 20]].concat(),
        ]
        .concat();
        relay.read_target(&POOL).extend_from_slice(&start);
        relay.commit_read(start.len()).unwrap();
        assert_eq!(relay.ready(), &start[..]);
        assert_eq!(relay.large_frame_started(), Some(500));
        let payloads: Vec<&[u8]> = frame::payloads(relay.whole_frames()).collect();
        assert_eq!(payloads, [&b"one"[..], b"two"]);
        relay.consume_ready();
        assert!(relay.buffered().is_empty());
        relay.read_target(&POOL).extend_from_slice(&[8; 5]);
        relay.commit_read(5).unwrap();
        assert_eq!(relay.ready(), &[8; 5], "and the rest as it comes");
        assert!(relay.whole_frames().is_empty());
    }

    #[test]
    fn the_relayed_bytes_start_past_the_headroom() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        let start_of =
            |relay: &RelayBuffer| relay.ready().as_ptr() as usize - relay.data.as_ptr() as usize;
        let wire = [frame(b"whole"), frame(b"partial")].concat();
        relay.read_target(&POOL).extend_from_slice(&wire[..12]);
        relay.commit_read(12).unwrap();
        assert_eq!(relay.ready(), &wire[..9]);
        assert_eq!(start_of(&relay), HEADROOM);
        relay.consume_ready();
        // What is left of the frame in progress moves up to the headroom's
        // end, not to the buffer's start.
        assert_eq!(relay.data.len(), HEADROOM + 3);
        relay.read_target(&POOL).extend_from_slice(&wire[12..]);
        relay.commit_read(wire.len() - 12).unwrap();
        assert_eq!(relay.ready(), &wire[9..]);
        assert_eq!(start_of(&relay), HEADROOM);
        assert_eq!(relay.data.capacity(), pooled_len(CAPACITY));
    }

    #[test]
    fn a_frame_that_fits_is_held_until_complete() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        let wire = frame(&[1; CAPACITY - 4]);
        relay
            .read_target(&POOL)
            .extend_from_slice(&wire[..CAPACITY - 1]);
        relay.commit_read(CAPACITY - 1).unwrap();
        assert!(relay.ready().is_empty());
        relay.read_target(&POOL).push(1);
        relay.commit_read(1).unwrap();
        assert_eq!(relay.ready(), &wire[..]);
    }

    #[test]
    fn whole_frames_after_a_large_frame_are_described() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        let wire: Vec<u8> = [frame(&[5; CAPACITY]), frame(b"next")].concat();
        let target = relay.read_target(&POOL);
        target.extend_from_slice(&wire[..CAPACITY]);
        relay.commit_read(CAPACITY).unwrap();
        relay.consume_ready();
        let rest = &wire[CAPACITY..];
        relay.read_target(&POOL).extend_from_slice(rest);
        relay.commit_read(rest.len()).unwrap();
        assert_eq!(relay.ready(), rest);
        let payloads: Vec<&[u8]> = frame::payloads(relay.whole_frames()).collect();
        assert_eq!(payloads, [&b"next"[..]]);
    }

    #[test]
    fn an_oversize_header_stops_after_the_frames_before_it() {
        let mut relay = RelayBuffer::new(Mode::Framed, 8);
        let good = [frame(b"ok"), frame(b"fine")].concat();
        let wire: Vec<u8> = [
            good.clone(),
            9u32.to_be_bytes().to_vec(),
            b"123456789".to_vec(),
        ]
        .concat();
        for read_len in 1..=wire.len() {
            let mut relay_ = RelayBuffer::new(Mode::Framed, 8);
            let (echoed, error) = feed(&mut relay_, &wire, read_len);
            assert_eq!(echoed, good, "read_len {read_len}");
            assert!(
                matches!(error, Some(FrameError::FrameTooLarge { len: 9, max: 8 })),
                "read_len {read_len}: {error:?}"
            );
        }
        let (_, error) = feed(&mut relay, &8u32.to_be_bytes(), 64);
        assert!(error.is_none(), "a frame of exactly the limit is fine");
    }

    #[test]
    fn finish_reports_a_stream_cut_inside_a_frame() {
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        feed(&mut relay, &[0, 0, 0, 3, b'a'], 64);
        assert!(matches!(
            relay.finish(),
            Err(FrameError::Truncated {
                received: 5,
                expected: 7
            })
        ));
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        feed(&mut relay, &frame(b"abc"), 64);
        assert!(relay.finish().is_ok());
    }

    #[test]
    fn raw_mode_sends_back_every_byte_at_once() {
        let mut relay = RelayBuffer::new(Mode::Raw, 0);
        // Bytes that would be an oversize header in framed mode.
        let input = [0xff, 0xff, 0xff, 0xff, b'a'];
        for read_len in 1..=input.len() {
            let (echoed, error) = feed(&mut relay, &input, read_len);
            assert!(error.is_none());
            assert_eq!(echoed, input);
            assert!(relay.is_idle());
            assert!(relay.finish().is_ok());
        }
        assert_eq!(relay.frames(), 0);
        assert!(relay.whole_frames().is_empty());
    }

    #[test]
    fn the_buffer_goes_back_to_the_pool_only_when_empty() {
        let pool = BufferPool::new(pooled_len(CAPACITY), 1);
        let mut relay = RelayBuffer::new(Mode::Framed, 1024);
        relay.read_target(&pool).extend_from_slice(&[0, 0, 0, 1]);
        relay.commit_read(4).unwrap();
        relay.release_if_empty(&pool);
        assert_eq!(
            relay.data.capacity(),
            pooled_len(CAPACITY),
            "a partial frame keeps its buffer"
        );
        relay.read_target(&pool).push(b'x');
        relay.commit_read(1).unwrap();
        relay.consume_ready();
        relay.release_if_empty(&pool);
        assert_eq!(relay.data.capacity(), 0, "an idle relay holds no buffer");
        assert!(relay.is_idle());
    }
}
