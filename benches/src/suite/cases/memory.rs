//! `memory/rewrite_{64MiB,1GiB,4GiB}`: the resident memory of rewriting
//! every page of a dense heap, and what stays resident afterwards.
//!
//! A canister's heap is filled and checkpointed, then one message rewrites
//! every page. The case's time is that message; its sizes are the
//! process's resident memory over what it held before the host opened:
//! - `peak_rss`: the peak while rewriting (the instance's private pages
//!   and the delta's copy of each page both live until the checkpoint);
//! - `after_checkpoint_rss`: once the next checkpoint has taken in the
//!   delta (what stays: the instance's pages);
//! - `after_delete_rss`: once the canister is deleted (what stays: memory
//!   the allocator kept rather than returned).

use std::time::{Duration, Instant};

use candid::{Decode, Encode};
use canister_host::{Host, Principal};

use super::{BenchError, OWNER, Runner, host_config, install, open_host, size_label};
use crate::MIB;
use crate::suite::error::CaseContext;
use crate::suite::resident::{reset_peak, resident};

const PAGE: u64 = 4096;
const WASM_PAGE: u64 = 65536;
/// Pages one message writes: a 4 GiB heap in four messages keeps each
/// within the instruction limit.
const PAGES_PER_MESSAGE: u64 = 1 << 18;

fn name(size: u64) -> String {
    format!("memory/rewrite_{}", size_label(size))
}

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let sizes: &[u64] = if r.quick() { &[64 * MIB] } else { &[1024 * MIB, 4096 * MIB] };
    for &size in sizes {
        let name = name(size);
        if r.selected(&name) {
            rewrite(r, &name, size)?;
        }
    }
    Ok(())
}

fn rewrite(r: &mut Runner, name: &str, size: u64) -> Result<(), BenchError> {
    let idle = rss(name)?;
    let host = open_host(r, name, host_config(false, 1))?;
    let id = install(&host, name, canisters::MEMORY_STRESS, vec![])?;
    let start = canisters::MEMORY_STRESS_HEAP_START;
    let now: u64 = Decode!(&host.query_call(id, OWNER, "size", Encode!().case(name)?).case(name)?, u64).case(name)?;
    let grown = host.update_call(id, OWNER, "grow", Encode!(&(size / WASM_PAGE - now)).case(name)?).case(name)?;
    if Decode!(&grown, i64).case(name)? < 0 {
        return Err(BenchError::Case { case: name.into(), message: format!("cannot grow the heap to {size} bytes") });
    }
    let pages = (size - start) / PAGE;
    write_all(&host, id, name, start, pages, 1)?;
    host.checkpoint().case(name)?;
    let began = Instant::now();
    if !reset_peak() {
        return Err(BenchError::Case {
            case: name.into(),
            message: "cannot reset the peak in /proc/self/clear_refs".into(),
        });
    }
    write_all(&host, id, name, start, pages, 2)?;
    let elapsed = began.elapsed();
    let (_, peak) = resident().unwrap_or_default();
    let done = host.counters().memory_trims;
    host.checkpoint().case(name)?;
    let after_checkpoint = settled_rss(&host, done, name)?;
    let done = host.counters().memory_trims;
    host.stop(OWNER, id).case(name)?;
    host.delete_canister(OWNER, id).case(name)?;
    let after_delete = settled_rss(&host, done, name)?;
    drop(host);
    let result = r.once(name, &[], elapsed);
    let over = |bytes: u64| bytes.saturating_sub(idle);
    result.counts.insert("dirty_pages".into(), pages);
    result.bytes.extend([
        ("heap".to_string(), size),
        ("dirty".into(), pages * PAGE),
        ("peak_rss".into(), over(peak)),
        ("after_checkpoint_rss".into(), over(after_checkpoint)),
        ("after_delete_rss".into(), over(after_delete)),
    ]);
    std::fs::remove_dir_all(r.scratch().join(name.replace('/', "_"))).case(name)?;
    Ok(())
}

/// Write one byte of each of `pages` pages from `start`, in messages the
/// instruction limit admits.
fn write_all(host: &Host, id: Principal, name: &str, start: u64, pages: u64, value: u8) -> Result<(), BenchError> {
    let mut done = 0;
    while done < pages {
        let count = (pages - done).min(PAGES_PER_MESSAGE);
        let arg = Encode!(&(start + done * PAGE), &count, &PAGE, &false, &value).case(name)?;
        host.update_call(id, OWNER, "write_pages", arg).case(name)?;
        done += count;
    }
    Ok(())
}

/// The resident size once the host has returned what it freed: a trim
/// finished since `done` were, and none is pending.
fn settled_rss(host: &Host, done: u64, name: &str) -> Result<u64, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = host.counters();
        if c.memory_trims > done && c.memory_trims == c.memory_trim_requests {
            return rss(name);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Case {
                case: name.into(),
                message: "the host returned no memory within 60 s".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn rss(name: &str) -> Result<u64, BenchError> {
    resident()
        .map(|(now, _)| now)
        .ok_or_else(|| BenchError::Case { case: name.into(), message: "cannot read /proc/self/status".into() })
}
