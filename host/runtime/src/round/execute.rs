//! Executing a round: its two phases, and one canister's work.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use candid::Principal;
use checkpoint::Hash;
use embedder::{Executor, MessageResult};
use sha2::{Digest, Sha256};

use super::digest::{DirtySet, Entry, canister_digest, round_digest};
use super::management::{Answer, Caller, Management};
use super::pool::{ModuleOverrides, Task, TaskDone, WorkerPool};
use super::{Operation, Outcome};
use crate::canister::{
    Canister, CanisterError, ContextOrigin, InstallMode, InterMessage, LongCall, Origin, Output, Payload, Step,
};
use crate::registry::Registry;
use embedder::RejectCode;
use ic_management_canister_types::{
    ChangeDetails, CodeDeploymentMode, CodeDeploymentRecord, ControllersChangeRecord, CreationRecord,
    LoadSnapshotRecord, SnapshotSource,
};

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
    /// Distinct pages written, summed over canisters.
    pub dirty_pages: usize,
    /// Instructions the round's messages used.
    pub instructions: u64,
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
    /// O(1) forks of the canisters the round changes, taken before their
    /// first change, and their ids.
    forks: Vec<Canister>,
    forked: BTreeSet<Principal>,
}

impl Undo {
    /// Keep a fork of `canister` unless one was taken earlier in the round.
    fn fork(&mut self, canister: &Canister) {
        if self.forked.insert(canister.id()) {
            self.forks.push(canister.fork());
        }
    }

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

/// Iterations of a round: requests and responses sent in one are
/// delivered in the next, so a chain of calls between canisters completes
/// within a round when it is shorter than this; the rest waits in the
/// input queues for the next round.
pub const MAX_ITERATIONS: usize = 16;

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
        let mut late = Vec::new();
        let mut management = Management::new(height);
        // A management call may change any canister: fork them all first,
        // so a round that is not applied can be put back.
        if ops.iter().any(|op| matches!(op.as_ref(), Operation::Management { .. })) {
            registry.iter().for_each(|canister| undo.fork(canister));
        }
        // Phase 1: the set of canisters, in arrival order.
        for (i, op) in ops.iter().enumerate() {
            match op.as_ref() {
                Operation::CreateCanister { sender, controllers, name } => {
                    let controllers = if controllers.is_empty() { vec![*sender] } else { controllers.clone() };
                    outcomes[i] = Some(match registry.create(controllers.clone(), name.clone()) {
                        Ok(id) => {
                            touched.insert(id);
                            undo.created.push(id);
                            let details = ChangeDetails::Creation(CreationRecord {
                                controllers,
                                environment_variables_hash: None,
                            });
                            if let Ok(canister) = registry.get_mut(&id) {
                                canister.record_change(time, *sender, details);
                            }
                            Outcome::Created(id)
                        }
                        Err(e) => Outcome::failed(&e),
                    });
                }
                Operation::Management { sender, method, arg } => {
                    let caller = Caller::User { sender: *sender, origin: (height, i) };
                    let (answer, outputs) =
                        management.call(self.executor(), registry, caller, method, arg, time, &mut touched);
                    outcomes[i] = match answer {
                        Ok(Answer::Now(bytes)) => Some(Outcome::Reply(bytes)),
                        Ok(Answer::Later) => None,
                        Err((code, message)) => Some(Outcome::Error { code, message }),
                    };
                    route(registry, outputs, height, &mut outcomes, &mut late);
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
        // Phase 2: each canister's work, in parallel; then the messages
        // they sent, delivered in canister order, in further iterations.
        let mut groups: BTreeMap<Principal, Vec<(usize, Arc<Operation>)>> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            if let Some(canister) = op.canister() {
                groups.entry(canister).or_default().push((i, op.clone()));
            }
        }
        for canister in registry.iter().filter(|c| c.has_system_task(time)) {
            groups.entry(canister.id()).or_default();
        }
        let mut canister_digests = Vec::new();
        let (mut messages, mut dirty_pages, mut instructions) = (0, 0, 0u64);
        for iteration in 0..MAX_ITERATIONS {
            let first = iteration == 0;
            let mut tasks = Vec::with_capacity(groups.len());
            for (id, group) in std::mem::take(&mut groups) {
                match registry.take(&id) {
                    Some(canister) => {
                        undo.fork(&canister);
                        tasks.push(Task { canister, ops: group, first });
                    }
                    None => {
                        for (i, _) in group {
                            outcomes[i] = Some(Outcome::failed(&CanisterError::NotFound(id)));
                        }
                    }
                }
            }
            if tasks.is_empty() {
                break;
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
                    Ok(done) => {
                        done.host_failure.clone().map(|reason| NotApplied { canister: done.canister.id(), reason })
                    }
                })
                .min_by_key(|f| f.canister);
            if let Some(failure) = failure {
                // The work done is dropped with `results`; the forks go back.
                drop(results);
                management.undo(registry);
                undo.apply(registry);
                return Err(failure);
            }
            let mut done: Vec<TaskDone> = results.into_iter().flatten().collect();
            done.sort_by_key(|d| d.canister.id());
            let mut sent = Vec::new();
            for done in done {
                for (i, outcome) in done.outcomes {
                    outcomes[i] = Some(outcome);
                }
                // Answers to this round's operations are in `outcomes`.
                late.extend(done.late);
                touched.insert(done.canister.id());
                canister_digests.push((done.canister.id(), done.digest));
                messages += done.messages;
                dirty_pages += done.dirty_pages;
                instructions = instructions.saturating_add(done.instructions);
                sent.push((done.canister.id(), done.sent));
                registry.put(done.canister);
            }
            // Delivery changes the receivers: fork them first, so a round
            // that is not applied leaves their queues as they were. A call
            // to the management canister may change any canister.
            let to_management = sent.iter().flat_map(|(_, m)| m).any(|(to, _)| *to == Principal::management_canister());
            let receivers: Vec<Principal> = if to_management {
                registry.iter().map(|c| c.id()).collect()
            } else {
                sent.iter().flat_map(|(from, m)| m.iter().flat_map(move |(to, _)| [*to, *from])).collect()
            };
            for id in receivers {
                if let Ok(canister) = registry.get(&id) {
                    undo.fork(canister);
                }
            }
            // Deliver in canister order, each canister's messages in the
            // order it sent them: FIFO between every pair.
            for (from, messages) in sent {
                for (to, message) in messages {
                    if to == Principal::management_canister() {
                        // Responses to the management canister are dropped.
                        let InterMessage::Request { callback, method, arg, cycles, .. } = message else { continue };
                        let caller = Caller::Canister { id: from, callback };
                        let (answer, outputs) =
                            management.call(self.executor(), registry, caller, &method, &arg, time, &mut touched);
                        // This host keeps no cycles: what was attached goes back.
                        let payload = match answer {
                            Ok(Answer::Now(bytes)) => Some(Payload::Reply(bytes)),
                            Ok(Answer::Later) => None,
                            Err((code, text)) => Some(Payload::Reject(code.reject_code() as u32, text)),
                        };
                        if let Some(payload) = payload {
                            deliver(registry, from, InterMessage::Response { callback, payload, refund: cycles });
                        }
                        route(registry, outputs, height, &mut outcomes, &mut late);
                    } else {
                        deliver_or_reject(registry, from, to, message);
                    }
                }
            }
            for canister in registry.iter().filter(|c| c.has_inbox()) {
                groups.entry(canister.id()).or_default();
            }
        }
        late.sort_by_key(|(origin, _)| *origin);
        let digest = round_digest(height, time, &outcomes, &canister_digests);
        Ok(RoundResult { outcomes, late, digest, canister_digests, touched, messages, dirty_pages, instructions })
    }
}

/// Deliver what a management call produced besides its answer: messages
/// for canisters, and outcomes of ingress messages.
fn route(
    registry: &mut Registry,
    outputs: Vec<Output>,
    height: u64,
    outcomes: &mut [Option<Outcome>],
    late: &mut Vec<(Origin, Outcome)>,
) {
    for output in outputs {
        match output {
            Output::Message { to, message } => deliver(registry, to, message),
            Output::Ingress(origin, outcome) if origin.0 == height => outcomes[origin.1] = Some(outcome),
            Output::Ingress(origin, outcome) => late.push((origin, outcome)),
        }
    }
}

/// Queue `message` for canister `to`, if it exists.
fn deliver(registry: &mut Registry, to: Principal, message: InterMessage) {
    if let Ok(canister) = registry.get_mut(&to) {
        canister.deliver(message);
    }
}

/// Queue `message` from `from` for `to`; a request to a canister that does
/// not exist is rejected back to its caller (a response for a canister
/// that went away is dropped, as on the IC).
fn deliver_or_reject(registry: &mut Registry, from: Principal, to: Principal, message: InterMessage) {
    match registry.get_mut(&to) {
        Ok(canister) => canister.deliver(message),
        Err(_) => {
            if let InterMessage::Request { callback, cycles, .. } = message {
                let text = format!("canister {to} does not exist");
                let payload = Payload::Reject(RejectCode::DestinationInvalid as u32, text);
                deliver(registry, from, InterMessage::Response { callback, payload, refund: cycles });
            }
        }
    }
}

/// What one canister's share of a round has produced so far.
#[derive(Default)]
struct Work {
    dirty: DirtySet,
    /// Outcomes (None: pending) and what they answer.
    entries: Vec<(Entry, Option<Outcome>)>,
    /// Requests and responses for other canisters, in order.
    sent: Vec<(Principal, InterMessage)>,
    messages: usize,
    instructions: u64,
    host_failure: Option<String>,
}

impl Work {
    /// Account for a message that ran: its pages, and a host failure.
    fn ran(&mut self, result: &MessageResult) {
        if let Some(failure) = result.host_failure() {
            self.host_failure.get_or_insert(failure);
        }
        self.dirty.add(result);
        self.instructions = self.instructions.saturating_add(result.stats.instructions);
    }

    fn message(&mut self, entry: Entry, result: &MessageResult) {
        self.ran(result);
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

    /// Take what messages sent out: messages for other canisters, and
    /// answers to ingress messages (of this round or earlier ones).
    fn absorb(&mut self, outputs: Vec<Output>, height: u64) {
        for output in outputs {
            match output {
                Output::Message { to, message } => self.sent.push((to, message)),
                Output::Ingress(origin, outcome) => self.entries.push((entry_of(origin, height), Some(outcome))),
            }
        }
    }
}

/// The entry an ingress message answered in round `height` has.
fn entry_of(origin: Origin, height: u64) -> Entry {
    if origin.0 == height { Entry::Now(origin.1) } else { Entry::Earlier(origin) }
}

/// Fold an ingress update's result into the canister: a committed one
/// opens a call context (answered now, or later from a callback); a
/// failed one is answered with its error.
fn finish_update(
    canister: &mut Canister,
    work: &mut Work,
    origin: Origin,
    sender: Principal,
    result: &MessageResult,
    height: u64,
    time: u64,
) {
    let entry = entry_of(origin, height);
    if !result.committed {
        work.message(entry, result);
        return;
    }
    work.ran(result);
    let mut outputs = Vec::new();
    canister.open_context(ContextOrigin::Ingress(origin), sender, 0, result, time, &mut outputs);
    let answered = outputs.iter().any(|o| matches!(o, Output::Ingress(o, _) if *o == origin));
    work.absorb(outputs, height);
    if !answered && matches!(entry, Entry::Now(_)) {
        work.entries.push((entry, None));
    }
}

/// Fold a timer's or heartbeat's result into the canister: its calls open
/// a context nobody waits for.
fn finish_system(canister: &mut Canister, work: &mut Work, result: &MessageResult, height: u64, time: u64) {
    work.message(Entry::System, result);
    if result.committed && !result.calls.is_empty() {
        let mut outputs = Vec::new();
        let id = canister.id();
        canister.open_context(ContextOrigin::System, id, 0, result, time, &mut outputs);
        work.absorb(outputs, height);
    }
}

/// Run one canister's share of a round: first its long message's next
/// slice, if it has one; then, if that is done, the operations that waited
/// and this round's, in order (the timer and heartbeat only when nothing
/// waited); then the requests and responses other canisters sent it. An
/// update that needs more than a slice becomes the long message, and what
/// follows it waits. A canister's share is about a slice: once its
/// messages have used one slice of instructions (or a long message has
/// had its slice, or an install ran), the rest waits for the next round,
/// so no canister holds a round up for much longer than a slice however
/// many messages it gets. Later iterations of a round (`task.first` is
/// false) only run the input queue. A host failure stops the share: the
/// round will not be applied.
pub(super) fn run_task(
    exec: &Arc<Executor>,
    overrides: &ModuleOverrides,
    task: Task,
    height: u64,
    time: u64,
) -> TaskDone {
    let Task { mut canister, ops, first } = task;
    let slice = exec.config().slice_instructions;
    let mut work = Work::default();
    // Instructions this canister has used in this round.
    let mut used = 0u64;
    if first {
        canister.expire_calls(time);
        canister.expire_stops(time);
        match canister.step_long(exec, slice) {
            Ok(Step::Running) => {}
            Ok(Step::Done(origin, result, call)) => {
                used = slice;
                match (origin, call) {
                    (Some(origin), LongCall::Update { sender, .. }) => {
                        finish_update(&mut canister, &mut work, origin, sender, &result, height, time)
                    }
                    (_, LongCall::Inter(message)) => {
                        let mut outputs = Vec::new();
                        for result in canister.finish_inbox(exec, message, *result, time, &mut outputs) {
                            work.message(Entry::System, &result);
                        }
                        work.absorb(outputs, height);
                    }
                    _ => finish_system(&mut canister, &mut work, &result, height, time),
                }
            }
            Err(failure) => work.host_failure = Some(failure),
        }
    }
    let waited = if first { canister.take_waiting() } else { Default::default() };
    if first && waited.is_empty() && !canister.has_long() && used < slice && work.host_failure.is_none() {
        for result in canister.system_tasks_first_slice(exec, time) {
            used = used.saturating_add(result.stats.instructions);
            finish_system(&mut canister, &mut work, &result, height, time);
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
                        finish_update(&mut canister, &mut work, origin, *sender, &result, height, time);
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
                if installed.is_ok() {
                    let mode = match mode {
                        InstallMode::Install => CodeDeploymentMode::Install,
                        InstallMode::Reinstall => CodeDeploymentMode::Reinstall,
                        InstallMode::Upgrade { .. } => CodeDeploymentMode::Upgrade,
                    };
                    let module_hash = canister.state().module.as_ref().map_or_else(Vec::new, |m| m.hash.to_vec());
                    let details = ChangeDetails::CodeDeployment(CodeDeploymentRecord { mode, module_hash });
                    canister.record_change(time, *sender, details);
                }
                // Installs are not sliced and may run long: one a round.
                used = slice;
                work.settle(entry, done(installed));
            }
            Operation::Uninstall { sender, .. } => {
                let result = canister.uninstall(exec, sender);
                if result.is_ok() {
                    canister.record_change(time, *sender, ChangeDetails::CodeUninstall);
                }
                work.settle(entry, done(result))
            }
            Operation::Stop { sender, .. } => match canister.stop(exec, sender) {
                Ok(true) => work.settle(entry, Ok(Outcome::Done)),
                // Stopping: answered once its call contexts close.
                Ok(false) => {
                    canister.wait_for_stop(ContextOrigin::Ingress(origin), time);
                    if let Entry::Now(_) = entry {
                        work.entries.push((entry, None));
                    }
                }
                Err(e) => work.settle(entry, Err(e)),
            },
            Operation::Start { sender, .. } => work.settle(entry, done(canister.start(exec, sender))),
            Operation::SetControllers { sender, controllers, .. } => {
                let result = canister.set_controllers(exec, sender, controllers.clone());
                if result.is_ok() {
                    let details =
                        ChangeDetails::ControllersChange(ControllersChangeRecord { controllers: controllers.clone() });
                    canister.record_change(time, *sender, details);
                }
                work.settle(entry, done(result))
            }
            Operation::TakeSnapshot { sender, replace, .. } => {
                work.settle(entry, canister.take_snapshot(sender, *replace, time).map(Outcome::SnapshotTaken))
            }
            Operation::LoadSnapshot { sender, snapshot, .. } => {
                let result = canister.load_snapshot(exec, sender, *snapshot);
                if result.is_ok() {
                    let id = canister.id();
                    let taken_at = canister.snapshots().find(|s| s.id == *snapshot).map_or(0, |s| s.taken_at);
                    let details = ChangeDetails::LoadSnapshot(LoadSnapshotRecord {
                        from_canister_id: None,
                        snapshot_id: super::management::snapshot_id(id, *snapshot),
                        canister_version: canister.version(),
                        taken_at_timestamp: taken_at,
                        source: SnapshotSource::TakenFromCanister(candid::Reserved),
                    });
                    canister.record_change(time, *sender, details);
                }
                work.settle(entry, done(result))
            }
            Operation::DeleteSnapshot { sender, snapshot, .. } => {
                work.settle(entry, done(canister.delete_snapshot(sender, *snapshot)))
            }
            Operation::CreateCanister { .. } | Operation::DeleteCanister { .. } | Operation::Management { .. } => {
                unreachable!("operations on the set of canisters run in phase 1")
            }
        }
    }
    work.absorb(canister.take_outbox(), height);
    // Messages from other canisters, in arrival order, within the budget.
    while work.host_failure.is_none() && !canister.has_long() && used < slice && canister.has_inbox() {
        let mut outputs = Vec::new();
        for result in canister.run_inbox_message(exec, time, &mut outputs) {
            work.messages += 1;
            used = used.saturating_add(result.stats.instructions);
            work.message(Entry::System, &result);
        }
        work.absorb(outputs, height);
    }
    let digest = canister_digest(&canister, &work.entries, &work.dirty, &work.sent);
    let (mut outcomes, mut late) = (Vec::new(), Vec::new());
    for (entry, outcome) in work.entries {
        match (entry, outcome) {
            (Entry::Now(i), Some(outcome)) => outcomes.push((i, outcome)),
            (Entry::Earlier(origin), Some(outcome)) => late.push((origin, outcome)),
            _ => {}
        }
    }
    TaskDone {
        canister,
        outcomes,
        late,
        digest,
        sent: work.sent,
        messages: work.messages,
        dirty_pages: work.dirty.len(),
        instructions: work.instructions,
        host_failure: work.host_failure,
    }
}
