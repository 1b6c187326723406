//! Encode and decode throughput of `FrameCodec`, side by side with tokio-util's
//! `LengthDelimitedCodec` on the same inputs: `cargo bench -p echo-proto`.

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use echo_proto::FrameCodec;
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The payload sizes compared: empty, small, a page, a socket buffer.
const SIZES: [usize; 4] = [0, 64, 4096, 65_536];

/// How many bytes of frames each iteration handles, so that small frames are
/// measured in bulk rather than one call at a time.
const BATCH_BYTES: usize = 1 << 20;

fn frames_per_batch(size: usize) -> usize {
    (BATCH_BYTES / (size + 4)).max(1)
}

fn wire(size: usize) -> BytesMut {
    let payload = vec![0xa5; size];
    let mut wire = BytesMut::new();
    for _ in 0..frames_per_batch(size) {
        wire.extend_from_slice(&(size as u32).to_be_bytes());
        wire.extend_from_slice(&payload);
    }
    wire
}

fn encode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("encode");
    for size in SIZES {
        let payload = Bytes::from(vec![0xa5; size]);
        let count = frames_per_batch(size);
        group.throughput(Throughput::Bytes(((size + 4) * count) as u64));
        let mut output = BytesMut::with_capacity((size + 4) * count);
        group.bench_function(BenchmarkId::new("echo_proto::FrameCodec", size), |bench| {
            let mut codec = FrameCodec::new();
            bench.iter(|| {
                output.clear();
                for _ in 0..count {
                    codec
                        .encode(black_box(payload.clone()), &mut output)
                        .unwrap();
                }
            });
        });
        group.bench_function(
            BenchmarkId::new("tokio_util::LengthDelimitedCodec", size),
            |bench| {
                let mut codec = LengthDelimitedCodec::new();
                bench.iter(|| {
                    output.clear();
                    for _ in 0..count {
                        codec
                            .encode(black_box(payload.clone()), &mut output)
                            .unwrap();
                    }
                });
            },
        );
    }
    group.finish();
}

fn decode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("decode");
    for size in SIZES {
        let input = wire(size);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(BenchmarkId::new("echo_proto::FrameCodec", size), |bench| {
            let mut codec = FrameCodec::new();
            bench.iter_batched_ref(
                || input.clone(),
                |buffer| {
                    while let Some(frame) = codec.decode(buffer).unwrap() {
                        black_box(frame);
                    }
                },
                BatchSize::LargeInput,
            );
        });
        group.bench_function(
            BenchmarkId::new("tokio_util::LengthDelimitedCodec", size),
            |bench| {
                let mut codec = LengthDelimitedCodec::new();
                bench.iter_batched_ref(
                    || input.clone(),
                    |buffer| {
                        while let Some(frame) = codec.decode(buffer).unwrap() {
                            black_box(frame);
                        }
                    },
                    BatchSize::LargeInput,
                );
            },
        );
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
