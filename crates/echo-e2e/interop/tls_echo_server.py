#!/usr/bin/env python3
"""An RFC 862 echo server over TLS with Python's standard `ssl` module: an
independent TLS stack for echo-client to speak to.

Usage: tls_echo_server.py CERTFILE KEYFILE VERSION [CLIENT_CAFILE]

VERSION is 1.2 or 1.3, the only one the server speaks. With CLIENT_CAFILE,
clients must present a certificate that CA signed. It listens on a free
loopback port, prints `listening on PORT` and serves, echoing every byte,
until it is killed. A connection whose handshake fails is logged on stderr
and closed.
"""

import socket
import ssl
import sys
import threading

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def serve(tls):
    with tls:
        while True:
            data = tls.recv(65536)
            if not data:
                return
            tls.sendall(data)


def main():
    certfile, keyfile, version = sys.argv[1:4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    context.minimum_version = VERSIONS[version]
    context.maximum_version = VERSIONS[version]
    if len(sys.argv) > 4:
        context.load_verify_locations(cafile=sys.argv[4])
        context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"listening on {listener.getsockname()[1]}", flush=True)
    while True:
        raw, _ = listener.accept()
        try:
            tls = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as error:
            print(f"handshake failed: {error}", file=sys.stderr, flush=True)
            raw.close()
            continue
        threading.Thread(target=serve, args=(tls,), daemon=True).start()


if __name__ == "__main__":
    main()
