//! Encode and decode throughput of `FrameCodec`, side by side with tokio-util's
//! `LengthDelimitedCodec` on the same inputs: `cargo bench -p echo-proto`.

use std::fmt::Debug;
use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use echo_proto::FrameCodec;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The names the two codecs are measured under.
const OURS: &str = "echo_proto::FrameCodec";
const THEIRS: &str = "tokio_util::LengthDelimitedCodec";

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

/// Measures encoding `count` copies of `payload` into `output` with a fresh
/// `codec()`, under `name`.
fn bench_encode<C: Encoder<Bytes, Error: Debug>>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    codec: impl Fn() -> C,
    payload: &Bytes,
    count: usize,
    output: &mut BytesMut,
) {
    group.bench_function(BenchmarkId::new(name, payload.len()), |bench| {
        let mut codec = codec();
        bench.iter(|| {
            output.clear();
            for _ in 0..count {
                codec.encode(black_box(payload.clone()), output).unwrap();
            }
        });
    });
}

/// Measures decoding every frame of `input` with a fresh `codec()`, under
/// `name`.
fn bench_decode<C: Decoder<Error: Debug>>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    codec: impl Fn() -> C,
    size: usize,
    input: &BytesMut,
) {
    group.bench_function(BenchmarkId::new(name, size), |bench| {
        let mut codec = codec();
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
}

fn encode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("encode");
    for size in SIZES {
        let payload = Bytes::from(vec![0xa5; size]);
        let count = frames_per_batch(size);
        group.throughput(Throughput::Bytes(((size + 4) * count) as u64));
        let mut output = BytesMut::with_capacity((size + 4) * count);
        bench_encode(
            &mut group,
            OURS,
            FrameCodec::new,
            &payload,
            count,
            &mut output,
        );
        bench_encode(
            &mut group,
            THEIRS,
            LengthDelimitedCodec::new,
            &payload,
            count,
            &mut output,
        );
    }
    group.finish();
}

fn decode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("decode");
    for size in SIZES {
        let input = wire(size);
        group.throughput(Throughput::Bytes(input.len() as u64));
        bench_decode(&mut group, OURS, FrameCodec::new, size, &input);
        bench_decode(&mut group, THEIRS, LengthDelimitedCodec::new, size, &input);
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
