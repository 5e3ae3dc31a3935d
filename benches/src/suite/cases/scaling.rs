//! `scaling/{1,2}_workers`: rounds of messages to four independent
//! canisters, each message reading 256 pages, on a pool of one worker and
//! of two. Per message; no fsync, so the figure is the host's.

use super::{BenchError, OWNER, Runner, host_config, install, open_host};
use crate::suite::error::CaseContext;

const CANISTERS: usize = 4;
const PER_CANISTER: usize = 25;

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let names = ["scaling/1_workers", "scaling/2_workers"];
    if !r.any(&names) {
        return Ok(());
    }
    let read_256 = 256u32.to_le_bytes().to_vec();
    for (workers, name) in [(1, names[0]), (2, names[1])] {
        let host = open_host(r, name, host_config(false, workers))?;
        let ids =
            (0..CANISTERS).map(|_| install(&host, name, canisters::BENCH, vec![])).collect::<Result<Vec<_>, _>>()?;
        let baselines: &[&str] = if workers == 1 { &["update/read_256_pages"] } else { &[names[0]] };
        let result = r.latency(name, baselines, || {
            let calls: Vec<_> = (0..PER_CANISTER)
                .flat_map(|_| ids.iter().map(|id| host.submit_update(*id, OWNER, "read_pages", read_256.clone())))
                .collect();
            calls.into_iter().try_for_each(|call| call.wait().map(drop).case(name))
        })?;
        result.per_operation((CANISTERS * PER_CANISTER) as u64);
    }
    Ok(())
}
