//! Plain wasmtime, no host: the floor any embedder of this code stands on.
//!
//! - `wasmtime/warm_call`: calling the bench canister's empty update on a
//!   live instance (`msg_reply` a no-op);
//! - `wasmtime/fresh_instance`: a new store and instance, then the call;
//! - `wasmtime/compile_{small,ledger}`: Cranelift compiling the counter
//!   and the ledger, as every install does.

use wasmtime::{Engine, Linker, Module, Store};

use super::{BenchError, Runner};
use crate::suite::error::CaseContext;

/// The cases here, which other groups name as baselines.
pub(super) const WARM_CALL: &str = "wasmtime/warm_call";
pub(super) const FRESH_INSTANCE: &str = "wasmtime/fresh_instance";
pub(super) const COMPILE_SMALL: &str = "wasmtime/compile_small";
pub(super) const COMPILE_LEDGER: &str = "wasmtime/compile_ledger";

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    if r.any(&[WARM_CALL, FRESH_INSTANCE]) {
        calls(r)?;
    }
    if r.any(&[COMPILE_SMALL, COMPILE_LEDGER]) {
        compile(r)?;
    }
    Ok(())
}

/// The warm and fresh-instance calls.
pub(super) fn calls(r: &mut Runner) -> Result<(), BenchError> {
    const EXPORT: &str = "canister_update empty";
    let engine = Engine::default();
    let module = Module::new(&engine, canisters::BENCH).case(WARM_CALL)?;
    let mut linker = Linker::<()>::new(&engine);
    linker.func_wrap("ic0", "msg_reply", || {}).case(WARM_CALL)?;
    // The empty update calls nothing else; any other import would trap.
    linker.define_unknown_imports_as_traps(&module).case(WARM_CALL)?;
    let pre = linker.instantiate_pre(&module).case(WARM_CALL)?;

    let mut store = Store::new(&engine, ());
    let instance = pre.instantiate(&mut store).case(WARM_CALL)?;
    let empty = instance.get_typed_func::<(), ()>(&mut store, EXPORT).case(WARM_CALL)?;
    r.latency(WARM_CALL, &[], || empty.call(&mut store, ()).case(WARM_CALL))?;

    r.latency(FRESH_INSTANCE, &[], || {
        let mut store = Store::new(&engine, ());
        let instance = pre.instantiate(&mut store).case(FRESH_INSTANCE)?;
        let empty = instance.get_typed_func::<(), ()>(&mut store, EXPORT).case(FRESH_INSTANCE)?;
        empty.call(&mut store, ()).case(FRESH_INSTANCE)
    })?;
    Ok(())
}

/// Compiling the counter and the ledger.
pub(super) fn compile(r: &mut Runner) -> Result<(), BenchError> {
    let engine = Engine::default();
    let samples = if r.quick() { 10 } else { 20 };
    for (name, wasm) in [(COMPILE_SMALL, canisters::COUNTER), (COMPILE_LEDGER, canisters::LEDGER)] {
        r.timed(name, &[], samples, || {
            let start = std::time::Instant::now();
            Module::new(&engine, wasm).case(name)?;
            Ok(start.elapsed())
        })?;
    }
    Ok(())
}
