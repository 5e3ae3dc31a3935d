#include "runtime.h"
#include "ic0.h"

/* ---- C library functions --------------------------------------------
 * Built with -mbulk-memory, the __builtin_mem* calls below become single
 * memory.copy / memory.fill instructions (never a call back into these
 * functions), and the compiler emits the same instructions for struct
 * copies, so these exist for code that calls them explicitly. */

void *memcpy(void *dst, const void *src, size_t n) { return __builtin_memcpy(dst, src, n); }

/* memory.copy is specified to behave as if copying through a temporary
 * buffer, so overlapping ranges are fine. */
void *memmove(void *dst, const void *src, size_t n) { return __builtin_memmove(dst, src, n); }

void *memset(void *dst, int c, size_t n) { return __builtin_memset(dst, c, n); }

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

/* 128-bit multiplication (low 128 bits of the product), a compiler-rt
 * builtin. wasm32 has no 128-bit arithmetic, and LLVM turns 64-bit
 * overflow checks such as `a > UINT64_MAX / b` into a 128-bit multiply,
 * so it can call this. Built from 32x32->64 partial products so that it
 * never multiplies 128-bit values itself. */
static void mul_64x64(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi) {
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    /* Sum of three values below 2^32 each: no overflow. */
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    *lo = (mid << 32) | (uint32_t)p00;
    *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

__int128 __multi3(__int128 a, __int128 b);
__int128 __multi3(__int128 a, __int128 b) {
    unsigned __int128 ua = (unsigned __int128)a, ub = (unsigned __int128)b;
    uint64_t a_lo = (uint64_t)ua, a_hi = (uint64_t)(ua >> 64);
    uint64_t b_lo = (uint64_t)ub, b_hi = (uint64_t)(ub >> 64);
    uint64_t lo, hi;
    mul_64x64(a_lo, b_lo, &lo, &hi);
    /* The cross terms only reach the high half; wrap-around is intended. */
    hi += a_lo * b_hi + a_hi * b_lo;
    return (__int128)(((unsigned __int128)hi << 64) | lo);
}

/* ---- Traps and formatting ------------------------------------------- */

void rt_trap(const char *msg) { ic0_trap(msg, (uint32_t)strlen(msg)); }

typedef struct {
    char *buf;
    size_t cap; /* including the NUL */
    size_t len;
} out_t;

static void out_char(out_t *o, char c) {
    if (o->len + 1 < o->cap) o->buf[o->len++] = c;
}

static void out_str(out_t *o, const char *s) {
    while (*s) out_char(o, *s++);
}

static void out_u64(out_t *o, uint64_t v) {
    char digits[20]; /* 2^64-1 has 20 decimal digits */
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) out_char(o, digits[--n]);
}

static void out_i64(out_t *o, int64_t v) {
    if (v < 0) {
        out_char(o, '-');
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        out_u64(o, 0 - (uint64_t)v);
    } else {
        out_u64(o, (uint64_t)v);
    }
}

size_t rt_vformat(char *buf, size_t cap, const char *fmt, va_list ap) {
    out_t o = {buf, cap, 0};
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            out_char(&o, *p);
            continue;
        }
        p++;
        if (*p == 's') {
            const char *s = va_arg(ap, const char *);
            out_str(&o, s ? s : "(null)");
        } else if (*p == 'c') {
            out_char(&o, (char)va_arg(ap, int));
        } else if (*p == 'd') {
            out_i64(&o, va_arg(ap, int));
        } else if (*p == 'u') {
            out_u64(&o, va_arg(ap, unsigned));
        } else if (p[0] == 'z' && p[1] == 'u') {
            p++;
            out_u64(&o, va_arg(ap, size_t));
        } else if (p[0] == 'l' && p[1] == 'l' && p[2] == 'u') {
            p += 2;
            out_u64(&o, va_arg(ap, unsigned long long));
        } else if (p[0] == 'l' && p[1] == 'l' && p[2] == 'd') {
            p += 2;
            out_i64(&o, va_arg(ap, long long));
        } else if (*p == '%') {
            out_char(&o, '%');
        } else {
            /* Unknown conversion: the format attribute makes this a
             * compile error at call sites, so just stop. */
            break;
        }
    }
    if (cap) buf[o.len] = 0;
    return o.len;
}

size_t rt_format(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = rt_vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

void rt_trapf(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    size_t n = rt_vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ic0_trap(buf, (uint32_t)n);
}

/* ---- Heap allocator -------------------------------------------------
 *
 * Every block starts with an 8-byte header (size class and a tag that
 * catches double frees and wild pointers) followed by the payload. Block
 * sizes are multiples of 16 and blocks start at addresses that are 8 mod
 * 16, so payloads are 16-byte aligned.
 *
 * Small classes are blocks of 16, 32, ..., 256 bytes (header included).
 * Above that, payload capacities step through four classes per power of
 * two (1.25, 1.5, 1.75 and 2 times 2^k), so rounding wastes at most 25%;
 * those blocks carry 8 bytes of padding after the payload to keep the
 * 16-byte rhythm, which lets a power-of-two request (a hash table, say)
 * fill its class exactly. A freed block goes on its class's free list and
 * is only reused for the same class; there is no splitting or coalescing,
 * which keeps the code small and every operation O(1). */

#define HDR 8u
#define TAG_USED 0xA110C8EDu
#define TAG_FREE 0xF4EEB10Cu
#define PAGE 65536u
#define SMALL_CLASSES 16u
/* Large classes for k = 7..31 cover payloads up to 2^32, so class_of
 * never runs off the table for a 32-bit request. */
#define NCLASSES (SMALL_CLASSES + 4u * 25u)
/* Grow memory by at least this many pages at a time, to avoid one
 * memory.grow per small allocation. */
#define MIN_GROW_PAGES 16u

typedef struct {
    uint32_t cls;
    uint32_t tag;
} header_t;

extern unsigned char __heap_base; /* provided by wasm-ld: end of static data */

static void *free_lists[NCLASSES];
/* uint64_t because linear memory can be exactly 4 GiB. */
static uint64_t heap_top; /* next unused block address */
static uint64_t heap_end; /* current memory size in bytes */

/* Total block size of class c, header included. */
static uint64_t class_block_size(unsigned c) {
    if (c < SMALL_CLASSES) return 16u * (uint64_t)(c + 1);
    unsigned k = 7 + (c - SMALL_CLASSES) / 4;
    uint64_t q = (c - SMALL_CLASSES) % 4 + 1;
    return ((uint64_t)1 << k) + (q << (k - 2)) + HDR + 8;
}

/* Smallest class whose payload holds n bytes. */
static unsigned class_of(uint64_t n) {
    if (n + HDR <= 256) return (unsigned)((n + HDR + 15) / 16) - 1;
    /* 2^k < n <= 2^(k+1); n > 248 so k >= 7 */
    unsigned k = 63 - (unsigned)__builtin_clzll(n - 1);
    uint64_t step = (uint64_t)1 << (k - 2);
    uint64_t q = (n - ((uint64_t)1 << k) + step - 1) / step; /* 1..4 */
    return SMALL_CLASSES + (k - 7) * 4 + (unsigned)(q - 1);
}

static header_t *header_of(void *p) {
    header_t *h = (header_t *)((unsigned char *)p - HDR);
    if (h->tag != TAG_USED) rt_trap("free/realloc: invalid pointer or double free");
    return h;
}

/* Makes [heap_top, heap_top + bytes) part of linear memory. */
static bool ensure_heap(uint64_t bytes) {
    if (heap_top == 0) {
        uint64_t base = (uint64_t)(uintptr_t)&__heap_base;
        heap_top = ((base + HDR + 15) & ~(uint64_t)15) - HDR;
    }
    uint64_t want = heap_top + bytes;
    if (want <= heap_end) return true;
    /* Re-read the size in case something else grew the memory. */
    heap_end = (uint64_t)__builtin_wasm_memory_size(0) * PAGE;
    if (want <= heap_end) return true;
    uint64_t pages = (want - heap_end + PAGE - 1) / PAGE;
    /* A wasm32 memory has at most 65536 pages; checking here also keeps
     * the value from being truncated when passed to memory.grow. */
    if (pages > 65536) return false;
    uint64_t ask = pages < MIN_GROW_PAGES ? MIN_GROW_PAGES : pages;
    if (__builtin_wasm_memory_grow(0, (size_t)ask) == (size_t)-1 &&
        (ask == pages || __builtin_wasm_memory_grow(0, (size_t)pages) == (size_t)-1))
        return false;
    heap_end = (uint64_t)__builtin_wasm_memory_size(0) * PAGE;
    return true;
}

void *malloc(size_t n) {
    unsigned c = class_of(n);
    header_t *h;
    unsigned char *p = free_lists[c];
    if (p) {
        /* Free blocks are linked through their payload's first word. */
        h = (header_t *)(p - HDR);
        if (h->tag != TAG_FREE || h->cls != c) rt_trap("malloc: heap corruption");
        free_lists[c] = *(void **)p;
    } else {
        uint64_t size = class_block_size(c);
        if (!ensure_heap(size)) return NULL;
        h = (header_t *)(uintptr_t)heap_top;
        heap_top += size;
        h->cls = c;
    }
    h->tag = TAG_USED;
    return (unsigned char *)h + HDR;
}

void *calloc(size_t count, size_t size) {
    uint64_t total = (uint64_t)count * size; /* cannot overflow: both are 32-bit */
    if (total > SIZE_MAX) return NULL;
    void *p = malloc((size_t)total);
    if (p) memset(p, 0, (size_t)total);
    return p;
}

void free(void *p) {
    if (!p) return;
    header_t *h = header_of(p);
    h->tag = TAG_FREE;
    *(void **)p = free_lists[h->cls];
    free_lists[h->cls] = p;
}

void *realloc(void *p, size_t n) {
    if (!p) return malloc(n);
    header_t *h = header_of(p);
    uint64_t usable = class_block_size(h->cls) - HDR;
    if ((uint64_t)n <= usable) return p;
    void *q = malloc(n);
    if (!q) return NULL; /* the old block stays valid, as C requires */
    memcpy(q, p, (size_t)usable);
    free(p);
    return q;
}

void *rt_xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) rt_trapf("out of memory: malloc(%zu) failed", n);
    return p;
}

void *rt_xcalloc(size_t count, size_t size) {
    void *p = calloc(count, size);
    if (!p) rt_trapf("out of memory: calloc(%zu, %zu) failed", count, size);
    return p;
}

void *rt_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) rt_trapf("out of memory: realloc(%zu) failed", n);
    return q;
}
