/* bench: the message-latency benchmark canister (`canister-host bench`).
 *
 * Each method does one measurable thing and nothing else. Arguments are raw
 * little-endian u32s, not Candid, so decoding costs the message nothing:
 *
 *   update empty, query empty_query   reply at once
 *   update write_pages (count)        write a new value into the first byte of
 *                                     `count` distinct 4 KiB pages: exactly
 *                                     `count` dirty pages
 *   update read_pages (count)         read one byte of `count` pages
 *   update stable_write               write one 4 KiB page of stable memory
 *                                     (its source's first byte changes too:
 *                                     one dirty heap page)
 *   update arg                        copy the whole argument into the heap
 *   update reply (len)                reply with `len` bytes
 *
 * Counts above REGION_PAGES and lengths above IO_BYTES are clamped. New
 * values come from the state, not the argument: an argument that changes
 * would change the stack page it is read into. */
#include <stdint.h>

#include "ic0.h"

#define PAGE 4096
#define REGION_PAGES 256
#define IO_BYTES (1024 * 1024)

/* Page-aligned, so `count` pages of the region are exactly `count` heap pages. */
static uint8_t region[REGION_PAGES * PAGE] __attribute__((aligned(PAGE)));
static uint8_t io[IO_BYTES] __attribute__((aligned(PAGE)));

static uint32_t arg_u32(void) {
    uint32_t v = 0;
    if (ic0_msg_arg_data_size() >= 4) ic0_msg_arg_data_copy(&v, 0, 4);
    return v;
}

static uint32_t clamp(uint32_t v, uint32_t max) { return v < max ? v : max; }

/* The region holds data (reads touch real pages, not the zero page), and
 * stable memory has the page `stable_write` writes. */
__attribute__((export_name("canister_init"))) void init(void) {
    __builtin_memset(region, 1, sizeof region);
    ic0_stable64_grow(1);
}

__attribute__((export_name("canister_update empty"))) void empty(void) { ic0_msg_reply(); }

__attribute__((export_name("canister_query empty_query"))) void empty_query(void) { ic0_msg_reply(); }

__attribute__((export_name("canister_update write_pages"))) void write_pages(void) {
    uint32_t count = clamp(arg_u32(), REGION_PAGES);
    uint8_t value = (uint8_t)(region[0] + 1);
    for (uint32_t i = 0; i < count; i++) ((volatile uint8_t *)region)[i * PAGE] = value;
    ic0_msg_reply();
}

__attribute__((export_name("canister_update read_pages"))) void read_pages(void) {
    uint32_t count = clamp(arg_u32(), REGION_PAGES);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < count; i++) sum += ((volatile uint8_t *)region)[i * PAGE];
    ic0_msg_reply_data_append(&sum, sizeof sum);
    ic0_msg_reply();
}

__attribute__((export_name("canister_update stable_write"))) void stable_write(void) {
    io[0]++;
    ic0_stable64_write(0, (uint64_t)(uintptr_t)io, PAGE);
    ic0_msg_reply();
}

__attribute__((export_name("canister_update arg"))) void arg(void) {
    ic0_msg_arg_data_copy(io, 0, clamp(ic0_msg_arg_data_size(), IO_BYTES));
    ic0_msg_reply();
}

__attribute__((export_name("canister_update reply"))) void reply(void) {
    ic0_msg_reply_data_append(io, clamp(arg_u32(), IO_BYTES));
    ic0_msg_reply();
}
