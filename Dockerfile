# The echo-server and echo-client binaries in a minimal image.
#
#   docker build -t echo-server:0.1.0 .
#   docker run --rm -p 9999:9999 -p 9999:9999/udp -p 9100:9100 echo-server:0.1.0
#
# The build stage compiles the release binaries with the toolchain the
# project is tested on; the runtime stage is distroless: glibc and CA roots,
# no shell, no package manager, and a non-root user (65532).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p echo-server -p echo-client

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/echo-server /src/target/release/echo-client /usr/local/bin/
USER 65532:65532
# Framed TCP and UDP echo, the TLS listener, the admin endpoint.
EXPOSE 9999/tcp 9999/udp 9443/tcp 9100/tcp
ENTRYPOINT ["/usr/local/bin/echo-server"]
# Inside a container the listeners must take connections from outside it,
# so the image asks for every address, where the binary alone would keep to
# loopback.
CMD ["--listen=0.0.0.0:9999", "--udp=0.0.0.0:9999", "--admin=0.0.0.0:9100"]
