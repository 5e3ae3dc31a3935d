//! Digests: of what one canister did in a round, of a round, and of a whole
//! state. Each is a tagged SHA-256 over a fixed, self-delimiting encoding,
//! so equal digests mean equal results.

use std::collections::BTreeSet;

use candid::Principal;
use checkpoint::Hash;
use checkpoint::hash::tagged_hasher as tagged;
use embedder::{CanisterState, MessageResult};
use page_delta::{PageIndex, PageMap};
use sha2::{Digest, Sha256};

use super::Outcome;
use crate::canister::{Backlog, CallState, Canister, CanisterStatus, ContextOrigin, InterMessage, Origin, Payload};
use crate::registry::Registry;

impl Outcome {
    /// Feed this outcome into a digest (a fixed, self-delimiting encoding).
    pub(super) fn digest_into(&self, h: &mut Sha256) {
        match self {
            Outcome::Reply(bytes) => put_tagged(h, 0, bytes),
            Outcome::Reject(message) => put_tagged(h, 1, message.as_bytes()),
            Outcome::Error { code, .. } => put_tagged(h, 2, &(*code as u32).to_be_bytes()),
            Outcome::Created(id) => put_tagged(h, 3, id.as_slice()),
            Outcome::SnapshotTaken(id) => put_tagged(h, 4, &id.to_be_bytes()),
            Outcome::Done => put_tagged(h, 5, &[]),
        }
    }
}

fn put_tagged(h: &mut Sha256, tag: u8, bytes: &[u8]) {
    h.update([tag]);
    put_bytes(h, bytes);
}

fn put_bytes(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// What an outcome in a canister's round answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    /// The operation at this position of the round.
    Now(usize),
    /// An operation of an earlier round, which waited.
    Earlier(Origin),
    /// The timer or the heartbeat.
    System,
}

/// Feed an outcome (None: still pending) into a digest.
fn digest_outcome(h: &mut Sha256, outcome: Option<&Outcome>) {
    match outcome {
        Some(outcome) => outcome.digest_into(h),
        None => put_tagged(h, 6, &[]),
    }
}

/// Digest of what one canister did in a round: each of its operations'
/// outcomes (pending or not, and its timer and heartbeat), the final
/// contents of every page they dirtied, its state afterwards, and its
/// unfinished work.
pub(super) fn canister_digest(
    record: &Canister,
    entries: &[(Entry, Option<Outcome>)],
    dirty: &DirtySet,
    sent: &[(Principal, InterMessage)],
) -> Hash {
    let mut h = tagged("ch-canister-round");
    put_bytes(&mut h, record.id().as_slice());
    for (entry, outcome) in entries {
        match entry {
            Entry::Now(i) => {
                h.update([0]);
                h.update((*i as u64).to_be_bytes());
            }
            Entry::Earlier((height, i)) => {
                h.update([1]);
                h.update(height.to_be_bytes());
                h.update((*i as u64).to_be_bytes());
            }
            Entry::System => h.update([2]),
        }
        digest_outcome(&mut h, outcome.as_ref());
    }
    digest_backlog(&mut h, record.backlog());
    digest_calls(&mut h, record.calls());
    digest_records(&mut h, record);
    h.update((sent.len() as u64).to_be_bytes());
    for (to, message) in sent {
        put_bytes(&mut h, to.as_slice());
        put_message(&mut h, message);
    }
    let state = record.state();
    for (kind, pages, map) in [(0u8, &dirty.heap, &state.heap), (1, &dirty.stable, &state.stable)] {
        h.update([kind]);
        h.update((pages.len() as u64).to_be_bytes());
        for page in pages {
            h.update(page.to_be_bytes());
            h.update(map.get_page(PageIndex(*page)));
        }
    }
    h.update(state.heap_pages.0.to_be_bytes());
    h.update(state.stable_pages.0.to_be_bytes());
    for g in &state.globals {
        h.update(g.to_bits().to_be_bytes());
    }
    put_bytes(&mut h, &state.certified_data);
    h.update(state.global_timer.to_be_bytes());
    put_bytes(&mut h, state.module.as_ref().map_or(&[][..], |m| &m.hash[..]));
    h.update([status_byte(record.status())]);
    h.update(record.version().to_be_bytes());
    h.finalize().into()
}

/// The status as digests encode it: 1 running, 0 stopped (as before
/// stopping existed), 2 stopping.
fn status_byte(status: CanisterStatus) -> u8 {
    match status {
        CanisterStatus::Running => 1,
        CanisterStatus::Stopped => 0,
        CanisterStatus::Stopping => 2,
    }
}

/// Feed a canister's history (its chained hash) and chunk store into a
/// digest.
fn digest_records(h: &mut Sha256, record: &Canister) {
    h.update(record.history().total.to_be_bytes());
    put_bytes(h, &record.history().chain);
    for hash in record.chunk_store().hashes() {
        h.update(hash);
    }
}

fn put_u128(h: &mut Sha256, value: u128) {
    h.update(value.to_be_bytes());
}

fn put_origin(h: &mut Sha256, origin: &ContextOrigin) {
    match origin {
        ContextOrigin::Ingress((height, i)) => {
            h.update([0]);
            h.update(height.to_be_bytes());
            h.update((*i as u64).to_be_bytes());
        }
        ContextOrigin::Canister { caller, callback } => {
            h.update([1]);
            put_bytes(h, caller.as_slice());
            h.update(callback.to_be_bytes());
        }
        ContextOrigin::System => h.update([2]),
    }
}

fn put_closure(h: &mut Sha256, (fun, env): (u64, u64)) {
    h.update(fun.to_be_bytes());
    h.update(env.to_be_bytes());
}

/// Feed a request or response into a digest.
fn put_message(h: &mut Sha256, message: &InterMessage) {
    match message {
        InterMessage::Request { caller, callback, method, arg, cycles, deadline } => {
            h.update([0]);
            put_bytes(h, caller.as_slice());
            h.update(callback.to_be_bytes());
            put_bytes(h, method.as_bytes());
            put_bytes(h, arg);
            put_u128(h, *cycles);
            h.update(deadline.to_be_bytes());
        }
        InterMessage::Response { callback, payload, refund } => {
            h.update([1]);
            h.update(callback.to_be_bytes());
            match payload {
                Payload::Reply(bytes) => put_tagged(h, 0, bytes),
                Payload::Reject(code, text) => {
                    put_tagged(h, 1, &code.to_be_bytes());
                    put_bytes(h, text.as_bytes());
                }
            }
            put_u128(h, *refund);
        }
    }
}

/// Feed a canister's calls (contexts, callbacks, input queue) into a
/// digest, in a fixed, self-delimiting encoding: cheap when there are
/// none, as for most canisters most of the time.
fn digest_calls(h: &mut Sha256, calls: &CallState) {
    h.update(calls.next_context.to_be_bytes());
    h.update(calls.next_callback.to_be_bytes());
    h.update((calls.contexts.len() as u64).to_be_bytes());
    for (id, c) in &calls.contexts {
        h.update(id.to_be_bytes());
        put_origin(h, &c.origin);
        put_bytes(h, c.caller.as_slice());
        h.update([u8::from(c.responded)]);
        h.update(c.instructions.to_be_bytes());
        put_u128(h, c.cycles);
    }
    h.update((calls.callbacks.len() as u64).to_be_bytes());
    for (id, c) in &calls.callbacks {
        h.update(id.to_be_bytes());
        h.update(c.context.to_be_bytes());
        put_bytes(h, c.callee.as_slice());
        put_closure(h, c.reply);
        put_closure(h, c.reject);
        match c.cleanup {
            Some(cleanup) => {
                h.update([1]);
                put_closure(h, cleanup);
            }
            None => h.update([0]),
        }
        put_u128(h, c.cycles);
        h.update(c.deadline.to_be_bytes());
    }
    h.update((calls.inbox.len() as u64).to_be_bytes());
    for message in &calls.inbox {
        put_message(h, message);
    }
    h.update((calls.stop_waiters.len() as u64).to_be_bytes());
    for (waiter, deadline) in &calls.stop_waiters {
        put_origin(h, waiter);
        h.update(deadline.to_be_bytes());
    }
}

#[derive(Default)]
pub(super) struct DirtySet {
    heap: BTreeSet<u64>,
    stable: BTreeSet<u64>,
}

impl DirtySet {
    /// Distinct pages written, heap and stable.
    pub(super) fn len(&self) -> usize {
        self.heap.len() + self.stable.len()
    }

    pub(super) fn add(&mut self, result: &MessageResult) {
        self.heap.extend(result.dirty.heap.iter().map(|p| p.0));
        self.stable.extend(result.dirty.stable.iter().map(|p| p.0));
    }
}

/// Feed a canister's unfinished work into a digest.
fn digest_backlog(h: &mut Sha256, backlog: &Backlog) {
    match &backlog.long {
        None => h.update([0]),
        Some(long) => {
            h.update([1]);
            match long.origin {
                None => h.update([0]),
                Some((height, i)) => {
                    h.update([1]);
                    h.update(height.to_be_bytes());
                    h.update((i as u64).to_be_bytes());
                }
            }
            put_bytes(h, &candid::encode_one(&long.call).expect("long calls always encode"));
            h.update(long.time.to_be_bytes());
            h.update(long.slices.to_be_bytes());
        }
    }
    h.update((backlog.waiting.len() as u64).to_be_bytes());
    for ((height, i), op) in &backlog.waiting {
        h.update(height.to_be_bytes());
        h.update((*i as u64).to_be_bytes());
        put_bytes(h, &candid::encode_one(op.as_ref()).expect("operations always encode"));
    }
}

/// Digest of a round: its height, time, every operation's outcome in order
/// (or that it is pending), and every canister's digest in id order.
pub(super) fn round_digest(
    height: u64,
    time: u64,
    outcomes: &[Option<Outcome>],
    canister_digests: &[(Principal, Hash)],
) -> Hash {
    let mut h = tagged("ch-round");
    h.update(height.to_be_bytes());
    h.update(time.to_be_bytes());
    for outcome in outcomes {
        digest_outcome(&mut h, outcome.as_ref());
    }
    for (id, digest) in canister_digests {
        put_bytes(&mut h, id.as_slice());
        h.update(digest);
    }
    h.finalize().into()
}

/// A digest of everything every canister holds: identical for two hosts
/// exactly when their states are identical (tests compare them).
pub fn state_digest(registry: &Registry) -> Hash {
    let mut h = tagged("ch-state");
    h.update(registry.next_index().to_be_bytes());
    for record in registry.iter() {
        put_bytes(&mut h, record.id().as_slice());
        put_bytes(&mut h, record.name().unwrap_or("").as_bytes());
        for c in record.controllers() {
            put_bytes(&mut h, c.as_slice());
        }
        h.update([status_byte(record.status())]);
        h.update(record.version().to_be_bytes());
        for log in record.canister_log() {
            h.update(log.index.to_be_bytes());
            h.update(log.time.to_be_bytes());
            put_bytes(&mut h, &log.content);
        }
        digest_state(&mut h, record.state());
        for snapshot in record.snapshots() {
            h.update(snapshot.id.to_be_bytes());
            h.update(snapshot.taken_at.to_be_bytes());
            digest_state(&mut h, &snapshot.state);
            if let Some(module) = &snapshot.uploaded_module {
                put_bytes(&mut h, module);
            }
        }
        if record.is_busy() {
            digest_backlog(&mut h, record.backlog());
        }
        if *record.calls() != CallState::default() {
            digest_calls(&mut h, record.calls());
        }
        if record.history().total > 0 || !record.chunk_store().is_empty() {
            digest_records(&mut h, record);
        }
    }
    h.finalize().into()
}

fn digest_state(h: &mut Sha256, state: &CanisterState) {
    put_bytes(h, state.module.as_ref().map_or(&[][..], |m| &m.hash[..]));
    for (map, pages) in [(&state.heap, state.heap_pages), (&state.stable, state.stable_pages)] {
        h.update(pages.0.to_be_bytes());
        digest_memory(h, map, pages.os_pages());
    }
    h.update((state.globals.len() as u64).to_be_bytes());
    for g in &state.globals {
        h.update([g.type_tag()]);
        h.update(g.to_bits().to_be_bytes());
    }
    put_bytes(h, &state.certified_data);
    h.update(state.global_timer.to_be_bytes());
}

/// Hash every page of a memory.
fn digest_memory(h: &mut Sha256, map: &PageMap, pages: u64) {
    for p in 0..pages {
        h.update(map.get_page(PageIndex(p)));
    }
}

/// Fixed-value tests: each expected digest is computed here from the
/// documented encoding, independently of the code above, so an accidental
/// change of the format (which would make old logs unreplayable) fails.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use embedder::{Engine, ErrorCode, ExecutionConfig, Executor};
    use page_delta::PAGE_SIZE;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::canister::InstallMode;

    fn tagged_by_hand(tag: &str) -> Sha256 {
        let mut h = Sha256::new();
        h.update([tag.len() as u8]);
        h.update(tag);
        h
    }

    fn bytes_by_hand(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }

    #[test]
    fn a_round_digest_covers_error_codes_not_their_text() {
        let id = crate::registry::canister_id(0);
        let outcomes = [
            Some(Outcome::Created(id)),
            Some(Outcome::Error { code: ErrorCode::CanisterTrapped, message: "one wording".into() }),
        ];
        let mut h = tagged_by_hand("ch-round");
        h.update(7u64.to_be_bytes());
        h.update(1_000u64.to_be_bytes());
        h.update([3]);
        bytes_by_hand(&mut h, id.as_slice());
        h.update([2]);
        bytes_by_hand(&mut h, &502u32.to_be_bytes());
        let expected: Hash = h.finalize().into();
        assert_eq!(round_digest(7, 1_000, &outcomes, &[]), expected);

        let reworded = [
            Some(Outcome::Created(id)),
            Some(Outcome::Error { code: ErrorCode::CanisterTrapped, message: "another wording".into() }),
        ];
        assert_eq!(round_digest(7, 1_000, &reworded, &[]), expected);
        let other_code = [
            Some(Outcome::Created(id)),
            Some(Outcome::Error { code: ErrorCode::CanisterCalledTrap, message: "one wording".into() }),
        ];
        assert_ne!(round_digest(7, 1_000, &other_code, &[]), expected);
    }

    #[test]
    fn a_state_digest_encodes_globals_as_canonical_bytes() {
        const WAT: &str = r#"(module
            (import "ic0" "msg_reply" (func $reply))
            (memory 1)
            (global $g (mut i32) (i32.const 7))
            (func (export "canister_update set") (global.set $g (i32.const -2)) (call $reply)))"#;
        let owner = Principal::from_slice(&[9; 29]);
        let exec = Executor::new(Arc::new(Engine::new().unwrap()), ExecutionConfig::default());
        let mut registry = Registry::default();
        let id = registry.create(vec![owner], Some("g".into())).unwrap();
        let wasm = wat::parse_str(WAT).unwrap();
        let canister = registry.get_mut(&id).unwrap();
        canister.install_code(&exec, &owner, InstallMode::Install, &wasm, &[], 5).unwrap();
        assert!(canister.update(&exec, &owner, "set", &[], 6).unwrap().outcome.is_ok());

        let mut h = tagged_by_hand("ch-state");
        h.update(1u64.to_be_bytes()); // the next canister index
        bytes_by_hand(&mut h, id.as_slice());
        bytes_by_hand(&mut h, b"g");
        bytes_by_hand(&mut h, owner.as_slice());
        h.update([1]); // running
        h.update(1u64.to_be_bytes()); // version: one install
        bytes_by_hand(&mut h, &Sha256::digest(&wasm));
        h.update(1u64.to_be_bytes()); // heap: one wasm page...
        for _ in 0..16 {
            h.update([0u8; PAGE_SIZE]); // ...of sixteen zero pages
        }
        h.update(0u64.to_be_bytes()); // no stable memory
        h.update(1u64.to_be_bytes()); // one global: type i32, value -2
        h.update([0]);
        h.update(u128::from(-2i32 as u32).to_be_bytes());
        bytes_by_hand(&mut h, &[]); // certified data
        h.update(0u64.to_be_bytes()); // global timer
        let expected: Hash = h.finalize().into();
        assert_eq!(state_digest(&registry), expected);
    }
}
