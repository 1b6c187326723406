/*
 * The reference for `cargo xtask bench --reference`: the plainest fast echo
 * server, one thread, epoll, one shared 64 KiB buffer. It echoes bytes as
 * they arrive (which, for framed traffic, returns identical frames).
 *
 * A connection holds memory only while a write is incomplete: the unsent
 * bytes are copied aside, the connection waits for EPOLLOUT and reads
 * nothing more until they are sent, which is TCP backpressure.
 *
 * Usage: epoll_echo PORT   (127.0.0.1; 0 picks a free port)
 * Prints "epoll_echo listening on 127.0.0.1:PORT" once ready. Stops on
 * SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER_LEN 65536
#define MAX_EVENTS 256

/* Unsent bytes of a connection whose last write was incomplete. */
struct pending {
    char *bytes;
    size_t len;
    size_t sent;
};

static struct pending **pendings; /* indexed by file descriptor */
static size_t pendings_len;
static volatile sig_atomic_t stopping;

static void on_signal(int signal) { (void)signal; stopping = 1; }

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void close_connection(int epoll, int fd) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL);
    if ((size_t)fd < pendings_len && pendings[fd]) {
        free(pendings[fd]->bytes);
        free(pendings[fd]);
        pendings[fd] = NULL;
    }
    close(fd);
}

/* Sends bytes[0..len]; keeps what the socket would not take. Returns -1 if
 * the connection failed. */
static int send_or_keep(int epoll, int fd, const char *bytes, size_t len) {
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, bytes + sent, len - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if ((size_t)fd >= pendings_len) {
                size_t len_new = (size_t)fd * 2 + 1;
                pendings = realloc(pendings, len_new * sizeof *pendings);
                if (!pendings) die("realloc");
                memset(pendings + pendings_len, 0, (len_new - pendings_len) * sizeof *pendings);
                pendings_len = len_new;
            }
            struct pending *pending = malloc(sizeof *pending);
            if (!pending) die("malloc");
            pending->len = len - sent;
            pending->sent = 0;
            pending->bytes = malloc(pending->len);
            if (!pending->bytes) die("malloc");
            memcpy(pending->bytes, bytes + sent, pending->len);
            pendings[fd] = pending;
            struct epoll_event event = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event);
            return 0;
        } else {
            return -1;
        }
    }
    return 0;
}

static void on_writable(int epoll, int fd) {
    struct pending *pending = pendings[fd];
    while (pending->sent < pending->len) {
        ssize_t n = send(fd, pending->bytes + pending->sent, pending->len - pending->sent, MSG_NOSIGNAL);
        if (n > 0) {
            pending->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            close_connection(epoll, fd);
            return;
        }
    }
    free(pending->bytes);
    free(pending);
    pendings[fd] = NULL;
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    struct sigaction action = {.sa_handler = on_signal};
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 1024) < 0) die("listen");
    socklen_t addr_len = sizeof addr;
    getsockname(listener, (struct sockaddr *)&addr, &addr_len);
    printf("epoll_echo listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0) die("epoll_create1");
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);

    static char buffer[BUFFER_LEN];
    struct epoll_event events[MAX_EVENTS];
    while (!stopping) {
        int ready = epoll_wait(epoll, events, MAX_EVENTS, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                for (;;) {
                    int client = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (client < 0) break;
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event client_event = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, client, &client_event);
                }
            } else if (events[i].events & EPOLLOUT) {
                on_writable(epoll, fd);
            } else {
                ssize_t n = recv(fd, buffer, sizeof buffer, 0);
                if (n > 0) {
                    if (send_or_keep(epoll, fd, buffer, (size_t)n) < 0) close_connection(epoll, fd);
                } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                    close_connection(epoll, fd);
                }
            }
        }
    }
    return 0;
}
