//! The JSON metadata of a checkpoint: `host.json`, and each canister's
//! `meta.json` (identity, controllers, status, canister log, and for the
//! state and each snapshot: module hash, sizes, globals, certified data,
//! timer). Byte strings are hex.

use candid::Principal;
use embedder::{CanisterState, GlobalValue, WasmPages};
use serde::{Deserialize, Serialize};

use std::collections::VecDeque;
use std::sync::Arc;

use crate::canister::{Backlog, CallState, Canister, CanisterHistory, CanisterLogRecord, CanisterStatus, LongMessage};
use crate::round::Operation;

/// The version of the state format: `host.json` records it, and a
/// checkpoint of another version is refused. Format 3 added overlay files
/// (a format-2 checkpoint is one without them, and still loads).
pub(crate) const STATE_FORMAT: u32 = 3;

/// The oldest format this build loads.
pub(crate) const STATE_FORMAT_WITHOUT_OVERLAYS: u32 = 2;

/// Host-wide facts stored with every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct HostMeta {
    pub(crate) format: u32,
    pub(crate) height: u64,
    pub(crate) time: u64,
    pub(crate) next_canister_index: u64,
}

impl HostMeta {
    /// The metadata of a checkpoint at `height`, in this build's format.
    pub(crate) fn new(height: u64, time: u64, next_canister_index: u64) -> HostMeta {
        HostMeta { format: STATE_FORMAT, height, time, next_canister_index }
    }
}

/// A canister's `meta.json`. The field names are the format: keep them.
#[derive(Serialize, Deserialize)]
pub(super) struct CanisterMeta {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) controllers: Vec<String>,
    pub(super) running: bool,
    pub(super) version: u64,
    pub(super) next_log_index: u64,
    pub(super) log: Vec<LogMeta>,
    pub(super) next_snapshot: u64,
    pub(super) state: StateMeta,
    pub(super) snapshots: Vec<SnapshotMeta>,
    /// Unfinished work; absent when there is none.
    #[serde(default, skip_serializing_if = "BacklogMeta::is_empty")]
    pub(super) backlog: BacklogMeta,
    /// Calls to and from other canisters (Candid, hex); absent when there
    /// are none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) calls: String,
    /// Its history (Candid, hex); absent when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) history: String,
    /// The SHA-256 (hex) of each chunk in its chunk store, stored as
    /// `chunks/<hash>.bin` beside this file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) chunks: Vec<String>,
    /// Whether it is stopping (`running` is then false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) stopping: bool,
}

/// A canister's calls as `meta.json` holds them.
pub(super) fn calls_meta(calls: &CallState) -> String {
    if calls.is_empty() && calls.next_context == 0 && calls.next_callback == 0 {
        return String::new();
    }
    hex::encode(candid::encode_one(calls).expect("call state always encodes"))
}

/// A canister's history as `meta.json` holds it.
pub(super) fn history_meta(history: &CanisterHistory) -> String {
    if history.total == 0 {
        return String::new();
    }
    hex::encode(candid::encode_one(history).expect("histories always encode"))
}

/// The history from `meta.json`, or None if it does not decode.
pub(super) fn history_of(text: &str) -> Option<CanisterHistory> {
    if text.is_empty() {
        return Some(CanisterHistory::default());
    }
    candid::decode_one(&hex::decode(text).ok()?).ok()
}

/// The calls from `meta.json`, or None if they do not decode.
pub(super) fn calls_of(text: &str) -> Option<CallState> {
    if text.is_empty() {
        return Some(CallState::default());
    }
    candid::decode_one(&hex::decode(text).ok()?).ok()
}

/// A canister's unfinished work: its long message, and the operations
/// waiting behind it (Candid, hex).
#[derive(Serialize, Deserialize, Default)]
pub(super) struct BacklogMeta {
    pub(super) long: Option<LongMeta>,
    pub(super) waiting: Vec<WaitingMeta>,
}

/// A long message in flight.
#[derive(Serialize, Deserialize)]
pub(super) struct LongMeta {
    pub(super) origin: Option<(u64, usize)>,
    pub(super) call: String,
    pub(super) time: u64,
    pub(super) slices: u64,
}

/// An operation waiting behind it.
#[derive(Serialize, Deserialize)]
pub(super) struct WaitingMeta {
    pub(super) height: u64,
    pub(super) index: usize,
    pub(super) operation: String,
}

impl BacklogMeta {
    fn is_empty(&self) -> bool {
        self.long.is_none() && self.waiting.is_empty()
    }

    fn of(backlog: &Backlog) -> BacklogMeta {
        BacklogMeta {
            long: backlog.long.as_ref().map(|l| LongMeta {
                origin: l.origin,
                call: hex::encode(candid::encode_one(&l.call).expect("long calls always encode")),
                time: l.time,
                slices: l.slices,
            }),
            waiting: backlog
                .waiting
                .iter()
                .map(|((height, index), op)| WaitingMeta {
                    height: *height,
                    index: *index,
                    operation: hex::encode(candid::encode_one(op.as_ref()).expect("operations always encode")),
                })
                .collect(),
        }
    }

    /// The backlog, or None if a part does not decode.
    pub(super) fn backlog(&self) -> Option<Backlog> {
        let decode = |text: &str| hex::decode(text).ok();
        let long = match &self.long {
            None => None,
            Some(l) => Some(LongMessage {
                origin: l.origin,
                call: candid::decode_one(&decode(&l.call)?).ok()?,
                time: l.time,
                slices: l.slices,
            }),
        };
        let mut waiting = VecDeque::new();
        for w in &self.waiting {
            let op: Operation = candid::decode_one(&decode(&w.operation)?).ok()?;
            waiting.push_back(((w.height, w.index), Arc::new(op)));
        }
        Some(Backlog { long, waiting })
    }
}

/// One canister log record.
#[derive(Serialize, Deserialize)]
pub(super) struct LogMeta {
    pub(super) index: u64,
    pub(super) time: u64,
    pub(super) content: String,
}

/// One snapshot; its files are in its own directory.
#[derive(Serialize, Deserialize)]
pub(super) struct SnapshotMeta {
    pub(super) id: u64,
    pub(super) taken_at: u64,
    pub(super) state: StateMeta,
    /// The size of a module being uploaded (in `module_upload.bin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) uploaded_module: Option<u64>,
}

/// A state's facts besides its files.
#[derive(Serialize, Deserialize)]
pub(super) struct StateMeta {
    /// SHA-256 of the module, hex; absent for an empty canister.
    pub(super) module: Option<String>,
    pub(super) heap_pages: u64,
    pub(super) stable_pages: u64,
    pub(super) globals: Vec<GlobalValue>,
    pub(super) certified_data: String,
    pub(super) global_timer: u64,
    /// Heights of the heap's overlay files, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) heap_overlays: Vec<u64>,
    /// Heights of stable memory's overlay files, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) stable_overlays: Vec<u64>,
}

impl StateMeta {
    pub(super) fn of(state: &CanisterState) -> StateMeta {
        StateMeta {
            module: state.module.as_ref().map(|m| hex::encode(m.hash)),
            heap_pages: state.heap_pages.0,
            stable_pages: state.stable_pages.0,
            globals: state.globals.clone(),
            certified_data: hex::encode(&state.certified_data),
            global_timer: state.global_timer,
            heap_overlays: vec![],
            stable_overlays: vec![],
        }
    }

    pub(super) fn heap_pages(&self) -> WasmPages {
        WasmPages(self.heap_pages)
    }

    pub(super) fn stable_pages(&self) -> WasmPages {
        WasmPages(self.stable_pages)
    }
}

impl CanisterMeta {
    pub(super) fn of(canister: &Canister) -> CanisterMeta {
        CanisterMeta {
            id: canister.id().to_text(),
            name: canister.name().map(str::to_string),
            controllers: canister.controllers().iter().map(Principal::to_text).collect(),
            running: canister.status() == CanisterStatus::Running,
            version: canister.version(),
            next_log_index: canister.next_canister_log_index(),
            log: canister
                .canister_log()
                .map(|l| LogMeta { index: l.index, time: l.time, content: hex::encode(&l.content) })
                .collect(),
            next_snapshot: canister.next_snapshot(),
            state: StateMeta::of(canister.state()),
            snapshots: canister
                .snapshots()
                .map(|s| SnapshotMeta {
                    id: s.id,
                    taken_at: s.taken_at,
                    state: StateMeta::of(&s.state),
                    uploaded_module: s.uploaded_module.as_ref().map(|m| m.len() as u64),
                })
                .collect(),
            backlog: BacklogMeta::of(canister.backlog()),
            calls: calls_meta(canister.calls()),
            history: history_meta(canister.history()),
            chunks: canister.chunk_store().hashes().map(hex::encode).collect(),
            stopping: canister.status() == CanisterStatus::Stopping,
        }
    }

    pub(super) fn status(&self) -> CanisterStatus {
        match (self.running, self.stopping) {
            (true, _) => CanisterStatus::Running,
            (false, true) => CanisterStatus::Stopping,
            (false, false) => CanisterStatus::Stopped,
        }
    }

    /// The canister log, or None if a record does not decode.
    pub(super) fn canister_log(&self) -> Option<Vec<CanisterLogRecord>> {
        self.log
            .iter()
            .map(|l| Some(CanisterLogRecord { index: l.index, time: l.time, content: hex::decode(&l.content).ok()? }))
            .collect()
    }
}
