//! `FrameCodec`: encoding, incremental decoding, limits, end of stream, and a
//! real TCP connection.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{assert_too_large, assert_truncated, wire};
use echo_proto::frame::DEFAULT_MAX_FRAME_LEN;
use echo_proto::{FrameCodec, FrameError};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead, FramedWrite};

/// How long any network step of a test may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The announced-length check of the "no allocation from a claim" tests: far
/// below the lengths those tests announce, far above what the codec needs.
const SMALL_CAPACITY: usize = 128 * 1024;

/// Decodes every complete frame in `src`.
fn decode_all(codec: &mut FrameCodec, src: &mut BytesMut) -> Vec<BytesMut> {
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(src).expect("a valid stream") {
        frames.push(frame);
    }
    frames
}

#[test]
fn bytes_payloads_round_trip() {
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::new();
    codec
        .encode(Bytes::from_static(b"hello"), &mut buffer)
        .unwrap();
    assert_eq!(buffer[..], wire(&[b"hello"])[..]);
    assert_eq!(decode_all(&mut codec, &mut buffer), [&b"hello"[..]]);
    assert!(buffer.is_empty());
}

#[test]
fn bytes_mut_payloads_round_trip() {
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::new();
    codec
        .encode(BytesMut::from(&b"bytes mut"[..]), &mut buffer)
        .unwrap();
    assert_eq!(buffer[..], wire(&[b"bytes mut"])[..]);
    assert_eq!(decode_all(&mut codec, &mut buffer), [&b"bytes mut"[..]]);
    assert!(buffer.is_empty());
}

#[test]
fn slice_payloads_round_trip() {
    let payload: Vec<u8> = (0..=255).collect();
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::new();
    codec.encode(&payload[..], &mut buffer).unwrap();
    assert_eq!(buffer[..], wire(&[&payload])[..]);
    assert_eq!(decode_all(&mut codec, &mut buffer), [&payload[..]]);
    assert!(buffer.is_empty());
}

#[test]
fn zero_length_frames_are_four_zero_bytes() {
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::new();
    codec.encode(Bytes::new(), &mut buffer).unwrap();
    codec.encode(&b""[..], &mut buffer).unwrap();
    assert_eq!(buffer[..], [0; 8]);

    assert_eq!(decode_all(&mut codec, &mut buffer), [&b""[..], &b""[..]]);
    assert!(buffer.is_empty());
    assert!(codec.decode_eof(&mut buffer).unwrap().is_none());
}

#[test]
fn several_frames_in_one_buffer_decode_in_order() {
    let payloads: [&[u8]; 4] = [b"first", b"", b"third frame", &[0xff; 300]];
    let mut stream = wire(&payloads);
    // The first 3 bytes of a fifth frame's header stay buffered.
    stream.extend_from_slice(&[0, 0, 1]);
    let mut buffer = BytesMut::from(&stream[..]);

    let mut codec = FrameCodec::new();
    assert_eq!(decode_all(&mut codec, &mut buffer), payloads);
    assert_eq!(buffer[..], [0, 0, 1]);
}

#[test]
fn frames_arriving_one_byte_at_a_time_decode_when_their_last_byte_arrives() {
    let payloads: [&[u8]; 3] = [b"slow", b"", b"drip"];
    let stream = wire(&payloads);
    // The stream offsets at which each frame is complete.
    let frame_ends = [8, 12, 20];

    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::new();
    let mut decoded = Vec::new();
    for (offset, byte) in stream.iter().enumerate() {
        buffer.extend_from_slice(&[*byte]);
        let frames = decode_all(&mut codec, &mut buffer);
        let expected = usize::from(frame_ends.contains(&(offset + 1)));
        assert_eq!(frames.len(), expected, "after byte {offset}");
        decoded.extend(frames);
    }
    assert_eq!(decoded, payloads);
    assert!(codec.decode_eof(&mut buffer).unwrap().is_none());
}

#[test]
fn end_of_stream_inside_a_header_is_a_truncation() {
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::from(&[0, 0][..]);
    assert!(codec.decode(&mut buffer).unwrap().is_none());
    assert_truncated(codec.decode_eof(&mut buffer), 2, 4);

    // The codec is clean afterwards and decodes a new stream.
    assert!(buffer.is_empty());
    buffer.extend_from_slice(&wire(&[b"next"]));
    assert_eq!(decode_all(&mut codec, &mut buffer), [&b"next"[..]]);
}

#[test]
fn end_of_stream_inside_a_payload_is_a_truncation() {
    // A header announcing 10 bytes, and 3 of them.
    let input = [0, 0, 0, 10, b'a', b'b', b'c'];

    // After decode has consumed the header...
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::from(&input[..]);
    assert!(codec.decode(&mut buffer).unwrap().is_none());
    assert_truncated(codec.decode_eof(&mut buffer), 7, 14);
    assert!(buffer.is_empty());
    buffer.extend_from_slice(&wire(&[b"next"]));
    assert_eq!(decode_all(&mut codec, &mut buffer), [&b"next"[..]]);

    // ...and when decode_eof sees the whole input first.
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::from(&input[..]);
    assert_truncated(codec.decode_eof(&mut buffer), 7, 14);
}

#[test]
fn end_of_stream_inside_the_payload_of_a_frame_whose_header_came_earlier() {
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::from(&[0, 0, 0, 5][..]);
    assert!(codec.decode(&mut buffer).unwrap().is_none());
    assert!(buffer.is_empty());
    assert_truncated(codec.decode_eof(&mut buffer), 4, 9);
}

#[test]
fn a_clean_end_of_stream_is_none() {
    let mut codec = FrameCodec::new();
    assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());

    // A whole frame still buffered at the end is returned first.
    let mut buffer = BytesMut::from(&wire(&[&b"last"[..], b""])[..]);
    assert_eq!(
        codec.decode_eof(&mut buffer).unwrap().as_deref(),
        Some(&b"last"[..])
    );
    assert_eq!(
        codec.decode_eof(&mut buffer).unwrap().as_deref(),
        Some(&b""[..])
    );
    assert!(codec.decode_eof(&mut buffer).unwrap().is_none());
}

#[test]
fn a_header_over_the_limit_is_rejected_without_allocating() {
    let mut codec = FrameCodec::builder().max_decode_frame_len(100).build();
    let mut buffer = BytesMut::from(&[0, 0, 0, 101, b'x'][..]);
    let capacity = buffer.capacity();

    assert_too_large(codec.decode(&mut buffer), 101, 100);
    assert_eq!(
        buffer.capacity(),
        capacity,
        "the buffer grew for a rejected frame"
    );
    assert_eq!(buffer[..], [0, 0, 0, 101, b'x'], "the buffer changed");
    // The error persists: the bad header is still there.
    assert_too_large(codec.decode(&mut buffer), 101, 100);
    assert_too_large(codec.decode_eof(&mut buffer), 101, 100);
}

#[test]
fn a_header_over_the_default_limit_is_rejected_without_allocating() {
    let mut codec = FrameCodec::new();
    let announced = u32::try_from(DEFAULT_MAX_FRAME_LEN + 1).unwrap();
    let mut buffer = BytesMut::from(&announced.to_be_bytes()[..]);
    let capacity = buffer.capacity();
    assert_too_large(codec.decode(&mut buffer), 8_388_609, 8_388_608);
    assert_eq!(buffer.capacity(), capacity);
}

#[test]
fn a_frame_of_exactly_the_limit_is_accepted() {
    let mut codec = FrameCodec::builder().max_frame_len(3).build();
    let mut buffer = BytesMut::new();
    codec.encode(&b"abc"[..], &mut buffer).unwrap();
    assert_eq!(decode_all(&mut codec, &mut buffer), [&b"abc"[..]]);

    let mut codec = FrameCodec::builder().max_frame_len(0).build();
    let mut buffer = BytesMut::new();
    codec.encode(&b""[..], &mut buffer).unwrap();
    assert_eq!(decode_all(&mut codec, &mut buffer), [&b""[..]]);
}

#[test]
fn a_large_announced_length_does_not_reserve_that_much() {
    // An allowed 8 MiB frame whose header alone has arrived: tokio-util's codec
    // would reserve 8 MiB here; this one must not, since nothing backs the claim.
    let mut codec = FrameCodec::new();
    let announced = u32::try_from(DEFAULT_MAX_FRAME_LEN).unwrap();
    let mut buffer = BytesMut::from(&announced.to_be_bytes()[..]);
    assert!(codec.decode(&mut buffer).unwrap().is_none());
    assert!(
        buffer.capacity() < SMALL_CAPACITY,
        "4 bytes of input made the buffer grow to {} bytes",
        buffer.capacity()
    );
    // Asking again while nothing new arrived must not grow it either.
    assert!(codec.decode(&mut buffer).unwrap().is_none());
    assert!(buffer.capacity() < SMALL_CAPACITY);
}

#[test]
fn the_buffer_grows_with_the_payload_that_arrives_and_the_frame_decodes() {
    let mut codec = FrameCodec::new();
    let payload: Vec<u8> = (0..DEFAULT_MAX_FRAME_LEN)
        .map(|i| (i % 251) as u8)
        .collect();
    let stream = wire(&[&payload]);
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(64 * 1024) {
        buffer.extend_from_slice(piece);
        frames.extend(decode_all(&mut codec, &mut buffer));
        if frames.is_empty() && buffer.len() <= 1024 * 1024 {
            // With at most 1 MiB of the 8 MiB here, memory follows the bytes
            // received (allowing for the buffer's doubling), not the claim.
            assert!(
                buffer.capacity() < 4 * 1024 * 1024,
                "{} bytes buffered, capacity {}",
                buffer.len(),
                buffer.capacity()
            );
        }
    }
    assert_eq!(frames.len(), 1);
    assert!(
        frames[0][..] == payload[..],
        "the 8 MiB payload came back different"
    );
    assert!(buffer.is_empty());
}

#[test]
fn encoding_over_the_limit_fails_and_leaves_the_output_untouched() {
    let mut codec = FrameCodec::builder().max_encode_frame_len(4).build();
    let mut buffer = BytesMut::new();
    codec.encode(&b"okay"[..], &mut buffer).unwrap();
    let before = buffer.clone();
    let capacity = buffer.capacity();

    let results = [
        codec.encode(Bytes::from_static(b"toobig"), &mut buffer),
        codec.encode(BytesMut::from(&b"toobig"[..]), &mut buffer),
        codec.encode(&b"toobig"[..], &mut buffer),
    ];
    for result in results {
        match result {
            Err(FrameError::FrameTooLarge { len, max }) => assert_eq!((len, max), (6, 4)),
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
    }
    assert_eq!(buffer, before);
    assert_eq!(
        buffer.capacity(),
        capacity,
        "a failed encode reserved memory"
    );
    assert_eq!(decode_all(&mut codec, &mut buffer), [&b"okay"[..]]);
}

#[test]
fn decode_and_encode_limits_are_separate() {
    let mut codec = FrameCodec::builder()
        .max_decode_frame_len(8)
        .max_encode_frame_len(16)
        .build();
    assert_eq!(
        (codec.max_decode_frame_len(), codec.max_encode_frame_len()),
        (8, 16)
    );

    let mut buffer = BytesMut::new();
    codec.encode(&[7; 16][..], &mut buffer).unwrap();
    assert!(matches!(
        codec.encode(&[7; 17][..], &mut buffer),
        Err(FrameError::FrameTooLarge { len: 17, max: 16 })
    ));
    // What it may send, it may not receive.
    assert_too_large(codec.decode(&mut buffer), 16, 8);

    let codec = FrameCodec::builder().max_encode_frame_len(16).build();
    assert_eq!(codec.max_decode_frame_len(), DEFAULT_MAX_FRAME_LEN);
}

#[test]
fn max_frame_len_sets_both_limits() {
    let mut codec = FrameCodec::builder().max_frame_len(5).build();
    assert_eq!(
        (codec.max_decode_frame_len(), codec.max_encode_frame_len()),
        (5, 5)
    );
    assert!(matches!(
        codec.encode(&b"sixsix"[..], &mut BytesMut::new()),
        Err(FrameError::FrameTooLarge { len: 6, max: 5 })
    ));
    assert_too_large(codec.decode(&mut BytesMut::from(&[0, 0, 0, 6][..])), 6, 5);
}

#[test]
fn defaults_are_eight_mebibytes_both_ways() {
    for codec in [
        FrameCodec::new(),
        FrameCodec::default(),
        FrameCodec::builder().build(),
    ] {
        assert_eq!(codec.max_decode_frame_len(), 8 * 1024 * 1024);
        assert_eq!(codec.max_encode_frame_len(), 8 * 1024 * 1024);
    }
}

#[test]
fn limits_above_what_a_header_can_say_are_clamped() {
    let codec = FrameCodec::builder().max_frame_len(usize::MAX).build();
    assert_eq!(codec.max_decode_frame_len(), u32::MAX as usize);
    assert_eq!(codec.max_encode_frame_len(), u32::MAX as usize);
    let codec = FrameCodec::builder()
        .max_decode_frame_len(usize::MAX)
        .max_encode_frame_len(usize::MAX)
        .build();
    assert_eq!(codec.max_decode_frame_len(), u32::MAX as usize);
    assert_eq!(codec.max_encode_frame_len(), u32::MAX as usize);

    // The largest possible header is then accepted, and still reserves little.
    let mut codec = codec;
    let mut buffer = BytesMut::from(&[0xff; 4][..]);
    assert!(codec.decode(&mut buffer).unwrap().is_none());
    assert!(buffer.capacity() < SMALL_CAPACITY);
    assert_truncated(codec.decode_eof(&mut buffer), 4, 4 + u64::from(u32::MAX));
}

#[test]
fn a_changed_decode_limit_judges_the_next_header_even_if_already_buffered() {
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::from(&wire(&[&b"first"[..], b"second"])[..]);
    assert_eq!(
        codec.decode(&mut buffer).unwrap().as_deref(),
        Some(&b"first"[..])
    );
    codec.set_max_decode_frame_len(5);
    assert_eq!(codec.max_decode_frame_len(), 5);
    assert_too_large(codec.decode(&mut buffer), 6, 5);
    codec.set_max_decode_frame_len(6);
    assert_eq!(
        codec.decode(&mut buffer).unwrap().as_deref(),
        Some(&b"second"[..])
    );
}

#[test]
fn a_frame_whose_header_was_accepted_is_finished_under_the_old_limit() {
    let mut codec = FrameCodec::new();
    let stream = wire(&[&b"accepted before"[..], b"rejected after"]);
    let mut buffer = BytesMut::from(&stream[..6]);
    assert!(
        codec.decode(&mut buffer).unwrap().is_none(),
        "the header is taken"
    );
    codec.set_max_decode_frame_len(4);
    buffer.extend_from_slice(&stream[6..]);
    assert_eq!(
        codec.decode(&mut buffer).unwrap().as_deref(),
        Some(&b"accepted before"[..])
    );
    assert_too_large(codec.decode(&mut buffer), 14, 4);
}

#[test]
fn a_changed_encode_limit_applies_to_the_next_payload() {
    let mut codec = FrameCodec::builder().max_encode_frame_len(2).build();
    let mut buffer = BytesMut::new();
    assert!(codec.encode(&b"abc"[..], &mut buffer).is_err());
    codec.set_max_encode_frame_len(3);
    assert_eq!(codec.max_encode_frame_len(), 3);
    codec.encode(&b"abc"[..], &mut buffer).unwrap();
    assert_eq!(buffer[..], wire(&[b"abc"])[..]);
}

#[test]
fn changed_limits_above_what_a_header_can_say_are_clamped() {
    let mut codec = FrameCodec::new();
    codec.set_max_decode_frame_len(usize::MAX);
    codec.set_max_encode_frame_len(usize::MAX);
    assert_eq!(codec.max_decode_frame_len(), u32::MAX as usize);
    assert_eq!(codec.max_encode_frame_len(), u32::MAX as usize);
}

#[tokio::test]
async fn the_decode_limit_of_a_live_framed_stream_changes_through_codec_mut() {
    let (mut peer, stream) = tokio::io::duplex(1024);
    let mut frames = Framed::new(stream, FrameCodec::builder().max_frame_len(8).build());

    // Raised between frames: the next, larger frame passes.
    peer.write_all(&wire(&[&b"short"[..], b"somewhat longer"]))
        .await
        .unwrap();
    let first = within("a frame", frames.next()).await.unwrap().unwrap();
    assert_eq!(&first[..], b"short");
    frames.codec_mut().set_max_decode_frame_len(64);
    let second = within("a frame", frames.next()).await.unwrap().unwrap();
    assert_eq!(&second[..], b"somewhat longer");

    // Lowered while a frame's header is accepted and its payload on the way:
    // that frame still comes whole, and the limit judges the next one.
    let stream = wire(&[&b"accepted at 64"[..], b"over 8 bytes"]);
    peer.write_all(&stream[..6]).await.unwrap();
    assert!(
        frames.next().now_or_never().is_none(),
        "a frame came out of 6 of its bytes"
    );
    frames.codec_mut().set_max_decode_frame_len(8);
    peer.write_all(&stream[6..]).await.unwrap();
    let third = within("a frame", frames.next()).await.unwrap().unwrap();
    assert_eq!(&third[..], b"accepted at 64");
    match within("the rejection", frames.next()).await {
        Some(Err(FrameError::FrameTooLarge { len, max })) => assert_eq!((len, max), (12, 8)),
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}

#[test]
fn errors_state_their_numbers_and_kind() {
    let too_large = FrameError::FrameTooLarge { len: 9, max: 8 };
    assert_eq!(
        too_large.to_string(),
        "frame of 9 bytes exceeds the maximum of 8 bytes"
    );
    assert_eq!(too_large.kind(), "frame_too_large");

    let truncated = FrameError::Truncated {
        received: 7,
        expected: 14,
    };
    assert_eq!(
        truncated.to_string(),
        "stream ended inside a frame: 7 of 14 bytes received"
    );
    assert_eq!(truncated.kind(), "truncated");

    let cause = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    let cause_text = cause.to_string();
    let io = FrameError::from(cause);
    // Transparent: the cause is named once, not repeated by error chains.
    assert_eq!(io.to_string(), cause_text);
    assert!(std::error::Error::source(&io).is_none());
    assert_eq!(io.kind(), "io");
}

/// Runs `future` under the test timeout.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Accepts one connection on `listener` and echoes its frames until the peer
/// finishes sending; returns how many frames it echoed.
async fn echo_one_connection(
    listener: TcpListener,
    codec: FrameCodec,
) -> Result<usize, FrameError> {
    let (socket, _) = listener.accept().await?;
    let mut frames = Framed::new(socket, codec);
    let mut count = 0;
    while let Some(frame) = frames.next().await {
        frames.send(frame?.freeze()).await?;
        count += 1;
    }
    Ok(count)
}

#[tokio::test]
async fn pipelined_frames_echo_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(echo_one_connection(listener, FrameCodec::new()));

    let mebibyte: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
    let payloads: Vec<Bytes> = vec![
        Bytes::from_static(b"first"),
        Bytes::new(),
        Bytes::from(mebibyte),
        Bytes::from_static(b"after the big one"),
        Bytes::new(),
        Bytes::from_static(b"last"),
    ];

    let socket = within("connect", TcpStream::connect(addr)).await.unwrap();
    let (read_half, write_half) = socket.into_split();
    // Send everything without waiting for echoes, while reading them on this
    // task: the echo of the 1 MiB frame must be drained for the writes to finish.
    let writer = tokio::spawn({
        let payloads = payloads.clone();
        async move {
            let mut sink = FramedWrite::new(write_half, FrameCodec::new());
            for payload in payloads {
                sink.feed(payload).await?;
            }
            SinkExt::<Bytes>::flush(&mut sink).await?;
            // Half-close so that the echo task sees the end of the stream.
            sink.into_inner().shutdown().await?;
            Ok::<_, FrameError>(())
        }
    });

    let mut echoes = FramedRead::new(read_half, FrameCodec::new());
    for (index, payload) in payloads.iter().enumerate() {
        let echo = within("an echo", echoes.next())
            .await
            .unwrap_or_else(|| panic!("the connection closed before echo {index}"))
            .unwrap();
        assert!(
            echo[..] == payload[..],
            "echo {index} differs from what was sent"
        );
    }
    assert!(within("end of stream", echoes.next()).await.is_none());

    within("the writer", writer).await.unwrap().unwrap();
    let echoed = within("the server", server).await.unwrap().unwrap();
    assert_eq!(echoed, payloads.len());
}

#[tokio::test]
async fn an_oversize_frame_surfaces_as_a_typed_error_through_framed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(echo_one_connection(
        listener,
        FrameCodec::builder().max_frame_len(1024).build(),
    ));

    let socket = within("connect", TcpStream::connect(addr)).await.unwrap();
    let mut client = Framed::new(socket, FrameCodec::new());
    within("send", client.send(Bytes::from_static(b"fine")))
        .await
        .unwrap();
    let echo = within("echo", client.next()).await.unwrap().unwrap();
    assert_eq!(&echo[..], b"fine");
    within("send", client.send(Bytes::from(vec![0; 2000])))
        .await
        .unwrap();

    match within("the server", server).await.unwrap() {
        Err(FrameError::FrameTooLarge { len, max }) => assert_eq!((len, max), (2000, 1024)),
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    // The server dropped the connection without echoing the bad frame. It
    // closed with the bad frame's payload unread, so the end may come as a reset.
    match within("end of stream", client.next()).await {
        None | Some(Err(FrameError::Io(_))) => {}
        Some(other) => panic!("expected the connection to end, got {other:?}"),
    }
}
