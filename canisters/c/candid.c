#include "candid.h"
#include "ic0.h"
#include "runtime.h"

/* Candid type codes (SLEB128 on the wire). */
enum {
    T_NULL = -1,
    T_BOOL = -2,
    T_NAT = -3,
    T_INT = -4,
    T_NAT8 = -5,
    T_NAT16 = -6,
    T_NAT32 = -7,
    T_NAT64 = -8,
    T_INT8 = -9,
    T_INT16 = -10,
    T_INT32 = -11,
    T_INT64 = -12,
    T_FLOAT32 = -13,
    T_FLOAT64 = -14,
    T_TEXT = -15,
    T_RESERVED = -16,
    T_EMPTY = -17,
    T_OPT = -18,
    T_VEC = -19,
    T_RECORD = -20,
    T_VARIANT = -21,
    T_FUNC = -22,
    T_SERVICE = -23,
    T_PRINCIPAL = -24,
};

/* ---- Shared helpers ------------------------------------------------- */

/* Strict UTF-8 check (no overlong forms, no surrogates, <= U+10FFFF), as
 * Candid text must be valid Unicode. */
static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len > n - i) return false;
        for (size_t k = 1; k < len; k++) {
            uint8_t cc = s[i + k];
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* ---- Decoder -------------------------------------------------------- */

/* Parsed type table. Only opt and vec need their element type to match
 * the supported argument types; other constructors are parsed (to find
 * where the table ends) and remembered by kind for error messages. */
#define CD_MAX_TYPES 256

typedef struct {
    int32_t kind;  /* T_OPT, T_VEC, T_RECORD, ... */
    int32_t inner; /* element type of opt / vec */
} entry_t;

static entry_t table[CD_MAX_TYPES];

static const char *const expected_names[] = {
    [CD_BOOL] = "bool", [CD_NAT8] = "nat8", [CD_NAT32] = "nat32", [CD_NAT64] = "nat64",
    [CD_INT64] = "int64", [CD_NAT] = "nat",   [CD_TEXT] = "text",   [CD_BLOB] = "blob",
    [CD_OPT_BLOB] = "opt blob",
};

/* Ensures n more bytes can be read at d->pos. */
static void need(cd_decoder *d, uint64_t n) {
    if (d->pos <= d->avail && n <= d->avail - d->pos) return;
    if (d->pos <= d->total && n <= d->total - d->pos)
        rt_trapf("candid: message does not fit the %zu-byte argument buffer", d->avail);
    rt_trap("candid: truncated message");
}

static uint8_t read_byte(cd_decoder *d) {
    need(d, 1);
    return d->buf[d->pos++];
}

static uint64_t read_le(cd_decoder *d, unsigned nbytes) {
    need(d, nbytes);
    uint64_t v = 0;
    for (unsigned i = 0; i < nbytes; i++) v |= (uint64_t)d->buf[d->pos + i] << (8 * i);
    d->pos += nbytes;
    return v;
}

/* Unsigned LEB128. Returns false if the value does not fit in 64 bits
 * (all of its bytes are still consumed). Redundant trailing zero groups
 * are accepted. */
static bool read_leb(cd_decoder *d, uint64_t *out) {
    uint64_t v = 0;
    unsigned shift = 0;
    bool fits = true;
    uint8_t b;
    do {
        b = read_byte(d);
        uint64_t bits = b & 0x7F;
        if (shift < 64) {
            if (shift == 63 && bits > 1) fits = false;
            v |= bits << shift;
            shift += 7;
        } else if (bits) {
            fits = false;
        }
    } while (b & 0x80);
    *out = v;
    return fits;
}

/* LEB128 used as a count or length: must fit in 64 bits. */
static uint64_t read_count(cd_decoder *d) {
    uint64_t v;
    if (!read_leb(d, &v)) rt_trap("candid: LEB128 count or length too large");
    return v;
}

/* Signed LEB128, only used for type codes and indices, which the callers
 * range-check; bits beyond 64 are ignored. */
static int64_t read_sleb(cd_decoder *d) {
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = read_byte(d);
        if (shift < 64) {
            v |= (uint64_t)(b & 0x7F) << shift;
            shift += 7;
        }
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
    return (int64_t)v;
}

static void skip(cd_decoder *d, uint64_t n) {
    need(d, n);
    d->pos += (size_t)n;
}

/* A type used inside the table or as an argument type: a primitive type
 * code or an index into the table (constructors must live in the table). */
static int32_t read_typeref(cd_decoder *d, uint64_t ntypes) {
    int64_t t = read_sleb(d);
    if (t >= 0) {
        if ((uint64_t)t >= ntypes)
            rt_trapf("candid: type index %lld out of range (type table has %llu entries)", (long long)t,
                     (unsigned long long)ntypes);
    } else if (!(t >= T_EMPTY || t == T_PRINCIPAL)) {
        rt_trapf("candid: invalid type code %lld", (long long)t);
    }
    return (int32_t)t;
}

/* Parses the type table into `table`; returns the number of entries. */
static uint64_t parse_type_table(cd_decoder *d) {
    uint64_t n = read_count(d);
    if (n > CD_MAX_TYPES)
        rt_trapf("candid: type table has %llu entries, more than the supported %u", (unsigned long long)n,
                 (unsigned)CD_MAX_TYPES);
    for (uint64_t i = 0; i < n; i++) {
        int64_t op = read_sleb(d);
        entry_t *e = &table[i];
        e->kind = (int32_t)op;
        e->inner = 0;
        switch (op) {
        case T_OPT:
        case T_VEC:
            e->inner = read_typeref(d, n);
            break;
        case T_RECORD:
        case T_VARIANT: {
            uint64_t fields = read_count(d);
            for (uint64_t f = 0; f < fields; f++) {
                uint64_t id = read_count(d);
                if (id > 0xFFFFFFFFu) rt_trap("candid: field id too large");
                read_typeref(d, n);
            }
            break;
        }
        case T_FUNC: {
            uint64_t args = read_count(d);
            for (uint64_t k = 0; k < args; k++) read_typeref(d, n);
            uint64_t rets = read_count(d);
            for (uint64_t k = 0; k < rets; k++) read_typeref(d, n);
            uint64_t annotations = read_count(d);
            skip(d, annotations); /* one byte each */
            break;
        }
        case T_SERVICE: {
            uint64_t methods = read_count(d);
            for (uint64_t k = 0; k < methods; k++) {
                skip(d, read_count(d)); /* method name */
                read_typeref(d, n);
            }
            break;
        }
        default:
            rt_trapf("candid: unsupported type table entry (type code %lld)", (long long)op);
        }
    }
    return n;
}

void cd_begin(cd_decoder *d, const uint8_t *buf, size_t avail, size_t total, uint32_t nargs) {
    d->buf = buf;
    d->avail = avail < total ? avail : total;
    d->total = total;
    d->pos = 0;
    d->owned = NULL;
    if (nargs > CD_MAX_ARGS && nargs != CD_ANY_ARGS) rt_trap("candid: too many arguments for the decoder");
    need(d, 4);
    if (memcmp(buf, "DIDL", 4) != 0) rt_trap("candid: missing DIDL magic");
    d->pos = 4;
    uint64_t ntypes = parse_type_table(d);
    uint64_t count = read_count(d);
    if (nargs == CD_ANY_ARGS) {
        if (count > CD_MAX_ARGS)
            rt_trapf("candid: %llu arguments, more than the supported %u", (unsigned long long)count,
                     (unsigned)CD_MAX_ARGS);
        nargs = (uint32_t)count;
    } else if (count != nargs) {
        rt_trapf("candid: expected %u argument%s, got %llu", nargs, nargs == 1 ? "" : "s",
                 (unsigned long long)count);
    }
    for (uint32_t i = 0; i < nargs; i++) d->arg_types[i] = read_typeref(d, ntypes);
    d->nargs = nargs;
    d->next = 0;
}

void cd_begin_msg(cd_decoder *d, uint32_t nargs) {
    uint32_t total = ic0_msg_arg_data_size();
    uint8_t *buf = rt_xmalloc(total);
    if (total) ic0_msg_arg_data_copy(buf, 0, total);
    cd_begin(d, buf, total, total, nargs);
    d->owned = buf;
}

void cd_begin_msg_into(cd_decoder *d, uint8_t *buf, size_t cap, uint32_t nargs) {
    uint32_t total = ic0_msg_arg_data_size();
    size_t n = total < cap ? total : cap;
    if (n) ic0_msg_arg_data_copy(buf, 0, (uint32_t)n);
    cd_begin(d, buf, n, total, nargs);
}

static bool is_blob(int32_t t) { return t >= 0 && table[t].kind == T_VEC && table[t].inner == T_NAT8; }

static bool matches(int32_t t, cd_type want) {
    switch (want) {
    case CD_BOOL: return t == T_BOOL;
    case CD_NAT8: return t == T_NAT8;
    case CD_NAT32: return t == T_NAT32;
    case CD_NAT64: return t == T_NAT64;
    case CD_INT64: return t == T_INT64;
    case CD_NAT: return t == T_NAT;
    case CD_TEXT: return t == T_TEXT;
    case CD_BLOB: return is_blob(t);
    case CD_OPT_BLOB: return t == T_NULL || (t >= 0 && table[t].kind == T_OPT && is_blob(table[t].inner));
    }
    return false;
}

static const char *primitive_name(int32_t t) {
    static const char *const names[] = {
        "?",       "null",    "bool",  "nat",   "int",   "nat8",    "nat16",    "nat32",     "nat64",
        "int8",    "int16",   "int32", "int64", "float32", "float64", "text",  "reserved", "empty",
    };
    if (t == T_PRINCIPAL) return "principal";
    if (t <= -1 && t >= T_EMPTY) return names[-t];
    return "?";
}

/* Writes a readable rendering of type t (depth-limited, since table types
 * may be recursive); returns the length written. */
static size_t describe(char *buf, size_t cap, int32_t t, int depth) {
    if (t < 0) return rt_format(buf, cap, "%s", primitive_name(t));
    if (depth >= 4) return rt_format(buf, cap, "...");
    const entry_t *e = &table[t];
    size_t n;
    switch (e->kind) {
    case T_OPT:
        n = rt_format(buf, cap, "opt ");
        return n + describe(buf + n, cap - n, e->inner, depth + 1);
    case T_VEC:
        if (e->inner == T_NAT8) return rt_format(buf, cap, "blob");
        n = rt_format(buf, cap, "vec ");
        return n + describe(buf + n, cap - n, e->inner, depth + 1);
    case T_RECORD: return rt_format(buf, cap, "record");
    case T_VARIANT: return rt_format(buf, cap, "variant");
    case T_FUNC: return rt_format(buf, cap, "func");
    default: return rt_format(buf, cap, "service");
    }
}

/* Moves to the next argument, checking its type; returns its index. */
static uint32_t next_arg(cd_decoder *d, cd_type want) {
    if (d->next >= d->nargs) rt_trap("candid: decoding past the last argument");
    uint32_t i = d->next++;
    int32_t t = d->arg_types[i];
    if (!matches(t, want)) {
        char got[96];
        describe(got, sizeof got, t, 0);
        rt_trapf("candid: argument %u: expected %s, got %s", i + 1, expected_names[want], got);
    }
    return i;
}

bool cd_bool(cd_decoder *d) {
    uint32_t i = next_arg(d, CD_BOOL);
    uint8_t b = read_byte(d);
    if (b > 1) rt_trapf("candid: argument %u: invalid bool byte %u", i + 1, (unsigned)b);
    return b;
}

uint8_t cd_nat8(cd_decoder *d) {
    next_arg(d, CD_NAT8);
    return read_byte(d);
}

uint32_t cd_nat32(cd_decoder *d) {
    next_arg(d, CD_NAT32);
    return (uint32_t)read_le(d, 4);
}

uint64_t cd_nat64(cd_decoder *d) {
    next_arg(d, CD_NAT64);
    return read_le(d, 8);
}

int64_t cd_int64(cd_decoder *d) {
    next_arg(d, CD_INT64);
    return (int64_t)read_le(d, 8); /* two's complement, as on the wire */
}

uint64_t cd_nat(cd_decoder *d) {
    uint32_t i = next_arg(d, CD_NAT);
    uint64_t v;
    if (!read_leb(d, &v)) rt_trapf("candid: argument %u: nat value does not fit in 64 bits", i + 1);
    return v;
}

/* Length-prefixed bytes; the bytes must be in the buffer. */
static cd_bytes read_bytes(cd_decoder *d) {
    uint64_t len = read_count(d);
    need(d, len);
    cd_bytes r = {d->buf + d->pos, (size_t)len};
    d->pos += (size_t)len;
    return r;
}

cd_bytes cd_text(cd_decoder *d) {
    uint32_t i = next_arg(d, CD_TEXT);
    cd_bytes r = read_bytes(d);
    if (!valid_utf8(r.ptr, r.len)) rt_trapf("candid: argument %u: text is not valid UTF-8", i + 1);
    return r;
}

cd_bytes cd_blob(cd_decoder *d) {
    next_arg(d, CD_BLOB);
    return read_bytes(d);
}

bool cd_opt_blob(cd_decoder *d, cd_bytes *out) {
    uint32_t i = next_arg(d, CD_OPT_BLOB);
    out->ptr = NULL;
    out->len = 0;
    if (d->arg_types[i] == T_NULL) return false; /* null has no value bytes */
    uint8_t tag = read_byte(d);
    if (tag > 1) rt_trapf("candid: argument %u: invalid opt tag %u", i + 1, (unsigned)tag);
    if (!tag) return false;
    *out = read_bytes(d);
    return true;
}

/* `opt text` is not a cd_type (replies never carry it), so it is checked
 * here rather than in matches(). */
bool cd_opt_text(cd_decoder *d, cd_bytes *out) {
    if (d->next >= d->nargs) rt_trap("candid: decoding past the last argument");
    uint32_t i = d->next++;
    int32_t t = d->arg_types[i];
    out->ptr = NULL;
    out->len = 0;
    if (t == T_NULL) return false; /* null has no value bytes */
    if (!(t >= 0 && table[t].kind == T_OPT && table[t].inner == T_TEXT)) {
        char got[96];
        describe(got, sizeof got, t, 0);
        rt_trapf("candid: argument %u: expected opt text, got %s", i + 1, got);
    }
    uint8_t tag = read_byte(d);
    if (tag > 1) rt_trapf("candid: argument %u: invalid opt tag %u", i + 1, (unsigned)tag);
    if (!tag) return false;
    *out = read_bytes(d);
    if (!valid_utf8(out->ptr, out->len)) rt_trapf("candid: argument %u: text is not valid UTF-8", i + 1);
    return true;
}

size_t cd_blob_ref(cd_decoder *d, size_t *msg_offset) {
    next_arg(d, CD_BLOB);
    uint64_t len = read_count(d);
    /* Checked against the whole message, not the buffered prefix. */
    if (d->pos > d->total || len > d->total - d->pos) rt_trap("candid: truncated message");
    *msg_offset = d->pos;
    d->pos += (size_t)len;
    return (size_t)len;
}

void cd_finish(cd_decoder *d) {
    if (d->next != d->nargs) rt_trap("candid: not all arguments were decoded");
    if (d->pos != d->total) rt_trapf("candid: %zu unexpected trailing bytes", d->total - d->pos);
}

void cd_release(cd_decoder *d) {
    free(d->owned);
    d->owned = NULL;
}

/* ---- Encoder -------------------------------------------------------- */

static void append(const void *p, size_t n) {
    if (n) ic0_msg_reply_data_append(p, (uint32_t)n);
}

static size_t encode_leb(uint8_t *out, uint64_t v) {
    size_t n = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        out[n++] = b | (v ? 0x80 : 0);
    } while (v);
    return n;
}

static void put_leb(uint64_t v) {
    uint8_t buf[10];
    append(buf, encode_leb(buf, v));
}

static void put_le(uint64_t v, unsigned nbytes) {
    uint8_t buf[8];
    for (unsigned i = 0; i < nbytes; i++) buf[i] = (uint8_t)(v >> (8 * i));
    append(buf, nbytes);
}

/* The type table is at most [0] = vec nat8, [1] = opt 0, so every type
 * reference is one byte: a primitive code fits in one SLEB128 byte and the
 * indices are 0 and 1. */
void cd_reply_begin(const cd_type *types, size_t n) {
    static const uint8_t codes[] = {
        [CD_BOOL] = T_BOOL & 0x7F,   [CD_NAT8] = T_NAT8 & 0x7F, [CD_NAT32] = T_NAT32 & 0x7F,
        [CD_NAT64] = T_NAT64 & 0x7F, [CD_INT64] = T_INT64 & 0x7F, [CD_NAT] = T_NAT & 0x7F,
        [CD_TEXT] = T_TEXT & 0x7F,   [CD_BLOB] = 0,               [CD_OPT_BLOB] = 1,
    };
    uint8_t hdr[4 + 1 + 4 + 1 + CD_MAX_ARGS];
    size_t len = 0;
    bool has_vec = false, has_opt = false;
    if (n > CD_MAX_ARGS) rt_trap("candid: too many reply values");
    for (size_t i = 0; i < n; i++) {
        if (types[i] == CD_BLOB) has_vec = true;
        if (types[i] == CD_OPT_BLOB) has_vec = has_opt = true;
    }
    memcpy(hdr, "DIDL", 4);
    len = 4;
    hdr[len++] = (uint8_t)(has_vec + has_opt);
    if (has_vec) {
        hdr[len++] = T_VEC & 0x7F;
        hdr[len++] = T_NAT8 & 0x7F;
    }
    if (has_opt) {
        hdr[len++] = T_OPT & 0x7F;
        hdr[len++] = 0; /* the vec nat8 entry */
    }
    hdr[len++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) hdr[len++] = codes[types[i]];
    append(hdr, len);
}

void cd_put_bool(bool v) { put_le(v ? 1 : 0, 1); }
void cd_put_nat8(uint8_t v) { put_le(v, 1); }
void cd_put_nat32(uint32_t v) { put_le(v, 4); }
void cd_put_nat64(uint64_t v) { put_le(v, 8); }
void cd_put_int64(int64_t v) { put_le((uint64_t)v, 8); }
void cd_put_nat(uint64_t v) { put_leb(v); }

void cd_put_text(const void *s, size_t len) {
    if (!valid_utf8(s, len)) rt_trap("candid: reply text is not valid UTF-8");
    put_leb(len);
    append(s, len);
}

void cd_put_blob(const void *p, size_t len) {
    put_leb(len);
    append(p, len);
}

void cd_put_opt_blob(bool present, const void *p, size_t len) {
    put_le(present ? 1 : 0, 1);
    if (present) cd_put_blob(p, len);
}

void cd_reply_end(void) { ic0_msg_reply(); }

void cd_reply_empty(void) {
    cd_reply_begin(NULL, 0);
    cd_reply_end();
}

static void reply1(cd_type t) { cd_reply_begin(&t, 1); }

void cd_reply_bool(bool v) {
    reply1(CD_BOOL);
    cd_put_bool(v);
    cd_reply_end();
}

void cd_reply_nat64(uint64_t v) {
    reply1(CD_NAT64);
    cd_put_nat64(v);
    cd_reply_end();
}

void cd_reply_int64(int64_t v) {
    reply1(CD_INT64);
    cd_put_int64(v);
    cd_reply_end();
}

void cd_reply_blob(const void *p, size_t len) {
    reply1(CD_BLOB);
    cd_put_blob(p, len);
    cd_reply_end();
}

void cd_reply_opt_blob(bool present, const void *p, size_t len) {
    reply1(CD_OPT_BLOB);
    cd_put_opt_blob(present, p, len);
    cd_reply_end();
}
