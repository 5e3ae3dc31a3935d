//! What a canister is between messages: its persistent state, and the
//! live instance that may carry it.

use std::sync::Arc;

use page_delta::PageMap;
use wasmtime::Val;

use super::instance::LiveInstance;
use crate::engine::CanisterModule;
use crate::system_api::CanisterEnv;
use crate::units::WasmPages;

/// The value of a mutable global, saved between messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GlobalValue {
    /// An `i32`.
    I32(i32),
    /// An `i64`.
    I64(i64),
    /// An `f32`, as its bits.
    F32(u32),
    /// An `f64`, as its bits.
    F64(u64),
    /// A `v128`.
    V128(u128),
}

impl GlobalValue {
    /// A byte naming the value's type, for canonical encodings.
    pub fn type_tag(self) -> u8 {
        match self {
            GlobalValue::I32(_) => 0,
            GlobalValue::I64(_) => 1,
            GlobalValue::F32(_) => 2,
            GlobalValue::F64(_) => 3,
            GlobalValue::V128(_) => 4,
        }
    }

    /// The value as 128 bits (integers zero-extended, floats as their
    /// bits): a canonical encoding for digests.
    pub fn to_bits(self) -> u128 {
        match self {
            GlobalValue::I32(v) => u128::from(v as u32),
            GlobalValue::I64(v) => u128::from(v as u64),
            GlobalValue::F32(v) => u128::from(v),
            GlobalValue::F64(v) => u128::from(v),
            GlobalValue::V128(v) => v,
        }
    }

    pub(super) fn from_val(val: &Val) -> Option<GlobalValue> {
        Some(match val {
            Val::I32(v) => GlobalValue::I32(*v),
            Val::I64(v) => GlobalValue::I64(*v),
            Val::F32(v) => GlobalValue::F32(*v),
            Val::F64(v) => GlobalValue::F64(*v),
            Val::V128(v) => GlobalValue::V128(v.as_u128()),
            _ => return None,
        })
    }

    pub(super) fn to_val(self) -> Val {
        match self {
            GlobalValue::I32(v) => Val::I32(v),
            GlobalValue::I64(v) => Val::I64(v),
            GlobalValue::F32(v) => Val::F32(v),
            GlobalValue::F64(v) => Val::F64(v),
            GlobalValue::V128(v) => Val::V128(v.into()),
        }
    }
}

/// Everything about a canister that persists: what checkpoints, snapshots
/// and queries capture. Cloning is O(1) in the memory sizes.
#[derive(Clone, Debug, Default)]
pub struct CanisterState {
    /// What messages learn about the canister; not persisted with the
    /// state (the lifecycle layer refreshes it).
    pub env: Arc<CanisterEnv>,
    /// The installed module, if any.
    pub module: Option<Arc<CanisterModule>>,
    /// The heap's contents.
    pub heap: PageMap,
    /// The heap's size.
    pub heap_pages: WasmPages,
    /// Saved mutable globals, in module order; empty means "as the module
    /// initialises them".
    pub globals: Vec<GlobalValue>,
    /// Stable memory's contents.
    pub stable: PageMap,
    /// Stable memory's size.
    pub stable_pages: WasmPages,
    /// What `ic0.certified_data_set` last set.
    pub certified_data: Vec<u8>,
    /// When the global timer fires, in nanoseconds since the epoch (0: unset).
    pub global_timer: u64,
}

impl CanisterState {
    /// This state with `module` installed over a fresh heap: its data
    /// segments in memory and its globals as it initialises them. Stable
    /// memory and the rest are left as they are.
    pub fn with_module(&self, module: Arc<CanisterModule>) -> CanisterState {
        let mut heap = PageMap::new();
        for segment in &module.info.data {
            heap.write(segment.offset, &segment.bytes).expect("segment offsets fit in u64");
        }
        let heap_pages = module.info.memory.map_or(WasmPages(0), |m| m.initial);
        CanisterState { module: Some(module), heap, heap_pages, globals: Vec::new(), ..self.clone() }
    }

    /// Bytes of heap, stable memory and module: what a snapshot holds.
    pub fn size_bytes(&self) -> u64 {
        self.heap_pages.bytes() + self.stable_pages.bytes() + self.module.as_ref().map_or(0, |m| m.wasm.len() as u64)
    }
}

/// What the executor runs messages on: a canister's committed
/// [`CanisterState`], plus the live instance that may carry that state
/// between updates (its memory already holds the heap, so the next update
/// starts without setting anything up).
#[derive(Default)]
pub struct Executable {
    pub(super) state: CanisterState,
    pub(super) live: Option<LiveInstance>,
}

impl Executable {
    /// `state`, with no live instance yet.
    pub fn new(state: CanisterState) -> Executable {
        Executable { state, live: None }
    }

    /// The committed state.
    pub fn state(&self) -> &CanisterState {
        &self.state
    }

    /// Change the state directly (install, snapshots, remaps); the live
    /// instance no longer matches it, so it is dropped.
    pub fn state_mut(&mut self) -> &mut CanisterState {
        self.live = None;
        &mut self.state
    }

    /// Replace what messages learn about the canister (controllers, status,
    /// version). The live instance stays: messages read this afresh.
    pub fn set_env(&mut self, env: CanisterEnv) {
        self.state.env = Arc::new(env);
    }
}
