//! Test messages whose every byte follows from who sent them and when, so
//! that an echo can be checked byte for byte without keeping what was sent.
//!
//! A message of stream `s` (a connection's number) and sequence number `n`
//! starts with its identity, `s` as 4 big-endian bytes then `n` as 8, cut to
//! the message's length when it is shorter; the rest is a slice of a fixed
//! pseudo-random filler, starting at an offset that depends on `s` and
//! `n % 256`, different for each of 256 messages in a row. So two different
//! messages differ, a shifted or swapped echo does not pass for the right
//! one, a body left over from one of the stream's last 255 messages does not
//! pass for this one's, and checking an echo is a comparison of two numbers
//! and one of memory. Messages [`BODY_PERIOD`] apart share a body, so that a
//! sender can keep a ring of messages and only rewrite their identities.

/// The length of a message's identity: its stream (4 bytes) and sequence
/// number (8 bytes).
pub(crate) const ID_LEN: usize = 12;

/// Messages of a stream whose sequence numbers differ by a multiple of this
/// have the same body; the bodies of any fewer in a row all start at
/// different offsets into the filler.
pub(crate) const BODY_PERIOD: u64 = 256;

/// The messages of one length.
#[derive(Debug)]
pub(crate) struct Pattern {
    len: usize,
    /// Pseudo-random bytes, long enough for a message body at any offset.
    filler: Box<[u8]>,
}

/// One message of a [`Pattern`], described without copying its body.
///
/// The identity is kept as the two numbers rather than as its bytes: a
/// message is built and checked straight from registers. Bytes stored one
/// way and loaded back another (a 4-byte and an 8-byte store, then an 8-byte
/// load across both) cost a store-forwarding stall, which profiles showed
/// as most of the time of building and checking a small message.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    stream: u32,
    seq: u64,
    /// How much of the identity the message carries: all of it, unless the
    /// message is shorter.
    id_len: usize,
    body: &'a [u8],
}

impl Pattern {
    /// The messages of `len` bytes.
    pub(crate) fn new(len: usize) -> Self {
        let body_len = len.saturating_sub(ID_LEN);
        // xorshift64: any fixed sequence that does not repeat within a few
        // bytes would do; this one is short and has no dependencies.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let filler = (0..body_len + BODY_PERIOD as usize)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        Self { len, filler }
    }

    /// The length of every message of this pattern.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Message number `seq` of stream `stream`.
    pub(crate) fn message(&self, stream: u32, seq: u64) -> Message<'_> {
        let id_len = self.len.min(ID_LEN);
        let offset = offset(stream, seq);
        let body = &self.filler[offset..offset + (self.len - id_len)];
        Message {
            stream,
            seq,
            id_len,
            body,
        }
    }

    /// Writes the start of the identity of message `seq` of `stream` over
    /// `out`, as much of it as `out` holds (at most [`ID_LEN`] bytes): what
    /// tells this message apart from the one [`BODY_PERIOD`] before it.
    pub(crate) fn write_identity(stream: u32, seq: u64, out: &mut [u8]) {
        match out.first_chunk_mut::<ID_LEN>() {
            Some(id) => {
                // Stored straight from the two numbers (see `Message`).
                id[..4].copy_from_slice(&stream.to_be_bytes());
                id[4..].copy_from_slice(&seq.to_be_bytes());
            }
            None => out.copy_from_slice(&identity(stream, seq)[..out.len()]),
        }
    }

    /// Reads the stream and sequence number a message carries at its start,
    /// if it is long enough to carry them.
    pub(crate) fn identify(echo: &[u8]) -> Option<(u32, u64)> {
        let (stream, rest) = echo.split_first_chunk::<4>()?;
        let (seq, _) = rest.split_first_chunk::<8>()?;
        Some((u32::from_be_bytes(*stream), u64::from_be_bytes(*seq)))
    }
}

impl Message<'_> {
    /// The message's identity as bytes: its stream, then its sequence
    /// number, big-endian.
    fn id(&self) -> [u8; ID_LEN] {
        identity(self.stream, self.seq)
    }

    /// The message's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.id_len + self.body.len()
    }

    /// The message's identity, its first bytes: the first `len` of the
    /// array, `len` being at most [`ID_LEN`].
    pub(crate) fn identity(&self) -> ([u8; ID_LEN], usize) {
        (self.id(), self.id_len)
    }

    /// The message's bytes after its identity, borrowed from the pattern.
    pub(crate) fn body(&self) -> &[u8] {
        self.body
    }

    /// Appends the message's bytes to `out`.
    pub(crate) fn append_to(&self, out: &mut Vec<u8>) {
        if self.id_len == ID_LEN {
            out.extend_from_slice(&self.stream.to_be_bytes());
            out.extend_from_slice(&self.seq.to_be_bytes());
        } else {
            out.extend_from_slice(&self.id()[..self.id_len]);
        }
        out.extend_from_slice(self.body);
    }

    /// Checks that `echo` is this message, byte for byte.
    ///
    /// # Errors
    ///
    /// The offset of the first byte that differs; when one is a prefix of the
    /// other, the length of the shorter.
    pub(crate) fn check(&self, echo: &[u8]) -> Result<(), usize> {
        if echo.len() == self.len() {
            // A whole identity is compared as the two numbers (see
            // `Message`); this is done for every echo of a bench.
            let id_matches = if self.id_len == ID_LEN {
                Pattern::identify(echo) == Some((self.stream, self.seq))
            } else {
                echo[..self.id_len] == self.id()[..self.id_len]
            };
            if id_matches && echo[self.id_len..] == *self.body {
                return Ok(());
            }
        }
        let id = self.id();
        let sent = id[..self.id_len].iter().chain(self.body);
        Err(sent
            .zip(echo)
            .position(|(sent, received)| sent != received)
            .unwrap_or_else(|| echo.len().min(self.len())))
    }
}

/// The identity of message `seq` of `stream`, as bytes: the stream, then the
/// sequence number, big-endian.
fn identity(stream: u32, seq: u64) -> [u8; ID_LEN] {
    let mut id = [0; ID_LEN];
    id[..4].copy_from_slice(&stream.to_be_bytes());
    id[4..].copy_from_slice(&seq.to_be_bytes());
    id
}

/// Where in the filler the body of message `seq` of `stream` starts, below
/// [`BODY_PERIOD`]: a start that depends on the stream, moved on by an odd
/// step per message. An odd step reaches every offset once before it comes
/// back, so that the bodies of 256 messages in a row all start apart, and
/// neighbours' far apart.
fn offset(stream: u32, seq: u64) -> usize {
    const STEP: u64 = 167;
    let start = u64::from(stream).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56;
    ((start + (seq % BODY_PERIOD) * STEP) % BODY_PERIOD) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(message: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        message.append_to(&mut out);
        out
    }

    #[test]
    fn a_message_starts_with_its_identity_and_has_the_pattern_length() {
        let pattern = Pattern::new(64);
        let message = bytes(&pattern.message(7, 0x0102_0304_0506_0708));
        assert_eq!(message.len(), 64);
        assert_eq!(&message[..12], &[0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            Pattern::identify(&message),
            Some((7, 0x0102_0304_0506_0708))
        );
    }

    #[test]
    fn bodies_repeat_every_period_and_identities_tell_those_messages_apart() {
        let pattern = Pattern::new(64);
        let (first, again) = (pattern.message(4, 3), pattern.message(4, 3 + BODY_PERIOD));
        assert_eq!(first.body, again.body);
        assert_ne!(bytes(&first), bytes(&again));
        // Written over the earlier one, the later identity makes the later
        // message, byte for byte.
        let mut rewritten = bytes(&first);
        Pattern::write_identity(4, 3 + BODY_PERIOD, &mut rewritten[..ID_LEN]);
        assert_eq!(rewritten, bytes(&again));
    }

    #[test]
    fn an_identity_is_written_as_far_as_there_is_room() {
        for len in 0..=ID_LEN {
            let mut out = vec![0xff; len];
            Pattern::write_identity(1, 0x0203, &mut out);
            assert_eq!(out[..], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 3][..len]);
        }
    }

    #[test]
    fn short_messages_carry_part_of_their_identity() {
        for len in 0..=ID_LEN {
            let pattern = Pattern::new(len);
            let message = bytes(&pattern.message(1, 2));
            assert_eq!(message.len(), len);
            assert_eq!(message[..], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2][..len]);
            assert_eq!(Pattern::identify(&message).is_some(), len == ID_LEN);
        }
    }

    #[test]
    fn appending_a_message_adds_its_identity_then_its_body() {
        for len in [0, 5, 12, 64] {
            let pattern = Pattern::new(len);
            let message = pattern.message(9, 0x0a0b);
            let mut out = b"before".to_vec();
            message.append_to(&mut out);
            let id = [0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b];
            let id_len = len.min(ID_LEN);
            assert_eq!(out.len(), b"before".len() + len);
            assert_eq!(out[..6], *b"before");
            assert_eq!(out[6..6 + id_len], id[..id_len]);
            assert_eq!(out[6 + id_len..], *message.body);
            assert_eq!(message.len(), len);
        }
    }

    #[test]
    fn an_echo_of_the_message_passes() {
        for len in [0, 1, 11, 12, 13, 64, 4096] {
            let pattern = Pattern::new(len);
            let message = pattern.message(3, 99);
            assert_eq!(message.check(&bytes(&message)), Ok(()), "{len}");
        }
    }

    #[test]
    fn every_changed_byte_is_found_where_it_is() {
        let pattern = Pattern::new(100);
        let message = pattern.message(5, 12_345);
        let good = bytes(&message);
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert_eq!(message.check(&bad), Err(at));
        }
    }

    #[test]
    fn a_short_or_long_echo_fails_at_the_shorter_length() {
        let pattern = Pattern::new(40);
        let message = pattern.message(0, 1);
        let good = bytes(&message);
        assert_eq!(message.check(&good[..39]), Err(39));
        assert_eq!(message.check(&[good.as_slice(), b"x"].concat()), Err(40));
        assert_eq!(message.check(b""), Err(0));
    }

    #[test]
    fn other_messages_do_not_pass_for_this_one() {
        let pattern = Pattern::new(64);
        let message = pattern.message(2, 10);
        for (stream, seq) in [(2, 11), (2, 9), (3, 10), (0, 0)] {
            assert!(
                message
                    .check(&bytes(&pattern.message(stream, seq)))
                    .is_err()
            );
        }
        // Even with the identity left out, the bodies of a period of
        // messages in a row all differ, on any stream.
        for stream in [0, 1, 9] {
            let bodies: std::collections::HashSet<_> = (5..5 + BODY_PERIOD)
                .map(|seq| pattern.message(stream, seq).body.to_vec())
                .collect();
            assert_eq!(bodies.len() as u64, BODY_PERIOD, "stream {stream}");
        }
    }
}
