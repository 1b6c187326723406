//! [`Input`]: how the targets read the fuzzer's bytes.
//!
//! Every target reads the same layout, so one seed format serves them all and
//! a crash found by one target is easy to read by hand:
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | `knobs`: settings of the target's own (the server's mode, ...) |
//! | 4 | `limit`: the maximum frame length, big-endian |
//! | 1 | `n`: the length of the chunk plan |
//! | n | the chunk plan: each byte is the length of one chunk, used in turn |
//! | the rest | the byte stream |
//!
//! The stream is delivered in chunks whose lengths the plan gives, cycling
//! through it, so the fuzzer chooses where reads split headers and payloads.
//! A plan byte of 0 is an empty delivery (a read that brings nothing new). An
//! empty plan, or one of zeros only, delivers the stream in one chunk.

/// The length of the fixed part of the layout: knobs, limit and plan length.
pub const FIXED_LEN: usize = 6;

/// One fuzz input, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input<'a> {
    /// Settings that only some targets use.
    pub knobs: u8,
    /// The maximum frame length to configure.
    pub limit: u32,
    /// Chunk lengths, used in turn.
    pub plan: &'a [u8],
    /// The bytes to decode, relay or echo.
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    /// Splits `data` into its parts, or `None` if it is too short to hold
    /// the fixed part and the plan it announces.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (fixed, rest) = data.split_first_chunk::<FIXED_LEN>()?;
        let [knobs, l0, l1, l2, l3, plan_len] = *fixed;
        let (plan, stream) = rest.split_at_checked(usize::from(plan_len))?;
        Some(Input {
            knobs,
            limit: u32::from_be_bytes([l0, l1, l2, l3]),
            plan,
            stream,
        })
    }

    /// The bytes that [`parse`](Self::parse) reads back as this input.
    ///
    /// # Panics
    ///
    /// If the plan is longer than 255 bytes, which the layout cannot hold.
    pub fn encode(&self) -> Vec<u8> {
        let plan_len = u8::try_from(self.plan.len()).expect("a chunk plan holds at most 255 bytes");
        let mut bytes = vec![self.knobs];
        bytes.extend_from_slice(&self.limit.to_be_bytes());
        bytes.push(plan_len);
        bytes.extend_from_slice(self.plan);
        bytes.extend_from_slice(self.stream);
        bytes
    }

    /// The limit as a length.
    pub fn limit(&self) -> usize {
        // A u32 fits a usize on every target that the server supports.
        self.limit as usize
    }

    /// The stream, cut into the chunks that the plan says, in order. The
    /// chunks put back together are the stream.
    pub fn chunks(&self) -> Chunks<'a> {
        let plan = if self.plan.iter().any(|&len| len > 0) {
            self.plan
        } else {
            &[]
        };
        Chunks {
            plan,
            next: 0,
            rest: self.stream,
            done: false,
        }
    }
}

/// The iterator returned by [`Input::chunks`].
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    /// Chunk lengths with at least one non-zero, or empty for "all at once".
    plan: &'a [u8],
    next: usize,
    rest: &'a [u8],
    /// Set once the one chunk of an empty plan has been given.
    done: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.plan.is_empty() {
            if self.done {
                return None;
            }
            self.done = true;
            return Some(std::mem::take(&mut self.rest));
        }
        if self.rest.is_empty() {
            return None;
        }
        let len = usize::from(self.plan[self.next % self.plan.len()]);
        self.next += 1;
        let (chunk, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_encodes() {
        let input = Input {
            knobs: 0xa5,
            limit: 0x0102_0304,
            plan: &[1, 0, 7],
            stream: b"\0\0\0\x02hi",
        };
        let bytes = input.encode();
        assert_eq!(bytes[..6], [0xa5, 1, 2, 3, 4, 3]);
        assert_eq!(Input::parse(&bytes), Some(input));
    }

    #[test]
    fn rejects_inputs_too_short_for_their_plan() {
        assert_eq!(Input::parse(&[0; 5]), None);
        assert_eq!(Input::parse(&[0, 0, 0, 0, 0, 2, 9]), None);
        let empty = Input::parse(&[0, 0, 0, 0, 0, 0]).unwrap();
        assert!(empty.plan.is_empty() && empty.stream.is_empty());
    }

    fn chunks(plan: &[u8], stream: &[u8]) -> Vec<Vec<u8>> {
        let input = Input {
            knobs: 0,
            limit: 0,
            plan,
            stream,
        };
        input.chunks().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn cuts_the_stream_as_the_plan_says() {
        assert_eq!(
            chunks(&[2, 0, 1], b"abcdefg"),
            [&b"ab"[..], b"", b"c", b"de", b"", b"f", b"g"]
        );
        assert_eq!(chunks(&[], b"abc"), [b"abc"]);
        assert_eq!(chunks(&[0, 0], b"abc"), [b"abc"]);
        assert_eq!(chunks(&[], b""), [b""]);
        assert!(chunks(&[3], b"").is_empty());
    }
}
