//! Executing a round: its two phases, and one canister's work.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use candid::Principal;
use checkpoint::Hash;
use embedder::{Executor, MessageResult};
use sha2::{Digest, Sha256};

use super::digest::{DirtySet, Entry, canister_digest, round_digest};
use super::pool::{ModuleOverrides, Task, TaskDone, WorkerPool};
use super::{Operation, Outcome};
use crate::canister::{Canister, CanisterError, LongCall, Origin, Step};
use crate::registry::Registry;

/// The results of executing a round.
#[derive(Clone, Debug)]
pub struct RoundResult {
    /// Each operation's outcome, in the round's order; None while it is
    /// pending (behind or as a long message: it completes in a later
    /// round, among that round's `late` outcomes).
    pub outcomes: Vec<Option<Outcome>>,
    /// Outcomes of operations of earlier rounds that completed in this one.
    pub late: Vec<(Origin, Outcome)>,
    /// The round's digest.
    pub digest: Hash,
    /// Per canister that did anything, sorted by id.
    pub canister_digests: Vec<(Principal, Hash)>,
    /// Canisters whose state may have changed (for publishing to queries).
    pub touched: BTreeSet<Principal>,
    /// Update messages executed.
    pub messages: usize,
}

/// A round that was not applied: the host failed (or hit a bug) while
/// running it, so its results are not the canisters' to record. The
/// registry is as it was before the round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotApplied {
    /// The canister whose work failed.
    pub canister: Principal,
    /// What failed.
    pub reason: String,
}

impl std::fmt::Display for NotApplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the host failed while running canister {}: {}", self.canister, self.reason)
    }
}

/// How to put the registry back if a round is not applied.
#[derive(Default)]
struct Undo {
    next_index: u64,
    created: Vec<Principal>,
    deleted: Vec<Canister>,
    /// O(1) forks of the canisters phase 2 runs.
    forks: Vec<Canister>,
}

impl Undo {
    fn apply(self, registry: &mut Registry) {
        for id in self.created {
            registry.take(&id);
        }
        for canister in self.deleted.into_iter().chain(self.forks) {
            registry.put(canister);
        }
        registry.set_next_index(self.next_index);
    }
}

impl WorkerPool {
    /// Execute a round on `registry`. If the host fails while running it,
    /// the registry is restored and the round is not applied.
    pub fn execute(
        &self,
        registry: &mut Registry,
        height: u64,
        time: u64,
        ops: &[Arc<Operation>],
    ) -> Result<RoundResult, NotApplied> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; ops.len()];
        let mut touched = BTreeSet::new();
        let mut undo = Undo { next_index: registry.next_index(), ..Undo::default() };
        // Phase 1: the set of canisters, in arrival order.
        for (i, op) in ops.iter().enumerate() {
            match op.as_ref() {
                Operation::CreateCanister { sender, controllers, name } => {
                    let controllers = if controllers.is_empty() { vec![*sender] } else { controllers.clone() };
                    outcomes[i] = Some(match registry.create(controllers, name.clone()) {
                        Ok(id) => {
                            touched.insert(id);
                            undo.created.push(id);
                            Outcome::Created(id)
                        }
                        Err(e) => Outcome::failed(&e),
                    });
                }
                Operation::DeleteCanister { sender, canister } => {
                    outcomes[i] = Some(match registry.delete(sender, canister) {
                        Ok(deleted) => {
                            touched.insert(*canister);
                            undo.deleted.push(deleted);
                            Outcome::Done
                        }
                        Err(e) => Outcome::failed(&e),
                    });
                }
                _ => {}
            }
        }
        // Phase 2: each canister's work, in parallel.
        let mut groups: BTreeMap<Principal, Vec<(usize, Arc<Operation>)>> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            if let Some(canister) = op.canister() {
                groups.entry(canister).or_default().push((i, op.clone()));
            }
        }
        for canister in registry.iter().filter(|c| c.has_system_task(time)) {
            groups.entry(canister.id()).or_default();
        }
        let mut tasks = Vec::with_capacity(groups.len());
        for (id, group) in groups {
            match registry.take(&id) {
                Some(canister) => {
                    undo.forks.push(canister.fork());
                    tasks.push(Task { canister, ops: group });
                }
                None => {
                    for (i, _) in group {
                        outcomes[i] = Some(Outcome::failed(&CanisterError::NotFound(id)));
                    }
                }
            }
        }
        let results = self.run(tasks, height, time);
        // The first failure in canister order, so the choice is the same
        // whatever the number of workers.
        let failure = results
            .iter()
            .filter_map(|r| match r {
                Err(panicked) => Some(NotApplied {
                    canister: panicked.canister,
                    reason: format!("internal error (a bug): {}", panicked.message),
                }),
                Ok(done) => done.host_failure.clone().map(|reason| NotApplied { canister: done.canister.id(), reason }),
            })
            .min_by_key(|f| f.canister);
        if let Some(failure) = failure {
            // The work done is dropped with `results`; the forks go back.
            drop(results);
            undo.apply(registry);
            return Err(failure);
        }
        let mut canister_digests = Vec::with_capacity(results.len());
        let mut messages = 0;
        let mut late = Vec::new();
        for done in results.into_iter().flatten() {
            for (i, outcome) in done.outcomes {
                outcomes[i] = Some(outcome);
            }
            late.extend(done.late);
            touched.insert(done.canister.id());
            canister_digests.push((done.canister.id(), done.digest));
            messages += done.messages;
            registry.put(done.canister);
        }
        canister_digests.sort_by_key(|(id, _)| *id);
        late.sort_by_key(|(origin, _)| *origin);
        let digest = round_digest(height, time, &outcomes, &canister_digests);
        Ok(RoundResult { outcomes, late, digest, canister_digests, touched, messages })
    }
}

/// What one canister's share of a round has produced so far.
#[derive(Default)]
struct Work {
    dirty: DirtySet,
    /// Outcomes (None: pending) and what they answer.
    entries: Vec<(Entry, Option<Outcome>)>,
    messages: usize,
    host_failure: Option<String>,
}

impl Work {
    fn message(&mut self, entry: Entry, result: &MessageResult) {
        if let Some(failure) = result.host_failure() {
            self.host_failure.get_or_insert(failure);
        }
        self.dirty.add(result);
        self.entries.push((entry, Some(Outcome::from(result))));
    }

    fn settle(&mut self, entry: Entry, result: Result<Outcome, CanisterError>) {
        let outcome = result.unwrap_or_else(|e| {
            if e.is_host_failure() {
                self.host_failure.get_or_insert(e.to_string());
            }
            Outcome::failed(&e)
        });
        self.entries.push((entry, Some(outcome)));
    }
}

/// Run one canister's share of a round: first its long message's next
/// slice, if it has one; then, if that is done, the operations that waited
/// and this round's, in order (the timer and heartbeat only when nothing
/// waited). An update that needs more than a slice becomes the long
/// message, and what follows it waits. A canister's share is about a
/// slice: once its messages have used one slice of instructions (or a
/// long message has had its slice, or an install ran), the rest waits for
/// the next round, so no canister holds a round up for much longer than a
/// slice however many messages it gets. A host failure stops the share:
/// the round will not be applied.
pub(super) fn run_task(
    exec: &Arc<Executor>,
    overrides: &ModuleOverrides,
    task: Task,
    height: u64,
    time: u64,
) -> TaskDone {
    let Task { mut canister, ops } = task;
    let slice = exec.config().slice_instructions;
    let mut work = Work::default();
    // Instructions this canister has used in this round.
    let mut used = 0u64;
    match canister.step_long(exec, slice) {
        Ok(Step::Running) => {}
        Ok(Step::Done(origin, result)) => {
            used = slice;
            work.message(origin.map_or(Entry::System, Entry::Earlier), &result);
        }
        Err(failure) => work.host_failure = Some(failure),
    }
    let waited = canister.take_waiting();
    if waited.is_empty() && !canister.has_long() && used < slice && work.host_failure.is_none() {
        for result in canister.system_tasks_first_slice(exec, time) {
            used = used.saturating_add(result.stats.instructions);
            work.message(Entry::System, &result);
        }
    }
    let queue = waited
        .into_iter()
        .map(|(origin, op)| (Entry::Earlier(origin), origin, op))
        .chain(ops.into_iter().map(|(i, op)| (Entry::Now(i), (height, i), op)));
    let done = |r: Result<(), CanisterError>| r.map(|()| Outcome::Done);
    for (entry, origin, op) in queue {
        if work.host_failure.is_some() {
            break;
        }
        if canister.has_long() || used >= slice {
            if let Entry::Now(_) = entry {
                work.entries.push((entry, None));
            }
            canister.wait(origin, op);
            continue;
        }
        match op.as_ref() {
            Operation::Update { sender, method, arg, .. } => {
                work.messages += 1;
                match canister.update_first_slice(exec, sender, method, arg, time) {
                    Ok(Some(result)) => {
                        used = used.saturating_add(result.stats.instructions);
                        work.message(entry, &result);
                    }
                    Ok(None) => {
                        let call = LongCall::Update { sender: *sender, method: method.clone(), arg: arg.clone() };
                        canister.start_long(Some(origin), call, time);
                        if let Entry::Now(_) = entry {
                            work.entries.push((entry, None));
                        }
                    }
                    Err(e) => work.settle(entry, Err(e)),
                }
            }
            Operation::InstallCode { sender, mode, wasm, arg, .. } => {
                let hash: Hash = Sha256::digest(wasm).into();
                let module = match overrides.get(&hash) {
                    Some(replacement) => exec.compile_substitute(replacement, hash),
                    None => exec.compile(wasm),
                };
                let installed = module
                    .map_err(CanisterError::Module)
                    .and_then(|module| canister.install_module(exec, sender, *mode, module, arg, time));
                // Installs are not sliced and may run long: one a round.
                used = slice;
                work.settle(entry, done(installed));
            }
            Operation::Uninstall { sender, .. } => work.settle(entry, done(canister.uninstall(exec, sender))),
            Operation::Stop { sender, .. } => work.settle(entry, done(canister.stop(exec, sender))),
            Operation::Start { sender, .. } => work.settle(entry, done(canister.start(exec, sender))),
            Operation::SetControllers { sender, controllers, .. } => {
                work.settle(entry, done(canister.set_controllers(exec, sender, controllers.clone())))
            }
            Operation::TakeSnapshot { sender, replace, .. } => {
                work.settle(entry, canister.take_snapshot(sender, *replace, time).map(Outcome::SnapshotTaken))
            }
            Operation::LoadSnapshot { sender, snapshot, .. } => {
                work.settle(entry, done(canister.load_snapshot(exec, sender, *snapshot)))
            }
            Operation::DeleteSnapshot { sender, snapshot, .. } => {
                work.settle(entry, done(canister.delete_snapshot(sender, *snapshot)))
            }
            Operation::CreateCanister { .. } | Operation::DeleteCanister { .. } => {
                unreachable!("operations on the set of canisters run in phase 1")
            }
        }
    }
    let digest = canister_digest(&canister, &work.entries, &work.dirty);
    let (mut outcomes, mut late) = (Vec::new(), Vec::new());
    for (entry, outcome) in work.entries {
        match (entry, outcome) {
            (Entry::Now(i), Some(outcome)) => outcomes.push((i, outcome)),
            (Entry::Earlier(origin), Some(outcome)) => late.push((origin, outcome)),
            _ => {}
        }
    }
    TaskDone { canister, outcomes, late, digest, messages: work.messages, host_failure: work.host_failure }
}
