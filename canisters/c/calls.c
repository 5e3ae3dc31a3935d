/* calls: the low-level cases of calls between canisters, through the
 * System API directly (call_new .. call_perform, callbacks with env,
 * cleanup, best-effort calls, cycles).
 *
 * fanout(callee : blob, n : nat64) -> (nat64, nat64)
 *     makes n calls to callee's `echo` at once and replies, after the last
 *     answer, with (replies, rejects).
 * relay(callee : blob, method : text, best_effort : nat32) -> (nat32, blob)
 *     calls callee.method (best-effort with that timeout if non-zero) and
 *     replies with the reject code (0 for a reply) and the reply bytes or
 *     the reject message.
 * call_raw(callee : blob, method : text, arg : blob) -> (nat32, blob)
 *     like relay, with the given argument bytes (e.g. for the management
 *     canister, whose callee is the empty blob).
 * chain(callees : blob) -> (nat64)
 *     callees is a sequence of 10-byte principals; calls the first one's
 *     `chain` with the rest, and replies with 1 + its answer (so a chain of
 *     k canisters answers k): a reply after several awaits down the chain.
 * trap_in_callback(callee : blob) -> ()
 *     calls callee.echo with a reply callback that traps after counting;
 *     its cleanup callback counts too. Nobody replies: the caller gets an
 *     error once the call context can no longer be answered.
 * echo(...) replies with its argument bytes; boom traps; reject_me rejects;
 * spin loops 10 million times, then replies: more than a slice of
 * instructions when slices are small, so its callers wait for rounds.
 * stats() -> (nat64, nat64, nat64): echoes answered, callbacks that got
 * past their state change (must stay 0: traps roll back), cleanups. */
#include "candid.h"
#include "ic0.h"
#include "runtime.h"

#define UPDATE(name) __attribute__((export_name("canister_update " #name))) void update_##name(void)
#define QUERY(name) __attribute__((export_name("canister_query " #name))) void query_##name(void)

static uint64_t echoes, rolled_back, cleanups;

typedef struct {
    uint64_t expected, replies, rejects;
} fanout_ctx;

static void fanout_done(fanout_ctx *ctx) {
    if (ctx->replies + ctx->rejects < ctx->expected) return;
    static const cd_type types[] = {CD_NAT64, CD_NAT64};
    cd_reply_begin(types, 2);
    cd_put_nat64(ctx->replies);
    cd_put_nat64(ctx->rejects);
    cd_reply_end();
    free(ctx);
}

static void fanout_reply(uint32_t env) {
    fanout_ctx *ctx = (fanout_ctx *)(uintptr_t)env;
    ctx->replies++;
    fanout_done(ctx);
}

static void fanout_reject(uint32_t env) {
    fanout_ctx *ctx = (fanout_ctx *)(uintptr_t)env;
    ctx->rejects++;
    fanout_done(ctx);
}

static const char ECHO[] = "echo";

UPDATE(fanout) {
    cd_decoder d;
    cd_begin_msg(&d, 2);
    cd_bytes callee = cd_blob(&d);
    uint64_t n = cd_nat64(&d);
    fanout_ctx *ctx = rt_xcalloc(1, sizeof *ctx);
    ctx->expected = n;
    for (uint64_t i = 0; i < n; i++) {
        ic0_call_new(callee.ptr, callee.len, ECHO, sizeof ECHO - 1, (uint32_t)(uintptr_t)fanout_reply,
                     (uint32_t)(uintptr_t)ctx, (uint32_t)(uintptr_t)fanout_reject, (uint32_t)(uintptr_t)ctx);
        ic0_call_data_append(&i, sizeof i);
        if (ic0_call_perform() != 0) ctx->rejects++; /* not made: count it as answered */
    }
    cd_release(&d);
    if (n == 0 || ctx->rejects == n) fanout_done(ctx);
}

static void reply_code_and_bytes(uint32_t code, const void *p, size_t len) {
    static const cd_type types[] = {CD_NAT32, CD_BLOB};
    cd_reply_begin(types, 2);
    cd_put_nat32(code);
    cd_put_blob(p, len);
    cd_reply_end();
}

static void relay_reply(uint32_t env) {
    (void)env;
    uint32_t size = ic0_msg_arg_data_size();
    uint8_t *buf = rt_xmalloc(size + 1);
    ic0_msg_arg_data_copy(buf, 0, size);
    reply_code_and_bytes(0, buf, size);
    free(buf);
}

static void relay_reject(uint32_t env) {
    (void)env;
    uint32_t size = ic0_msg_reject_msg_size();
    uint8_t *buf = rt_xmalloc(size + 1);
    ic0_msg_reject_msg_copy(buf, 0, size);
    reply_code_and_bytes(ic0_msg_reject_code(), buf, size);
    free(buf);
}

UPDATE(relay) {
    cd_decoder d;
    cd_begin_msg(&d, 3);
    cd_bytes callee = cd_blob(&d);
    cd_bytes method = cd_text(&d);
    uint32_t best_effort = cd_nat32(&d);
    ic0_call_new(callee.ptr, callee.len, method.ptr, method.len, (uint32_t)(uintptr_t)relay_reply, 0,
                 (uint32_t)(uintptr_t)relay_reject, 0);
    static const uint8_t empty_args[] = {'D', 'I', 'D', 'L', 0, 0};
    ic0_call_data_append(empty_args, sizeof empty_args);
    if (best_effort) ic0_call_with_best_effort_response(best_effort);
    uint32_t err = ic0_call_perform();
    cd_release(&d);
    if (err != 0) reply_code_and_bytes(err, "call_perform failed", 19);
}

UPDATE(call_raw) {
    cd_decoder d;
    cd_begin_msg(&d, 3);
    cd_bytes callee = cd_blob(&d);
    cd_bytes method = cd_text(&d);
    cd_bytes arg = cd_blob(&d);
    ic0_call_new(callee.ptr, callee.len, method.ptr, method.len, (uint32_t)(uintptr_t)relay_reply, 0,
                 (uint32_t)(uintptr_t)relay_reject, 0);
    ic0_call_data_append(arg.ptr, arg.len);
    uint32_t err = ic0_call_perform();
    cd_release(&d);
    if (err != 0) reply_code_and_bytes(err, "call_perform failed", 19);
}

static void chain_reply(uint32_t env) {
    (void)env;
    cd_decoder d;
    cd_begin_msg(&d, 1);
    uint64_t below = cd_nat64(&d);
    cd_release(&d);
    cd_reply_nat64(below + 1);
}

static void chain_reject(uint32_t env) {
    (void)env;
    rt_trap("chain: a call down the chain was rejected");
}

static const char CHAIN[] = "chain";

UPDATE(chain) {
    cd_decoder d;
    cd_begin_msg(&d, 1);
    cd_bytes rest = cd_blob(&d);
    if (rest.len < 10) {
        cd_release(&d);
        cd_reply_nat64(1);
        return;
    }
    ic0_call_new(rest.ptr, 10, CHAIN, sizeof CHAIN - 1, (uint32_t)(uintptr_t)chain_reply, 0,
                 (uint32_t)(uintptr_t)chain_reject, 0);
    /* Candid for (blob) with the remaining principals: DIDL, one type
     * (vec nat8), one argument of that type, then LEB128 length + bytes. */
    size_t tail = rest.len - 10;
    uint8_t header[] = {'D', 'I', 'D', 'L', 1, 0x6d, 0x7b, 1, 0, (uint8_t)tail};
    if (tail >= 128) rt_trap("chain: too many canisters");
    ic0_call_data_append(header, sizeof header);
    ic0_call_data_append(rest.ptr + 10, tail);
    if (ic0_call_perform() != 0) rt_trap("chain: call_perform failed");
    cd_release(&d);
}

static void trapping_reply(uint32_t env) {
    (void)env;
    rolled_back++; /* undone by the trap */
    rt_trap("trap_in_callback: the reply callback traps");
}

static void ignore_reject(uint32_t env) { (void)env; }

static void cleanup(uint32_t env) {
    (void)env;
    cleanups++;
}

UPDATE(trap_in_callback) {
    cd_decoder d;
    cd_begin_msg(&d, 1);
    cd_bytes callee = cd_blob(&d);
    ic0_call_new(callee.ptr, callee.len, ECHO, sizeof ECHO - 1, (uint32_t)(uintptr_t)trapping_reply, 0,
                 (uint32_t)(uintptr_t)ignore_reject, 0);
    ic0_call_on_cleanup((uint32_t)(uintptr_t)cleanup, 0);
    if (ic0_call_perform() != 0) rt_trap("trap_in_callback: call_perform failed");
    cd_release(&d);
}

UPDATE(echo) {
    echoes++;
    uint32_t size = ic0_msg_arg_data_size();
    uint8_t *buf = rt_xmalloc(size + 1);
    ic0_msg_arg_data_copy(buf, 0, size);
    ic0_msg_reply_data_append(buf, size);
    ic0_msg_reply();
    free(buf);
}

UPDATE(spin) {
    for (volatile uint32_t i = 0; i < 10000000; i++) {
    }
    cd_reply_empty();
}

UPDATE(boom) { rt_trap("boom: deliberate trap"); }

UPDATE(reject_me) {
    static const char text[] = "rejected on purpose";
    ic0_msg_reject(text, sizeof text - 1);
}

QUERY(stats) {
    static const cd_type types[] = {CD_NAT64, CD_NAT64, CD_NAT64};
    cd_reply_begin(types, 3);
    cd_put_nat64(echoes);
    cd_put_nat64(rolled_back);
    cd_put_nat64(cleanups);
    cd_reply_end();
}
