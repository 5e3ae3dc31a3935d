//! The ic0 host functions.
//!
//! Each checks that its context allows it, then reads or writes the heap
//! through the tracker (so pages are made accessible, and writes marked
//! dirty, without relying on faults in host code). Every error a canister
//! can cause becomes a trap with a message that names the import.

use std::sync::Arc;

use wasmtime::{Caller, Engine, FuncType, Linker, ValType as WasmValType};

use super::spec::{self, IMPORTS};
use super::{HostState, MAX_CERTIFIED_DATA, MAX_PRINCIPAL_BYTES, Response};
use crate::memory::{PrepareError, ProtectFailure, TrackerCell};

/// How much of a `debug_print` or `trap` message is kept.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The 32-bit stable API can address 4 GiB (65536 wasm pages).
const STABLE32_MAX_PAGES: u64 = 65536;

/// Why a host function stopped the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTrap {
    /// The canister did something the System API forbids, or called `trap`.
    Trap(String),
    /// The host could not change page protections (e.g. `vm.max_map_count`).
    Memory(ProtectFailure),
}

impl std::fmt::Display for HostTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostTrap::Trap(message) => f.write_str(message),
            HostTrap::Memory(failure) => write!(f, "changing page protection failed: {}", failure.errno),
        }
    }
}

impl std::error::Error for HostTrap {}

type Ctx<'a> = Caller<'a, HostState>;
type R<T> = wasmtime::Result<T>;

fn trap<T>(message: impl Into<String>) -> R<T> {
    Err(wasmtime::Error::new(HostTrap::Trap(message.into())))
}

/// Trap unless the current context may call `name`.
fn allow(caller: &Ctx<'_>, name: &str) -> R<()> {
    let import = spec::lookup(name).expect("implemented imports are in the spec table");
    let context = caller.data().message.context;
    if import.allowed_in(context) {
        Ok(())
    } else if !import.ever_allowed() {
        trap(format!(
            "unsupported System API: ic0.{name}: it is only available in reply and reject callbacks, \
             and this host makes no inter-canister calls"
        ))
    } else {
        trap(format!("ic0.{name} cannot be called from {}", context.describe()))
    }
}

fn heap(caller: &Ctx<'_>, name: &str) -> R<Arc<TrackerCell>> {
    match &caller.data().heap {
        Some(cell) => Ok(cell.clone()),
        None => trap(format!("ic0.{name}: the canister has no memory")),
    }
}

fn access_error<T>(name: &str, offset: u64, len: u64, size: usize, error: PrepareError) -> R<T> {
    match error {
        PrepareError::OutOfBounds => {
            trap(format!("ic0.{name}: heap range [{offset}, {}) is outside the memory of {size} bytes", offset + len))
        }
        PrepareError::Protect(failure) => Err(wasmtime::Error::new(HostTrap::Memory(failure))),
    }
}

/// The heap's tracker, after checking that `offset..offset + len` lies
/// within the heap.
fn heap_range(caller: &Ctx<'_>, name: &str, offset: u64, len: u64) -> R<Arc<TrackerCell>> {
    let cell = heap(caller, name)?;
    let size = cell.with(|t| t.memory().byte_size()).unwrap_or(0);
    if offset.checked_add(len).is_none_or(|end| end > size as u64) {
        return access_error(name, offset, len, size, PrepareError::OutOfBounds);
    }
    Ok(cell)
}

/// Copy `len` bytes of the heap at `offset` out.
fn read_heap(caller: &Ctx<'_>, name: &str, offset: u64, len: u64) -> R<Vec<u8>> {
    let cell = heap_range(caller, name, offset, len)?;
    let mut buf = vec![0; len as usize];
    match cell.with(|t| t.read(offset as usize, &mut buf)) {
        Some(Ok(())) => Ok(buf),
        Some(Err(e)) => access_error(name, offset, len, 0, e),
        None => trap(format!("ic0.{name}: the heap is busy (internal error)")),
    }
}

/// Copy `data` into the heap at `offset`.
fn write_heap(caller: &Ctx<'_>, name: &str, offset: u64, data: &[u8]) -> R<()> {
    let cell = heap_range(caller, name, offset, data.len() as u64)?;
    match cell.with(|t| t.write(offset as usize, data)) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => access_error(name, offset, data.len() as u64, 0, e),
        None => trap(format!("ic0.{name}: the heap is busy (internal error)")),
    }
}

/// `*_copy(dst, offset, size)`: copy `source[offset..offset + size]` to the
/// heap at `dst`, trapping if either range is out of bounds.
fn copy_out(caller: &Ctx<'_>, name: &str, source: &[u8], dst: u32, offset: u32, size: u32) -> R<()> {
    let end = u64::from(offset) + u64::from(size);
    if end > source.len() as u64 {
        return trap(format!("ic0.{name}: offset {offset} + size {size} exceeds the {}-byte source", source.len()));
    }
    write_heap(caller, name, dst.into(), &source[offset as usize..end as usize])
}

/// Read a message for `debug_print` or `trap`, keeping a bounded prefix
/// (the whole range must still be valid).
fn read_text(caller: &Ctx<'_>, name: &str, src: u32, size: u32) -> R<Vec<u8>> {
    heap_range(caller, name, src.into(), size.into())?;
    read_heap(caller, name, src.into(), (size as usize).min(MAX_MESSAGE_BYTES) as u64)
}

fn responded(caller: &Ctx<'_>, name: &str) -> R<()> {
    if caller.data().message.response == Response::None {
        Ok(())
    } else {
        trap(format!("ic0.{name}: the message was already replied to or rejected; a message is answered at most once"))
    }
}

fn instructions(caller: &Ctx<'_>) -> u64 {
    let limit = caller.data().message.instruction_limit;
    limit.saturating_sub(caller.get_fuel().unwrap_or(limit))
}

/// Define every import of the spec in `linker`.
pub fn link(linker: &mut Linker<HostState>, engine: &Engine) -> wasmtime::Result<()> {
    define_messages(linker)?;
    define_canister(linker)?;
    define_stable(linker)?;
    define_misc(linker)?;
    for import in IMPORTS.iter().filter(|i| !i.implemented) {
        define_unsupported(linker, engine, import.name, import.params, import.results)?;
    }
    Ok(())
}

/// Link `ic0.<name>` with the given signature as a function that traps.
pub(crate) fn define_unsupported(
    linker: &mut Linker<HostState>,
    engine: &Engine,
    name: &str,
    params: &[wasmparser::ValType],
    results: &[wasmparser::ValType],
) -> wasmtime::Result<()> {
    let convert = |t: &wasmparser::ValType| match t {
        wasmparser::ValType::I32 => WasmValType::I32,
        wasmparser::ValType::I64 => WasmValType::I64,
        wasmparser::ValType::F32 => WasmValType::F32,
        wasmparser::ValType::F64 => WasmValType::F64,
        wasmparser::ValType::V128 => WasmValType::V128,
        wasmparser::ValType::Ref(_) => WasmValType::EXTERNREF,
    };
    let ty = FuncType::new(engine, params.iter().map(convert), results.iter().map(convert));
    let message = format!("unsupported System API: ic0.{name}");
    linker.func_new("ic0", name, ty, move |_, _, _| trap(message.clone()))?;
    Ok(())
}

fn define_messages(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("ic0", "msg_arg_data_size", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "msg_arg_data_size")?;
        Ok(c.data().message.arg.len() as u32)
    })?;
    l.func_wrap("ic0", "msg_arg_data_copy", |c: Ctx<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        allow(&c, "msg_arg_data_copy")?;
        let arg = c.data().message.arg.clone();
        copy_out(&c, "msg_arg_data_copy", &arg, dst, offset, size)
    })?;
    l.func_wrap("ic0", "msg_caller_size", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "msg_caller_size")?;
        Ok(c.data().message.caller.len() as u32)
    })?;
    l.func_wrap("ic0", "msg_caller_copy", |c: Ctx<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        allow(&c, "msg_caller_copy")?;
        let caller = c.data().message.caller.clone();
        copy_out(&c, "msg_caller_copy", &caller, dst, offset, size)
    })?;
    // Only meaningful in reply/reject callbacks, which this host never runs.
    l.func_wrap("ic0", "msg_reject_code", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "msg_reject_code")?;
        Ok(0)
    })?;
    l.func_wrap("ic0", "msg_reject_msg_size", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "msg_reject_msg_size")?;
        Ok(0)
    })?;
    l.func_wrap("ic0", "msg_reject_msg_copy", |c: Ctx<'_>, _dst: u32, _offset: u32, _size: u32| -> R<()> {
        allow(&c, "msg_reject_msg_copy")
    })?;
    l.func_wrap("ic0", "msg_deadline", |c: Ctx<'_>| -> R<u64> {
        allow(&c, "msg_deadline")?;
        Ok(0) // ingress messages have guaranteed responses: no deadline
    })?;
    l.func_wrap("ic0", "msg_reply_data_append", |mut c: Ctx<'_>, src: u32, size: u32| -> R<()> {
        allow(&c, "msg_reply_data_append")?;
        responded(&c, "msg_reply_data_append")?;
        let max = c.data().message.max_reply();
        if c.data().message.reply_data.len() + size as usize > max {
            return trap(format!("ic0.msg_reply_data_append: the reply would exceed the maximum of {max} bytes"));
        }
        let bytes = read_heap(&c, "msg_reply_data_append", src.into(), size.into())?;
        c.data_mut().message.reply_data.extend_from_slice(&bytes);
        Ok(())
    })?;
    l.func_wrap("ic0", "msg_reply", |mut c: Ctx<'_>| -> R<()> {
        allow(&c, "msg_reply")?;
        responded(&c, "msg_reply")?;
        let message = &mut c.data_mut().message;
        message.response = Response::Reply(std::mem::take(&mut message.reply_data));
        Ok(())
    })?;
    l.func_wrap("ic0", "msg_reject", |mut c: Ctx<'_>, src: u32, size: u32| -> R<()> {
        allow(&c, "msg_reject")?;
        responded(&c, "msg_reject")?;
        let max = c.data().message.max_reply();
        if size as usize > max {
            return trap(format!("ic0.msg_reject: the reject message exceeds the maximum of {max} bytes"));
        }
        let bytes = read_heap(&c, "msg_reject", src.into(), size.into())?;
        let Ok(text) = String::from_utf8(bytes) else {
            return trap("ic0.msg_reject: the reject message is not valid UTF-8");
        };
        c.data_mut().message.response = Response::Reject(text);
        Ok(())
    })?;
    l.func_wrap("ic0", "msg_method_name_size", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "msg_method_name_size")?;
        Ok(c.data().message.method.len() as u32)
    })?;
    l.func_wrap("ic0", "msg_method_name_copy", |c: Ctx<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        allow(&c, "msg_method_name_copy")?;
        let method = c.data().message.method.clone().into_bytes();
        copy_out(&c, "msg_method_name_copy", &method, dst, offset, size)
    })?;
    l.func_wrap("ic0", "accept_message", |mut c: Ctx<'_>| -> R<()> {
        allow(&c, "accept_message")?;
        if c.data().message.accepted {
            return trap("ic0.accept_message: the message was already accepted");
        }
        c.data_mut().message.accepted = true;
        Ok(())
    })?;
    // Ingress messages carry no cycles, and this host keeps no accounts:
    // nothing is available, accepted or refunded.
    l.func_wrap("ic0", "msg_cycles_available", |c: Ctx<'_>| -> R<u64> {
        allow(&c, "msg_cycles_available")?;
        Ok(0)
    })?;
    l.func_wrap("ic0", "msg_cycles_available128", |c: Ctx<'_>, dst: u32| -> R<()> {
        allow(&c, "msg_cycles_available128")?;
        write_heap(&c, "msg_cycles_available128", dst.into(), &0u128.to_le_bytes())
    })?;
    l.func_wrap("ic0", "msg_cycles_refunded", |c: Ctx<'_>| -> R<u64> {
        allow(&c, "msg_cycles_refunded")?;
        Ok(0)
    })?;
    l.func_wrap("ic0", "msg_cycles_refunded128", |c: Ctx<'_>, _dst: u32| -> R<()> {
        allow(&c, "msg_cycles_refunded128")
    })?;
    l.func_wrap("ic0", "msg_cycles_accept", |c: Ctx<'_>, _max: u64| -> R<u64> {
        allow(&c, "msg_cycles_accept")?;
        Ok(0)
    })?;
    l.func_wrap("ic0", "msg_cycles_accept128", |c: Ctx<'_>, _high: u64, _low: u64, dst: u32| -> R<()> {
        allow(&c, "msg_cycles_accept128")?;
        write_heap(&c, "msg_cycles_accept128", dst.into(), &0u128.to_le_bytes())
    })?;
    Ok(())
}

fn define_canister(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("ic0", "canister_self_size", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "canister_self_size")?;
        Ok(c.data().message.env.id.len() as u32)
    })?;
    l.func_wrap("ic0", "canister_self_copy", |c: Ctx<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        allow(&c, "canister_self_copy")?;
        let id = c.data().message.env.id.clone();
        copy_out(&c, "canister_self_copy", &id, dst, offset, size)
    })?;
    l.func_wrap("ic0", "canister_cycle_balance", |c: Ctx<'_>| -> R<u64> {
        allow(&c, "canister_cycle_balance")?;
        match u64::try_from(c.data().message.env.cycle_balance) {
            Ok(balance) => Ok(balance),
            Err(_) => trap("ic0.canister_cycle_balance: the balance exceeds 64 bits; use canister_cycle_balance128"),
        }
    })?;
    l.func_wrap("ic0", "canister_cycle_balance128", |c: Ctx<'_>, dst: u32| -> R<()> {
        allow(&c, "canister_cycle_balance128")?;
        let balance = c.data().message.env.cycle_balance;
        write_heap(&c, "canister_cycle_balance128", dst.into(), &balance.to_le_bytes())
    })?;
    l.func_wrap("ic0", "canister_status", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "canister_status")?;
        Ok(c.data().message.env.status)
    })?;
    l.func_wrap("ic0", "canister_version", |c: Ctx<'_>| -> R<u64> {
        allow(&c, "canister_version")?;
        Ok(c.data().message.env.version)
    })?;
    l.func_wrap("ic0", "is_controller", |c: Ctx<'_>, src: u32, size: u32| -> R<u32> {
        allow(&c, "is_controller")?;
        if size as usize > MAX_PRINCIPAL_BYTES {
            return trap(format!("ic0.is_controller: {size} bytes is not a principal (at most {MAX_PRINCIPAL_BYTES})"));
        }
        let principal = read_heap(&c, "is_controller", src.into(), size.into())?;
        Ok(u32::from(c.data().message.env.controllers.contains(&principal)))
    })?;
    l.func_wrap("ic0", "certified_data_set", |mut c: Ctx<'_>, src: u32, size: u32| -> R<()> {
        allow(&c, "certified_data_set")?;
        if size as usize > MAX_CERTIFIED_DATA {
            return trap(format!("ic0.certified_data_set: {size} bytes exceeds the maximum of {MAX_CERTIFIED_DATA}"));
        }
        let data = read_heap(&c, "certified_data_set", src.into(), size.into())?;
        c.data_mut().message.certified_data = data;
        Ok(())
    })?;
    // This host certifies nothing, so no certificate is ever present.
    l.func_wrap("ic0", "data_certificate_present", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "data_certificate_present")?;
        Ok(0)
    })?;
    l.func_wrap("ic0", "data_certificate_size", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "data_certificate_size")?;
        trap("ic0.data_certificate_size: no data certificate is present (this host does not certify state)")
    })?;
    l.func_wrap("ic0", "data_certificate_copy", |c: Ctx<'_>, _dst: u32, _offset: u32, _size: u32| -> R<()> {
        allow(&c, "data_certificate_copy")?;
        trap("ic0.data_certificate_copy: no data certificate is present (this host does not certify state)")
    })?;
    l.func_wrap("ic0", "global_timer_set", |mut c: Ctx<'_>, timestamp: u64| -> R<u64> {
        allow(&c, "global_timer_set")?;
        Ok(std::mem::replace(&mut c.data_mut().message.global_timer, timestamp))
    })?;
    Ok(())
}

fn define_stable(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("ic0", "stable_size", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "stable_size")?;
        let pages = c.data().message.stable.pages;
        if pages > STABLE32_MAX_PAGES {
            return trap("ic0.stable_size: stable memory exceeds 4 GiB; use the stable64 API");
        }
        Ok(pages as u32)
    })?;
    l.func_wrap("ic0", "stable_grow", |mut c: Ctx<'_>, new_pages: u32| -> R<i32> {
        allow(&c, "stable_grow")?;
        let stable = &mut c.data_mut().message.stable;
        if stable.pages + u64::from(new_pages) > STABLE32_MAX_PAGES {
            return Ok(-1);
        }
        Ok(stable.grow(new_pages.into()) as i32)
    })?;
    l.func_wrap("ic0", "stable_write", |mut c: Ctx<'_>, offset: u32, src: u32, size: u32| -> R<()> {
        stable_write(&mut c, "stable_write", offset.into(), src.into(), size.into())
    })?;
    l.func_wrap("ic0", "stable_read", |c: Ctx<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        stable_read(&c, "stable_read", dst.into(), offset.into(), size.into())
    })?;
    l.func_wrap("ic0", "stable64_size", |c: Ctx<'_>| -> R<u64> {
        allow(&c, "stable64_size")?;
        Ok(c.data().message.stable.pages)
    })?;
    l.func_wrap("ic0", "stable64_grow", |mut c: Ctx<'_>, new_pages: u64| -> R<i64> {
        allow(&c, "stable64_grow")?;
        Ok(c.data_mut().message.stable.grow(new_pages))
    })?;
    l.func_wrap("ic0", "stable64_write", |mut c: Ctx<'_>, offset: u64, src: u64, size: u64| -> R<()> {
        stable_write(&mut c, "stable64_write", offset, src, size)
    })?;
    l.func_wrap("ic0", "stable64_read", |c: Ctx<'_>, dst: u64, offset: u64, size: u64| -> R<()> {
        stable_read(&c, "stable64_read", dst, offset, size)
    })?;
    Ok(())
}

fn stable_write(c: &mut Ctx<'_>, name: &str, offset: u64, src: u64, size: u64) -> R<()> {
    allow(c, name)?;
    let stable_size = c.data().message.stable.size_bytes();
    if offset.checked_add(size).is_none_or(|end| end > stable_size) {
        return trap(format!(
            "ic0.{name}: range [{offset}, {offset}+{size}) is outside the stable memory of {stable_size} bytes"
        ));
    }
    let data = read_heap(c, name, src, size)?;
    match c.data_mut().message.stable.write(offset, &data) {
        Ok(()) => Ok(()),
        Err(e) => trap(format!("ic0.{name}: {e}")),
    }
}

fn stable_read(c: &Ctx<'_>, name: &str, dst: u64, offset: u64, size: u64) -> R<()> {
    allow(c, name)?;
    let stable = &c.data().message.stable;
    if offset.checked_add(size).is_none_or(|end| end > stable.size_bytes()) {
        return trap(format!(
            "ic0.{name}: range [{offset}, {offset}+{size}) is outside the stable memory of {} bytes",
            stable.size_bytes()
        ));
    }
    // Check the heap range before allocating the buffer.
    heap_range(c, name, dst, size)?;
    let mut buf = vec![0; size as usize];
    if let Err(e) = stable.read(offset, &mut buf) {
        return trap(format!("ic0.{name}: {e}"));
    }
    write_heap(c, name, dst, &buf)
}

fn define_misc(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("ic0", "time", |c: Ctx<'_>| -> R<u64> {
        allow(&c, "time")?;
        Ok(c.data().message.time)
    })?;
    l.func_wrap("ic0", "performance_counter", |c: Ctx<'_>, counter: u32| -> R<u64> {
        allow(&c, "performance_counter")?;
        match counter {
            // 0: this message; 1: its call context, which is the same here.
            0 | 1 => Ok(instructions(&c)),
            other => trap(format!("ic0.performance_counter: unknown counter type {other}")),
        }
    })?;
    l.func_wrap("ic0", "instruction_counter", |c: Ctx<'_>| -> R<u64> {
        allow(&c, "instruction_counter")?;
        Ok(instructions(&c))
    })?;
    l.func_wrap("ic0", "in_replicated_execution", |c: Ctx<'_>| -> R<u32> {
        allow(&c, "in_replicated_execution")?;
        Ok(u32::from(c.data().message.context.is_replicated()))
    })?;
    l.func_wrap("ic0", "debug_print", |mut c: Ctx<'_>, src: u32, size: u32| -> R<()> {
        allow(&c, "debug_print")?;
        let text = read_text(&c, "debug_print", src, size)?;
        c.data_mut().message.debug_prints.push(text);
        Ok(())
    })?;
    l.func_wrap("ic0", "trap", |c: Ctx<'_>, src: u32, size: u32| -> R<()> {
        allow(&c, "trap")?;
        let text = read_text(&c, "trap", src, size)?;
        trap(format!("canister called ic0.trap: {}", String::from_utf8_lossy(&text)))
    })?;
    Ok(())
}
