#!/usr/bin/env python3
"""A TLS client of the echo protocol with Python's standard `ssl` module: an
independent TLS stack checking the server's certificate and echo.

Usage: tls_client.py HOST PORT CAFILE SERVER_NAME

Prints `ok TLSv1.x` and exits 0 if a framed echo comes back identical over
TLS 1.2 and over TLS 1.3; otherwise says what went wrong and exits 1.
"""

import socket
import ssl
import struct
import sys

TIMEOUT = 10.0


def echo_once(host, port, cafile, name, version):
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = version
    context.maximum_version = version
    payload = b"Hello from Python's ssl"
    frame = struct.pack(">I", len(payload)) + payload
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(frame)
            echo = b""
            while len(echo) < len(frame):
                chunk = tls.recv(len(frame) - len(echo))
                if not chunk:
                    raise RuntimeError("the server closed before the echo was whole")
                echo += chunk
            if echo != frame:
                raise RuntimeError(f"echo differs: {echo!r}")
            return tls.version()


def main():
    host, port, cafile, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        try:
            negotiated = echo_once(host, port, cafile, name, version)
        except Exception as error:  # Every failure is a line and exit 1.
            print(f"failed over {version.name}: {error}")
            return 1
        print(f"ok {negotiated}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
