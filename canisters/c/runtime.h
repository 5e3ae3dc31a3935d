/* Freestanding runtime for the example canisters: the C library functions
 * the compiler may call, a heap allocator over memory.grow, and trap
 * helpers. There is no libc on this target. */
#ifndef RUNTIME_H
#define RUNTIME_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* Heap allocator. Blocks are rounded up to size classes and recycled
 * through per-class free lists; fresh blocks come from a bump pointer that
 * starts at __heap_base and grows linear memory on demand. Returned
 * pointers are 16-byte aligned. Freed memory is never returned to the
 * system (wasm memory cannot shrink). */
void *malloc(size_t n);
void *calloc(size_t count, size_t size);
void *realloc(void *p, size_t n);
void free(void *p);

/* Like malloc/calloc/realloc, but trap instead of returning NULL. */
void *rt_xmalloc(size_t n);
void *rt_xcalloc(size_t count, size_t size);
void *rt_xrealloc(void *p, size_t n);

/* Trap (abort the message, rolling back its state changes) with a
 * message. rt_trapf understands a small printf subset:
 * %s %c %d %u %zu %lld %llu %%. Output longer than 511 bytes is cut. */
__attribute__((noreturn)) void rt_trap(const char *msg);
__attribute__((noreturn, format(printf, 1, 2))) void rt_trapf(const char *fmt, ...);

/* printf-subset formatting into buf (always NUL-terminated if cap > 0);
 * returns the length written, excluding the NUL. */
size_t rt_vformat(char *buf, size_t cap, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) size_t rt_format(char *buf, size_t cap, const char *fmt, ...);

#endif
