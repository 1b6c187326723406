//! The blocking helpers `write_frame`, `read_frame` and `FrameReader`, over a
//! real socket and over readers and writers that misbehave in the ways
//! `std::io` allows.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::{assert_truncated, error_key, wire};
use echo_proto::{FrameError, FrameReader, read_frame, write_frame};

/// The longest any socket read or write in these tests may block.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A limit far above every frame of these tests.
const MAX: usize = 4 * 1024 * 1024;

/// A reader that hands out `data` a few bytes at a time, and can fail every
/// other call with `Interrupted`.
#[derive(Debug)]
struct StingyReader {
    data: Vec<u8>,
    position: usize,
    /// The most bytes one `read` call returns.
    step: usize,
    /// Whether every other call fails with `Interrupted` instead of reading.
    interrupt: bool,
    calls: usize,
}

impl StingyReader {
    fn new(data: Vec<u8>, step: usize) -> Self {
        Self {
            data,
            position: 0,
            step,
            interrupt: false,
            calls: 0,
        }
    }

    fn interrupting(data: Vec<u8>, step: usize) -> Self {
        Self {
            interrupt: true,
            ..Self::new(data, step)
        }
    }
}

impl Read for StingyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.interrupt && self.calls % 2 == 1 {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let rest = &self.data[self.position..];
        let n = rest.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&rest[..n]);
        self.position += n;
        Ok(n)
    }
}

/// A reader of a header followed by endless payload bytes, counting how many
/// bytes it has handed out.
#[derive(Debug)]
struct EndlessReader {
    header: [u8; 4],
    handed_out: usize,
}

impl Read for EndlessReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for byte in buf.iter_mut() {
            *byte = self.header.get(self.handed_out).copied().unwrap_or(0xaa);
            self.handed_out += 1;
        }
        Ok(buf.len())
    }
}

/// A writer that takes at most one byte per call, optionally failing every
/// other call with `Interrupted`.
#[derive(Debug, Default)]
struct TrickleWriter {
    written: Vec<u8>,
    interrupt: bool,
    calls: usize,
}

impl Write for TrickleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.interrupt && self.calls % 2 == 1 {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        match buf.first() {
            Some(byte) => {
                self.written.push(*byte);
                Ok(1)
            }
            None => Ok(0),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Echoes frames on `socket` until the peer stops sending; returns how many.
fn echo(socket: TcpStream) -> Result<usize, FrameError> {
    let mut writer = socket.try_clone()?;
    let mut frames = FrameReader::new(socket, MAX);
    let mut count = 0;
    while let Some(payload) = frames.read_frame()? {
        write_frame(&mut writer, payload)?;
        count += 1;
    }
    Ok(count)
}

/// Reads every frame of `reader` with a `FrameReader`, then the verdict at the
/// end: the payloads, and the error if the stream did not end cleanly.
fn read_all<R: Read>(reader: R, max: usize) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut frames = FrameReader::new(reader, max);
    let mut payloads = Vec::new();
    loop {
        match frames.read_frame() {
            Ok(Some(payload)) => payloads.push(payload.to_vec()),
            Ok(None) => return (payloads, None),
            Err(error) => return (payloads, Some(error)),
        }
    }
}

/// A reader that counts its calls and hands out as much as asked.
#[derive(Debug)]
struct CountingReader<'a> {
    data: &'a [u8],
    calls: usize,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        self.data.read(buf)
    }
}

/// The frames read through a FrameReader over the socket: the server side
/// echoes with one, the client side reads with `read_frame`.
#[test]
fn frames_round_trip_over_a_tcp_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Connect before accepting: the connection waits in the backlog, so the
    // accept below returns at once instead of possibly blocking forever.
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server_socket, _) = listener.accept().unwrap();
    for socket in [&server_socket, &client] {
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(TIMEOUT)).unwrap();
    }
    let server = thread::spawn(move || echo(server_socket));

    // One frame at a time, including one larger than any socket buffer...
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 241) as u8).collect();
    let one_by_one: [&[u8]; 3] = [b"ping", b"", &big];
    for payload in one_by_one {
        write_frame(&mut client, payload).unwrap();
        let echo = read_frame(&mut client, MAX).unwrap().expect("an echo");
        assert!(
            echo == payload,
            "the echo of a {}-byte frame differs",
            payload.len()
        );
    }
    // ...then a few small ones pipelined, which fit in the socket buffers.
    let pipelined: [&[u8]; 4] = [b"one", b"", b"three", &[0; 1000]];
    for payload in pipelined {
        write_frame(&mut client, payload).unwrap();
    }
    for payload in pipelined {
        assert_eq!(
            read_frame(&mut client, MAX).unwrap().as_deref(),
            Some(payload)
        );
    }

    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_frame(&mut client, MAX).unwrap(), None);
    let echoed = server.join().expect("the echo thread panicked").unwrap();
    assert_eq!(echoed, one_by_one.len() + pipelined.len());
}

#[test]
fn a_writer_taking_one_byte_per_call_still_gets_the_exact_frame() {
    for payload in [&b"trickle"[..], b""] {
        let mut writer = TrickleWriter::default();
        write_frame(&mut writer, payload).unwrap();
        assert_eq!(writer.written, wire(&[payload]));
        assert_eq!(writer.calls, 4 + payload.len());
    }
}

#[test]
fn interrupted_writes_are_retried() {
    let mut writer = TrickleWriter {
        interrupt: true,
        ..TrickleWriter::default()
    };
    write_frame(&mut writer, b"again").unwrap();
    assert_eq!(writer.written, wire(&[b"again"]));
    assert_eq!(writer.calls, 2 * (4 + 5));
}

#[test]
fn a_writer_that_accepts_nothing_is_an_error_not_a_hang() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Ok(0)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    match write_frame(&mut Full, b"nowhere") {
        Err(FrameError::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::WriteZero),
        other => panic!("expected a WriteZero error, got {other:?}"),
    }
}

#[test]
fn a_failing_writer_reports_its_error() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    match write_frame(&mut Broken, b"lost") {
        Err(FrameError::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::BrokenPipe),
        other => panic!("expected a BrokenPipe error, got {other:?}"),
    }
}

#[test]
fn interrupted_and_short_reads_are_retried() {
    let payloads: [&[u8]; 3] = [b"short reads", b"", &[9; 300]];
    let mut reader = StingyReader::interrupting(wire(&payloads), 3);
    for payload in payloads {
        assert_eq!(
            read_frame(&mut reader, MAX).unwrap().as_deref(),
            Some(payload)
        );
    }
    assert_eq!(read_frame(&mut reader, MAX).unwrap(), None);
}

#[test]
fn a_failing_reader_reports_its_error() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::ConnectionReset))
        }
    }
    match read_frame(&mut Broken, MAX) {
        Err(FrameError::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset),
        other => panic!("expected a ConnectionReset error, got {other:?}"),
    }
}

#[test]
fn the_end_of_stream_inside_a_header_is_a_truncation() {
    assert_truncated(read_frame(&mut &[0u8][..], MAX), 1, 4);
    assert_truncated(
        read_frame(&mut StingyReader::new(vec![0, 0, 1], 1), MAX),
        3,
        4,
    );

    let mut stream = wire(&[b"whole"]);
    stream.extend_from_slice(&[0, 0]);
    let mut reader = &stream[..];
    assert_eq!(
        read_frame(&mut reader, MAX).unwrap(),
        Some(b"whole".to_vec())
    );
    assert_truncated(read_frame(&mut reader, MAX), 2, 4);
}

#[test]
fn the_end_of_stream_inside_a_payload_is_a_truncation() {
    let mut stream = wire(&[b"0123456789"]);
    stream.truncate(7);
    assert_truncated(read_frame(&mut &stream[..], MAX), 7, 14);
    assert_truncated(read_frame(&mut &stream[..4], MAX), 4, 14);
    assert_truncated(
        read_frame(&mut StingyReader::interrupting(stream, 2), MAX),
        7,
        14,
    );
}

#[test]
fn a_clean_end_of_stream_is_none() {
    assert_eq!(read_frame(&mut io::empty(), MAX).unwrap(), None);
    assert_eq!(
        read_frame(&mut StingyReader::interrupting(Vec::new(), 1), MAX).unwrap(),
        None
    );
}

#[test]
fn an_oversize_header_is_rejected_before_reading_any_payload() {
    let mut reader = EndlessReader {
        header: 17u32.to_be_bytes(),
        handed_out: 0,
    };
    match read_frame(&mut reader, 16) {
        Err(FrameError::FrameTooLarge { len, max }) => assert_eq!((len, max), (17, 16)),
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(
        reader.handed_out, 4,
        "read_frame read past the rejected header"
    );
}

#[test]
fn a_frame_of_exactly_the_limit_is_read() {
    let mut reader = EndlessReader {
        header: 16u32.to_be_bytes(),
        handed_out: 0,
    };
    assert_eq!(read_frame(&mut reader, 16).unwrap(), Some(vec![0xaa; 16]));
    assert_eq!(reader.handed_out, 4 + 16, "read_frame read past the frame");
}

#[test]
fn a_huge_announced_length_with_few_bytes_behind_it_is_a_truncation() {
    // The header claims 4 GiB; 10 bytes follow.
    let mut stream = vec![0xff; 4];
    stream.extend_from_slice(b"only ten b");
    let peak_before = peak_virtual_memory_kib();
    assert_truncated(
        read_frame(&mut StingyReader::new(stream.clone(), 4), usize::MAX),
        14,
        4 + u64::from(u32::MAX),
    );
    assert_truncated(
        FrameReader::new(StingyReader::new(stream, 4), usize::MAX).read_frame(),
        14,
        4 + u64::from(u32::MAX),
    );
    let peak_after = peak_virtual_memory_kib();

    // Reserving the claimed 4 GiB, even untouched, would raise the process's
    // peak address space by that much. Other tests running meanwhile may add
    // thread stacks and allocator arenas, hence the wide margin.
    if let (Some(before), Some(after)) = (peak_before, peak_after) {
        assert!(
            after - before < 2 * 1024 * 1024,
            "the peak address space grew by {} KiB while reading 10 bytes",
            after - before
        );
    }
}

/// The peak virtual memory size of this process in KiB, where the platform
/// reports it (Linux's /proc).
fn peak_virtual_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmPeak:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

#[test]
fn a_frame_reader_reads_the_frames_then_none() {
    let payloads: [&[u8]; 4] = [b"one", b"", &[7; 20_000], b"four"];
    let (read, error) = read_all(&wire(&payloads)[..], MAX);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(read, payloads);
}

#[test]
fn a_frame_reader_retries_interrupted_and_short_reads() {
    let payloads: [&[u8]; 3] = [b"short reads", b"", &[9; 300]];
    let (read, error) = read_all(StingyReader::interrupting(wire(&payloads), 3), MAX);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(read, payloads);
}

#[test]
fn a_frame_reader_reports_the_errors_of_read_frame() {
    let mut cut = wire(&[b"0123456789"]);
    cut.truncate(7);
    let streams: [(&[u8], usize); 4] = [
        (&[0], MAX),
        (&[0, 0, 1], MAX),
        (&cut, MAX),
        (&[0, 0, 0, 17, 1, 2], 16),
    ];
    for (stream, max) in streams {
        let (read, error) = read_all(StingyReader::new(stream.to_vec(), 2), max);
        assert!(read.is_empty());
        let expected = read_frame(&mut &stream[..], max).expect_err("a bad stream");
        assert_eq!(
            error.as_ref().map(error_key),
            Some(error_key(&expected)),
            "{stream:?}"
        );
    }
    assert_truncated(FrameReader::new(&cut[..], MAX).read_frame(), 7, 14);
}

#[test]
fn a_frame_reader_keeps_failing_after_a_rejection_and_keeps_the_bad_header() {
    let stream = [0, 0, 0, 17, 1, 2];
    let mut frames = FrameReader::new(&stream[..], 16);
    for _ in 0..2 {
        match frames.read_frame() {
            Err(FrameError::FrameTooLarge { len, max }) => assert_eq!((len, max), (17, 16)),
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
    }
    assert_eq!(frames.buffered(), stream);
}

#[test]
fn a_frame_reader_reads_many_small_frames_in_one_read() {
    let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 10]).collect();
    let stream = wire(&payloads);
    let mut reader = CountingReader {
        data: &stream,
        calls: 0,
    };
    let (read, error) = read_all(&mut reader, MAX);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(read, payloads);
    // 1,400 bytes: one read brings them all, one more finds the end.
    assert_eq!(reader.calls, 2);
}

#[test]
fn read_frame_never_reads_past_the_frame() {
    let stream = wire(&[&b"first"[..], b"second"]);
    let mut reader = CountingReader {
        data: &stream,
        calls: 0,
    };
    assert_eq!(
        read_frame(&mut reader, MAX).unwrap(),
        Some(b"first".to_vec())
    );
    assert_eq!(reader.data, &wire(&[b"second"])[..]);
}

#[test]
fn bytes_read_ahead_are_buffered_for_a_caller_who_reads_on_directly() {
    // A frame, then raw bytes: after the frame, the caller reads the socket
    // itself, taking first what the frame reader read ahead.
    let mut stream = wire(&[b"switch"]);
    stream.extend_from_slice(b"unframed from here");
    let mut frames = FrameReader::new(StingyReader::new(stream, 12), MAX);
    assert_eq!(frames.read_frame().unwrap(), Some(&b"switch"[..]));
    let mut rest = frames.buffered().to_vec();
    assert_eq!(rest, b"un", "12 bytes read: a 10-byte frame and 2 more");
    frames.get_mut().read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"unframed from here");
}

/// A reader that fails once with `error` after handing out `before` bytes,
/// then hands out the rest.
#[derive(Debug)]
struct FailingOnce {
    data: Vec<u8>,
    position: usize,
    before: usize,
    error: Option<io::ErrorKind>,
}

impl Read for FailingOnce {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position == self.before {
            if let Some(kind) = self.error.take() {
                return Err(kind.into());
            }
        }
        let end = if self.error.is_some() {
            self.before
        } else {
            self.data.len()
        };
        let n = (end - self.position).min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[test]
fn a_frame_reader_carries_on_after_an_io_error_in_the_middle_of_a_frame() {
    let payloads: [&[u8]; 2] = [b"interrupted by a timeout", b"next"];
    let mut frames = FrameReader::new(
        FailingOnce {
            data: wire(&payloads),
            position: 0,
            before: 9,
            error: Some(io::ErrorKind::WouldBlock),
        },
        MAX,
    );
    match frames.read_frame() {
        Err(FrameError::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::WouldBlock),
        other => panic!("expected WouldBlock, got {other:?}"),
    }
    assert_eq!(frames.read_frame().unwrap(), Some(payloads[0]));
    assert_eq!(frames.read_frame().unwrap(), Some(payloads[1]));
    assert_eq!(frames.read_frame().unwrap(), None);
}

#[test]
fn a_frame_reader_gives_its_reader_back() {
    let mut frames = FrameReader::new(io::Cursor::new(wire(&[b"a"])), 16);
    assert_eq!(frames.max_frame_len(), 16);
    assert_eq!(frames.read_frame().unwrap(), Some(&b"a"[..]));
    assert_eq!(frames.get_ref().position(), 5);
    frames.get_mut().set_position(0);
    assert_eq!(frames.read_frame().unwrap(), Some(&b"a"[..]));
    assert_eq!(frames.into_inner().position(), 5);
}
