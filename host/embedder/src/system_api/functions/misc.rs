//! Time, performance counters, replicated execution, debug output and
//! explicit traps.

use wasmtime::Linker;

use super::{Addr, Ctx, HostTrap, R, allow, charge, cost, entry, instructions, read_text, trap};
use crate::system_api::HostState;

/// Define the remaining functions.
pub(super) fn define<A: Addr>(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let api = entry("time");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        Ok(c.data().message.time)
    })?;
    let api = entry("performance_counter");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>, counter: u32| -> R<u64> {
        allow(&c, api)?;
        match counter {
            0 => Ok(instructions(&c)),
            // The call context's instructions: this message's, plus those
            // of the earlier messages of the same call context.
            1 => Ok(c.data().message.context_instructions.saturating_add(instructions(&c))),
            other => trap(format!("ic0.performance_counter: unknown counter type {other}")),
        }
    })?;
    let api = entry("instruction_counter");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u64> {
        allow(&c, api)?;
        Ok(instructions(&c))
    })?;
    let api = entry("in_replicated_execution");
    l.func_wrap("ic0", api.name, move |c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        Ok(u32::from(c.data().message.context.is_replicated()))
    })?;
    let api = entry("debug_print");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, src: A, size: A| -> R<()> {
        allow(&c, api)?;
        charge(&mut c, cost::DEBUG_PRINT.saturating_add(size.get()))?;
        let text = read_text(&c, api.name, src.get(), size.get())?;
        c.data_mut().message.print(text);
        Ok(())
    })?;
    let api = entry("trap");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, src: A, size: A| -> R<()> {
        allow(&c, api)?;
        charge(&mut c, cost::COPY.saturating_add(size.get()))?;
        let text = read_text(&c, api.name, src.get(), size.get())?;
        Err(wasmtime::Error::new(HostTrap::CalledTrap(String::from_utf8_lossy(&text).into_owned())))
    })?;
    Ok(())
}
