/*
 * How fast this machine's memcpy (glibc's, as echo-server's copies use it)
 * copies a block to a destination `distance` bytes past its source's offset
 * in a 4 KiB page: the measurement behind the relay buffer's headroom
 * (HEADROOM in crates/echo-server/src/relay.rs; docs/performance.md).
 *
 * On CPUs that advertise "fast short rep movsb" (FSRM: Intel since Ice Lake,
 * AMD since Zen 3), glibc copies blocks of a few KiB and more with
 * `rep movsb`; on AMD's, that runs far slower when the destination is a few
 * bytes ahead of the source modulo 4 KiB, where a TLS record's payload lands
 * when its plaintext starts at a page boundary.
 *
 * Usage: cc -O2 -o memcpy_distance xtask/bench/memcpy_distance.c && ./memcpy_distance
 * Prints GB/s for 16 KiB (a TLS record's payload) and 64 KiB blocks.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE 4096
#define BYTES_PER_CELL (1L << 30)

static double seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

int main(void) {
    static const size_t lens[] = {16384, 65536};
    static const size_t distances[] = {0, 1, 5, 16, 31, 32, 64, 128, 2048};
    size_t area = 2 * 65536 + PAGE;
    char *source = aligned_alloc(PAGE, area);
    char *destination = aligned_alloc(PAGE, area);
    if (source == NULL || destination == NULL) {
        perror("aligned_alloc");
        return 1;
    }
    memset(source, 1, area);
    memset(destination, 2, area);
    printf("%8s", "distance");
    for (size_t d = 0; d < sizeof distances / sizeof *distances; d++) printf(" %7zu", distances[d]);
    printf("\n");
    for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
        size_t len = lens[l];
        printf("%6zu B", len);
        for (size_t d = 0; d < sizeof distances / sizeof *distances; d++) {
            char *to = destination + distances[d];
            long copies = BYTES_PER_CELL / (long)len;
            double start = seconds();
            for (long i = 0; i < copies; i++) {
                memcpy(to, source, len);
                /* Keeps the compiler from dropping copies nothing reads. */
                __asm__ volatile("" : : "r"(to) : "memory");
            }
            double elapsed = seconds() - start;
            printf(" %7.1f", (double)copies * (double)len / elapsed / 1e9);
        }
        printf("   GB/s\n");
    }
    free(source);
    free(destination);
    return 0;
}
