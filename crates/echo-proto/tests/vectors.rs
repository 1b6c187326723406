//! Every part of the crate against the test vectors of PROTOCOL.md, which
//! `echo_proto::test_vectors` reads from the document itself, so that the
//! specification and the implementation cannot drift apart.

mod common;

#[cfg(feature = "codec")]
use bytes::{Bytes, BytesMut};
use common::{assert_too_large, assert_truncated, wire};
#[cfg(feature = "codec")]
use echo_proto::FrameCodec;
use echo_proto::frame::{self, DEFAULT_MAX_FRAME_LEN, HEADER_LEN, Parsed};
use echo_proto::test_vectors::{self, HeaderVector};
use echo_proto::{FrameReader, FrameScanner, read_frame, write_frame};
#[cfg(feature = "codec")]
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The limit that the header table's verdicts are given at, as the errors
/// report it.
const DEFAULT_MAX: u64 = DEFAULT_MAX_FRAME_LEN as u64;

/// The payloads of the stream example, as the document's prose names them.
const STREAM_PAYLOADS: [&[u8]; 2] = [b"a", b""];

/// Checks a receiver's verdict on a header alone: an accepted header with no
/// payload behind it leaves the frame incomplete (`accepted`), a rejected one
/// is `FrameTooLarge` with the header's numbers.
fn check_verdict<T: std::fmt::Debug>(
    header: &HeaderVector,
    result: Result<T, echo_proto::FrameError>,
    accepted: impl FnOnce(T),
) {
    if header.accepted {
        match result {
            Ok(value) => accepted(value),
            Err(error) => panic!("{:02x?}: rejected with {error:?}", header.header),
        }
    } else {
        assert_too_large(result, header.len as u64, DEFAULT_MAX);
    }
}

#[test]
fn the_vector_table_is_consistent_with_the_frame_definition() {
    for vector in test_vectors::vectors() {
        let (header, payload) = vector.wire.split_at(HEADER_LEN);
        let announced = u32::from_be_bytes(header.try_into().expect("a 4-byte header"));
        assert_eq!(
            announced as usize,
            vector.payload.len(),
            "{}: header",
            vector.name
        );
        assert_eq!(payload, vector.payload, "{}: payload", vector.name);
        // The tests' own encoder, which the other test files build their
        // streams with, agrees with the table too.
        assert_eq!(
            wire(&[&vector.payload]),
            vector.wire,
            "{}: wire",
            vector.name
        );
    }
}

#[test]
fn the_blocking_helpers_agree_with_every_vector() {
    for vector in test_vectors::vectors() {
        let mut written = Vec::new();
        write_frame(&mut written, &vector.payload).unwrap();
        assert_eq!(written, vector.wire, "{}: write_frame", vector.name);

        let mut reader = &vector.wire[..];
        let read = read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN).unwrap();
        assert_eq!(
            read.as_deref(),
            Some(&vector.payload[..]),
            "{}: read_frame",
            vector.name
        );
        assert_eq!(
            read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN).unwrap(),
            None
        );

        let mut frames = FrameReader::new(&vector.wire[..], DEFAULT_MAX_FRAME_LEN);
        assert_eq!(
            frames.read_frame().unwrap(),
            Some(&vector.payload[..]),
            "{}: FrameReader",
            vector.name
        );
        assert_eq!(frames.read_frame().unwrap(), None);
    }
}

#[test]
fn parse_finds_every_vector_whole_and_every_prefix_incomplete() {
    for vector in test_vectors::vectors() {
        assert_eq!(
            frame::parse(&vector.wire, DEFAULT_MAX_FRAME_LEN).unwrap(),
            Parsed::Frame {
                payload: &vector.payload,
                frame_len: vector.wire.len()
            },
            "{}",
            vector.name
        );
        for cut in 0..vector.wire.len() {
            assert!(
                matches!(
                    frame::parse(&vector.wire[..cut], DEFAULT_MAX_FRAME_LEN),
                    Ok(Parsed::Incomplete { .. })
                ),
                "{}: {cut} bytes",
                vector.name
            );
        }
    }
}

#[test]
fn decode_header_reads_every_vector_and_header() {
    for vector in test_vectors::vectors() {
        let header = vector.wire[..HEADER_LEN].try_into().unwrap();
        assert_eq!(
            frame::decode_header(header),
            vector.payload.len(),
            "{}",
            vector.name
        );
    }
    for header in test_vectors::headers() {
        assert_eq!(
            frame::decode_header(header.header),
            header.len,
            "{:02x?}",
            header.header
        );
    }
}

#[test]
fn every_receiver_gives_every_header_its_verdict() {
    let headers = test_vectors::headers();
    assert!(headers.iter().any(|header| header.accepted));
    assert!(headers.iter().any(|header| !header.accepted));
    for header in headers {
        let bytes = &header.header[..];
        let expected = HEADER_LEN as u64 + header.len as u64;

        // The blocking readers: an accepted header with no payload is a truncation.
        match read_frame(&mut &bytes[..], DEFAULT_MAX_FRAME_LEN) {
            result if header.accepted => assert_truncated(result, 4, expected),
            result => assert_too_large(result, header.len as u64, DEFAULT_MAX),
        }
        match FrameReader::new(bytes, DEFAULT_MAX_FRAME_LEN).read_frame() {
            result if header.accepted => assert_truncated(result, 4, expected),
            result => assert_too_large(result, header.len as u64, DEFAULT_MAX),
        }

        check_verdict(
            header,
            frame::parse(bytes, DEFAULT_MAX_FRAME_LEN),
            |parsed| assert_eq!(parsed, Parsed::Incomplete { needed: header.len }),
        );
        let scan = FrameScanner::default().scan(bytes);
        check_verdict(header, scan.error.map_or(Ok(()), Err), |()| {});
        check_verdict(
            header,
            frame::check_len(header.len, DEFAULT_MAX_FRAME_LEN),
            |()| {},
        );
    }
}

#[test]
fn the_blocking_helpers_write_and_read_the_stream_example() {
    let expected = test_vectors::stream_example().concat();
    let mut written = Vec::new();
    for payload in STREAM_PAYLOADS {
        write_frame(&mut written, payload).unwrap();
    }
    assert_eq!(written, expected);

    let mut reader = &expected[..];
    for payload in STREAM_PAYLOADS {
        assert_eq!(
            read_frame(&mut reader, 16).unwrap().as_deref(),
            Some(payload)
        );
    }
    assert_eq!(read_frame(&mut reader, 16).unwrap(), None);

    let walked: Vec<&[u8]> = frame::frames(&expected, 16).map(Result::unwrap).collect();
    assert_eq!(walked, STREAM_PAYLOADS);
}

#[cfg(feature = "codec")]
#[test]
fn frame_codec_and_tokio_util_defaults_give_every_header_its_verdict() {
    for header in test_vectors::headers() {
        // Accepted: the codec now waits for the payload.
        let result = FrameCodec::new().decode(&mut BytesMut::from(&header.header[..]));
        check_verdict(header, result, |frame| assert!(frame.is_none()));

        let result = LengthDelimitedCodec::new().decode(&mut BytesMut::from(&header.header[..]));
        assert_eq!(
            result.is_ok(),
            header.accepted,
            "{:02x?}: LengthDelimitedCodec gave {result:?}",
            header.header
        );
    }
}

/// Encodes every vector's payload with a fresh `encoder()` and checks the
/// wire bytes, then decodes them with a fresh `decoder()` and checks that the
/// payload comes out whole and nothing is left.
#[cfg(feature = "codec")]
fn check_codecs<E, D>(encoder: impl Fn() -> E, decoder: impl Fn() -> D)
where
    E: Encoder<Bytes, Error: std::fmt::Debug>,
    D: Decoder<Item = BytesMut, Error: std::fmt::Debug>,
{
    for vector in test_vectors::vectors() {
        let mut wire = BytesMut::new();
        encoder()
            .encode(Bytes::from(vector.payload.clone()), &mut wire)
            .unwrap_or_else(|error| panic!("{}: {error:?}", vector.name));
        assert_eq!(wire[..], vector.wire[..], "{}: encoding", vector.name);

        let mut decoder = decoder();
        let payload = decoder
            .decode(&mut wire)
            .unwrap_or_else(|error| panic!("{}: {error:?}", vector.name));
        assert_eq!(
            payload.as_deref(),
            Some(&vector.payload[..]),
            "{}: decoding",
            vector.name
        );
        assert!(wire.is_empty(), "{}: bytes left over", vector.name);
        assert!(
            matches!(decoder.decode_eof(&mut wire), Ok(None)),
            "{}: not at a clean end",
            vector.name
        );
    }
}

#[cfg(feature = "codec")]
#[test]
fn frame_codec_encodes_and_decodes_every_vector() {
    check_codecs(FrameCodec::new, FrameCodec::new);
}

#[cfg(feature = "codec")]
#[test]
fn frames_are_byte_compatible_with_tokio_util_length_delimited_codec() {
    check_codecs(LengthDelimitedCodec::new, FrameCodec::new);
    check_codecs(FrameCodec::new, LengthDelimitedCodec::new);
}

#[cfg(feature = "codec")]
#[test]
fn frame_codec_encodes_and_decodes_the_stream_example() {
    let expected = test_vectors::stream_example().concat();
    let mut codec = FrameCodec::new();
    let mut wire = BytesMut::new();
    for payload in STREAM_PAYLOADS {
        codec.encode(payload, &mut wire).unwrap();
    }
    assert_eq!(wire[..], expected[..]);

    for payload in STREAM_PAYLOADS {
        assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some(payload));
    }
    assert!(codec.decode_eof(&mut wire).unwrap().is_none());
}
