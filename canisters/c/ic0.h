/* System API imports from the "ic0" module (Internet Computer interface
 * specification), as seen from wasm32: pointers and sizes are i32.
 *
 * Only the calls the example canisters use are declared; wasm-ld drops any
 * import that no code references, so a canister imports exactly what it
 * calls. Results the spec types as i32/i64 are declared unsigned unless
 * they can be -1. */
#ifndef IC0_H
#define IC0_H

#include <stdint.h>

#define IC0_IMPORT(name) __attribute__((import_module("ic0"), import_name(name)))

/* Size of the incoming message argument in bytes. */
IC0_IMPORT("msg_arg_data_size") uint32_t ic0_msg_arg_data_size(void);
/* Copies arg[offset, offset+size) to dst; the host traps if out of range. */
IC0_IMPORT("msg_arg_data_copy") void ic0_msg_arg_data_copy(void *dst, uint32_t offset, uint32_t size);
/* Appends src[0, size) to the reply being built. */
IC0_IMPORT("msg_reply_data_append") void ic0_msg_reply_data_append(const void *src, uint32_t size);
/* Sends the reply built so far. */
IC0_IMPORT("msg_reply") void ic0_msg_reply(void);
/* Aborts the message with the given message; state changes are rolled back. */
IC0_IMPORT("trap") __attribute__((noreturn)) void ic0_trap(const void *src, uint32_t size);

/* ---- The rest of the System API, used by sysapi.c and motoko_style.c ----
 * 64-bit quantities (cycles, time, stable64 offsets and addresses) are
 * i64; 128-bit cycle amounts are written to dst as 16 bytes, little-endian
 * (low 64 bits first). */

/* Messages. */
IC0_IMPORT("msg_caller_size") uint32_t ic0_msg_caller_size(void);
IC0_IMPORT("msg_caller_copy") void ic0_msg_caller_copy(void *dst, uint32_t offset, uint32_t size);
IC0_IMPORT("msg_reject") void ic0_msg_reject(const void *src, uint32_t size);
IC0_IMPORT("msg_reject_code") uint32_t ic0_msg_reject_code(void);
IC0_IMPORT("msg_reject_msg_size") uint32_t ic0_msg_reject_msg_size(void);
IC0_IMPORT("msg_reject_msg_copy") void ic0_msg_reject_msg_copy(void *dst, uint32_t offset, uint32_t size);
IC0_IMPORT("msg_method_name_size") uint32_t ic0_msg_method_name_size(void);
IC0_IMPORT("msg_method_name_copy") void ic0_msg_method_name_copy(void *dst, uint32_t offset, uint32_t size);
IC0_IMPORT("msg_deadline") uint64_t ic0_msg_deadline(void);
IC0_IMPORT("accept_message") void ic0_accept_message(void);

/* The canister itself. */
IC0_IMPORT("canister_self_size") uint32_t ic0_canister_self_size(void);
IC0_IMPORT("canister_self_copy") void ic0_canister_self_copy(void *dst, uint32_t offset, uint32_t size);
IC0_IMPORT("canister_status") uint32_t ic0_canister_status(void);
IC0_IMPORT("canister_version") uint64_t ic0_canister_version(void);
IC0_IMPORT("is_controller") uint32_t ic0_is_controller(const void *src, uint32_t size);

/* Cycles. */
IC0_IMPORT("canister_cycle_balance") uint64_t ic0_canister_cycle_balance(void);
IC0_IMPORT("canister_cycle_balance128") void ic0_canister_cycle_balance128(void *dst);
IC0_IMPORT("msg_cycles_available") uint64_t ic0_msg_cycles_available(void);
IC0_IMPORT("msg_cycles_available128") void ic0_msg_cycles_available128(void *dst);
IC0_IMPORT("msg_cycles_accept") uint64_t ic0_msg_cycles_accept(uint64_t max_amount);
IC0_IMPORT("msg_cycles_accept128") void ic0_msg_cycles_accept128(uint64_t max_high, uint64_t max_low, void *dst);
IC0_IMPORT("msg_cycles_refunded") uint64_t ic0_msg_cycles_refunded(void);
IC0_IMPORT("msg_cycles_refunded128") void ic0_msg_cycles_refunded128(void *dst);

/* Certified data. */
IC0_IMPORT("certified_data_set") void ic0_certified_data_set(const void *src, uint32_t size);
IC0_IMPORT("data_certificate_present") uint32_t ic0_data_certificate_present(void);
IC0_IMPORT("data_certificate_size") uint32_t ic0_data_certificate_size(void);
IC0_IMPORT("data_certificate_copy") void ic0_data_certificate_copy(void *dst, uint32_t offset, uint32_t size);

/* Time, timers, counters and the execution mode. */
IC0_IMPORT("time") uint64_t ic0_time(void);
IC0_IMPORT("global_timer_set") uint64_t ic0_global_timer_set(uint64_t timestamp);
IC0_IMPORT("performance_counter") uint64_t ic0_performance_counter(uint32_t counter_type);
IC0_IMPORT("instruction_counter") uint64_t ic0_instruction_counter(void);
IC0_IMPORT("in_replicated_execution") uint32_t ic0_in_replicated_execution(void);

/* Debugging output. */
IC0_IMPORT("debug_print") void ic0_debug_print(const void *src, uint32_t size);

/* Stable memory, in 64 KiB pages. The grow calls return the previous size,
 * or -1 if the memory cannot grow that much. */
IC0_IMPORT("stable_size") uint32_t ic0_stable_size(void);
IC0_IMPORT("stable_grow") int32_t ic0_stable_grow(uint32_t new_pages);
IC0_IMPORT("stable_write") void ic0_stable_write(uint32_t offset, const void *src, uint32_t size);
IC0_IMPORT("stable_read") void ic0_stable_read(void *dst, uint32_t offset, uint32_t size);
IC0_IMPORT("stable64_size") uint64_t ic0_stable64_size(void);
IC0_IMPORT("stable64_grow") int64_t ic0_stable64_grow(uint64_t new_pages);
/* src and dst are heap addresses widened to 64 bits. */
IC0_IMPORT("stable64_write") void ic0_stable64_write(uint64_t offset, uint64_t src, uint64_t size);
IC0_IMPORT("stable64_read") void ic0_stable64_read(uint64_t dst, uint64_t offset, uint64_t size);

/* Inter-canister calls. reply_fun and reject_fun are function table
 * indices (a C function pointer's value) of callbacks taking env. */
IC0_IMPORT("call_new")
void ic0_call_new(const void *callee_src, uint32_t callee_size, const void *name_src, uint32_t name_size,
                  uint32_t reply_fun, uint32_t reply_env, uint32_t reject_fun, uint32_t reject_env);
IC0_IMPORT("call_data_append") void ic0_call_data_append(const void *src, uint32_t size);
IC0_IMPORT("call_on_cleanup") void ic0_call_on_cleanup(uint32_t fun, uint32_t env);
IC0_IMPORT("call_with_best_effort_response") void ic0_call_with_best_effort_response(uint32_t timeout_seconds);
IC0_IMPORT("call_cycles_add128") void ic0_call_cycles_add128(uint64_t high, uint64_t low);
/* Returns 0 if the call was made, else a reject code (the call is not made). */
IC0_IMPORT("call_perform") uint32_t ic0_call_perform(void);
IC0_IMPORT("msg_cycles_refunded128") void ic0_msg_cycles_refunded128(void *dst);
/* Deprecated single-call form, still imported by Motoko-built canisters;
 * returns 0 if the call was queued. */
IC0_IMPORT("call_simple")
uint32_t ic0_call_simple(const void *callee_src, uint32_t callee_size, const void *name_src, uint32_t name_size,
                         uint32_t reply_fun, uint32_t reply_env, uint32_t reject_fun, uint32_t reject_env,
                         const void *data_src, uint32_t data_size);

#endif
