//! [`SentBytes`]: a connection's messages as they go on the wire, kept in a
//! ring, from which the writer sends them and against which the reader
//! verifies the echoes of a whole read in one comparison.
//!
//! Building each message and checking each echo on its own costs a few
//! nanoseconds apiece (finding the echo, working out its message, copying
//! and comparing the bytes); for small pipelined messages that is a large
//! share of the client's time, where a server only relays them. The bodies
//! of messages [`BODY_PERIOD`] apart are the same, so a ring of at least that
//! many slots holds every message's bytes once it is made: sending a message
//! rewrites the 12 bytes of its identity in its slot, and a batch goes out as
//! a span of the ring. The reader compares what a read brought with the same
//! span, and goes through the echoes one by one (against the [`Pattern`])
//! only to say what is wrong when something is.

use std::ops::Range;

use crate::payload::{BODY_PERIOD, ID_LEN, Pattern};

/// The most bytes a connection keeps: a ring of messages larger than this
/// (deep windows, or messages over a kilobyte, whose cost per echo matters
/// little) is not kept, and its messages are built and checked one by one.
const MAX_KEPT_BYTES: usize = 256 * 1024;

/// The wire bytes of the messages of one stream, in a ring of one slot per
/// message: message `seq` is in slot `seq % slots`. A slot is rewritten when
/// its next message is sent, and not before the reader is done with the
/// message there, so what the reader compares is what was sent.
#[derive(Debug)]
pub(super) struct SentBytes {
    stream: u32,
    /// The bytes of one message on the wire, frame header included.
    message_len: usize,
    /// Where a message's identity starts in its slot: after its header.
    id_at: usize,
    /// How much of the identity a message carries (less than all of it when
    /// the message is shorter).
    id_len: usize,
    /// The number of slots less one: the slot of message `seq` is
    /// `seq & mask`, a mask rather than a division, which would cost more
    /// than the rest of stamping a message.
    mask: u64,
    bytes: Box<[u8]>,
}

impl SentBytes {
    /// The messages of `pattern` for `stream`, each after `header` on the
    /// wire, in a ring of `min_slots` slots (a power of two) or of
    /// [`BODY_PERIOD`], whichever is more; `None` when that is more than is worth keeping,
    /// or when a message is empty on the wire, which leaves nothing to keep.
    pub(super) fn new(
        pattern: &Pattern,
        stream: u32,
        header: &[u8],
        min_slots: usize,
    ) -> Option<Self> {
        let slots = min_slots.max(BODY_PERIOD as usize);
        debug_assert!(slots.is_power_of_two());
        let message_len = header.len() + pattern.len();
        let len = slots.checked_mul(message_len)?;
        if message_len == 0 || len > MAX_KEPT_BYTES {
            return None;
        }
        let mut bytes = Vec::with_capacity(len);
        for seq in 0..slots as u64 {
            bytes.extend_from_slice(header);
            pattern.message(stream, seq).append_to(&mut bytes);
        }
        Some(Self {
            stream,
            message_len,
            id_at: header.len(),
            id_len: pattern.len().min(ID_LEN),
            mask: slots as u64 - 1,
            bytes: bytes.into_boxed_slice(),
        })
    }

    /// Makes the slot of message `seq` hold that message: it held one a
    /// multiple of [`BODY_PERIOD`] before, with the same body, so only the
    /// identity is rewritten.
    pub(super) fn stamp(&mut self, seq: u64) {
        let start = self.slot_start(seq) + self.id_at;
        let id = &mut self.bytes[start..start + self.id_len];
        Pattern::write_identity(self.stream, seq, id);
    }

    /// The wire bytes of `count` messages from number `first_seq` on (at
    /// most a ring's worth), as stamped: up to the end of the ring, then from
    /// its start.
    pub(super) fn wire(&self, first_seq: u64, count: usize) -> (&[u8], &[u8]) {
        let (head, tail) = self.spans(first_seq, count * self.message_len);
        (&self.bytes[head], &self.bytes[tail])
    }

    /// Whether `echoed`, whole messages from number `first_seq` on (at most
    /// a ring's worth), is exactly what was sent.
    pub(super) fn matches(&self, first_seq: u64, echoed: &[u8]) -> bool {
        let (head, tail) = self.spans(first_seq, echoed.len());
        let (echoed_head, echoed_tail) = echoed.split_at(head.len());
        self.bytes[head] == *echoed_head && self.bytes[tail] == *echoed_tail
    }

    /// The bytes of one message on the wire.
    pub(super) fn message_len(&self) -> usize {
        self.message_len
    }

    /// Where the slot of message `seq` starts.
    fn slot_start(&self, seq: u64) -> usize {
        (seq & self.mask) as usize * self.message_len
    }

    /// Where `len` bytes of messages from number `first_seq` on are in the
    /// ring: up to its end, then from its start.
    fn spans(&self, first_seq: u64, len: usize) -> (Range<usize>, Range<usize>) {
        debug_assert!(len % self.message_len == 0 && len <= self.bytes.len());
        let start = self.slot_start(first_seq);
        let head_end = (start + len).min(self.bytes.len());
        (start..head_end, 0..len - (head_end - start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"HEAD";

    /// Message `seq` of `stream`, after `header`, as the pattern makes it.
    fn wire(pattern: &Pattern, stream: u32, seq: u64, header: &[u8]) -> Vec<u8> {
        let mut out = header.to_vec();
        pattern.message(stream, seq).append_to(&mut out);
        out
    }

    /// `count` stamped messages from `first_seq` on, as the ring sends them.
    fn sent(ring: &mut SentBytes, first_seq: u64, count: u64) -> Vec<u8> {
        for seq in first_seq..first_seq + count {
            ring.stamp(seq);
        }
        let (head, tail) = ring.wire(first_seq, count as usize);
        [head, tail].concat()
    }

    #[test]
    fn a_stamped_slot_holds_its_message_as_the_pattern_makes_it() {
        for (len, header) in [(64, HEADER), (64, &b""[..]), (5, HEADER), (12, HEADER)] {
            let pattern = Pattern::new(len);
            let mut ring = SentBytes::new(&pattern, 7, header, 4).unwrap();
            for seq in [0, 1, 255, 256, 257, 1_000_000] {
                assert_eq!(
                    sent(&mut ring, seq, 1),
                    wire(&pattern, 7, seq, header),
                    "{len} bytes, message {seq}"
                );
            }
        }
    }

    #[test]
    fn batches_wrap_around_the_ring_and_match_only_what_was_sent() {
        let pattern = Pattern::new(20);
        let mut ring = SentBytes::new(&pattern, 1, HEADER, 1).unwrap();
        let slots = BODY_PERIOD;
        // Three messages at the end of the ring, then two at its start.
        let batch = sent(&mut ring, 2 * slots - 3, 5);
        let expected: Vec<u8> = (2 * slots - 3..2 * slots + 2)
            .flat_map(|seq| wire(&pattern, 1, seq, HEADER))
            .collect();
        assert_eq!(batch, expected);
        assert!(ring.matches(2 * slots - 3, &batch));
        assert!(
            ring.matches(2 * slots - 1, &batch[2 * 24..]),
            "a later part"
        );
        assert!(!ring.matches(2 * slots - 2, &batch[..4 * 24]), "shifted");
        let mut corrupted = batch.clone();
        corrupted[4 * 24 + 10] ^= 1;
        assert!(!ring.matches(2 * slots - 3, &corrupted), "past the wrap");
    }

    #[test]
    fn the_ring_has_a_slot_per_message_of_a_window_and_of_a_body_period() {
        let pattern = Pattern::new(60);
        let ring = SentBytes::new(&pattern, 0, HEADER, 1).unwrap();
        assert_eq!(ring.bytes.len(), BODY_PERIOD as usize * 64);
        let ring = SentBytes::new(&pattern, 0, HEADER, 1024).unwrap();
        assert_eq!(ring.bytes.len(), 1024 * 64);
    }

    #[test]
    fn nothing_is_kept_beyond_the_limit_or_for_empty_messages() {
        let fits = MAX_KEPT_BYTES / BODY_PERIOD as usize;
        assert!(SentBytes::new(&Pattern::new(fits - 4), 0, HEADER, 1).is_some());
        assert!(SentBytes::new(&Pattern::new(fits - 3), 0, HEADER, 1).is_none());
        assert!(SentBytes::new(&Pattern::new(1), 0, HEADER, usize::MAX / 2 + 1).is_none());
        assert!(SentBytes::new(&Pattern::new(0), 0, b"", 1).is_none());
    }
}
