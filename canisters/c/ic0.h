/* System API imports from the "ic0" module (Internet Computer interface
 * specification), as seen from wasm32: pointers and sizes are i32.
 *
 * Only the calls the example canisters use are declared; wasm-ld drops any
 * import that no code references, so a canister imports exactly what it
 * calls. */
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

#endif
