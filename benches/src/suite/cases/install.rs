//! `install/{small,ledger}`: creating a canister and installing a module,
//! compilation and `canister_init` included, on a host (no fsync), against
//! plain wasmtime compiling the same module.

use std::time::Instant;

use super::plain::{self, COMPILE_LEDGER, COMPILE_SMALL};
use super::{BenchError, Runner, host_config, install, open_host};

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let cases =
        [("install/small", canisters::COUNTER, COMPILE_SMALL), ("install/ledger", canisters::LEDGER, COMPILE_LEDGER)];
    if !r.any(&cases.map(|(name, ..)| name)) {
        return Ok(());
    }
    if !r.has(COMPILE_LEDGER) {
        plain::compile(r)?;
    }
    let host = open_host(r, "install", host_config(false, 1))?;
    let samples = if r.quick() { 10 } else { 20 };
    let mut nonce = 0u64;
    for (name, wasm, baseline) in cases {
        r.timed(name, &[baseline], samples, || {
            // The executor shares a compiled module between canisters with
            // the same bytes; a fresh custom section makes every install
            // one it has never seen, so each sample compiles.
            nonce += 1;
            let wasm = with_custom_section(wasm, "canister-host:bench-nonce", &nonce.to_le_bytes());
            let start = Instant::now();
            install(&host, name, &wasm, vec![])?;
            Ok(start.elapsed())
        })?;
    }
    Ok(())
}

/// `wasm` with a custom section appended (custom sections may follow any
/// section and do not change what the module does).
pub(super) fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    use wasm_encoder::Section;
    let mut out = wasm.to_vec();
    wasm_encoder::CustomSection { name: name.into(), data: payload.into() }.append_to(&mut out);
    out
}
