#!/usr/bin/env python3
"""A client of the echo protocol, written from crates/echo-proto/PROTOCOL.md
alone, with the Python standard library only.

It proves that the specification is enough to interoperate: each check opens
its own connection to the server and compares every echo byte for byte.

Usage: framed_client.py HOST PORT

Prints `ok` and exits 0 if every check passes; otherwise prints what differed
and exits 1. Every socket operation has a timeout, so it cannot hang.
"""

import random
import socket
import struct
import sys
import threading

# Seconds any one socket operation may take.
TIMEOUT = 10.0


class Mismatch(Exception):
    """An echo differed from what was sent."""


def frame(payload):
    """A frame: the payload's length as a 4-byte big-endian u32, then the payload."""
    return struct.pack(">I", len(payload)) + payload


def recv_exact(sock, n):
    """Reads exactly n bytes, or fails if the stream ends first."""
    chunks = []
    left = n
    while left > 0:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise Mismatch(
                "the server closed the connection %d bytes short of %d"
                % (left, n)
            )
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(sock):
    """Reads one frame and returns its payload."""
    (n,) = struct.unpack(">I", recv_exact(sock, 4))
    return recv_exact(sock, n)


def describe(sent, echo):
    """Says briefly how two payloads differ."""
    first = next(
        (i for i, (a, b) in enumerate(zip(sent, echo)) if a != b),
        min(len(sent), len(echo)),
    )
    return "sent %d bytes, got %d bytes, first difference at byte %d" % (
        len(sent),
        len(echo),
        first,
    )


def expect_echoes(sock, payloads):
    """Reads one echo per payload, in order, and compares each with it."""
    for index, sent in enumerate(payloads):
        echo = read_frame(sock)
        if echo != sent:
            raise Mismatch(
                "echo %d of %d differs: %s"
                % (index + 1, len(payloads), describe(sent, echo))
            )


def expect_end(sock):
    """Checks that the server closes the stream with nothing more."""
    rest = sock.recv(1)
    if rest:
        raise Mismatch("expected the end of stream, got more bytes")


def send_while_reading(sock, data, payloads, after_send=None):
    """Sends data from a thread while this one reads the echoes of payloads.

    The server stops reading while the client does not read its echoes
    (TCP backpressure), so a client that sends more than the socket buffers
    hold must read at the same time.
    """
    errors = []

    def send():
        try:
            sock.sendall(data)
            if after_send is not None:
                after_send()
        except OSError as error:
            errors.append(error)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        expect_echoes(sock, payloads)
    finally:
        sender.join(TIMEOUT)
    if sender.is_alive():
        raise Mismatch("the send did not finish")
    if errors:
        raise Mismatch("the send failed: %s" % errors[0])


def pattern(seed, length):
    """Deterministic bytes, different for each seed."""
    return random.Random(seed).randbytes(length)


def check_empty_frame(sock):
    payloads = [b"", b"after the empty frame", b""]
    sock.sendall(b"".join(frame(p) for p in payloads))
    expect_echoes(sock, payloads)


def check_one_mib_frame(sock):
    payload = pattern(1, 1 << 20)
    send_while_reading(sock, frame(payload), [payload])


def check_every_byte_value(sock):
    payload = bytes(range(256))
    sock.sendall(frame(payload))
    expect_echoes(sock, [payload])


def check_pipelined(sock):
    # Sizes from empty to well past the server's 64 KiB relay buffer.
    sizes = [0, 1, 4, 65535, 65536, 65537, 200000] + [
        (i * 7919) % 20000 for i in range(93)
    ]
    payloads = [pattern(i, n) for i, n in enumerate(sizes)]
    data = b"".join(frame(p) for p in payloads)
    send_while_reading(sock, data, payloads)


def check_byte_by_byte(sock):
    # Without Nagle's algorithm each one-byte send is its own segment, so the
    # server really does receive the frame in pieces.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = b"sent one byte per send"
    for byte in frame(payload):
        sock.sendall(bytes([byte]))
    expect_echoes(sock, [payload])


def check_half_close(sock):
    payloads = [b"first", b"second", b"", b"last"]
    sock.sendall(b"".join(frame(p) for p in payloads))
    sock.shutdown(socket.SHUT_WR)
    expect_echoes(sock, payloads)
    expect_end(sock)


CHECKS = [
    ("zero-length frame", check_empty_frame),
    ("1 MiB frame", check_one_mib_frame),
    ("all 256 byte values", check_every_byte_value),
    ("100 pipelined frames", check_pipelined),
    ("a frame sent byte by byte", check_byte_by_byte),
    ("half-close", check_half_close),
]


def main(argv):
    if len(argv) != 3:
        print("usage: framed_client.py HOST PORT", file=sys.stderr)
        return 2
    host = argv[1]
    try:
        port = int(argv[2])
    except ValueError:
        print("error: PORT must be a number, got %r" % argv[2], file=sys.stderr)
        return 2
    failed = False
    for name, check in CHECKS:
        try:
            with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
                check(sock)
        except (Mismatch, OSError, struct.error) as error:
            print("%s: %s" % (name, str(error) or type(error).__name__))
            failed = True
    if failed:
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
