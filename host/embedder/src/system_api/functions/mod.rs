//! The `ic0` host functions, and the helpers they share.
//!
//! Each checks that its context allows it, then reads or writes the heap
//! through the tracked memory (so pages are made accessible, and writes
//! marked dirty, without relying on faults in host code). Every error a
//! canister can cause becomes a trap with a message that names the import.
//! Each function's spec entry is looked up once, when it is linked.

mod calls;
mod canister;
mod message;
mod misc;
mod stable;

use memory_tracker::{AccessError, ProtectFailure, TrackedMemory};
use wasmtime::{Caller, Engine, FuncType, Linker, Trap, ValType as WasmValType};

use super::spec::{self, IMPORTS, Import};
use super::{HostState, Response};

/// How much of a `debug_print` or `trap` message is kept (the IC's limit).
const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Bytes moved per step when copying between the heap and stable memory,
/// so no copy needs a canister-sized buffer.
const COPY_CHUNK: u64 = 64 * 1024;

/// What System API calls cost, in instructions, as on the IC: a fixed
/// overhead per call plus a charge per byte moved, so no loop of calls
/// moves unbounded data within an instruction limit.
mod cost {
    /// Most calls that copy data in or out.
    pub(super) const COPY: u64 = 500;
    /// `debug_print`.
    pub(super) const DEBUG_PRINT: u64 = 100;
    /// `stable*_read` and `stable*_write`.
    pub(super) const STABLE: u64 = 20;
    /// Per byte of a reply or reject: the IC charges transmission at 50×.
    pub(super) const REPLY_BYTE: u64 = 50;
}

/// Why a host function stopped the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTrap {
    /// The canister did something the System API forbids.
    ContractViolation(String),
    /// The canister called `ic0.trap` with this (lossily decoded) message.
    CalledTrap(String),
    /// The host could not change page protections (e.g. `vm.max_map_count`).
    Memory(ProtectFailure),
}

impl std::fmt::Display for HostTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostTrap::ContractViolation(message) | HostTrap::CalledTrap(message) => f.write_str(message),
            HostTrap::Memory(failure) => write!(f, "changing page protection failed: {}", failure.errno),
        }
    }
}

impl std::error::Error for HostTrap {}

type Ctx<'a> = Caller<'a, HostState>;
type R<T> = wasmtime::Result<T>;

fn trap<T>(message: impl Into<String>) -> R<T> {
    Err(wasmtime::Error::new(HostTrap::ContractViolation(message.into())))
}

/// The spec entry of an import this host implements, for linking it.
fn entry(name: &str) -> &'static Import {
    spec::lookup(name).expect("implemented imports are in the spec table")
}

/// The spec's `I`: a heap address or size, as wide as the module's memory
/// (`u32` for wasm32, `u64` for wasm64). Host functions take and return
/// it, and work in `u64` inside.
pub(crate) trait Addr: wasmtime::WasmTy + Copy + Send + Sync + 'static {
    /// Its value.
    fn get(self) -> u64;
    /// A length the host reports (always within the memory's width: every
    /// source a size is reported for is bounded far below 4 GiB).
    fn of(len: usize) -> Self;
}

impl Addr for u32 {
    fn get(self) -> u64 {
        self.into()
    }
    fn of(len: usize) -> Self {
        len as u32
    }
}

impl Addr for u64 {
    fn get(self) -> u64 {
        self
    }
    fn of(len: usize) -> Self {
        len as u64
    }
}

/// Trap unless the current context may call `import`.
fn allow(caller: &Ctx<'_>, import: &Import) -> R<()> {
    let context = caller.data().message.context;
    if import.allowed_in(context) {
        Ok(())
    } else {
        trap(format!("ic0.{} cannot be called from {}", import.name, context.describe()))
    }
}

fn access_error<T>(name: &str, offset: u64, len: u64, size: usize, error: AccessError) -> R<T> {
    match error {
        AccessError::OutOfBounds => trap(format!(
            "ic0.{name}: heap range [{offset}, {}) is outside the memory of {size} bytes",
            offset.saturating_add(len)
        )),
        AccessError::Protect(failure) => Err(wasmtime::Error::new(HostTrap::Memory(failure))),
        AccessError::Busy => trap(format!("ic0.{name}: the heap is busy (internal error)")),
    }
}

/// The heap, after checking that `offset..offset + len` lies within it.
fn heap_range(caller: &Ctx<'_>, name: &str, offset: u64, len: u64) -> R<TrackedMemory> {
    let Some(heap) = caller.data().heap.clone() else {
        return trap(format!("ic0.{name}: the canister has no memory"));
    };
    let size = heap.byte_size();
    if offset.checked_add(len).is_none_or(|end| end > size as u64) {
        return access_error(name, offset, len, size, AccessError::OutOfBounds);
    }
    Ok(heap)
}

/// Copy `len` bytes of the heap at `offset` out.
fn read_heap(caller: &Ctx<'_>, name: &str, offset: u64, len: u64) -> R<Vec<u8>> {
    let heap = heap_range(caller, name, offset, len)?;
    let mut buf = vec![0; len as usize];
    match heap.read(caller, offset, &mut buf) {
        Ok(()) => Ok(buf),
        Err(e) => access_error(name, offset, len, heap.byte_size(), e),
    }
}

/// Copy `data` into the heap at `offset`.
fn write_heap(caller: &mut Ctx<'_>, name: &str, offset: u64, data: &[u8]) -> R<()> {
    let heap = heap_range(caller, name, offset, data.len() as u64)?;
    match heap.write(caller, offset, data) {
        Ok(()) => Ok(()),
        Err(e) => access_error(name, offset, data.len() as u64, heap.byte_size(), e),
    }
}

/// Charge `instructions` of the message's fuel for work the host does for
/// it; running out ends the message at its instruction limit.
fn charge(caller: &mut Ctx<'_>, instructions: u64) -> R<()> {
    let fuel = caller.get_fuel()?;
    match fuel.checked_sub(instructions) {
        Some(left) => caller.set_fuel(left),
        None => {
            caller.set_fuel(0)?;
            Err(wasmtime::Error::new(Trap::OutOfFuel))
        }
    }
}

/// `*_copy(dst, offset, size)`: copy `source[offset..offset + size]` to the
/// heap at `dst`, trapping if either range is out of bounds. Only the
/// requested part is copied out of the source, so reading a large source
/// in small pieces costs its size, not its size times the pieces.
fn copy_out(
    caller: &mut Ctx<'_>,
    name: &str,
    source: fn(&HostState) -> &[u8],
    dst: u64,
    offset: u64,
    size: u64,
) -> R<()> {
    charge(caller, cost::COPY.saturating_add(size))?;
    let source = source(caller.data());
    let end = offset.checked_add(size).filter(|end| *end <= source.len() as u64);
    let Some(end) = end else {
        return trap(format!("ic0.{name}: offset {offset} + size {size} exceeds the {}-byte source", source.len()));
    };
    let part = source[offset as usize..end as usize].to_vec();
    write_heap(caller, name, dst, &part)
}

/// Read a message for `debug_print` or `trap`, keeping a bounded prefix
/// (the whole range must still be valid).
fn read_text(caller: &Ctx<'_>, name: &str, src: u64, size: u64) -> R<Vec<u8>> {
    heap_range(caller, name, src, size)?;
    read_heap(caller, name, src, size.min(MAX_MESSAGE_BYTES as u64))
}

fn responded(caller: &Ctx<'_>, name: &str) -> R<()> {
    let message = &caller.data().message;
    if message.response == Response::None && !message.responded_before {
        Ok(())
    } else {
        trap(format!("ic0.{name}: the message was already replied to or rejected; a message is answered at most once"))
    }
}

fn instructions(caller: &Ctx<'_>) -> u64 {
    let limit = caller.data().message.instruction_limit;
    limit.saturating_sub(caller.get_fuel().unwrap_or(limit))
}

/// Define every import of the spec in `linker`, with the signatures of a
/// module with a 64-bit memory if `wide`.
pub fn link(linker: &mut Linker<HostState>, engine: &Engine, wide: bool) -> wasmtime::Result<()> {
    if wide {
        define::<u64>(linker)?
    } else {
        define::<u32>(linker)?
    }
    stable::define(linker)?;
    for import in IMPORTS.iter().filter(|i| !i.implemented) {
        let (params, results) = import.signature(wide);
        define_unsupported(linker, engine, import.name, params, results)?;
    }
    Ok(())
}

fn define<A: Addr>(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    message::define::<A>(linker)?;
    canister::define::<A>(linker)?;
    calls::define::<A>(linker)?;
    misc::define::<A>(linker)
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
