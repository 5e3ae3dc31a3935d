//! Reopening a state directory whose canisters all run different modules
//! (ledgers told apart by a custom section, so none shares compiled code):
//!
//! - `reopen/{10,100}_modules_compiled`: every module compiled by
//!   Cranelift, as without the compiled-module cache;
//! - `reopen/{10,100}_modules_cached`: the same directory with the cache
//!   warm: machine code loaded, nothing compiled.

use std::path::Path;
use std::time::{Duration, Instant};

use candid::Encode;
use canister_host::{Host, HostConfig};

use super::install::with_custom_section;
use super::{BenchError, Runner, host_config, install};
use crate::suite::error::CaseContext;

fn name(modules: usize, how: &str) -> String {
    format!("reopen/{modules}_modules_{how}")
}

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let modules = if r.quick() { 10 } else { 100 };
    let (compiled, cached) = (name(modules, "compiled"), name(modules, "cached"));
    if !r.any(&[&compiled, &cached]) {
        return Ok(());
    }
    let dir = r.scratch().join("reopen");
    let with_cache = HostConfig { module_cache_bytes: 4 << 30, ..host_config(false, 2) };
    {
        let host = Host::open(&dir, with_cache.clone()).case(&compiled)?;
        let init = Encode!(&100u64, &1_000u64).case(&compiled)?;
        for i in 0..modules {
            let wasm = with_custom_section(canisters::LEDGER, "canister-host:bench-module", &i.to_le_bytes());
            install(&host, &compiled, &wasm, init.clone())?;
        }
        host.close().case(&compiled)?;
    }
    let samples = if r.quick() { 3 } else { 5 };
    r.timed(&compiled, &[], samples, || open(&dir, host_config(false, 2), modules, &compiled))?;
    r.timed(&cached, &[&compiled], samples, || open(&dir, with_cache.clone(), modules, &cached))?;
    std::fs::remove_dir_all(&dir).case("reopen")?;
    Ok(())
}

/// Time one open of `dir`, which must hold `modules` canisters.
fn open(dir: &Path, config: HostConfig, modules: usize, name: &str) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let host = Host::open(dir, config).case(name)?;
    let elapsed = start.elapsed();
    let found = host.canisters().len();
    if found != modules {
        return Err(BenchError::Case { case: name.into(), message: format!("{found} canisters, not {modules}") });
    }
    drop(host);
    Ok(elapsed)
}
