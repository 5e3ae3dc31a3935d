//! Rounds of messages to four independent canisters, on a pool of one
//! worker and of two. Per message; no fsync, so the figure is the host's.
//!
//! - `scaling/{1,2}_workers`: each message reads 256 pages (about a
//!   microsecond of execution), so the round's serial work dominates;
//! - `scaling/{1,2}_workers_1ms`: each message computes for about a
//!   millisecond, so execution dominates and the second worker can halve it.

use candid::Encode;
use canister_host::{Host, Principal};

use super::{BenchError, OWNER, Runner, host_config, install, open_host};
use crate::suite::error::CaseContext;

const CANISTERS: usize = 4;

/// One kind of message: its method, argument and how many each canister
/// gets per round.
struct Load {
    suffix: &'static str,
    wasm: &'static [u8],
    method: &'static str,
    arg: Vec<u8>,
    per_canister: usize,
    baseline: &'static str,
}

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let loads = [
        Load {
            suffix: "",
            wasm: canisters::BENCH,
            method: "read_pages",
            arg: 256u32.to_le_bytes().to_vec(),
            per_canister: 25,
            baseline: "update/read_256_pages",
        },
        Load {
            suffix: "_1ms",
            wasm: canisters::MEMORY_STRESS,
            method: "spin",
            // About a millisecond of wasm on this class of machine.
            arg: Encode!(&400_000u64).case("scaling")?,
            per_canister: 4,
            baseline: "",
        },
    ];
    for load in &loads {
        let names = [format!("scaling/1_workers{}", load.suffix), format!("scaling/2_workers{}", load.suffix)];
        if !r.any(&names) {
            continue;
        }
        for (workers, name) in [(1, &names[0]), (2, &names[1])] {
            let host = open_host(r, name, host_config(false, workers))?;
            let ids = (0..CANISTERS).map(|_| install(&host, name, load.wasm, vec![])).collect::<Result<Vec<_>, _>>()?;
            let baselines: Vec<&str> = match workers {
                1 => [load.baseline].into_iter().filter(|b| !b.is_empty()).collect(),
                _ => vec![names[0].as_str()],
            };
            let result = r.latency(name, &baselines, || round(&host, &ids, load, name))?;
            result.per_operation((CANISTERS * load.per_canister) as u64);
        }
    }
    Ok(())
}

/// Submit `load`'s messages to every canister at once and wait for all.
fn round(host: &Host, ids: &[Principal], load: &Load, name: &str) -> Result<(), BenchError> {
    let calls: Vec<_> = (0..load.per_canister)
        .flat_map(|_| ids.iter().map(|id| host.submit_update(*id, OWNER, load.method, load.arg.clone())))
        .collect();
    calls.into_iter().try_for_each(|call| call.wait().map(drop).case(name))
}
