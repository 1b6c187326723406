//! Helpers shared by the integration tests.
//!
//! The tests need an encoder that does not go through the crate, so that a bug
//! in the crate's encoder cannot hide the same bug in its decoder: this one is
//! written straight from the specification in PROTOCOL.md.

/// The exact bytes of `payloads` as consecutive frames on the wire: for each, a
/// 4-byte big-endian length and then the payload.
pub(crate) fn wire<P: AsRef<[u8]>>(payloads: &[P]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for payload in payloads {
        let payload = payload.as_ref();
        let len = u32::try_from(payload.len()).expect("test payloads fit a frame header");
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(payload);
    }
    bytes
}
