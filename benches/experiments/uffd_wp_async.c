/* uffd_wp_async: would userfaultfd's asynchronous write-protect track dirty
 * pages more cheaply than SIGSEGV + mprotect? (Issue 14, part 8.)
 *
 * A memory is a private mapping of a file whose every page was written
 * once (as an instance's heap after a few messages). Each "message" writes
 * one byte to each of k consecutive fresh pages; then the tracker learns
 * which pages were written and arms them again:
 *
 *   signal: pages are PROT_READ; a write faults, the handler makes its page
 *           writable and lists it; afterwards each run goes back to
 *           PROT_READ. One page per fault (the suite's tracker predicts
 *           runs, so its sweeps cost less: see update/write_*_pages).
 *   uffd:   the memory is registered for write-protect with
 *           UFFD_FEATURE_WP_ASYNC (Linux 6.7): the kernel resolves a write
 *           fault itself; PAGEMAP_SCAN with PM_SCAN_WP_MATCHING then returns
 *           the written pages and protects them again in one call. k = 0 is
 *           a message that writes nothing: the scan's fixed cost.
 *
 * Build and run (size in MiB, default 256):
 *   clang-19 -O2 -o /tmp/uffd_wp_async benches/experiments/uffd_wp_async.c
 *   /tmp/uffd_wp_async 256
 * The kernel headers of Debian 12 predate WP_ASYNC and PAGEMAP_SCAN, so
 * their constants are spelled out below (include/uapi/linux/userfaultfd.h
 * and fs.h). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define FEATURE_WP_UNPOPULATED (1ULL << 13)
#define FEATURE_WP_ASYNC (1ULL << 15)
#define PAGE_IS_WRITTEN (1ULL << 1)
#define PM_SCAN_WP_MATCHING (1ULL << 0)
#define PM_SCAN_CHECK_WPASYNC (1ULL << 1)
struct page_region { uint64_t start, end, categories; };
struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define MAX_MESSAGES 20000

static char *region;
static uint32_t written[1 << 20];
static volatile size_t nwritten;

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Async-signal-safe: one mprotect, one store. */
static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig, (void)ctx;
    uintptr_t page = (uintptr_t)si->si_addr & ~(PAGE - 1);
    if (mprotect((void *)page, PAGE, PROT_READ | PROT_WRITE)) _exit(2);
    written[nwritten++] = (uint32_t)((page - (uintptr_t)region) / PAGE);
}

/* A private mapping of a fresh file of len bytes, every page written once. */
static char *heap(const char *path, size_t len) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)len)) die(path);
    static char page[PAGE];
    memset(page, 1, PAGE);
    for (size_t at = 0; at < len; at += PAGE)
        if (pwrite(fd, page, PAGE, (off_t)at) != (ssize_t)PAGE) die("pwrite");
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) die("mmap");
    close(fd);
    unlink(path);
    for (size_t at = 0; at < len; at += PAGE) p[at] = 2;
    return p;
}

static size_t messages(size_t pages, int k) {
    size_t m = k ? pages / (size_t)k : MAX_MESSAGES;
    return m > MAX_MESSAGES ? MAX_MESSAGES : m;
}

static void report(const char *how, int k, double ns, size_t msgs) {
    printf("%-6s k=%5d: %10.2f us/message", how, k, ns / (double)msgs / 1e3);
    if (k) printf(" %7.3f us/page", ns / (double)msgs / k / 1e3);
    printf("\n");
}

int main(int argc, char **argv) {
    size_t len = (argc > 1 ? strtoul(argv[1], NULL, 10) : 256) << 20, pages = len / PAGE;
    const int ks[] = {0, 1, 16, 256, 4096};
    printf("memory: %zu MiB, every page resident\n", len >> 20);

    region = heap("/tmp/uffd_wp_async.signal", len);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSEGV, &sa, NULL) || mprotect(region, len, PROT_READ)) die("arm signal");
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        int k = ks[i];
        size_t msgs = messages(pages, k), at = 0;
        double start = now_ns();
        for (size_t m = 0; m < msgs; m++, at = (at + (size_t)k) % pages) {
            nwritten = 0;
            for (int j = 0; j < k; j++) region[((at + (size_t)j) % pages) * PAGE] ^= 1;
            for (size_t w = 0; w < nwritten;) {
                size_t n = 1;
                while (w + n < nwritten && written[w + n] == written[w] + n) n++;
                if (mprotect(region + written[w] * PAGE, n * PAGE, PROT_READ)) die("rearm");
                w += n;
            }
        }
        report("signal", k, now_ns() - start, msgs);
    }

    char *mem = heap("/tmp/uffd_wp_async.uffd", len);
    int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    if (uffd < 0) die("userfaultfd");
    struct uffdio_api api = {.api = UFFD_API, .features = FEATURE_WP_ASYNC | FEATURE_WP_UNPOPULATED};
    if (ioctl(uffd, UFFDIO_API, &api)) die("UFFDIO_API (WP_ASYNC needs Linux 6.7)");
    struct uffdio_register reg = {.range = {(uintptr_t)mem, len}, .mode = UFFDIO_REGISTER_MODE_WP};
    if (ioctl(uffd, UFFDIO_REGISTER, &reg)) die("UFFDIO_REGISTER");
    struct uffdio_writeprotect wp = {.range = {(uintptr_t)mem, len}, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    double armed = now_ns();
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp)) die("UFFDIO_WRITEPROTECT");
    printf("uffd: write-protecting the memory took %.2f ms\n", (now_ns() - armed) / 1e6);
    int pagemap = open("/proc/self/pagemap", O_RDONLY);
    if (pagemap < 0) die("/proc/self/pagemap");
    static struct page_region found[4096];
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        int k = ks[i];
        size_t msgs = messages(pages, k), at = 0, seen = 0;
        double start = now_ns();
        for (size_t m = 0; m < msgs; m++, at = (at + (size_t)k) % pages) {
            for (int j = 0; j < k; j++) mem[((at + (size_t)j) % pages) * PAGE] ^= 1;
            struct pm_scan_arg scan = {
                .size = sizeof scan,
                .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
                .start = (uintptr_t)mem,
                .end = (uintptr_t)mem + len,
                .vec = (uintptr_t)found,
                .vec_len = sizeof found / sizeof *found,
                .category_mask = PAGE_IS_WRITTEN,
                .return_mask = PAGE_IS_WRITTEN,
            };
            long n = ioctl(pagemap, PAGEMAP_SCAN, &scan);
            if (n < 0) die("PAGEMAP_SCAN");
            for (long r = 0; r < n; r++) seen += (found[r].end - found[r].start) / PAGE;
        }
        double ns = now_ns() - start;
        report("uffd", k, ns, msgs);
        if (seen != msgs * (size_t)k) {
            fprintf(stderr, "uffd: the scans found %zu written pages, not %zu\n", seen, msgs * (size_t)k);
            return 1;
        }
    }
    return 0;
}
