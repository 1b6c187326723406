//! [`feed`]: a tokio-util decoder fed the input's chunks the way `FramedRead`
//! feeds it, with the frames it gives out counted against the [`Reference`].

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::expect;
use crate::input::Input;
use crate::reference::Reference;

/// What a decoder's result was, as the caller of [`feed`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A frame of the stream (whatever its contents): the next result follows.
    Frame,
    /// No frame yet: the decoder wants more bytes.
    Wait,
    /// The rejection of a header over the limit, which ends the stream.
    Rejected,
}

/// Feeds the chunks of `input` one at a time into a read buffer, and after
/// each calls `decoder.decode` until it wants more bytes, as `FramedRead` does.
///
/// `judge` sees every result with the read buffer after it, the bytes
/// received so far and the index of the frame it would be, and says what it
/// was. After each chunk, the frames decoded must be those complete by then
/// ([`expect::decoded_by`]); at a rejection, all the frames before it.
///
/// Returns the read buffer once the whole stream is in, for `decode_eof`, or
/// `None` after a rejection.
pub fn feed<D: Decoder>(
    input: &Input<'_>,
    reference: &Reference<'_>,
    decoder: &mut D,
    mut judge: impl FnMut(Result<Option<D::Item>, D::Error>, &BytesMut, usize, usize) -> Outcome,
) -> Option<BytesMut> {
    let mut buffer = BytesMut::new();
    let mut received = 0;
    let mut decoded = 0;
    for chunk in input.chunks() {
        buffer.extend_from_slice(chunk);
        received += chunk.len();
        loop {
            let result = decoder.decode(&mut buffer);
            match judge(result, &buffer, received, decoded) {
                Outcome::Frame => decoded += 1,
                Outcome::Wait => break,
                Outcome::Rejected => {
                    assert_eq!(decoded, reference.frames.len(), "frames were skipped");
                    return None;
                }
            }
        }
        // Every frame is decoded as soon as its last byte is in, and a bad
        // header as soon as it is whole.
        expect::decoded_by(reference, received, decoded);
    }
    Some(buffer)
}
