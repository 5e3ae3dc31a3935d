/* ledger: the micropayments workload. Accounts are indices into a flat
 * array of uint64 balances; transfers move funds between them.
 *
 * The total supply is fixed at init (transfers only move funds), so it is
 * kept in a variable and total_supply is O(1). Because every balance is
 * at most the total, which fits in 64 bits, a credit can never overflow.
 *
 * transfer_indexed also appends the transfer to a transaction log and
 * returns its index, so a client can later check that each transfer it
 * was acknowledged is still there (the demo's crash check).
 *
 * Built with -DLEDGER_FEE, this is ledger_fee: every transfer burns a fee
 * of one unit. It exists to be substituted for the real ledger in replay
 * verification, which must catch the difference. */
#include "candid.h"
#include "ic0.h"
#include "runtime.h"

#define DEFAULT_ACCOUNTS 1000u
#define DEFAULT_BALANCE 1000000u

static uint64_t *balances;
static uint64_t num_accounts;
static uint64_t total;

#ifdef LEDGER_FEE
#define FEE 1u
#else
#define FEE 0u
#endif

typedef struct {
    uint64_t from, to, amount;
} transaction;

static transaction *log_entries;
static uint64_t log_len, log_cap;

/* init : (accounts nat64, initial_balance nat64), or an empty argument
 * (zero bytes or the empty tuple `()`) for 1000 accounts of 1_000_000. */
__attribute__((export_name("canister_init"))) void init(void) {
    uint64_t accounts = DEFAULT_ACCOUNTS, initial = DEFAULT_BALANCE;
    if (ic0_msg_arg_data_size() > 0) {
        cd_decoder d;
        cd_begin_msg(&d, CD_ANY_ARGS);
        if (d.nargs == 2) {
            accounts = cd_nat64(&d);
            initial = cd_nat64(&d);
        } else if (d.nargs != 0) {
            rt_trapf("ledger: init expects (accounts nat64, initial_balance nat64) or (), got %u arguments",
                     d.nargs);
        }
        cd_finish(&d);
        cd_release(&d);
    }
    if (accounts > SIZE_MAX / sizeof(uint64_t))
        rt_trapf("ledger: %llu accounts do not fit in a 32-bit address space", (unsigned long long)accounts);
    if (initial && accounts > UINT64_MAX / initial)
        rt_trapf("ledger: total supply of %llu accounts x %llu overflows nat64", (unsigned long long)accounts,
                 (unsigned long long)initial);
    balances = rt_xmalloc((size_t)accounts * sizeof(uint64_t));
    for (uint64_t i = 0; i < accounts; i++) balances[i] = initial;
    num_accounts = accounts;
    total = accounts * initial;
}

static void check_account(uint64_t a) {
    if (a >= num_accounts) rt_trapf("ledger: unknown account %llu", (unsigned long long)a);
}

/* Move `amount` (plus the fee) from `from` to `to`. All checks happen
 * before any balance changes. */
static void apply(uint64_t from, uint64_t to, uint64_t amount) {
    check_account(from);
    check_account(to);
    if (amount > UINT64_MAX - FEE || balances[from] < amount + FEE)
        rt_trapf("ledger: insufficient funds: account %llu has %llu, needs %llu", (unsigned long long)from,
                 (unsigned long long)balances[from], (unsigned long long)amount);
    balances[from] -= amount + FEE;
    balances[to] += amount; /* from == to leaves the balance unchanged */
    total -= FEE;
}

static void decode_transfer(uint64_t *from, uint64_t *to, uint64_t *amount) {
    cd_decoder d;
    cd_begin_msg(&d, 3);
    *from = cd_nat64(&d);
    *to = cd_nat64(&d);
    *amount = cd_nat64(&d);
    cd_finish(&d);
    cd_release(&d);
}

/* transfer : (from nat64, to nat64, amount nat64) -> (nat64), the sender's
 * new balance. */
__attribute__((export_name("canister_update transfer"))) void transfer(void) {
    uint64_t from, to, amount;
    decode_transfer(&from, &to, &amount);
    apply(from, to, amount);
    cd_reply_nat64(balances[from]);
}

/* transfer_indexed : (from nat64, to nat64, amount nat64) -> (nat64), the
 * transfer's index in the transaction log. */
__attribute__((export_name("canister_update transfer_indexed"))) void transfer_indexed(void) {
    uint64_t from, to, amount;
    decode_transfer(&from, &to, &amount);
    apply(from, to, amount);
    if (log_len == log_cap) {
        uint64_t cap = log_cap ? log_cap * 2 : 1024;
        if (cap > SIZE_MAX / sizeof(transaction)) rt_trapf("ledger: the transaction log is full");
        log_entries = rt_xrealloc(log_entries, (size_t)cap * sizeof(transaction));
        log_cap = cap;
    }
    log_entries[log_len] = (transaction){from, to, amount};
    cd_reply_nat64(log_len++);
}

/* transactions : () -> (nat64), the transaction log's length. */
__attribute__((export_name("canister_query transactions"))) void transactions(void) { cd_reply_nat64(log_len); }

/* transaction : (index nat64) -> (from nat64, to nat64, amount nat64) */
__attribute__((export_name("canister_query transaction"))) void get_transaction(void) {
    cd_decoder d;
    cd_begin_msg(&d, 1);
    uint64_t index = cd_nat64(&d);
    cd_finish(&d);
    cd_release(&d);
    if (index >= log_len) rt_trapf("ledger: no transaction %llu (there are %llu)", (unsigned long long)index,
                                   (unsigned long long)log_len);
    static const cd_type types[3] = {CD_NAT64, CD_NAT64, CD_NAT64};
    cd_reply_begin(types, 3);
    cd_put_nat64(log_entries[index].from);
    cd_put_nat64(log_entries[index].to);
    cd_put_nat64(log_entries[index].amount);
    cd_reply_end();
}

/* balance : (account nat64) -> (nat64) */
__attribute__((export_name("canister_query balance"))) void balance(void) {
    cd_decoder d;
    cd_begin_msg(&d, 1);
    uint64_t account = cd_nat64(&d);
    cd_finish(&d);
    cd_release(&d);
    check_account(account);
    cd_reply_nat64(balances[account]);
}

/* total_supply : () -> (nat64) */
__attribute__((export_name("canister_query total_supply"))) void total_supply(void) { cd_reply_nat64(total); }

/* accounts : () -> (nat64) */
__attribute__((export_name("canister_query accounts"))) void get_accounts(void) { cd_reply_nat64(num_accounts); }
