/*
 * What one small write costs this machine's kernel on a loopback TCP
 * connection, made with send(2) and with writev(2) of three slices of which
 * only the first has bytes: the measurement behind echo-client's writing a
 * single span with send (try_write_parts in crates/echo-client/src/transport.rs;
 * docs/performance.md). writev copies in and checks its array of slices
 * before it reaches the same TCP code as send.
 *
 * A thread on CPU 0 drains the connection; the writer, on CPU 1, takes turns
 * between ROUNDS blocks of CALLS sends and CALLS writevs of 64 bytes, and
 * times each block by its own CPU time, so that the two see the same machine.
 *
 * Usage: cc -O2 -pthread -o send_writev xtask/bench/send_writev.c && ./send_writev
 * Prints the CPU time per call of each, in microseconds, and their ratio.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 40
#define CALLS 20000
#define MESSAGE_LEN 64

static void fail(const char *what) {
    perror(what);
    exit(1);
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    /* On a machine without that CPU, run unpinned. */
    (void)sched_setaffinity(0, sizeof set, &set);
}

static double cpu_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static void *drain(void *arg) {
    int fd = *(int *)arg;
    static char buffer[65536];
    pin(0);
    while (read(fd, buffer, sizeof buffer) > 0) {
    }
    return NULL;
}

int main(void) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) fail("socket");
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) fail("bind");
    if (listen(listener, 1) < 0) fail("listen");
    if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0) fail("getsockname");
    int writer = socket(AF_INET, SOCK_STREAM, 0);
    if (writer < 0) fail("socket");
    if (connect(writer, (struct sockaddr *)&addr, sizeof addr) < 0) fail("connect");
    int reader = accept(listener, NULL, NULL);
    if (reader < 0) fail("accept");
    int one = 1;
    setsockopt(writer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    pthread_t thread;
    if (pthread_create(&thread, NULL, drain, &reader) != 0) fail("pthread_create");
    pin(1);

    static char message[MESSAGE_LEN];
    struct iovec slices[3] = {{message, MESSAGE_LEN}, {message, 0}, {message, 0}};
    double send_time = 0, writev_time = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double start = cpu_seconds();
        for (int i = 0; i < CALLS; i++)
            if (send(writer, message, MESSAGE_LEN, MSG_NOSIGNAL) != MESSAGE_LEN) fail("send");
        send_time += cpu_seconds() - start;
        start = cpu_seconds();
        for (int i = 0; i < CALLS; i++)
            if (writev(writer, slices, 3) != MESSAGE_LEN) fail("writev");
        writev_time += cpu_seconds() - start;
    }
    double calls = (double)ROUNDS * CALLS;
    printf("send %.3f us, writev of 3 slices %.3f us per call of %d bytes: writev %.3fx send\n",
           send_time / calls * 1e6, writev_time / calls * 1e6, MESSAGE_LEN, writev_time / send_time);
    return 0;
}
