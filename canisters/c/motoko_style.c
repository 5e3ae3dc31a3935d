/* motoko_style: a greeter with the shape of a canister built by Motoko,
 * for checking that the host runs such modules unmodified as long as they
 * never reach an unsupported call:
 *
 * - the export `canister_update __motoko_async_helper`, which Motoko uses
 *   for self-calls, and the only user of the deprecated ic0.call_simple
 *   (with reply and reject callbacks passed as function table indices, so
 *   the module has a table with elements);
 * - initialised static data (the default greeting, the Candid interface)
 *   and a pointer in static data that starts out pointing at it;
 * - an init argument in Candid, `(opt text)`, as an actor class parameter
 *   would be, with an empty argument meaning the defaults;
 * - the state kept across upgrades in stable memory, written by
 *   canister_pre_upgrade and read back by canister_post_upgrade, as
 *   Motoko's stable variables were.
 *
 * Stable memory layout (written by pre_upgrade): the 4 bytes "GRT1", the
 * greeting count (u64 little-endian), the greeting's length (u32
 * little-endian), then the greeting's bytes. */
#include "candid.h"
#include "ic0.h"
#include "runtime.h"

#define UPDATE(name) __attribute__((export_name("canister_update " #name))) void update_##name(void)
#define QUERY(name) __attribute__((export_name("canister_query " #name))) void query_##name(void)

static const char default_greeting[] = "Hello, ";
static const char greeting_suffix[] = "!";
static const char stable_magic[4] = {'G', 'R', 'T', '1'};
#define STABLE_HEADER 16u /* magic, count, greeting length */

static const char candid_interface[] = "service : (opt text) -> {\n"
                                       "  greet : (text) -> (text) query;\n"
                                       "  set_greeting : (text) -> ();\n"
                                       "  greeting : () -> (text) query;\n"
                                       "  count_greetings : (text) -> (nat);\n"
                                       "}\n";

/* The greeting prefix: the static default until set_greeting replaces it
 * with a malloc'ed copy. */
static const uint8_t *greeting = (const uint8_t *)default_greeting;
static size_t greeting_len = sizeof default_greeting - 1;
static uint64_t greetings_counted;

/* Callbacks of the async helper's call; never run on a host without
 * inter-canister calls. */
static uint32_t async_replies, async_rejects;

/* ---- Helpers -------------------------------------------------------- */

static void set_greeting_bytes(const uint8_t *p, size_t len) {
    uint8_t *copy = rt_xmalloc(len);
    memcpy(copy, p, len);
    if (greeting != (const uint8_t *)default_greeting) free((void *)greeting);
    greeting = copy;
    greeting_len = len;
}

static void reply_text(const void *p, size_t len) {
    static const cd_type types[] = {CD_TEXT};
    cd_reply_begin(types, 1);
    cd_put_text(p, len);
    cd_reply_end();
}

static void store_le(uint8_t *p, uint64_t v, unsigned nbytes) {
    for (unsigned i = 0; i < nbytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t load_le(const uint8_t *p, unsigned nbytes) {
    uint64_t v = 0;
    for (unsigned i = 0; i < nbytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t addr(const void *p) { return (uint64_t)(uintptr_t)p; }

/* The install argument: empty (no bytes, or the empty tuple) for the
 * defaults, or `(opt text)` where a present text replaces the greeting. */
static void apply_install_arg(void) {
    if (ic0_msg_arg_data_size() == 0) return;
    cd_decoder d;
    cd_begin_msg(&d, CD_ANY_ARGS);
    if (d.nargs > 1) rt_trapf("motoko_style: install argument must be (opt text) or (), got %u arguments", d.nargs);
    cd_bytes text;
    if (d.nargs == 1 && cd_opt_text(&d, &text)) set_greeting_bytes(text.ptr, text.len);
    cd_finish(&d);
    cd_release(&d);
}

/* ---- System entry points -------------------------------------------- */

__attribute__((export_name("canister_init"))) void init(void) { apply_install_arg(); }

__attribute__((export_name("canister_pre_upgrade"))) void pre_upgrade(void) {
    uint64_t bytes = STABLE_HEADER + (uint64_t)greeting_len;
    uint64_t pages = (bytes + 65535) / 65536;
    uint64_t have = ic0_stable64_size();
    if (have < pages && ic0_stable64_grow(pages - have) < 0)
        rt_trap("motoko_style: pre_upgrade: cannot grow stable memory");
    uint8_t header[STABLE_HEADER];
    memcpy(header, stable_magic, 4);
    store_le(header + 4, greetings_counted, 8);
    store_le(header + 12, greeting_len, 4);
    ic0_stable64_write(0, addr(header), sizeof header);
    ic0_stable64_write(STABLE_HEADER, addr(greeting), greeting_len);
}

/* Restores the state pre_upgrade saved (none if stable memory is empty),
 * then applies the argument as canister_init does. */
__attribute__((export_name("canister_post_upgrade"))) void post_upgrade(void) {
    if (ic0_stable64_size() > 0) {
        uint8_t header[STABLE_HEADER];
        ic0_stable64_read(addr(header), 0, sizeof header);
        if (memcmp(header, stable_magic, 4) != 0)
            rt_trap("motoko_style: post_upgrade: stable memory does not hold a greeter's state");
        greetings_counted = load_le(header + 4, 8);
        size_t len = (size_t)load_le(header + 12, 4);
        uint8_t *restored = rt_xmalloc(len);
        ic0_stable64_read(addr(restored), STABLE_HEADER, len);
        greeting = restored;
        greeting_len = len;
    }
    apply_install_arg();
}

/* ---- Methods --------------------------------------------------------- */

static cd_bytes decode_text(cd_decoder *d) {
    cd_begin_msg(d, 1);
    cd_bytes t = cd_text(d);
    cd_finish(d);
    return t;
}

/* greet : (name : text) -> (text) query; greeting ++ name ++ "!" */
QUERY(greet) {
    cd_decoder d;
    cd_bytes name = decode_text(&d);
    size_t suffix_len = sizeof greeting_suffix - 1;
    if (name.len > SIZE_MAX - greeting_len - suffix_len) rt_trap("motoko_style: name too long");
    size_t len = greeting_len + name.len + suffix_len;
    uint8_t *out = rt_xmalloc(len);
    memcpy(out, greeting, greeting_len);
    memcpy(out + greeting_len, name.ptr, name.len);
    memcpy(out + greeting_len + name.len, greeting_suffix, suffix_len);
    cd_release(&d);
    reply_text(out, len);
    free(out);
}

/* set_greeting : (text) -> () */
UPDATE(set_greeting) {
    cd_decoder d;
    cd_bytes g = decode_text(&d);
    set_greeting_bytes(g.ptr, g.len);
    cd_release(&d);
    cd_reply_empty();
}

/* greeting : () -> (text) query */
QUERY(greeting) { reply_text(greeting, greeting_len); }

/* count_greetings : (name : text) -> (nat); counts calls, returns the
 * new count */
UPDATE(count_greetings) {
    cd_decoder d;
    (void)decode_text(&d);
    cd_release(&d);
    greetings_counted++;
    static const cd_type types[] = {CD_NAT};
    cd_reply_begin(types, 1);
    cd_put_nat(greetings_counted);
    cd_reply_end();
}

/* __get_candid_interface_tmp_hack : () -> (text) query, as Motoko
 * canisters export it */
QUERY(__get_candid_interface_tmp_hack) { reply_text(candid_interface, sizeof candid_interface - 1); }

/* ---- The async helper ------------------------------------------------- */

static void async_reply(uint32_t env) {
    (void)env;
    async_replies++;
}

static void async_reject(uint32_t env) {
    (void)env;
    async_rejects++;
}

/* __motoko_async_helper : () -> (nat32); calls itself through
 * ic0.call_simple and replies with call_simple's result (0: queued). */
UPDATE(__motoko_async_helper) {
    static const char method[] = "__motoko_async_helper";
    static const uint8_t no_args[] = {'D', 'I', 'D', 'L', 0, 0};
    uint8_t self[29]; /* the longest principal */
    uint32_t self_len = ic0_canister_self_size();
    if (self_len > sizeof self) rt_trap("motoko_style: canister id longer than 29 bytes");
    ic0_canister_self_copy(self, 0, self_len);
    uint32_t err = ic0_call_simple(self, self_len, method, sizeof method - 1, (uint32_t)(uintptr_t)&async_reply, 0,
                                   (uint32_t)(uintptr_t)&async_reject, 0, no_args, sizeof no_args);
    static const cd_type types[] = {CD_NAT32};
    cd_reply_begin(types, 1);
    cd_put_nat32(err);
    cd_reply_end();
}
