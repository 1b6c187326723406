//! The seed corpus: inputs built from the test vectors of PROTOCOL.md (as
//! [`echo_proto::test_vectors`] reads them), so that fuzzing starts from
//! every case the specification names.
//!
//! The files under `fuzz/seeds/TARGET/` are written by
//! `cargo run --manifest-path fuzz/Cargo.toml --example write_seeds`, and a
//! test checks that they are what [`seeds`] builds from the current
//! PROTOCOL.md.

use echo_proto::frame::DEFAULT_MAX_FRAME_LEN;
use echo_proto::test_vectors::{self, Vector};

use crate::input::Input;
use crate::server_relay::RELAY_BUFFER_LEN;

/// The fuzz targets, by name.
pub const TARGETS: [&str; 4] = [
    "frame_decoder",
    "server_relay",
    "json_codec",
    "proxy_header",
];

/// The default maximum frame length (8 MiB), which the header vectors are
/// judged against.
const DEFAULT_LIMIT: u32 = DEFAULT_MAX_FRAME_LEN as u32;

/// Knobs of `server_relay`: framed mode, the plain in-memory stream, a
/// capacity of 65 bytes.
const RELAY_PLAIN: u8 = 8 << 2;
/// Knobs of `server_relay`: framed mode, the transport that reads ahead, a
/// capacity of 9 bytes.
const RELAY_PEEKING: u8 = (1 << 2) | 2;
/// Knobs of `server_relay`: raw mode.
const RELAY_RAW: u8 = (1 << 2) | 1;

/// One seed: a file name and the input it holds.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The file name, unique within a target.
    pub name: String,
    /// The input, in the layout of [`Input`].
    pub bytes: Vec<u8>,
}

/// A seed before its knobs are chosen.
struct Case {
    name: String,
    limit: u32,
    plan: Vec<u8>,
    stream: Vec<u8>,
}

impl Case {
    fn new(name: impl Into<String>, limit: u32, plan: &[u8], stream: Vec<u8>) -> Self {
        Case {
            name: name.into(),
            limit,
            plan: plan.to_vec(),
            stream,
        }
    }

    fn seed(&self, knobs: u8) -> Seed {
        let input = Input {
            knobs,
            limit: self.limit,
            plan: &self.plan,
            stream: &self.stream,
        };
        Seed {
            name: self.name.clone(),
            bytes: input.encode(),
        }
    }
}

/// The seeds of `target`, one of [`TARGETS`].
///
/// # Panics
///
/// If `target` is not one of them.
pub fn seeds(target: &str) -> Vec<Seed> {
    let cases = cases();
    match target {
        "frame_decoder" => cases.iter().map(|case| case.seed(0)).collect(),
        "server_relay" => {
            let mut seeds: Vec<Seed> = cases
                .iter()
                .enumerate()
                .map(|(index, case)| {
                    case.seed(if index % 2 == 0 {
                        RELAY_PLAIN
                    } else {
                        RELAY_PEEKING
                    })
                })
                .collect();
            let all = cases
                .iter()
                .find(|case| case.name == "all-vectors")
                .expect("the cases include all the vectors in one stream");
            let mut raw = all.seed(RELAY_RAW);
            raw.name = "raw-mode".to_owned();
            seeds.push(raw);
            seeds
        }
        "json_codec" => {
            let mut seeds: Vec<Seed> = cases.iter().map(|case| case.seed(0)).collect();
            seeds.push(json_documents().seed(0));
            seeds
        }
        "proxy_header" => proxy_headers()
            .into_iter()
            .flat_map(|(name, header)| {
                let mut stream = header;
                stream.extend_from_slice(b"\0\0\0\x02hi");
                [
                    Case::new(name.clone(), DEFAULT_LIMIT, &[], stream.clone()).seed(0),
                    Case::new(format!("{name}-byte-by-byte"), DEFAULT_LIMIT, &[1], stream).seed(0),
                ]
            })
            .collect(),
        other => panic!("no fuzz target is called {other}"),
    }
}

/// PROXY headers of every kind the specification names: version 1 TCP4,
/// TCP6 and UNKNOWN, version 2 TCP4, TCP6 with TLVs, and LOCAL.
fn proxy_headers() -> Vec<(String, Vec<u8>)> {
    use echo_proto::proxy_header::{Addresses, encode_v1, encode_v2};
    let v4 = (
        "198.18.0.9:4000".parse().unwrap(),
        "198.18.0.1:9999".parse().unwrap(),
    );
    let v6 = (
        "[2001:db8::9]:4000".parse().unwrap(),
        "[2001:db8::1]:9999".parse().unwrap(),
    );
    let proxied = |(source, destination)| Addresses::Proxied {
        source,
        destination,
    };
    let mut with_tlvs = encode_v2(proxied(v6));
    with_tlvs.extend_from_slice(&[0x01, 0, 2, b'h', b'2', 0x04, 0, 0]);
    with_tlvs[15] += 8;
    vec![
        ("v1-tcp4".to_owned(), encode_v1(v4.0, v4.1).into_bytes()),
        ("v1-tcp6".to_owned(), encode_v1(v6.0, v6.1).into_bytes()),
        ("v1-unknown".to_owned(), b"PROXY UNKNOWN\r\n".to_vec()),
        ("v2-tcp4".to_owned(), encode_v2(proxied(v4))),
        ("v2-tcp6-tlvs".to_owned(), with_tlvs),
        ("v2-local".to_owned(), encode_v2(Addresses::Local)),
    ]
}

/// The streams every target starts from.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut all_wires = Vec::new();
    let mut all_payloads = Vec::new();
    for vector in test_vectors::vectors() {
        let (name, wire) = (vector.name, &vector.wire);
        cases.push(Case::new(name, DEFAULT_LIMIT, &[], wire.clone()));
        cases.push(Case::new(
            format!("{name}-byte-by-byte"),
            DEFAULT_LIMIT,
            &[1],
            wire.clone(),
        ));
        let cut = wire[..wire.len() - 1].to_vec();
        cases.push(Case::new(format!("{name}-cut"), DEFAULT_LIMIT, &[], cut));
        all_wires.extend_from_slice(wire);
        all_payloads.extend_from_slice(&vector.payload);
    }
    cases.push(Case::new(
        "all-vectors",
        DEFAULT_LIMIT,
        &[1, 2, 3, 5, 0, 8],
        all_wires,
    ));

    // The two-frame stream that the specification spells out.
    cases.push(Case::new(
        "spec-stream",
        DEFAULT_LIMIT,
        &[],
        test_vectors::stream_example().concat(),
    ));

    // Each header of the header table, with a few payload bytes after it:
    // the accepted ones then end inside their payload, the others are
    // rejected.
    for header in test_vectors::headers() {
        let mut stream = header.header.to_vec();
        stream.extend_from_slice(b"rest");
        let verdict = if header.accepted { "accept" } else { "reject" };
        cases.push(Case::new(
            format!("header-{:08x}-{verdict}", u32::from_be_bytes(header.header)),
            DEFAULT_LIMIT,
            &[2],
            stream,
        ));
    }

    // A frame one byte over a lower limit, after a frame under it.
    let hello = &vector("hello").wire;
    let hello_len = u32::try_from(hello.len() - 4).expect("a vector fits a frame");
    let mut over = vector("one-byte").wire.clone();
    over.extend_from_slice(hello);
    cases.push(Case::new("hello-over-limit", hello_len - 1, &[3], over));

    // A frame larger than the server's relay buffer, whole and cut short.
    let large_payload = all_payloads.repeat(RELAY_BUFFER_LEN / all_payloads.len() + 2);
    let mut large = (large_payload.len() as u32).to_be_bytes().to_vec();
    large.extend_from_slice(&large_payload);
    large.extend_from_slice(&vector("empty").wire);
    let cut = large[..RELAY_BUFFER_LEN + 8].to_vec();
    cases.push(Case::new(
        "larger-than-relay-buffer",
        DEFAULT_LIMIT,
        &[7],
        large,
    ));
    cases.push(Case::new(
        "larger-than-relay-buffer-cut",
        DEFAULT_LIMIT,
        &[16],
        cut,
    ));
    cases
}

/// Frames of JSON documents: the JsonCodec's own example and the text
/// vectors as JSON values.
fn json_documents() -> Case {
    let documents: [&[u8]; 4] = [
        br#"{"text":"hi"}"#,
        "\"h\u{e9}llo\"".as_bytes(),
        b"[0,255,10,13]",
        b"null",
    ];
    let mut stream = Vec::new();
    for document in documents {
        stream.extend_from_slice(&(document.len() as u32).to_be_bytes());
        stream.extend_from_slice(document);
    }
    Case::new("json-documents", DEFAULT_LIMIT, &[5], stream)
}

/// The vector called `name`.
fn vector(name: &str) -> &'static Vector {
    test_vectors::vectors()
        .iter()
        .find(|vector| vector.name == name)
        .unwrap_or_else(|| panic!("PROTOCOL.md has no vector called {name}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    /// The seeds as files: name to bytes.
    fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
            .map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                (name, std::fs::read(entry.path()).unwrap())
            })
            .collect()
    }

    #[test]
    fn the_checked_in_seeds_are_built_from_the_current_spec() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        for target in TARGETS {
            let expected: BTreeMap<String, Vec<u8>> = seeds(target)
                .into_iter()
                .map(|seed| (seed.name, seed.bytes))
                .collect();
            assert_eq!(
                files(&root.join(target)),
                expected,
                "fuzz/seeds/{target} is out of date: run \
                 `cargo run --manifest-path fuzz/Cargo.toml --example write_seeds`"
            );
        }
    }

    #[test]
    fn seed_names_are_unique() {
        for target in TARGETS {
            let seeds = seeds(target);
            let mut names: Vec<&str> = seeds.iter().map(|seed| seed.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), seeds.len(), "{target}");
        }
    }

    #[test]
    fn every_seed_passes_its_target() {
        for seed in seeds("frame_decoder") {
            crate::frame_decoder::check(&seed.bytes);
        }
        for seed in seeds("server_relay") {
            crate::server_relay::check(&seed.bytes);
        }
        for seed in seeds("json_codec") {
            crate::json_codec::check(&seed.bytes);
        }
    }
}
