//! The demo's checks after the crash: nothing acknowledged was lost, and
//! replay verification catches a modified module.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use canister_host::{Divergence, Host, Principal, RecoveryReport, VerifyOptions};
use sha2::{Digest, Sha256};

use super::{INITIAL_BALANCE, LEDGER, Observed, host_config};
use crate::args::Demo;
use crate::exit::check_failed;
use crate::state::Context;

/// What reopening found.
pub struct Recovered {
    /// The host's own report.
    pub report: RecoveryReport,
    /// How long opening took (load, compile, replay).
    pub open_time: Duration,
    /// How long the checks took.
    pub check_time: Duration,
    /// Transfers in the ledger's log: the acknowledged ones, and perhaps
    /// some that were durable but not yet acknowledged at the kill.
    pub transactions: u64,
    /// The ledger's total supply.
    pub total_supply: u64,
    /// The ledger's id.
    pub ledger: Principal,
}

fn query<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    host: &Host,
    ledger: Principal,
    method: &str,
    arg: Vec<u8>,
) -> anyhow::Result<T> {
    let reply =
        host.query_call(ledger, Principal::anonymous(), method, arg).with_context(|| format!("querying {method}"))?;
    candid::decode_one(&reply).with_context(|| format!("decoding the reply of {method}"))
}

/// `f` over `0..n` on every core, in order.
fn parallel<T: Send>(n: u64, f: impl Fn(u64) -> anyhow::Result<T> + Sync) -> anyhow::Result<Vec<T>> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()) as u64;
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                scope.spawn(move || (t * per..((t + 1) * per).min(n)).map(f).collect::<anyhow::Result<Vec<T>>>())
            })
            .collect();
        let mut all = Vec::with_capacity(n as usize);
        for part in parts {
            all.extend(part.join().map_err(|_| anyhow::anyhow!("a checking thread panicked"))??);
        }
        Ok(all)
    })
}

/// Reopen the state directory and check the ledger against what the child
/// acknowledged.
pub fn check(cx: &Context, args: &Demo, observed: &Observed) -> anyhow::Result<Recovered> {
    let started = Instant::now();
    let host = Host::open(&cx.dir, host_config(args.checkpoint_interval)).context("reopening after the kill")?;
    let open_time = started.elapsed();
    let started = Instant::now();
    let ledger = host.resolve(LEDGER).context("the ledger is gone after the kill")?;
    let count: u64 = query(&host, ledger, "transactions", candid::encode_args(())?)?;
    let lost: Vec<u64> = observed.acks.iter().map(|(i, _)| *i).filter(|i| *i >= count).collect();
    if !lost.is_empty() {
        return Err(check_failed(format!(
            "{} acknowledged transfers are missing after the crash (the ledger holds {count}; first missing: {})",
            lost.len(),
            lost[0]
        )));
    }
    let log: Vec<(u64, u64, u64)> = parallel(count, |i| {
        let reply = host.query_call(ledger, Principal::anonymous(), "transaction", candid::encode_one(i)?)?;
        Ok(candid::decode_args(&reply)?)
    })?;
    for (index, transfer) in &observed.acks {
        let held = log[*index as usize];
        if held != *transfer {
            return Err(check_failed(format!(
                "transfer {index} was acknowledged as {transfer:?} (from, to, amount) but the ledger holds {held:?}"
            )));
        }
    }
    // The balances must be exactly the log applied to the initial ones: no
    // transfer half-applied, none applied twice.
    let mut expected = vec![INITIAL_BALANCE; args.accounts as usize];
    for (from, to, amount) in &log {
        expected[*from as usize] -= amount;
        expected[*to as usize] += amount;
    }
    let balances = parallel(args.accounts, |a| query::<u64>(&host, ledger, "balance", candid::encode_one(a)?))?;
    if let Some(account) = (0..balances.len()).find(|a| balances[*a] != expected[*a]) {
        return Err(check_failed(format!(
            "account {account} holds {} but its transfers add up to {}",
            balances[account], expected[account]
        )));
    }
    let total_supply: u64 = query(&host, ledger, "total_supply", candid::encode_args(())?)?;
    if total_supply != args.accounts * INITIAL_BALANCE {
        return Err(check_failed(format!(
            "the total supply changed: {total_supply}, not {}",
            args.accounts * INITIAL_BALANCE
        )));
    }
    let report = host.recovery().clone();
    let check_time = started.elapsed();
    host.close()?;
    Ok(Recovered { report, open_time, check_time, transactions: count, total_supply, ledger })
}

/// A replay with the modified ledger.
pub struct Substituted {
    /// Where it diverged.
    pub divergence: Divergence,
    /// How long the replay took.
    pub elapsed: Duration,
}

impl Substituted {
    /// One line about the divergence.
    pub fn divergence_text(&self) -> String {
        format!("caught at round {}, the first transfer", self.divergence.height)
    }
}

/// Replay from the checkpoint after the install with `ledger_fee` in place
/// of the ledger: the first round with a transfer must diverge, at the
/// ledger.
pub fn substitute(cx: &Context, setup_height: u64, ledger: Principal) -> anyhow::Result<Substituted> {
    let original: [u8; 32] = Sha256::digest(canisters::LEDGER).into();
    let options = VerifyOptions {
        from_height: Some(setup_height),
        workers: 1,
        replace_modules: HashMap::from([(original, canisters::LEDGER_FEE.to_vec())]),
        ..VerifyOptions::default()
    };
    let report = crate::commands::verify::replay(cx, options)?;
    let divergence = report.divergence.ok_or_else(|| {
        check_failed("the history replayed with a modified ledger without a divergence: verification missed it")
    })?;
    if divergence.height != setup_height + 1 || divergence.canister != Some(ledger) {
        return Err(check_failed(format!(
            "the modified ledger should diverge at round {} (the first transfer) at canister {ledger}; it did at \
             {divergence}",
            setup_height + 1
        )));
    }
    Ok(Substituted { divergence, elapsed: report.elapsed })
}
