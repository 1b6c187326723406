//! The `json_codec` target: [`JsonCodec`] on arbitrary bytes, and on
//! arbitrary values.
//!
//! - Decoding: whatever the bytes, the codec never panics; it tells framing
//!   errors (a frame over the limit, a stream cut short) from JSON errors (a
//!   whole frame that is not JSON) exactly where the [`Reference`] does, and
//!   after a frame that is not JSON it carries on with the next frame, in
//!   step with the stream.
//! - Round trip: a JSON value built from the bytes, encoded and decoded
//!   again, comes back equal, and its frame is the header and the value's
//!   JSON text.

use bytes::BytesMut;
use echo_proto::{FrameCodec, JsonCodec, JsonCodecError};
use serde_json::{Map, Number, Value};
use tokio_util::codec::{Decoder, Encoder};

use crate::expect;
use crate::feed::{Outcome, feed};
use crate::input::Input;
use crate::reference::{HEADER_LEN, Reference};

/// How deep the values built for the round trip nest. serde_json refuses to
/// parse more than 128 levels, a limit on purpose that is not under test.
const MAX_DEPTH: usize = 32;

/// Checks the JSON codec on one input.
pub fn check(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    check_decoding(&input);
    check_round_trip(input.stream);
}

fn check_decoding(input: &Input<'_>) {
    let reference = Reference::parse(input.stream, input.limit());
    let frames = FrameCodec::builder().max_frame_len(input.limit()).build();
    let mut codec = JsonCodec::<Value>::with_frame_codec(frames);
    let buffer = feed(
        input,
        &reference,
        &mut codec,
        |result, _, received, index| {
            if let Ok(None) = result {
                return Outcome::Wait;
            }
            if let Err(JsonCodecError::Frame(error)) = &result {
                expect::too_large(&reference, received, error);
                return Outcome::Rejected;
            }
            let frame = reference.frames.get(index).unwrap_or_else(|| {
                panic!("the codec gave {result:?} for a frame the stream does not hold")
            });
            let parsed = serde_json::from_slice::<Value>(frame.payload);
            match (result, parsed) {
                (Ok(Some(value)), Ok(expected)) => assert_eq!(value, expected),
                (Err(JsonCodecError::Json(_)), Err(_)) => {}
                (result, parsed) => {
                    panic!("frame {index}: the codec gave {result:?}, serde_json {parsed:?}")
                }
            }
            // A frame that is not JSON still counts: the codec stays in step.
            Outcome::Frame
        },
    );
    let Some(mut buffer) = buffer else {
        return;
    };
    // The end is clean or a truncation, a framing error either way.
    let end = codec.decode_eof(&mut buffer).map_err(|error| match error {
        JsonCodecError::Frame(error) => error,
        other => panic!("at the end of the stream, not a framing error: {other:?}"),
    });
    expect::end(&reference, end, Option::is_none);
}

fn check_round_trip(bytes: &[u8]) {
    let value = Builder { bytes }.value(0);
    let mut codec = JsonCodec::<Value>::new();
    let mut wire = BytesMut::new();
    codec
        .encode(&value, &mut wire)
        .expect("a value built from a few KiB fits a frame");
    let text = serde_json::to_vec(&value).expect("a JSON value serializes");
    let (header, payload) = wire.split_at(HEADER_LEN);
    assert_eq!(header, (text.len() as u32).to_be_bytes(), "the header");
    assert_eq!(payload, text, "the payload is the value's JSON text");

    let decoded = codec
        .decode(&mut wire)
        .expect("a frame just encoded decodes");
    assert_eq!(
        decoded.as_ref(),
        Some(&value),
        "the value came back different"
    );
    assert!(wire.is_empty(), "the decoder left bytes behind");
}

/// Builds a JSON value from bytes, taking them as it goes; once they run
/// out, everything is `null` and empty.
struct Builder<'a> {
    bytes: &'a [u8],
}

impl Builder<'_> {
    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&byte, rest)) => {
                self.bytes = rest;
                byte
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(std::array::from_fn(|_| self.byte()))
    }

    fn value(&mut self, depth: usize) -> Value {
        match self.byte() % 8 {
            0 => Value::Null,
            1 => Value::Bool(self.byte() % 2 == 1),
            2 => Value::from(self.u64()),
            3 => Value::from(self.u64() as i64),
            4 => {
                // Every finite double, subnormals and signed zeros included;
                // JSON has no infinities or NaN.
                let float = f64::from_bits(self.u64());
                Number::from_f64(float).map_or(Value::Null, Value::Number)
            }
            5 => Value::String(self.string()),
            6 if depth < MAX_DEPTH => {
                let len = self.byte() % 8;
                Value::Array((0..len).map(|_| self.value(depth + 1)).collect())
            }
            7 if depth < MAX_DEPTH => {
                let len = self.byte() % 8;
                let mut map = Map::new();
                for _ in 0..len {
                    let key = self.string();
                    let value = self.value(depth + 1);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
            _ => Value::Null,
        }
    }

    /// A string of up to 15 characters: ASCII (controls, quotes and
    /// backslashes included, which JSON must escape) or any other code point.
    fn string(&mut self) -> String {
        let len = self.byte() % 16;
        (0..len)
            .map(|_| match self.byte() {
                ascii @ 0..0x80 => char::from(ascii),
                _ => {
                    let code = u32::from_be_bytes([0, self.byte(), self.byte(), self.byte()]);
                    char::from_u32(code % 0x11_0000).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            })
            .collect()
    }
}
