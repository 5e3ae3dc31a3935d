//! Messages through the whole host: admission, the scheduler's round, the
//! log (synced or not), publishing the new state, the reply.
//!
//! - `host/update_call_{no_fsync,fsync}`: one empty update, waited for;
//! - `host/query_call`: one empty query on the committed state;
//! - `host/round_{1,10,100,1000}_messages`: that many empty updates
//!   submitted at once and waited for, with fsync: per message, so group
//!   commit shows as a falling cost.

use super::disk::{self, FLOOR};
use super::{BenchError, OWNER, Runner, bytes_under, host_config, install, open_host};
use crate::suite::error::CaseContext;

const NO_FSYNC: &str = "host/update_call_no_fsync";
const FSYNC: &str = "host/update_call_fsync";
const QUERY: &str = "host/query_call";
const ROUNDS: [usize; 4] = [1, 10, 100, 1000];

fn round_name(n: usize) -> String {
    format!("host/round_{n}_messages")
}

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let mut names = vec![NO_FSYNC.to_string(), FSYNC.into(), QUERY.into()];
    names.extend(ROUNDS.map(round_name));
    if !r.any(&names) {
        return Ok(());
    }
    // The bytes one empty update adds to the log: the floor appends as many.
    let host = open_host(r, "host-no-fsync", host_config(false, 1))?;
    let id = install(&host, NO_FSYNC, canisters::BENCH, vec![])?;
    let before = bytes_under(&r.scratch().join("host-no-fsync"));
    for _ in 0..100 {
        host.update_call(id, OWNER, "empty", vec![]).case(NO_FSYNC)?;
    }
    let per_round = (bytes_under(&r.scratch().join("host-no-fsync")) - before) / 100;
    disk::floor(r, per_round)?;

    r.latency(NO_FSYNC, &["update/empty"], || host.update_call(id, OWNER, "empty", vec![]).map(drop).case(NO_FSYNC))?;
    r.latency(QUERY, &["query/empty"], || host.query_call(id, OWNER, "empty_query", vec![]).map(drop).case(QUERY))?;
    drop(host);

    let host = open_host(r, "host-fsync", host_config(true, 1))?;
    let id = install(&host, FSYNC, canisters::BENCH, vec![])?;
    r.latency(FSYNC, &[FLOOR, NO_FSYNC], || host.update_call(id, OWNER, "empty", vec![]).map(drop).case(FSYNC))?;
    for n in ROUNDS {
        let name = round_name(n);
        if !r.selected(&name) {
            continue;
        }
        let result = r.latency(&name, &[FSYNC, FLOOR, "update/empty"], || {
            let calls: Vec<_> = (0..n).map(|_| host.submit_update(id, OWNER, "empty", vec![])).collect();
            calls.into_iter().try_for_each(|call| call.wait().map(drop).case(&name))
        })?;
        result.per_operation(n as u64);
    }
    Ok(())
}
