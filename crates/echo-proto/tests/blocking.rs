//! The blocking helpers `write_frame` and `read_frame`, over a real socket and
//! over readers and writers that misbehave in the ways `std::io` allows.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::{assert_truncated, wire};
use echo_proto::{FrameError, read_frame, write_frame};

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
fn echo(mut socket: TcpStream) -> Result<usize, FrameError> {
    let mut count = 0;
    while let Some(payload) = read_frame(&mut socket, MAX)? {
        write_frame(&mut socket, &payload)?;
        count += 1;
    }
    Ok(count)
}

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
    let mut reader = StingyReader::new(stream, 4);
    let peak_before = peak_virtual_memory_kib();
    assert_truncated(
        read_frame(&mut reader, usize::MAX),
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
