//! A `FrameReader`'s memory: its buffer follows the bytes that arrive, not
//! the lengths that headers announce, and once it has read a frame of some
//! size, reading more frames no larger allocates nothing.
//!
//! This counts heap allocations and bytes, never time. It is one test in its
//! own binary because it counts every allocation of the process.

use std::io::{self, Read};

use echo_proto::{FrameError, FrameReader, read_frame};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Payload sizes read in turn: empty, small, more than the reader's initial
/// buffer, and more than the step by which it grows.
const SIZES: [usize; 5] = [0, 10, 1000, 20_000, 150_000];

/// How many times the sizes come round once the reader has seen them all.
const ROUNDS: usize = 20;

/// A reader that hands out at most `step` bytes per call, so that frames
/// straddle reads and the buffer's bytes have to move up to its front.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step);
        self.data.read(&mut buf[..n])
    }
}

fn frame(size: usize) -> Vec<u8> {
    let mut frame = u32::try_from(size).unwrap().to_be_bytes().to_vec();
    frame.extend((0..size).map(|i| i as u8));
    frame
}

/// Reads one frame of each of [`SIZES`], checking each payload.
fn read_round(frames: &mut FrameReader<Trickle<'_>>) {
    for size in SIZES {
        let payload = frames.read_frame().unwrap().expect("a frame");
        assert_eq!(payload.len(), size);
        assert!(payload.iter().enumerate().all(|(i, &byte)| byte == i as u8));
    }
}

#[test]
fn memory_follows_the_bytes_that_arrive_and_is_reused() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let round: Vec<u8> = SIZES.iter().flat_map(|&size| frame(size)).collect();
    let stream = round.repeat(ROUNDS + 1);
    for step in [7, 3000, usize::MAX] {
        let mut frames = FrameReader::new(
            Trickle {
                data: &stream,
                step,
            },
            1 << 20,
        );
        // The first round shows the reader every size.
        read_round(&mut frames);
        let blocks_before = dhat::HeapStats::get().total_blocks;
        for _ in 0..ROUNDS {
            read_round(&mut frames);
        }
        assert_eq!(frames.read_frame().unwrap(), None);
        let allocations = dhat::HeapStats::get().total_blocks - blocks_before;
        assert_eq!(
            allocations, 0,
            "reading {ROUNDS} rounds of frames in reads of at most {step} bytes allocated"
        );
    }

    // A header announcing 4 GiB with 10 bytes behind it: the buffer holds
    // the 14 bytes and room for one more step of at most 64 KiB, which its
    // growth may double.
    let claim = [&[0xff; 4][..], b"only ten b"].concat();
    let bytes_before = dhat::HeapStats::get().curr_bytes;
    let mut frames = FrameReader::new(&claim[..], usize::MAX);
    assert!(matches!(
        frames.read_frame(),
        Err(FrameError::Truncated { received: 14, .. })
    ));
    let held = dhat::HeapStats::get().curr_bytes - bytes_before;
    assert!(
        held <= 2 * (claim.len() + 64 * 1024),
        "a 4 GiB claim backed by {} bytes made the reader hold {held} bytes",
        claim.len()
    );
    drop(frames);

    // The count sees allocations: read_frame makes one or more per frame.
    let blocks_before = dhat::HeapStats::get().total_blocks;
    let mut reader = &round[..];
    while read_frame(&mut reader, 1 << 20).unwrap().is_some() {}
    let allocations = dhat::HeapStats::get().total_blocks - blocks_before;
    assert!(
        allocations >= SIZES.len() as u64,
        "{} frames read with read_frame, yet {allocations} allocations counted",
        SIZES.len()
    );
}
