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
            let reply = Closure { fun: reply_fun.get(), env: reply_env.get() };
            let reject = Closure { fun: reject_fun.get(), env: reject_env.get() };
            start_call(
                &mut c,
                api.name,
                (callee_src.get(), callee_size.get()),
                (name_src.get(), name_size.get()),
                reply,
                reject,
            )
        },
    )?;
    define_call_simple(l)?;
    let api = entry("call_data_append");
    l.func_wrap("ic0", api.name, move |mut c: Ctx<'_>, src: A, size: A| -> R<()> {
        allow(&c, api)?;
        append_arg(&mut c, api.name, src.get(), size.get())
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
        perform(&mut c, api.name)
    })?;
    Ok(())
}

/// `call_new`: start building a call (discarding one started but not
/// performed, as the spec says).
fn start_call(
    c: &mut Ctx<'_>,
    name: &str,
    (callee_src, callee_size): (u64, u64),
    (name_src, name_size): (u64, u64),
    reply: Closure,
    reject: Closure,
) -> R<()> {
    if callee_size > MAX_PRINCIPAL_BYTES as u64 {
        return trap(format!(
            "ic0.{name}: a callee of {callee_size} bytes is not a principal (at most {MAX_PRINCIPAL_BYTES})"
        ));
    }
    if name_size > MAX_METHOD_NAME_BYTES as u64 {
        return trap(format!(
            "ic0.{name}: a method name of {name_size} bytes exceeds the maximum of {MAX_METHOD_NAME_BYTES}"
        ));
    }
    charge(c, cost::COPY + callee_size + name_size)?;
    let callee = read_heap(c, name, callee_src, callee_size)?;
    let Ok(method) = String::from_utf8(read_heap(c, name, name_src, name_size)?) else {
        return trap(format!("ic0.{name}: the method name is not valid UTF-8"));
    };
    c.data_mut().message.building = Some(OutgoingCall {
        callee,
        method,
        arg: Vec::new(),
        cycles: 0,
        reply,
        reject,
        cleanup: None,
        timeout_seconds: None,
    });
    Ok(())
}

/// Append `size` bytes at `src` to the argument of the call being built.
fn append_arg(c: &mut Ctx<'_>, name: &str, src: u64, size: u64) -> R<()> {
    let so_far = building(c, name)?.arg.len() as u64;
    if so_far.saturating_add(size) > MAX_CALL_PAYLOAD as u64 {
        return trap(format!("ic0.{name}: the argument would exceed the maximum of {MAX_CALL_PAYLOAD} bytes"));
    }
    charge(c, cost::COPY + size)?;
    let bytes = read_heap(c, name, src, size)?;
    building(c, name)?.arg.extend_from_slice(&bytes);
    Ok(())
}

/// Hand the call being built to the host: 0, or the reject code of a call
/// that could not be made (like a full output queue on the IC: the call is
/// not made, its cycles stay with the canister, and it may retry later).
fn perform(c: &mut Ctx<'_>, name: &str) -> R<u32> {
    let size = building(c, name)?.size_bytes();
    let message = &mut c.data_mut().message;
    let call = message.building.take().expect("checked above");
    if message.calls.len() >= message.call_capacity
        || message.call_bytes.saturating_add(size) > crate::system_api::MAX_CALL_BYTES_PER_MESSAGE
    {
        message.cycles_sent -= call.cycles;
        return Ok(RejectCode::SysTransient as u32);
    }
    message.call_bytes += size;
    message.calls.push(call);
    Ok(0)
}

/// The legacy `call_simple`: `call_new`, `call_data_append` and
/// `call_perform` in one (32-bit modules only, as the spec had it).
fn define_call_simple(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let api = entry("call_simple");
    #[allow(clippy::too_many_arguments)] // the spec's signature
    l.func_wrap(
        "ic0",
        api.name,
        move |mut c: Ctx<'_>,
              callee_src: u32,
              callee_size: u32,
              name_src: u32,
              name_size: u32,
              reply_fun: u32,
              reply_env: u32,
              reject_fun: u32,
              reject_env: u32,
              data_src: u32,
              data_size: u32|
              -> R<u32> {
            allow(&c, api)?;
            let reply = Closure { fun: reply_fun.into(), env: reply_env.into() };
            let reject = Closure { fun: reject_fun.into(), env: reject_env.into() };
            let callee = (callee_src.into(), callee_size.into());
            start_call(&mut c, api.name, callee, (name_src.into(), name_size.into()), reply, reject)?;
            append_arg(&mut c, api.name, data_src.into(), data_size.into())?;
            perform(&mut c, api.name)
        },
    )?;
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
