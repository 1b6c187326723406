//! The `proxy_header` target: [`echo_proto::proxy_header::parse`] on
//! arbitrary bytes, delivered in the chunks of the input's plan, as the
//! server reads a connection's first bytes.
//!
//! - It never panics, and a header it finds is within the bytes given and
//!   within [`MAX_HEADER_LEN`].
//! - Its answer never changes its mind as bytes arrive: while the bytes so
//!   far give "not yet", more may give anything; once they give a header or
//!   an error, every longer prefix gives the same.
//! - A header that names a client encodes back (version 2, and version 1
//!   when both addresses are of one family) to bytes that parse to the same
//!   addresses.

use echo_proto::proxy_header::{self, Addresses, MAX_HEADER_LEN};

use crate::input::Input;

/// Checks the PROXY header parser on one input.
pub fn check(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let mut received = Vec::new();
    let mut settled = None;
    for chunk in input.chunks() {
        received.extend_from_slice(chunk);
        let result = proxy_header::parse(&received);
        match (&settled, result) {
            (None, Ok(None)) => {}
            (None, result) => settled = Some(result),
            (Some(first), result) => assert_eq!(
                &result,
                first,
                "the answer changed after {} bytes",
                received.len()
            ),
        }
    }
    let Some(Ok(Some(header))) = settled else {
        return;
    };
    assert!(header.len <= received.len() && header.len <= MAX_HEADER_LEN);
    assert!(header.tlvs.end <= header.len);
    // The TLVs it checked can be gone through to their end.
    let listed: usize = proxy_header::tlvs(&header, &received)
        .map(|(_, value)| 3 + value.len())
        .sum();
    assert_eq!(listed, header.tlvs.len());
    if let Addresses::Proxied {
        source,
        destination,
    } = header.addresses
    {
        let v2 = proxy_header::encode_v2(header.addresses);
        let again = proxy_header::parse(&v2).unwrap().unwrap();
        assert_eq!(again.addresses, header.addresses);
        if source.is_ipv4() == destination.is_ipv4() {
            let v1 = proxy_header::encode_v1(source, destination);
            let again = proxy_header::parse(v1.as_bytes()).unwrap().unwrap();
            assert_eq!(again.addresses, header.addresses);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::seeds;

    #[test]
    fn every_seed_passes() {
        for seed in seeds("proxy_header") {
            check(&seed.bytes);
        }
    }
}
