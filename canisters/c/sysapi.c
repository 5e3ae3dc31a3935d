/* sysapi: calls every System API import the host implements (plus one it
 * does not), one small method per call, so that a test can check each
 * import's result, its context rules and its traps.
 *
 * State lives in C globals, i.e. in linear memory, except the u64 that
 * pre_upgrade saves at stable offset 0 for post_upgrade to read back.
 * Methods without arguments ignore the argument bytes. Methods that call
 * an import the host is expected to trap in still reply `()` if the call
 * returns, so a host that wrongly allows it shows up as a reply. */
#include "candid.h"
#include "ic0.h"
#include "runtime.h"

#define UPDATE(name) __attribute__((export_name("canister_update " #name))) void update_##name(void)
#define QUERY(name) __attribute__((export_name("canister_query " #name))) void query_##name(void)

typedef struct {
    uint8_t *ptr;
    size_t len;
} blob_t;

static uint64_t counter;
static blob_t init_arg;         /* raw argument bytes of canister_init */
static blob_t post_upgrade_arg; /* raw argument bytes of canister_post_upgrade */
static blob_t installer;        /* caller of canister_init */
static uint64_t restored;       /* the u64 post_upgrade read from stable memory */
static bool fail_pre_upgrade;
static uint64_t timer_fired;

/* ---- Helpers -------------------------------------------------------- */

static void print(const char *s) { ic0_debug_print(s, (uint32_t)strlen(s)); }

static void store_le64(uint8_t *p, uint64_t v) {
    for (unsigned i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t addr(const void *p) { return (uint64_t)(uintptr_t)p; }

/* The raw message argument, in a malloc'ed buffer. */
static blob_t read_arg(void) {
    blob_t b = {NULL, ic0_msg_arg_data_size()};
    b.ptr = rt_xmalloc(b.len);
    ic0_msg_arg_data_copy(b.ptr, 0, (uint32_t)b.len);
    return b;
}

/* The caller's principal, in a malloc'ed buffer. */
static blob_t read_caller(void) {
    blob_t b = {NULL, ic0_msg_caller_size()};
    b.ptr = rt_xmalloc(b.len);
    ic0_msg_caller_copy(b.ptr, 0, (uint32_t)b.len);
    return b;
}

static void reply_nat32(uint32_t v) {
    static const cd_type types[] = {CD_NAT32};
    cd_reply_begin(types, 1);
    cd_put_nat32(v);
    cd_reply_end();
}

/* candid.c has no int32 reply type, so this one is spelled out:
 * "DIDL", no table entries, one value of type int32 (-11, SLEB128 0x75). */
static void reply_int32(int32_t v) {
    uint8_t msg[11] = {'D', 'I', 'D', 'L', 0, 1, 0x75};
    for (unsigned i = 0; i < 4; i++) msg[7 + i] = (uint8_t)((uint32_t)v >> (8 * i));
    ic0_msg_reply_data_append(msg, sizeof msg);
    ic0_msg_reply();
}

/* A one-argument message whose argument is a blob (cd_release when done). */
static cd_bytes decode_blob(cd_decoder *d) {
    cd_begin_msg(d, 1);
    cd_bytes b = cd_blob(d);
    cd_finish(d);
    return b;
}

static cd_bytes decode_text(cd_decoder *d) {
    cd_begin_msg(d, 1);
    cd_bytes t = cd_text(d);
    cd_finish(d);
    return t;
}

static uint64_t decode_nat64(void) {
    cd_decoder d;
    cd_begin_msg(&d, 1);
    uint64_t v = cd_nat64(&d);
    cd_finish(&d);
    cd_release(&d);
    return v;
}

/* ---- System entry points -------------------------------------------- */

__attribute__((export_name("canister_init"))) void init(void) {
    init_arg = read_arg();
    installer = read_caller();
    print("init");
}

__attribute__((export_name("canister_pre_upgrade"))) void pre_upgrade(void) {
    if (fail_pre_upgrade) rt_trap("pre_upgrade: deliberate trap");
    if (ic0_stable64_size() == 0 && ic0_stable64_grow(1) < 0) rt_trap("pre_upgrade: stable64_grow(1) failed");
    uint8_t buf[8];
    store_le64(buf, counter);
    ic0_stable64_write(0, addr(buf), sizeof buf);
    print("pre_upgrade");
}

__attribute__((export_name("canister_post_upgrade"))) void post_upgrade(void) {
    post_upgrade_arg = read_arg();
    if (ic0_stable64_size() > 0) {
        uint8_t buf[8];
        ic0_stable64_read(addr(buf), 0, sizeof buf);
        restored = load_le64(buf);
    }
    print("post_upgrade");
}

/* Accepts every message except calls to refused_by_inspect. */
__attribute__((export_name("canister_inspect_message"))) void inspect_message(void) {
    static const char refused[] = "refused_by_inspect";
    uint32_t n = ic0_msg_method_name_size();
    char *name = rt_xmalloc(n);
    ic0_msg_method_name_copy(name, 0, n);
    (void)ic0_msg_arg_data_size();
    (void)ic0_msg_caller_size();
    bool refuse = n == sizeof refused - 1 && memcmp(name, refused, n) == 0;
    free(name);
    if (!refuse) ic0_accept_message();
}

__attribute__((export_name("canister_global_timer"))) void global_timer(void) { timer_fired++; }

/* ---- State and message data ----------------------------------------- */

/* inc : () -> (nat64) */
UPDATE(inc) {
    counter++;
    cd_reply_nat64(counter);
}

/* counter : () -> (nat64) query */
QUERY(counter) { cd_reply_nat64(counter); }

/* init_arg, post_upgrade_arg, installer : () -> (blob) query */
QUERY(init_arg) { cd_reply_blob(init_arg.ptr, init_arg.len); }
QUERY(post_upgrade_arg) { cd_reply_blob(post_upgrade_arg.ptr, post_upgrade_arg.len); }
QUERY(installer) { cd_reply_blob(installer.ptr, installer.len); }

/* restored : () -> (nat64) query; 0 if post_upgrade found no stable memory */
QUERY(restored) { cd_reply_nat64(restored); }

/* set_fail_pre_upgrade : (bool) -> () */
UPDATE(set_fail_pre_upgrade) {
    cd_decoder d;
    cd_begin_msg(&d, 1);
    fail_pre_upgrade = cd_bool(&d);
    cd_finish(&d);
    cd_release(&d);
    cd_reply_empty();
}

static void reply_caller(void) {
    blob_t c = read_caller();
    cd_reply_blob(c.ptr, c.len);
    free(c.ptr);
}

/* caller : () -> (blob); caller_query : () -> (blob) query */
UPDATE(caller) { reply_caller(); }
QUERY(caller_query) { reply_caller(); }

/* self_id : () -> (blob) query */
QUERY(self_id) {
    uint32_t n = ic0_canister_self_size();
    uint8_t *id = rt_xmalloc(n);
    ic0_canister_self_copy(id, 0, n);
    cd_reply_blob(id, n);
    free(id);
}

/* echo : (blob) -> (blob) */
UPDATE(echo) {
    cd_decoder d;
    cd_bytes b = decode_blob(&d);
    cd_reply_blob(b.ptr, b.len);
    cd_release(&d);
}

/* method_name : () -> (); the host must trap: only inspect_message may
 * ask for the method name. */
UPDATE(method_name) {
    (void)ic0_msg_method_name_size();
    cd_reply_empty();
}

/* ---- Canister facts, time and counters ------------------------------- */

/* status : () -> (nat32) query */
QUERY(status) { reply_nat32(ic0_canister_status()); }

/* version : () -> (nat64) query */
QUERY(version) { cd_reply_nat64(ic0_canister_version()); }

/* time_now : () -> (nat64) query */
QUERY(time_now) { cd_reply_nat64(ic0_time()); }

/* perf : (n : nat64) -> (nat64, nat64): runs n loop iterations (volatile,
 * so they cannot be optimised away), then replies
 * (performance_counter(0), instruction_counter()). */
UPDATE(perf) {
    uint64_t n = decode_nat64();
    volatile uint64_t acc = 0;
    for (uint64_t i = 0; i < n; i++) acc = acc + i;
    uint64_t perf = ic0_performance_counter(0);
    uint64_t instructions = ic0_instruction_counter();
    static const cd_type types[] = {CD_NAT64, CD_NAT64};
    cd_reply_begin(types, 2);
    cd_put_nat64(perf);
    cd_put_nat64(instructions);
    cd_reply_end();
}

/* perf_invalid : () -> (); counter type 7 does not exist, so the host
 * should trap. */
UPDATE(perf_invalid) {
    (void)ic0_performance_counter(7);
    cd_reply_empty();
}

/* is_controller : (principal : blob) -> (bool) query */
QUERY(is_controller) {
    cd_decoder d;
    cd_bytes p = decode_blob(&d);
    bool yes = ic0_is_controller(p.ptr, (uint32_t)p.len) != 0;
    cd_release(&d);
    cd_reply_bool(yes);
}

/* replicated : () -> (nat32) query; replicated_update : () -> (nat32) */
QUERY(replicated) { reply_nat32(ic0_in_replicated_execution()); }
UPDATE(replicated_update) { reply_nat32(ic0_in_replicated_execution()); }

/* deadline : () -> (nat64) */
UPDATE(deadline) { cd_reply_nat64(ic0_msg_deadline()); }

/* ---- Cycles ---------------------------------------------------------- */

/* cycles : () -> (nat64, blob, nat64, blob, nat64, blob): the balance,
 * the cycles available in the message and the cycles accepted (up to
 * 100), each from the 64-bit call and then the 128-bit one (16 bytes,
 * little-endian). */
UPDATE(cycles) {
    uint8_t balance128[16], available128[16], accepted128[16];
    uint64_t balance = ic0_canister_cycle_balance();
    ic0_canister_cycle_balance128(balance128);
    uint64_t available = ic0_msg_cycles_available();
    ic0_msg_cycles_available128(available128);
    uint64_t accepted = ic0_msg_cycles_accept(100);
    ic0_msg_cycles_accept128(0, 100, accepted128);
    static const cd_type types[] = {CD_NAT64, CD_BLOB, CD_NAT64, CD_BLOB, CD_NAT64, CD_BLOB};
    cd_reply_begin(types, 6);
    cd_put_nat64(balance);
    cd_put_blob(balance128, sizeof balance128);
    cd_put_nat64(available);
    cd_put_blob(available128, sizeof available128);
    cd_put_nat64(accepted);
    cd_put_blob(accepted128, sizeof accepted128);
    cd_reply_end();
}

/* cycles_refunded, cycles_refunded128 : () -> (); only reply callbacks
 * may ask for refunds, so the host should trap. */
UPDATE(cycles_refunded) {
    (void)ic0_msg_cycles_refunded();
    cd_reply_empty();
}

UPDATE(cycles_refunded128) {
    uint8_t refunded[16];
    ic0_msg_cycles_refunded128(refunded);
    cd_reply_empty();
}

/* ---- Certified data -------------------------------------------------- */

/* set_certified_data : (blob) -> (); any length is passed on (the host
 * traps above 32 bytes). */
UPDATE(set_certified_data) {
    cd_decoder d;
    cd_bytes b = decode_blob(&d);
    ic0_certified_data_set(b.ptr, (uint32_t)b.len);
    cd_release(&d);
    cd_reply_empty();
}

/* certificate_present : () -> (nat32) query */
QUERY(certificate_present) { reply_nat32(ic0_data_certificate_present()); }

/* certificate_size, certificate_copy : () -> () query; a host without
 * certificates traps. */
QUERY(certificate_size) {
    (void)ic0_data_certificate_size();
    cd_reply_empty();
}

QUERY(certificate_copy) {
    uint8_t buf[1];
    ic0_data_certificate_copy(buf, 0, 0);
    cd_reply_empty();
}

/* certificate : () -> (blob) query; the whole data certificate (a certified
 * variable's proof), trapping when there is none. */
static uint8_t certificate_buf[16384];
QUERY(certificate) {
    uint32_t size = (uint32_t)ic0_data_certificate_size();
    if (size > sizeof certificate_buf) rt_trapf("certificate: %u bytes do not fit the buffer", size);
    ic0_data_certificate_copy(certificate_buf, 0, size);
    cd_reply_blob(certificate_buf, size);
}

/* ---- Debug output and traps ------------------------------------------ */

/* print : (text) -> () */
UPDATE(print) {
    cd_decoder d;
    cd_bytes t = decode_text(&d);
    ic0_debug_print(t.ptr, (uint32_t)t.len);
    cd_release(&d);
    cd_reply_empty();
}

/* trap_with : (text) -> (); traps with exactly that text */
UPDATE(trap_with) {
    cd_decoder d;
    cd_bytes t = decode_text(&d);
    ic0_trap(t.ptr, (uint32_t)t.len);
}

/* ---- Timer ----------------------------------------------------------- */

/* set_timer : (timestamp : nat64) -> (nat64), the previous timer */
UPDATE(set_timer) { cd_reply_nat64(ic0_global_timer_set(decode_nat64())); }

/* timer_fired : () -> (nat64) query, how often canister_global_timer ran */
QUERY(timer_fired) { cd_reply_nat64(timer_fired); }

/* ---- Stable memory --------------------------------------------------- */

/* stable_size : () -> (nat64) query, from the 32-bit call */
QUERY(stable_size) { cd_reply_nat64(ic0_stable_size()); }

/* stable_grow : (pages : nat32) -> (int32), the old size or -1 */
UPDATE(stable_grow) {
    cd_decoder d;
    cd_begin_msg(&d, 1);
    uint32_t pages = cd_nat32(&d);
    cd_finish(&d);
    cd_release(&d);
    reply_int32(ic0_stable_grow(pages));
}

/* stable_write : (offset : nat32, data : blob) -> () */
UPDATE(stable_write) {
    cd_decoder d;
    cd_begin_msg(&d, 2);
    uint32_t offset = cd_nat32(&d);
    cd_bytes data = cd_blob(&d);
    cd_finish(&d);
    ic0_stable_write(offset, data.ptr, (uint32_t)data.len);
    cd_release(&d);
    cd_reply_empty();
}

/* stable_read : (offset : nat32, len : nat32) -> (blob) query */
QUERY(stable_read) {
    cd_decoder d;
    cd_begin_msg(&d, 2);
    uint32_t offset = cd_nat32(&d);
    uint32_t len = cd_nat32(&d);
    cd_finish(&d);
    cd_release(&d);
    uint8_t *buf = rt_xmalloc(len);
    ic0_stable_read(buf, offset, len);
    cd_reply_blob(buf, len);
    free(buf);
}

/* stable64_size : () -> (nat64) query */
QUERY(stable64_size) { cd_reply_nat64(ic0_stable64_size()); }

/* stable64_grow : (pages : nat64) -> (int64), the old size or -1 */
UPDATE(stable64_grow) { cd_reply_int64(ic0_stable64_grow(decode_nat64())); }

static void stable64_write_arg(void) {
    cd_decoder d;
    cd_begin_msg(&d, 2);
    uint64_t offset = cd_nat64(&d);
    cd_bytes data = cd_blob(&d);
    cd_finish(&d);
    ic0_stable64_write(offset, addr(data.ptr), data.len);
    cd_release(&d);
}

/* stable64_write : (offset : nat64, data : blob) -> () */
UPDATE(stable64_write) {
    stable64_write_arg();
    cd_reply_empty();
}

/* stable64_write_then_trap : (offset : nat64, data : blob) -> (); the
 * write must be rolled back with the rest of the message. */
UPDATE(stable64_write_then_trap) {
    stable64_write_arg();
    rt_trap("stable64_write_then_trap: deliberate trap");
}

/* stable64_read : (offset : nat64, len : nat64) -> (blob) query */
QUERY(stable64_read) {
    cd_decoder d;
    cd_begin_msg(&d, 2);
    uint64_t offset = cd_nat64(&d);
    uint64_t len = cd_nat64(&d);
    cd_finish(&d);
    cd_release(&d);
    if (len > SIZE_MAX) rt_trapf("stable64_read: %llu bytes do not fit in memory", (unsigned long long)len);
    uint8_t *buf = rt_xmalloc((size_t)len);
    ic0_stable64_read(addr(buf), offset, len);
    cd_reply_blob(buf, (size_t)len);
    free(buf);
}

/* ---- Responses ------------------------------------------------------- */

/* reject : (text) -> (); rejects with the text instead of replying */
UPDATE(reject) {
    cd_decoder d;
    cd_bytes t = decode_text(&d);
    ic0_msg_reject(t.ptr, (uint32_t)t.len);
    cd_release(&d);
}

/* reply_twice : () -> (); the second msg_reply must trap */
UPDATE(reply_twice) {
    cd_reply_empty();
    ic0_msg_reply();
}

/* no_reply : () -> (); increments the counter and returns without
 * responding */
UPDATE(no_reply) { counter++; }

/* reject_code, reject_msg_size, reject_msg_copy : () -> (); only reject
 * callbacks may call these, so the host should trap. */
UPDATE(reject_code) {
    (void)ic0_msg_reject_code();
    cd_reply_empty();
}

UPDATE(reject_msg_size) {
    (void)ic0_msg_reject_msg_size();
    cd_reply_empty();
}

UPDATE(reject_msg_copy) {
    uint8_t buf[1];
    ic0_msg_reject_msg_copy(buf, 0, 0);
    cd_reply_empty();
}

/* call_out : () -> (); starts a call but never performs it, so no call is made */
UPDATE(call_out) {
    ic0_call_new(NULL, 0, NULL, 0, 0, 0, 0, 0);
    cd_reply_empty();
}

/* refused_by_inspect : () -> (); inspect_message never accepts it, so an
 * ingress call must not get here */
UPDATE(refused_by_inspect) { cd_reply_empty(); }
