//! The test vectors of PROTOCOL.md, read from the document itself so that the
//! specification and the implementation cannot drift apart.

#[cfg(feature = "codec")]
use bytes::{Bytes, BytesMut};
#[cfg(feature = "codec")]
use echo_proto::FrameCodec;
use echo_proto::frame::{self, DEFAULT_MAX_FRAME_LEN, HEADER_LEN};
use echo_proto::{FrameError, FrameScanner, read_frame, write_frame};
#[cfg(feature = "codec")]
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

const PROTOCOL: &str = include_str!("../PROTOCOL.md");

/// One row of the "vector | payload hex | wire hex" table.
#[derive(Debug)]
struct Vector {
    name: &'static str,
    payload: Vec<u8>,
    wire: Vec<u8>,
}

/// One row of the "header | length | default limit" table.
#[derive(Debug)]
struct HeaderRow {
    header: [u8; HEADER_LEN],
    length: usize,
    accept: bool,
}

/// The rows, split into trimmed cells, of the ```text table whose header row
/// starts with `first_column`; the header row itself is left out.
fn table(first_column: &str, columns: usize) -> Vec<Vec<&'static str>> {
    let block = PROTOCOL
        .split("```text\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
        .find(|block| {
            block
                .lines()
                .next()
                .and_then(|line| line.split('|').next())
                .is_some_and(|cell| cell.trim() == first_column)
        })
        .unwrap_or_else(|| {
            panic!("PROTOCOL.md has no ```text table starting with `{first_column}`")
        });
    let rows: Vec<Vec<&str>> = block
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split('|').map(str::trim).collect())
        .collect();
    for row in &rows {
        assert_eq!(
            row.len(),
            columns,
            "malformed row in the `{first_column}` table: {row:?}"
        );
    }
    // A parser that silently finds nothing would make every check below vacuous.
    assert!(
        !rows.is_empty(),
        "the `{first_column}` table in PROTOCOL.md has no rows"
    );
    rows
}

/// Decodes the hex notation of the tables: pairs of hex digits, or `-` for no bytes.
fn hex(text: &str) -> Vec<u8> {
    if text == "-" {
        return Vec::new();
    }
    assert!(
        text.is_ascii() && text.len() % 2 == 0,
        "`{text}` is not an even number of hex digits"
    );
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .unwrap_or_else(|error| panic!("`{text}` is not hex: {error}"))
        })
        .collect()
}

fn vectors() -> Vec<Vector> {
    table("vector", 3)
        .into_iter()
        .map(|row| Vector {
            name: row[0],
            payload: hex(row[1]),
            wire: hex(row[2]),
        })
        .collect()
}

fn header_rows() -> Vec<HeaderRow> {
    table("header", 3)
        .into_iter()
        .map(|row| HeaderRow {
            header: hex(row[0])
                .try_into()
                .unwrap_or_else(|bytes| panic!("header `{}` is not 4 bytes: {bytes:?}", row[0])),
            length: row[1]
                .parse()
                .unwrap_or_else(|error| panic!("length `{}` is not a number: {error}", row[1])),
            accept: match row[2] {
                "accept" => true,
                "reject" => false,
                verdict => panic!("unknown verdict `{verdict}` for header `{}`", row[0]),
            },
        })
        .collect()
}

#[test]
fn the_vector_table_is_consistent_with_the_frame_definition() {
    let vectors = vectors();
    assert!(
        vectors.len() >= 6,
        "expected the 6 documented vectors, found {vectors:?}"
    );
    for vector in &vectors {
        let (header, payload) = vector.wire.split_at(HEADER_LEN);
        let announced = u32::from_be_bytes(header.try_into().expect("a 4-byte header"));
        assert_eq!(
            announced as usize,
            vector.payload.len(),
            "{}: header",
            vector.name
        );
        assert_eq!(payload, vector.payload, "{}: payload", vector.name);
    }
}

#[cfg(feature = "codec")]
#[test]
fn frame_codec_encodes_every_vector_to_its_wire_bytes() {
    for vector in vectors() {
        let mut codec = FrameCodec::new();
        let mut wire = BytesMut::new();
        codec
            .encode(Bytes::from(vector.payload.clone()), &mut wire)
            .unwrap_or_else(|error| panic!("{}: {error}", vector.name));
        assert_eq!(wire[..], vector.wire[..], "{}", vector.name);
    }
}

#[cfg(feature = "codec")]
#[test]
fn frame_codec_decodes_every_vector_to_its_payload() {
    for vector in vectors() {
        let mut codec = FrameCodec::new();
        let mut wire = BytesMut::from(&vector.wire[..]);
        let payload = codec
            .decode(&mut wire)
            .unwrap_or_else(|error| panic!("{}: {error}", vector.name))
            .unwrap_or_else(|| panic!("{}: no frame decoded", vector.name));
        assert_eq!(payload[..], vector.payload[..], "{}", vector.name);
        assert!(
            wire.is_empty(),
            "{}: {} bytes left over",
            vector.name,
            wire.len()
        );
        assert!(
            codec.decode_eof(&mut wire).unwrap().is_none(),
            "{}",
            vector.name
        );
    }
}

#[test]
fn blocking_helpers_agree_with_every_vector() {
    for vector in vectors() {
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
    }
}

#[test]
fn decode_header_reads_every_vector_and_header_row() {
    for vector in vectors() {
        let header = vector.wire[..HEADER_LEN].try_into().unwrap();
        assert_eq!(
            frame::decode_header(header),
            vector.payload.len(),
            "{}",
            vector.name
        );
    }
    for row in header_rows() {
        assert_eq!(
            frame::decode_header(row.header),
            row.length,
            "{:02x?}",
            row.header
        );
    }
}

#[cfg(feature = "codec")]
#[test]
fn a_default_frame_codec_gives_every_header_row_its_verdict() {
    let rows = header_rows();
    assert!(rows.iter().any(|row| row.accept) && rows.iter().any(|row| !row.accept));
    for row in rows {
        let mut codec = FrameCodec::new();
        let mut input = BytesMut::from(&row.header[..]);
        let result = codec.decode(&mut input);
        if row.accept {
            // Accepted: the codec now waits for the payload.
            assert!(
                matches!(result, Ok(None)),
                "{:02x?}: expected to wait for the payload, got {result:?}",
                row.header
            );
        } else {
            match result {
                Err(FrameError::FrameTooLarge { len, max }) => {
                    assert_eq!(
                        (len, max),
                        (row.length as u64, 8_388_608),
                        "{:02x?}",
                        row.header
                    );
                }
                other => panic!("{:02x?}: expected FrameTooLarge, got {other:?}", row.header),
            }
        }
    }
}

#[test]
fn the_other_receivers_give_every_header_row_the_same_verdict() {
    for row in header_rows() {
        // The blocking reader: an accepted header with no payload is a truncation.
        let result = read_frame(&mut &row.header[..], DEFAULT_MAX_FRAME_LEN);
        match (row.accept, result) {
            (true, Err(FrameError::Truncated { received, expected })) => {
                assert_eq!((received, expected), (4, 4 + row.length as u64));
            }
            (false, Err(FrameError::FrameTooLarge { len, max })) => {
                assert_eq!((len, max), (row.length as u64, 8_388_608));
            }
            (_, other) => panic!("{:02x?}: read_frame gave {other:?}", row.header),
        }

        let scan = FrameScanner::default().scan(&row.header);
        assert_eq!(
            scan.error.is_none(),
            row.accept,
            "{:02x?}: scanner",
            row.header
        );

        assert_eq!(
            frame::check_len(row.length, DEFAULT_MAX_FRAME_LEN).is_ok(),
            row.accept,
            "{:02x?}: check_len",
            row.header
        );
    }
}

#[cfg(feature = "codec")]
#[test]
fn tokio_util_defaults_give_every_header_row_the_same_verdict() {
    for row in header_rows() {
        let mut input = BytesMut::from(&row.header[..]);
        let result = LengthDelimitedCodec::new().decode(&mut input);
        assert_eq!(
            result.is_ok(),
            row.accept,
            "{:02x?}: LengthDelimitedCodec gave {result:?}",
            row.header
        );
    }
}

#[cfg(feature = "codec")]
#[test]
fn frames_are_byte_compatible_with_tokio_util_length_delimited_codec() {
    for vector in vectors() {
        // Theirs to ours.
        let mut theirs = LengthDelimitedCodec::new();
        let mut wire = BytesMut::new();
        theirs
            .encode(Bytes::from(vector.payload.clone()), &mut wire)
            .unwrap();
        assert_eq!(
            wire[..],
            vector.wire[..],
            "{}: LengthDelimitedCodec encoding",
            vector.name
        );
        let payload = FrameCodec::new().decode(&mut wire).unwrap();
        assert_eq!(
            payload.as_deref(),
            Some(&vector.payload[..]),
            "{}: ours decoding theirs",
            vector.name
        );
        assert!(wire.is_empty());

        // Ours to theirs.
        let mut wire = BytesMut::new();
        FrameCodec::new()
            .encode(&vector.payload[..], &mut wire)
            .unwrap();
        let payload = theirs.decode(&mut wire).unwrap();
        assert_eq!(
            payload.as_deref(),
            Some(&vector.payload[..]),
            "{}: theirs decoding ours",
            vector.name
        );
        assert!(wire.is_empty());
    }
}

/// The stream of the concatenation example in PROTOCOL.md, checked against
/// the text so that the two stay in step.
fn concatenation_example() -> Vec<u8> {
    assert!(
        PROTOCOL.contains("`0000000161` followed by `00000000`"),
        "the concatenation example in PROTOCOL.md changed"
    );
    hex("0000000161")
        .into_iter()
        .chain(hex("00000000"))
        .collect::<Vec<u8>>()
}

#[test]
fn the_blocking_helpers_write_and_read_a_stream_as_the_concatenation_of_its_frames() {
    let expected = concatenation_example();
    let mut written = Vec::new();
    write_frame(&mut written, b"a").unwrap();
    write_frame(&mut written, b"").unwrap();
    assert_eq!(written, expected);

    let mut reader = &expected[..];
    assert_eq!(read_frame(&mut reader, 16).unwrap(), Some(b"a".to_vec()));
    assert_eq!(read_frame(&mut reader, 16).unwrap(), Some(Vec::new()));
    assert_eq!(read_frame(&mut reader, 16).unwrap(), None);
}

#[cfg(feature = "codec")]
#[test]
fn frame_codec_encodes_and_decodes_a_stream_as_the_concatenation_of_its_frames() {
    let expected = concatenation_example();
    let mut codec = FrameCodec::new();
    let mut wire = BytesMut::new();
    codec.encode(&b"a"[..], &mut wire).unwrap();
    codec.encode(&b""[..], &mut wire).unwrap();
    assert_eq!(wire[..], expected[..]);

    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some(&b""[..]));
    assert!(codec.decode_eof(&mut wire).unwrap().is_none());
}
