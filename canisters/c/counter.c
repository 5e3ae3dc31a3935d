/* counter: the smallest useful canister. The count lives in linear
 * memory (a C global), so it persists across update calls and is rolled
 * back with the rest of the state when a message traps.
 *
 * Methods take no arguments; the argument bytes are not inspected. */
#include "candid.h"
#include "runtime.h"

static uint64_t counter;

__attribute__((export_name("canister_update inc"))) void inc(void) {
    counter++;
    cd_reply_nat64(counter);
}

__attribute__((export_name("canister_query get"))) void get(void) { cd_reply_nat64(counter); }

/* Used to test rollback: the increment reaches memory (the trap is an
 * opaque import that could read it), and the host must then undo it. */
__attribute__((export_name("canister_update inc_then_trap"))) void inc_then_trap(void) {
    counter++;
    rt_trap("inc_then_trap: deliberate trap");
}
