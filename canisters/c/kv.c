/* kv: a key-value store over blobs, sized for millions of small entries.
 *
 * The map is an open-addressing hash table with linear probing. A slot
 * holds the key's 32-bit hash (so most mismatches are rejected without
 * touching the entry) and a pointer to one malloc'ed entry carrying both
 * key and value. Deletion shifts later entries of the probe run back
 * instead of leaving tombstones, so lookups never slow down with churn.
 * The table doubles when it would pass 3/4 full.
 *
 * Memory for 10^6 entries with 8-byte keys and 8..32-byte values: entries
 * 32..64 bytes each, the table 16 MiB (2^21 slots), plus the smaller
 * tables left behind by earlier doublings (the allocator does not
 * coalesce): about 82 MiB in all. */
#include "candid.h"
#include "runtime.h"

typedef struct {
    uint32_t key_len;
    uint32_t val_len;
    uint8_t data[]; /* key bytes, then value bytes */
} entry_t;

typedef struct {
    uint32_t hash;
    entry_t *entry; /* NULL: empty slot */
} slot_t;

static slot_t *slots;
static uint32_t capacity; /* 0 or a power of two */
static uint32_t count;

#define MIN_CAPACITY 16u
#define MAX_CAPACITY (1u << 30)

/* FNV-1a, then a 64-bit finaliser (from MurmurHash3) so that the low bits
 * used for the slot index depend on every input byte. */
static uint32_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return (uint32_t)h;
}

static const uint8_t *entry_value(const entry_t *e) { return e->data + e->key_len; }

/* Returns the slot holding key, or the empty slot ending its probe run
 * (where it would be inserted); *found tells which. Requires capacity > 0
 * and at least one empty slot, which the load limit guarantees. */
static uint32_t probe(const uint8_t *key, size_t len, uint32_t hash, bool *found) {
    uint32_t mask = capacity - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        const slot_t *s = &slots[i];
        if (!s->entry) {
            *found = false;
            return i;
        }
        if (s->hash == hash && s->entry->key_len == len && memcmp(s->entry->data, key, len) == 0) {
            *found = true;
            return i;
        }
    }
}

static void resize(uint32_t new_capacity) {
    slot_t *old = slots;
    uint32_t old_capacity = capacity;
    slots = rt_xcalloc(new_capacity, sizeof(slot_t));
    capacity = new_capacity;
    uint32_t mask = new_capacity - 1;
    /* Keys are distinct, so re-inserting only needs an empty slot. */
    for (uint32_t i = 0; i < old_capacity; i++) {
        if (!old[i].entry) continue;
        uint32_t j = old[i].hash & mask;
        while (slots[j].entry) j = (j + 1) & mask;
        slots[j] = old[i];
    }
    free(old);
}

/* Backward-shift deletion: walk the rest of the probe run and move back
 * every entry whose home slot is not between the hole and its position,
 * so that no lookup ever meets a gap before reaching its key. */
static void remove_at(uint32_t hole) {
    uint32_t mask = capacity - 1;
    for (uint32_t j = (hole + 1) & mask; slots[j].entry; j = (j + 1) & mask) {
        uint32_t home = slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            slots[hole] = slots[j];
            hole = j;
        }
    }
    slots[hole].entry = NULL;
    slots[hole].hash = 0;
    count--;
}

static entry_t *new_entry(cd_bytes key, cd_bytes value) {
    /* Both lengths are bounded by the message size, far below 4 GiB, but
     * check anyway rather than let the sum wrap (size_t is 32 bits). */
    if (key.len > SIZE_MAX - sizeof(entry_t) || value.len > SIZE_MAX - sizeof(entry_t) - key.len)
        rt_trap("kv: entry too large");
    entry_t *e = rt_xmalloc(sizeof(entry_t) + key.len + value.len);
    e->key_len = (uint32_t)key.len;
    e->val_len = (uint32_t)value.len;
    memcpy(e->data, key.ptr, key.len);
    memcpy(e->data + key.len, value.ptr, value.len);
    return e;
}

/* put : (key blob, value blob) -> (opt blob), the previous value */
__attribute__((export_name("canister_update put"))) void put(void) {
    cd_decoder d;
    cd_begin_msg(&d, 2);
    cd_bytes key = cd_blob(&d);
    cd_bytes value = cd_blob(&d);
    cd_finish(&d);

    uint32_t hash = hash_bytes(key.ptr, key.len);
    entry_t *e = new_entry(key, value);
    bool found = false;
    uint32_t i = 0;
    if (capacity) i = probe(key.ptr, key.len, hash, &found);
    if (found) {
        entry_t *old = slots[i].entry;
        slots[i].entry = e;
        cd_reply_opt_blob(true, entry_value(old), old->val_len); /* copied out by the system */
        free(old);
    } else {
        /* Keep the load factor at or below 3/4. */
        if (count + 1 > capacity - capacity / 4) {
            if (capacity >= MAX_CAPACITY) rt_trap("kv: too many keys");
            resize(capacity ? capacity * 2 : MIN_CAPACITY);
            i = probe(key.ptr, key.len, hash, &found);
        }
        slots[i].hash = hash;
        slots[i].entry = e;
        count++;
        cd_reply_opt_blob(false, NULL, 0);
    }
    cd_release(&d);
}

/* get : (key blob) -> (opt blob) */
__attribute__((export_name("canister_query get"))) void get(void) {
    cd_decoder d;
    cd_begin_msg(&d, 1);
    cd_bytes key = cd_blob(&d);
    cd_finish(&d);
    bool found = false;
    uint32_t i = 0;
    if (capacity) i = probe(key.ptr, key.len, hash_bytes(key.ptr, key.len), &found);
    if (found)
        cd_reply_opt_blob(true, entry_value(slots[i].entry), slots[i].entry->val_len);
    else
        cd_reply_opt_blob(false, NULL, 0);
    cd_release(&d);
}

/* delete : (key blob) -> (bool), whether the key was present */
__attribute__((export_name("canister_update delete"))) void delete(void) {
    cd_decoder d;
    cd_begin_msg(&d, 1);
    cd_bytes key = cd_blob(&d);
    cd_finish(&d);
    bool found = false;
    uint32_t i = 0;
    if (capacity) i = probe(key.ptr, key.len, hash_bytes(key.ptr, key.len), &found);
    if (found) {
        entry_t *e = slots[i].entry;
        remove_at(i);
        free(e);
    }
    cd_reply_bool(found);
    cd_release(&d);
}

/* len : () -> (nat64) */
__attribute__((export_name("canister_query len"))) void len(void) { cd_reply_nat64(count); }
