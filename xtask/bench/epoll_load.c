/*
 * The reference client for `cargo xtask bench --reference`: the plainest
 * pipelining echo load generator, one thread, epoll. It keeps DEPTH messages
 * of SIZE payload bytes in flight on each of CONNECTIONS connections and
 * sends a new message for each echo that comes back whole. It checks and
 * times nothing: it is there to drive a server as hard as one core can, so
 * that the server, not the client, is what runs out. (echo-client checks
 * every byte and times every echo; this is the floor it is compared with.)
 *
 * Messages are zero bytes, each after a 4-byte big-endian length when framed.
 * An echo is whole once as many bytes as one message came back: echoes come
 * back in order, so counting bytes counts echoes, framed or raw.
 *
 * Usage: epoll_load PORT CONNECTIONS DEPTH SIZE SECONDS framed|raw
 * Connects to 127.0.0.1:PORT, runs for SECONDS, and prints one line:
 *   {"echoed": N, "seconds": S}
 * Exits 1 (with a message on stderr) if a connection fails or closes, or if
 * nothing arrives for 10 seconds; 2 on a usage error. Meant for small
 * windows (DEPTH messages of SIZE bytes fit a socket's buffers), as its
 * sends block.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER_LEN 65536
#define MAX_EVENTS 256
#define STALL_SECONDS 10.0

static double now(void) {
    struct timespec time;
    clock_gettime(CLOCK_MONOTONIC, &time);
    return (double)time.tv_sec + (double)time.tv_nsec / 1e9;
}

static void fail(const char *what) {
    perror(what);
    exit(1);
}

/* Sends all of bytes[0..len] on a blocking socket. */
static void send_all(int fd, const char *bytes, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, bytes, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("send");
        bytes += n;
        len -= (size_t)n;
    }
}

static long parse(const char *text, const char *what, long min) {
    char *end;
    long value = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || value < min) {
        fprintf(stderr, "epoll_load: %s must be a whole number, at least %ld, got `%s`\n", what, min, text);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv) {
    if (argc != 7 || (strcmp(argv[6], "framed") != 0 && strcmp(argv[6], "raw") != 0)) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS DEPTH SIZE SECONDS framed|raw\n", argv[0]);
        return 2;
    }
    long port = parse(argv[1], "PORT", 1);
    long connections = parse(argv[2], "CONNECTIONS", 1);
    long depth = parse(argv[3], "DEPTH", 1);
    long size = parse(argv[4], "SIZE", 1);
    char *end;
    double seconds = strtod(argv[5], &end);
    if (*argv[5] == '\0' || *end != '\0' || !(seconds > 0)) {
        fprintf(stderr, "epoll_load: SECONDS must be a number above 0, got `%s`\n", argv[5]);
        return 2;
    }
    int framed = strcmp(argv[6], "framed") == 0;
    size_t message_len = (size_t)size + (framed ? 4 : 0);

    /* A window's worth of messages, ready to send: one send refills any
     * number of echoes at once. */
    char *messages = calloc((size_t)depth, message_len);
    if (!messages) fail("calloc");
    if (framed) {
        uint32_t header = htonl((uint32_t)size);
        for (long i = 0; i < depth; i++) memcpy(messages + (size_t)i * message_len, &header, 4);
    }

    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0) fail("epoll_create1");
    int *fds = calloc((size_t)connections, sizeof *fds);
    /* Bytes of a partly arrived echo, per connection. */
    size_t *partial = calloc((size_t)connections, sizeof *partial);
    if (!fds || !partial) fail("calloc");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    for (long i = 0; i < connections; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) fail("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) fail("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* The socket stays blocking: sends are of a small window, which the
         * socket's buffers take at once; reads only follow epoll. */
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) < 0) fail("epoll_ctl");
        fds[i] = fd;
    }
    for (long i = 0; i < connections; i++) send_all(fds[i], messages, (size_t)depth * message_len);

    static char buffer[BUFFER_LEN];
    struct epoll_event events[MAX_EVENTS];
    unsigned long long echoed = 0;
    double start = now(), deadline = start + seconds, last_arrival = start, time = start;
    while (time < deadline) {
        int ready = epoll_wait(epoll, events, MAX_EVENTS, 100);
        if (ready < 0 && errno != EINTR) fail("epoll_wait");
        for (int e = 0; e < ready; e++) {
            long i = (long)events[e].data.u64;
            ssize_t n = recv(fds[i], buffer, sizeof buffer, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n < 0) fail("recv");
            if (n == 0) {
                fprintf(stderr, "epoll_load: the server closed connection %ld\n", i);
                return 1;
            }
            partial[i] += (size_t)n;
            size_t whole = partial[i] / message_len;
            partial[i] %= message_len;
            if (whole > 0) {
                echoed += whole;
                send_all(fds[i], messages, whole * message_len);
            }
        }
        time = now();
        if (ready > 0) last_arrival = time;
        if (time - last_arrival > STALL_SECONDS) {
            fprintf(stderr, "epoll_load: nothing arrived for %.0f seconds\n", STALL_SECONDS);
            return 1;
        }
    }
    printf("{\"echoed\": %llu, \"seconds\": %.6f}\n", echoed, time - start);
    return 0;
}
