/* A minimal Candid codec: enough to decode the argument tuples and encode
 * the single-value replies of the example canisters.
 *
 * Decoding parses the message's whole type table (any order, extra
 * entries, recursive types), then checks each argument's type against the
 * type the canister expects, trapping with a descriptive message on any
 * mismatch or malformed input. Supported types: bool, nat8, nat32, nat64,
 * int64, nat (must fit in 64 bits), text, blob (vec nat8), opt blob and
 * (as an argument only) opt text; an `opt blob` or `opt text` argument
 * also accepts `null` (Candid subtyping). The number of
 * arguments must match exactly; trailing bytes are rejected.
 *
 * The decoder keeps the parsed type table in static storage, so only one
 * message can be decoded at a time (canister code is single-threaded). */
#ifndef CANDID_H
#define CANDID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CD_BOOL,
    CD_NAT8,
    CD_NAT32,
    CD_NAT64,
    CD_INT64,
    CD_NAT,
    CD_TEXT,
    CD_BLOB,
    CD_OPT_BLOB,
} cd_type;

typedef struct {
    const uint8_t *ptr;
    size_t len;
} cd_bytes;

#define CD_MAX_ARGS 8

typedef struct {
    const uint8_t *buf;
    size_t avail; /* bytes of the message present in buf */
    size_t total; /* length of the whole message (>= avail) */
    size_t pos;   /* read position of the next value */
    uint32_t nargs;
    uint32_t next; /* index of the next argument to decode */
    int32_t arg_types[CD_MAX_ARGS];
    void *owned; /* buffer allocated by cd_begin_msg, freed by cd_release */
} cd_decoder;

/* Passed as nargs: accept any number of arguments (up to CD_MAX_ARGS);
 * the caller then inspects d->nargs. */
#define CD_ANY_ARGS UINT32_MAX

/* Starts decoding a message of `total` bytes whose first `avail` bytes are
 * in buf; the message must have exactly `nargs` arguments. */
void cd_begin(cd_decoder *d, const uint8_t *buf, size_t avail, size_t total, uint32_t nargs);
/* Copies the whole message argument into a malloc'ed buffer and starts
 * decoding it. Call cd_release when done with the decoded bytes. */
void cd_begin_msg(cd_decoder *d, uint32_t nargs);
/* Copies at most `cap` bytes of the message argument into buf and starts
 * decoding it. Values other than cd_blob_ref must lie in those bytes. */
void cd_begin_msg_into(cd_decoder *d, uint8_t *buf, size_t cap, uint32_t nargs);

/* Each getter decodes the next argument, trapping unless its type
 * matches. Returned cd_bytes point into the message buffer. */
bool cd_bool(cd_decoder *d);
uint8_t cd_nat8(cd_decoder *d);
uint32_t cd_nat32(cd_decoder *d);
uint64_t cd_nat64(cd_decoder *d);
int64_t cd_int64(cd_decoder *d);
uint64_t cd_nat(cd_decoder *d);
cd_bytes cd_text(cd_decoder *d);
cd_bytes cd_blob(cd_decoder *d);
/* Returns false for `null` / absent; otherwise stores the blob in *out. */
bool cd_opt_blob(cd_decoder *d, cd_bytes *out);
/* The same for `opt text` (arguments only; there is no opt text reply). */
bool cd_opt_text(cd_decoder *d, cd_bytes *out);
/* Decodes a blob argument without needing its bytes in the buffer: stores
 * their offset within the message argument in *msg_offset (for
 * ic0_msg_arg_data_copy) and returns the length. Must be the last
 * argument when the buffer holds only a prefix of the message. */
size_t cd_blob_ref(cd_decoder *d, size_t *msg_offset);

/* Checks that every argument was decoded and no bytes are left over. */
void cd_finish(cd_decoder *d);
/* Frees the buffer allocated by cd_begin_msg (invalidates cd_bytes). */
void cd_release(cd_decoder *d);

/* ---- Replies ---------------------------------------------------------
 * A reply is built by appending straight to the system reply buffer:
 * cd_reply_begin with the value types, one cd_put_* per value in order,
 * then cd_reply_end. Blob and text bytes are appended from where they
 * are, without an intermediate copy. */
void cd_reply_begin(const cd_type *types, size_t n);
void cd_put_bool(bool v);
void cd_put_nat8(uint8_t v);
void cd_put_nat32(uint32_t v);
void cd_put_nat64(uint64_t v);
void cd_put_int64(int64_t v);
void cd_put_nat(uint64_t v);
void cd_put_text(const void *s, size_t len); /* traps unless valid UTF-8 */
void cd_put_blob(const void *p, size_t len);
void cd_put_opt_blob(bool present, const void *p, size_t len);
void cd_reply_end(void);

/* Single-value conveniences: build and send the whole reply. */
void cd_reply_empty(void); /* () */
void cd_reply_bool(bool v);
void cd_reply_nat64(uint64_t v);
void cd_reply_int64(int64_t v);
void cd_reply_blob(const void *p, size_t len);
void cd_reply_opt_blob(bool present, const void *p, size_t len);

#endif
