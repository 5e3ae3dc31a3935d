/* memory_stress: touches linear memory in controlled patterns, for host
 * memory benchmarks and tests (dirty-page tracking, rollback of traps and
 * queries, memory.grow, instruction limits).
 *
 * Layout: the stack (64 KiB, placed first by the linker), static data and
 * the argument buffer all live below HEAP_START; the test region is
 * [HEAP_START, memory size). All offsets are absolute linear-memory
 * addresses. Nothing here allocates: besides the target range, a call
 * writes only to the stack and a few KiB of static decoder state (the
 * argument buffer and Candid type table), so the heap pages a call dirties
 * are exactly the ones the benchmark asks for. */
#include "candid.h"
#include "ic0.h"
#include "runtime.h"

#define HEAP_START (1u << 20) /* 1 MiB; build.sh sets initial memory to match */
#define WASM_PAGE 65536u

/* Candid headers of these methods are tens of bytes. write_bytes's blob
 * payload is not read through this buffer but copied straight from the
 * message argument to its destination (cd_blob_ref). */
static uint8_t arg_buf[4096];

extern unsigned char __heap_base; /* from wasm-ld: end of stack + static data */

static uint64_t memory_bytes(void) { return (uint64_t)__builtin_wasm_memory_size(0) * WASM_PAGE; }

static void begin(cd_decoder *d, uint32_t nargs) {
    /* The linker decides the layout; refuse to run if it no longer fits
     * below HEAP_START, since the test region would overlap our data. */
    if ((uintptr_t)&__heap_base > HEAP_START) rt_trap("memory_stress: static data extends past HEAP_START");
    cd_begin_msg_into(d, arg_buf, sizeof arg_buf, nargs);
}

/* Traps unless [start, end) lies within the test region; an empty range
 * must still start inside [HEAP_START, size]. */
static void check_range(uint64_t start, uint64_t end) {
    uint64_t size = memory_bytes();
    if (start < HEAP_START || end > size)
        rt_trapf("memory_stress: range [%llu, %llu) outside [%u, %llu)", (unsigned long long)start,
                 (unsigned long long)end, HEAP_START, (unsigned long long)size);
}

/* Checks the addresses offset, offset+stride, ..., offset+(count-1)*stride.
 * The span is computed with a division so that a huge count or stride is
 * reported instead of wrapping. */
static void check_strided(uint64_t offset, uint64_t count, uint64_t stride) {
    uint64_t end = offset;
    if (count > 0) {
        /* need offset + (count-1)*stride + 1 <= UINT64_MAX */
        if (offset == UINT64_MAX || (stride && count - 1 > (UINT64_MAX - 1 - offset) / stride))
            rt_trapf("memory_stress: offset %llu + (count %llu - 1) * stride %llu overflows",
                     (unsigned long long)offset, (unsigned long long)count, (unsigned long long)stride);
        end = offset + (count - 1) * stride + 1;
    }
    check_range(offset, end);
}

/* The first address visited and the (wrapping) step between visits. Only
 * called after check_strided, so all visited addresses fit in 32 bits and
 * so does stride whenever count >= 2. */
static void walk(uint64_t offset, uint64_t count, uint64_t stride, bool backward, uint32_t *first,
                 uint32_t *step) {
    uint32_t s = count >= 2 ? (uint32_t)stride : 0;
    *first = (uint32_t)offset;
    *step = s;
    if (backward && count >= 2) {
        *first = (uint32_t)(offset + (count - 1) * stride);
        *step = 0u - s;
    }
}

/* Plain store loop. The volatile access keeps it exactly one byte store
 * per address, in order: no vectorisation, no memset, no reads. Unrolling
 * is disabled too, so every iteration costs the same instructions. */
static void store_bytes(uint64_t offset, uint64_t count, uint64_t stride, bool backward, uint8_t value) {
    uint32_t addr, step;
    check_strided(offset, count, stride);
    walk(offset, count, stride, backward, &addr, &step);
#pragma clang loop unroll(disable)
    for (uint64_t i = 0; i < count; i++) {
        *(volatile uint8_t *)(uintptr_t)addr = value;
        addr += step;
    }
}

static uint64_t load_bytes(uint64_t offset, uint64_t count, uint64_t stride, bool backward) {
    uint32_t addr, step;
    uint64_t sum = 0;
    check_strided(offset, count, stride);
    walk(offset, count, stride, backward, &addr, &step);
#pragma clang loop unroll(disable)
    for (uint64_t i = 0; i < count; i++) {
        sum += *(volatile const uint8_t *)(uintptr_t)addr;
        addr += step;
    }
    return sum;
}

__attribute__((export_name("canister_query heap_start"))) void heap_start(void) { cd_reply_nat64(HEAP_START); }

__attribute__((export_name("canister_query size"))) void size(void) {
    cd_reply_nat64(__builtin_wasm_memory_size(0));
}

__attribute__((export_name("canister_update grow"))) void grow(void) {
    cd_decoder d;
    begin(&d, 1);
    uint64_t pages = cd_nat64(&d);
    cd_finish(&d);
    int64_t old = -1;
    /* memory.grow takes an i32; larger requests cannot succeed anyway and
     * must not be truncated into small ones. */
    if (pages <= 65536) {
        size_t r = __builtin_wasm_memory_grow(0, (size_t)pages);
        if (r != (size_t)-1) old = (int64_t)r;
    }
    cd_reply_int64(old);
}

/* (offset nat64, count nat64, stride nat64, backward bool, value nat8) -> (nat64) */
static void write_pages_impl(void) {
    cd_decoder d;
    begin(&d, 5);
    uint64_t offset = cd_nat64(&d);
    uint64_t count = cd_nat64(&d);
    uint64_t stride = cd_nat64(&d);
    bool backward = cd_bool(&d);
    uint8_t value = cd_nat8(&d);
    cd_finish(&d);
    store_bytes(offset, count, stride, backward, value);
    cd_reply_nat64(count);
}

__attribute__((export_name("canister_update write_pages"))) void write_pages(void) { write_pages_impl(); }
__attribute__((export_name("canister_query write_pages_query"))) void write_pages_query(void) {
    write_pages_impl();
}

/* (offset nat64, count nat64, stride nat64, backward bool) -> (nat64) */
static void read_pages_impl(void) {
    cd_decoder d;
    begin(&d, 4);
    uint64_t offset = cd_nat64(&d);
    uint64_t count = cd_nat64(&d);
    uint64_t stride = cd_nat64(&d);
    bool backward = cd_bool(&d);
    cd_finish(&d);
    cd_reply_nat64(load_bytes(offset, count, stride, backward));
}

__attribute__((export_name("canister_update read_pages"))) void read_pages(void) { read_pages_impl(); }
__attribute__((export_name("canister_query read_pages_query"))) void read_pages_query(void) { read_pages_impl(); }

/* (offset nat64, data blob) -> () */
static void write_bytes_impl(void) {
    cd_decoder d;
    size_t arg_offset;
    begin(&d, 2);
    uint64_t offset = cd_nat64(&d);
    size_t len = cd_blob_ref(&d, &arg_offset);
    cd_finish(&d);
    if (offset > UINT64_MAX - len) rt_trap("memory_stress: offset + length overflows");
    check_range(offset, offset + len);
    /* Straight from the message argument into place: no staging copy. */
    if (len) ic0_msg_arg_data_copy((void *)(uintptr_t)offset, (uint32_t)arg_offset, (uint32_t)len);
    cd_reply_empty();
}

__attribute__((export_name("canister_update write_bytes"))) void write_bytes(void) { write_bytes_impl(); }
__attribute__((export_name("canister_query write_bytes_query"))) void write_bytes_query(void) {
    write_bytes_impl();
}

/* (offset nat64, len nat64) -> (blob) */
static void read_bytes_impl(void) {
    cd_decoder d;
    begin(&d, 2);
    uint64_t offset = cd_nat64(&d);
    uint64_t len = cd_nat64(&d);
    cd_finish(&d);
    if (offset > UINT64_MAX - len) rt_trap("memory_stress: offset + length overflows");
    check_range(offset, offset + len);
    /* Replied straight from the heap; the range check bounds len by the
     * memory size, so it fits in size_t. */
    cd_reply_blob((const void *)(uintptr_t)offset, (size_t)len);
}

__attribute__((export_name("canister_query read_bytes"))) void read_bytes(void) { read_bytes_impl(); }
__attribute__((export_name("canister_update read_bytes_update"))) void read_bytes_update(void) {
    read_bytes_impl();
}

/* (offset nat64, count nat64, stride nat64, value nat8) -> (); for testing
 * that a trapping update's writes are rolled back. */
__attribute__((export_name("canister_update write_then_trap"))) void write_then_trap(void) {
    cd_decoder d;
    begin(&d, 4);
    uint64_t offset = cd_nat64(&d);
    uint64_t count = cd_nat64(&d);
    uint64_t stride = cd_nat64(&d);
    uint8_t value = cd_nat8(&d);
    cd_finish(&d);
    store_bytes(offset, count, stride, false, value);
    rt_trap("write_then_trap: deliberate trap");
}

/* (iterations nat64) -> (nat64). The volatile counter forces a real load,
 * add and store per step, so the loop cannot be folded away; with
 * iterations = 2^64-1 only the host's instruction limit ends it. */
__attribute__((export_name("canister_update spin"))) void spin(void) {
    cd_decoder d;
    begin(&d, 1);
    uint64_t iterations = cd_nat64(&d);
    cd_finish(&d);
    volatile uint64_t i = 0;
    while (i < iterations) i = i + 1;
    cd_reply_nat64(i);
}
