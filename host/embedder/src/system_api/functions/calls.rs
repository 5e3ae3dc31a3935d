//! Calls to other canisters: `call_new` starts one, `call_data_append`,
//! `call_cycles_add*`, `call_on_cleanup` and `call_with_best_effort_response`
//! add to it, and `call_perform` hands it to the host. Nothing leaves the
//! canister before the message commits: a message that traps makes no calls.

use wasmtime::Linker;

use super::{Addr, Ctx, R, allow, charge, cost, entry, read_heap, trap};
use crate::codes::RejectCode;
use crate::system_api::{
    Closure, HostState, MAX_CALL_PAYLOAD, MAX_CALL_TIMEOUT_SECONDS, MAX_METHOD_NAME_BYTES, MAX_PRINCIPAL_BYTES,
    OutgoingCall,
};

/// The call being built, or a trap naming `name` if there is none.
fn building<'a>(c: &'a mut Ctx<'_>, name: &str) -> R<&'a mut OutgoingCall> {
    match c.data_mut().message.building.as_mut() {
        Some(call) => Ok(call),
        None => trap(format!("ic0.{name}: no call is being built; call ic0.call_new first")),
    }
}

/// Define the call functions.
pub(super) fn define<A: Addr>(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let api = entry("call_new");
    #[allow(clippy::too_many_arguments)] // the spec's signature
    l.func_wrap(
        "ic0",
        api.name,
        move |mut c: Ctx<'_>,
              callee_src: A,
              callee_size: A,
              name_src: A,
              name_size: A,
              reply_fun: A,
              reply_env: A,
              reject_fun: A,
              reject_env: A|
              -> R<()> {
            allow(&c, api)?;
            let (callee_size, name_size) = (callee_size.get(), name_size.get());
            if callee_size > MAX_PRINCIPAL_BYTES as u64 {
                return trap(format!(
                    "ic0.call_new: a callee of {callee_size} bytes is not a principal (at most {MAX_PRINCIPAL_BYTES})"
                ));
            }
            if name_size > MAX_METHOD_NAME_BYTES as u64 {
                return trap(format!(
                    "ic0.call_new: a method name of {name_size} bytes exceeds the maximum of {MAX_METHOD_NAME_BYTES}"
                ));
            }
            charge(&mut c, cost::COPY + callee_size + name_size)?;
            let callee = read_heap(&c, api.name, callee_src.get(), callee_size)?;
            let Ok(method) = String::from_utf8(read_heap(&c, api.name, name_src.get(), name_size)?) else {
                return trap("ic0.call_new: the method name is not valid UTF-8");
            };
            // A call started but not performed is discarded (the spec).
            c.data_mut().message.building = Some(OutgoingCall {
                callee,
                method,
                arg: Vec::new(),
                cycles: 0,
                reply: Closure { fun: reply_fun.get(), env: reply_env.get() },
                reject: Closure { fun: reject_fun.get(), env: reject_env.get() },
                cleanup: None,
                timeout_seconds: None,
            });
            Ok(())
        },
    )?;
    let api = entry("call_data_append");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, src: A, size: A| -> R<()> {
        allow(&c, api)?;
        let (src, size) = (src.get(), size.get());
        let so_far = building(&mut c, api.name)?.arg.len() as u64;
        if so_far.saturating_add(size) > MAX_CALL_PAYLOAD as u64 {
            return trap(format!(
                "ic0.call_data_append: the argument would exceed the maximum of {MAX_CALL_PAYLOAD} bytes"
            ));
        }
        charge(&mut c, cost::COPY + size)?;
        let bytes = read_heap(&c, api.name, src, size)?;
        building(&mut c, api.name)?.arg.extend_from_slice(&bytes);
        Ok(())
    })?;
    let api = entry("call_on_cleanup");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, fun: A, env: A| -> R<()> {
        allow(&c, api)?;
        let call = building(&mut c, api.name)?;
        if call.cleanup.is_some() {
            return trap("ic0.call_on_cleanup: the call already has a cleanup callback");
        }
        call.cleanup = Some(Closure { fun: fun.get(), env: env.get() });
        Ok(())
    })?;
    let api = entry("call_with_best_effort_response");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, timeout_seconds: u32| -> R<()> {
        allow(&c, api)?;
        let call = building(&mut c, api.name)?;
        if call.timeout_seconds.is_some() {
            return trap("ic0.call_with_best_effort_response: the call already has a timeout");
        }
        call.timeout_seconds = Some(timeout_seconds.min(MAX_CALL_TIMEOUT_SECONDS));
        Ok(())
    })?;
    let api = entry("call_cycles_add");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, amount: u64| -> R<()> {
        allow(&c, api)?;
        add_cycles(&mut c, api.name, amount.into())
    })?;
    let api = entry("call_cycles_add128");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, high: u64, low: u64| -> R<()> {
        allow(&c, api)?;
        add_cycles(&mut c, api.name, u128::from(high) << 64 | u128::from(low))
    })?;
    let api = entry("call_perform");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>| -> R<u32> {
        allow(&c, api)?;
        let call = building(&mut c, api.name)?;
        let size = call.size_bytes();
        let message = &mut c.data_mut().message;
        let call = message.building.take().expect("checked above");
        // Like a full output queue on the IC: the call is not made, its
        // cycles stay with the canister, and the canister may retry later.
        if message.calls.len() >= message.call_capacity
            || message.call_bytes.saturating_add(size) > crate::system_api::MAX_CALL_BYTES_PER_MESSAGE
        {
            message.cycles_sent -= call.cycles;
            return Ok(RejectCode::SysTransient as u32);
        }
        message.call_bytes += size;
        message.calls.push(call);
        Ok(0)
    })?;
    Ok(())
}

/// Attach `amount` cycles to the call being built, if the balance allows.
fn add_cycles(c: &mut Ctx<'_>, name: &str, amount: u128) -> R<()> {
    building(c, name)?;
    let message = &mut c.data_mut().message;
    let balance = message.env.cycle_balance;
    match message.cycles_sent.checked_add(amount).filter(|total| *total <= balance) {
        Some(total) => {
            message.cycles_sent = total;
            message.building.as_mut().expect("checked above").cycles += amount;
            Ok(())
        }
        None => trap(format!("ic0.{name}: attaching {amount} cycles exceeds the canister's balance of {balance}")),
    }
}
