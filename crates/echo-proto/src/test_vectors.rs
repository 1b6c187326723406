//! The test vectors of the protocol's specification, read from the document
//! itself: [`PROTOCOL`], the crate's `PROTOCOL.md`.
//!
//! The crate's tests hold every part of it to these cases, and its fuzzing
//! starts from them, so the specification and the implementation cannot drift
//! apart. They serve anyone who implements the protocol too, in Rust or as a
//! reference for a port: the cases below are exactly those the document
//! lists, parsed from its tables.
//!
//! ```
//! use echo_proto::frame::DEFAULT_MAX_FRAME_LEN;
//! use echo_proto::test_vectors;
//!
//! // Check a decoder (here the crate's own blocking one) against every vector.
//! for vector in test_vectors::vectors() {
//!     let decoded = echo_proto::read_frame(&mut &vector.wire[..], DEFAULT_MAX_FRAME_LEN)?;
//!     assert_eq!(decoded.as_deref(), Some(&vector.payload[..]), "{}", vector.name);
//! }
//! // And its verdict on every header at the default limit.
//! for header in test_vectors::headers() {
//!     let verdict = echo_proto::frame::check_len(header.len, DEFAULT_MAX_FRAME_LEN);
//!     assert_eq!(verdict.is_ok(), header.accepted, "{:02x?}", header.header);
//! }
//! # Ok::<(), echo_proto::FrameError>(())
//! ```
//!
//! The document is part of the crate, and the crate's tests parse it: the
//! functions here cannot fail on it.

use std::sync::LazyLock;

use crate::frame::HEADER_LEN;

/// The specification, `PROTOCOL.md`, as the crate ships it.
///
/// ```
/// assert!(echo_proto::test_vectors::PROTOCOL.starts_with("# The echo protocol"));
/// ```
pub const PROTOCOL: &str = include_str!("../PROTOCOL.md");

/// A frame of the document's "Test vectors" table: a payload and the exact
/// bytes of its frame on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vector {
    /// The vector's name in the table, such as `hello`.
    pub name: &'static str,
    /// The payload.
    pub payload: Vec<u8>,
    /// The frame on the wire: the header, then the payload.
    pub wire: Vec<u8>,
}

/// A header of the document's table of headers alone, with the verdict of a
/// receiver at the default maximum frame length
/// ([`DEFAULT_MAX_FRAME_LEN`](crate::frame::DEFAULT_MAX_FRAME_LEN)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderVector {
    /// The four header bytes.
    pub header: [u8; HEADER_LEN],
    /// The payload length the header announces, as the table states it.
    pub len: usize,
    /// Whether a receiver at the default maximum accepts the header (else it
    /// rejects it as a protocol error).
    pub accepted: bool,
}

/// The frames of the "Test vectors" table, in the document's order.
///
/// ```
/// let hello = echo_proto::test_vectors::vectors()
///     .iter()
///     .find(|vector| vector.name == "hello")
///     .expect("the document has a hello vector");
/// assert_eq!(hello.payload, b"Hello Echo!");
/// assert_eq!(hello.wire[..4], [0, 0, 0, 11]);
/// ```
pub fn vectors() -> &'static [Vector] {
    static VECTORS: LazyLock<Vec<Vector>> = LazyLock::new(|| {
        table("vector", 3)
            .into_iter()
            .map(|row| Vector {
                name: row[0],
                payload: hex(row[1]),
                wire: hex(row[2]),
            })
            .collect()
    });
    &VECTORS
}

/// The headers of the table of headers alone, in the document's order.
///
/// ```
/// let headers = echo_proto::test_vectors::headers();
/// assert!(headers.iter().any(|header| header.accepted));
/// assert!(headers.iter().any(|header| !header.accepted));
/// ```
pub fn headers() -> &'static [HeaderVector] {
    static HEADERS: LazyLock<Vec<HeaderVector>> = LazyLock::new(|| {
        table("header", 3)
            .into_iter()
            .map(|row| HeaderVector {
                header: hex(row[0]).try_into().unwrap_or_else(|bytes| {
                    panic!("header `{}` is not {HEADER_LEN} bytes: {bytes:?}", row[0])
                }),
                len: row[1]
                    .parse()
                    .unwrap_or_else(|error| panic!("length `{}` is not a number: {error}", row[1])),
                accepted: match row[2] {
                    "accept" => true,
                    "reject" => false,
                    verdict => panic!("unknown verdict `{verdict}` for header `{}`", row[0]),
                },
            })
            .collect()
    });
    &HEADERS
}

/// The document's example of a stream of several frames, the frames `a` and
/// the empty payload one after the other: the wire bytes of each frame, in
/// order.
///
/// ```
/// let frames = echo_proto::test_vectors::stream_example();
/// assert_eq!(frames.concat(), b"\x00\x00\x00\x01a\x00\x00\x00\x00");
/// ```
pub fn stream_example() -> &'static [Vec<u8>] {
    static FRAMES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
        let sentence = PROTOCOL
            .split("\n\n")
            .find(|paragraph| paragraph.contains("is their concatenation"))
            .expect("PROTOCOL.md has the example of a stream of several frames");
        let (_, wires) = sentence.split_once(" are ").unwrap_or_else(|| {
            panic!("the stream example does not say what the frames are: {sentence:?}")
        });
        // The backquoted parts, in order: every other piece between backquotes.
        let frames: Vec<Vec<u8>> = wires.split('`').skip(1).step_by(2).map(hex).collect();
        assert!(
            frames.len() >= 2,
            "the stream example has {} frames: {sentence:?}",
            frames.len()
        );
        frames
    });
    &FRAMES
}

/// The rows, split into trimmed cells, of the ```` ```text ```` table of the
/// document whose header row starts with `first_column`; the header row is
/// left out.
///
/// # Panics
///
/// If there is no such table, or it has no rows, or a row has other than
/// `columns` cells: a parser that silently found nothing would make every
/// check built on it vacuous.
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
    assert!(
        !rows.is_empty() && rows.iter().all(|row| row.len() == columns),
        "the `{first_column}` table of PROTOCOL.md is malformed: {rows:?}"
    );
    rows
}

/// Decodes the document's hex notation: pairs of hex digits, or `-` for no
/// bytes.
///
/// # Panics
///
/// If `text` is neither.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_six_vectors_five_headers_and_a_two_frame_stream() {
        let names: Vec<&str> = vectors().iter().map(|vector| vector.name).collect();
        assert_eq!(
            names,
            ["empty", "one-byte", "hello", "binary", "utf8", "all-zero"]
        );
        assert_eq!(headers().len(), 5);
        assert_eq!(
            stream_example(),
            [b"\x00\x00\x00\x01a".to_vec(), vec![0; 4]]
        );
    }

    #[test]
    fn vectors_are_read_as_the_table_writes_them() {
        assert_eq!(
            vectors()[1],
            Vector {
                name: "one-byte",
                payload: vec![0x41],
                wire: vec![0, 0, 0, 1, 0x41],
            }
        );
        assert_eq!(vectors()[0].payload, b"");
        assert_eq!(
            headers()[3],
            HeaderVector {
                header: [0x00, 0x80, 0x00, 0x01],
                len: 8_388_609,
                accepted: false,
            }
        );
    }

    #[test]
    fn hex_reads_pairs_of_digits_and_the_dash() {
        assert_eq!(hex("00ff0a"), [0x00, 0xff, 0x0a]);
        assert_eq!(hex("-"), b"");
    }

    #[test]
    #[should_panic(expected = "is not an even number of hex digits")]
    fn hex_rejects_an_odd_number_of_digits() {
        hex("abc");
    }

    #[test]
    #[should_panic(expected = "has no ```text table starting with `nothing`")]
    fn a_missing_table_is_an_error_not_an_empty_list() {
        table("nothing", 3);
    }
}
