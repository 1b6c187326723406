//! [`RelayBuffer`]: the framed echo's state, free of I/O.
//!
//! The connection task reads into this buffer and writes back what it says is
//! ready. Keeping the decisions here, apart from any socket, lets tests drive
//! every case directly and lets any transport reuse them.

use echo_proto::{FrameError, FrameScanner, frame};

/// The default size of a connection's relay buffer: 64 KiB, the size of a
/// typical socket buffer, so one read can take in everything the kernel holds.
pub const DEFAULT_RELAY_BUFFER_LEN: usize = 64 * 1024;

/// The smallest relay buffer allowed: room for a header and some payload.
pub const MIN_RELAY_BUFFER_LEN: usize = 64;

/// A fixed-size buffer that relays frames back to their sender.
///
/// The policy, which the protocol spec states for clients:
/// - A frame that fits in the buffer is echoed once it is complete, so nothing
///   of it goes back if the stream ends inside it.
/// - A frame larger than the buffer is passed back in buffer-sized pieces as
///   its payload arrives, once its header has been accepted. Memory stays at
///   one buffer whatever the frame size.
/// - A header announcing more than the limit stops the relay: every frame
///   before it is echoed, nothing of it.
///
/// After each read, [`ready`](Self::ready) holds the bytes to write back.
/// Once they are written, [`consume_ready`](Self::consume_ready) moves what
/// is left (the start of an incomplete frame) to the front of the buffer, so
/// the buffer always begins at the frame in progress.
///
/// The buffer is allocated by the first read, not before, so a connection that
/// has sent nothing costs no buffer.
#[derive(Debug)]
pub(crate) struct RelayBuffer {
    /// The bytes read and not yet written back. Its capacity is the buffer
    /// size once allocated.
    data: Vec<u8>,
    capacity: usize,
    scanner: FrameScanner,
    /// How much of `data` is ready to be written back.
    ready_len: usize,
    /// How much of `data` belongs to frames whose header was accepted.
    accepted_len: usize,
    /// Whether `data` begins in the middle of a large frame whose first part
    /// has already been written back.
    relaying_large_frame: bool,
    /// Where, in `data`, the first whole frame begins after the last read: 0,
    /// or the end of a large frame's tail. Only used to describe frames.
    whole_frames_from: usize,
    /// The length of a large frame whose relaying began with the last read.
    large_frame_started: Option<usize>,
}

impl RelayBuffer {
    /// A relay buffer of `capacity` bytes (at least [`MIN_RELAY_BUFFER_LEN`])
    /// that rejects frames longer than `max_frame_len`. It allocates nothing
    /// yet.
    pub(crate) fn new(capacity: usize, max_frame_len: usize) -> Self {
        Self {
            data: Vec::new(),
            capacity: capacity.max(MIN_RELAY_BUFFER_LEN),
            scanner: FrameScanner::new(max_frame_len),
            ready_len: 0,
            accepted_len: 0,
            relaying_large_frame: false,
            whole_frames_from: 0,
            large_frame_started: None,
        }
    }

    /// The buffer to read into: reading appends to it, into its spare
    /// capacity, which is never empty.
    pub(crate) fn read_target(&mut self) -> &mut Vec<u8> {
        if self.data.capacity() == 0 {
            self.data = Vec::with_capacity(self.capacity);
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
        let chunk_start = self.data.len() - n;
        // Everything before the chunk is the frame in progress. If it is a large
        // frame being relayed, the chunk first finishes its payload.
        let large_frame_tail = if self.relaying_large_frame {
            self.scanner.payload_remaining().unwrap_or(0)
        } else {
            0
        };
        let scan = self.scanner.scan(&self.data[chunk_start..]);
        if scan.accepted_len > 0 {
            self.accepted_len = chunk_start + scan.accepted_len;
        }
        if scan.frames > 0 {
            self.ready_len = chunk_start + scan.complete_len;
            if self.relaying_large_frame {
                self.relaying_large_frame = false;
                self.whole_frames_from = chunk_start + large_frame_tail;
            }
        }
        if let Some(error) = scan.error {
            return Err(error);
        }
        if self.ready_len == 0 && self.data.len() == self.data.capacity() {
            // The frame in progress fills the whole buffer, so it is larger than
            // the buffer and can never be echoed whole: pass on what has arrived.
            // Its header is complete and accepted, since the buffer is longer
            // than a header.
            if !self.relaying_large_frame {
                self.large_frame_started =
                    self.data.first_chunk().map(|h| frame::decode_header(*h));
            }
            self.ready_len = self.accepted_len;
            self.relaying_large_frame = true;
        }
        Ok(())
    }

    /// The bytes to write back now.
    pub(crate) fn ready(&self) -> &[u8] {
        &self.data[..self.ready_len]
    }

    /// The whole frames in [`ready`](Self::ready), headers included, for
    /// describing them; the pieces of a large frame are left out.
    pub(crate) fn whole_frames(&self) -> &[u8] {
        if self.relaying_large_frame {
            &[]
        } else {
            &self.data[self.whole_frames_from..self.ready_len]
        }
    }

    /// The payload length of a large frame whose relaying began with the
    /// last read, for describing it.
    pub(crate) fn large_frame_started(&self) -> Option<usize> {
        self.large_frame_started
    }

    /// Drops the ready bytes once they have been written back.
    pub(crate) fn consume_ready(&mut self) {
        self.data.drain(..self.ready_len);
        self.accepted_len -= self.ready_len;
        self.ready_len = 0;
        self.whole_frames_from = 0;
        self.large_frame_started = None;
    }

    /// Whether the stream so far ends at a frame boundary with nothing held,
    /// so that the connection can close without cutting a frame short.
    pub(crate) fn is_idle(&self) -> bool {
        self.data.is_empty() && self.scanner.is_at_boundary()
    }

    /// How many frames have been completed.
    pub(crate) fn frames(&self) -> u64 {
        self.scanner.frames_total()
    }

    /// Declares the end of the stream: an error if it ends inside a frame.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        self.scanner.finish()
    }
}
