//! Rounds: what the log records, how a round executes, and its digest.
//!
//! A round runs its operations in two phases. First, in arrival order, the
//! operations on the set of canisters (create, delete). Then every canister
//! with work runs on the worker pool, its operations in arrival order
//! (preceded by its due timer and heartbeat). Canisters share nothing, so
//! the results, and the digest over them, do not depend on the number of
//! workers or on scheduling.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use candid::{CandidType, Deserialize, Principal};
use crossbeam_channel::{Receiver, Sender};
use page_delta::{PageIndex, PageMap};
use sha2::{Digest, Sha256};

use crate::canister::{CanisterRecord, InstallMode};
use crate::execution::{Executor, GlobalValue, MessageResult};
use crate::registry::Registry;
use crate::system_api::Response;

pub type Hash = [u8; 32];

/// One state-changing request, as recorded in the log.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    CreateCanister { sender: Principal, controllers: Vec<Principal>, name: Option<String> },
    DeleteCanister { sender: Principal, canister: Principal },
    InstallCode { sender: Principal, canister: Principal, mode: InstallMode, wasm: Vec<u8>, arg: Vec<u8> },
    Uninstall { sender: Principal, canister: Principal },
    Stop { sender: Principal, canister: Principal },
    Start { sender: Principal, canister: Principal },
    SetControllers { sender: Principal, canister: Principal, controllers: Vec<Principal> },
    TakeSnapshot { sender: Principal, canister: Principal, replace: Option<u64> },
    LoadSnapshot { sender: Principal, canister: Principal, snapshot: u64 },
    DeleteSnapshot { sender: Principal, canister: Principal, snapshot: u64 },
    Update { sender: Principal, canister: Principal, method: String, arg: Vec<u8> },
}

impl Operation {
    /// The canister whose worker runs this operation (None for operations
    /// on the set of canisters).
    pub fn canister(&self) -> Option<Principal> {
        use Operation::*;
        match self {
            CreateCanister { .. } | DeleteCanister { .. } => None,
            InstallCode { canister, .. }
            | Uninstall { canister, .. }
            | Stop { canister, .. }
            | Start { canister, .. }
            | SetControllers { canister, .. }
            | TakeSnapshot { canister, .. }
            | LoadSnapshot { canister, .. }
            | DeleteSnapshot { canister, .. }
            | Update { canister, .. } => Some(*canister),
        }
    }

    pub fn is_update(&self) -> bool {
        matches!(self, Operation::Update { .. })
    }
}

/// What an operation produced: its reply to the caller.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An update's reply.
    Reply(Vec<u8>),
    /// The canister rejected the update (`ic0.msg_reject`).
    Reject(String),
    /// The operation failed; the text says why.
    Error(String),
    Created(Principal),
    SnapshotTaken(u64),
    /// A lifecycle operation succeeded.
    Done,
}

impl From<&MessageResult> for Outcome {
    fn from(result: &MessageResult) -> Outcome {
        match &result.outcome {
            Ok(Response::Reply(bytes)) => Outcome::Reply(bytes.clone()),
            Ok(Response::Reject(message)) => Outcome::Reject(message.clone()),
            Ok(Response::None) => Outcome::Done,
            Err(error) => Outcome::Error(error.to_string()),
        }
    }
}

impl Outcome {
    /// Feed this outcome into a digest (a fixed, self-delimiting encoding).
    fn digest_into(&self, h: &mut Sha256) {
        match self {
            Outcome::Reply(bytes) => put_tagged(h, 0, bytes),
            Outcome::Reject(message) => put_tagged(h, 1, message.as_bytes()),
            Outcome::Error(message) => put_tagged(h, 2, message.as_bytes()),
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

/// A round as the log records it: its input, and digests of its results.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoundRecord {
    pub height: u64,
    pub time: u64,
    pub operations: Vec<Operation>,
    pub digest: Vec<u8>,
    pub canister_digests: Vec<(Principal, Vec<u8>)>,
}

impl RoundRecord {
    pub fn encode(&self) -> Vec<u8> {
        candid::encode_one(self).expect("round records always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<RoundRecord, String> {
        candid::decode_one(bytes).map_err(|e| e.to_string())
    }
}

/// The results of executing a round.
#[derive(Clone, Debug)]
pub struct RoundResult {
    pub outcomes: Vec<Outcome>,
    pub digest: Hash,
    /// Per canister that did anything, sorted by id.
    pub canister_digests: Vec<(Principal, Hash)>,
    /// Canisters whose state may have changed (for publishing to queries).
    pub touched: BTreeSet<Principal>,
    /// Update messages executed.
    pub messages: usize,
}

fn tagged(tag: &str) -> Sha256 {
    let mut h = Sha256::new();
    h.update([tag.len() as u8]);
    h.update(tag.as_bytes());
    h
}

fn put_bytes(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// Digest of what one canister did in a round: each of its operations'
/// outcomes (and its timer and heartbeat), the final contents of every page
/// they dirtied, and its state afterwards.
fn canister_digest(record: &CanisterRecord, entries: &[(Option<usize>, Outcome)], dirty: &DirtySet) -> Hash {
    let mut h = tagged("ch-canister-round");
    put_bytes(&mut h, record.id().as_slice());
    for (index, outcome) in entries {
        h.update(index.map_or(u64::MAX, |i| i as u64).to_be_bytes());
        outcome.digest_into(&mut h);
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
    h.update(state.heap_pages.to_be_bytes());
    h.update(state.stable_pages.to_be_bytes());
    for g in &state.globals {
        h.update(
            match g {
                GlobalValue::I32(v) => u128::from(*v as u32),
                GlobalValue::I64(v) => u128::from(*v as u64),
                GlobalValue::F32(v) => u128::from(*v),
                GlobalValue::F64(v) => u128::from(*v),
                GlobalValue::V128(v) => *v,
            }
            .to_be_bytes(),
        );
    }
    put_bytes(&mut h, &state.certified_data);
    h.update(state.global_timer.to_be_bytes());
    put_bytes(&mut h, state.module.as_ref().map_or(&[][..], |m| &m.hash[..]));
    h.update([u8::from(record.status() == crate::canister::CanisterStatus::Running)]);
    h.update(record.version().to_be_bytes());
    h.finalize().into()
}

#[derive(Default)]
struct DirtySet {
    heap: BTreeSet<u64>,
    stable: BTreeSet<u64>,
}

impl DirtySet {
    fn add(&mut self, result: &MessageResult) {
        self.heap.extend(result.dirty.heap.iter().map(|p| p.0));
        self.stable.extend(result.dirty.stable.iter().map(|p| p.0));
    }
}

/// Replacement modules, by the SHA-256 of the module they replace (replay
/// verification runs a history against a modified module).
pub type ModuleOverrides = HashMap<Hash, Vec<u8>>;

/// The work for one canister in a round.
struct Task {
    record: CanisterRecord,
    ops: Vec<(usize, Arc<Operation>)>,
}

/// A share of a round's tasks, for one thread.
struct Job {
    tasks: Vec<Task>,
    time: u64,
    reply: Sender<Vec<JobDone>>,
}

struct JobDone {
    record: CanisterRecord,
    outcomes: Vec<(usize, Outcome)>,
    digest: Hash,
    messages: usize,
}

/// Threads that run canisters' work; results never depend on their number.
pub struct WorkerPool {
    jobs: Option<Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    executor: Arc<Executor>,
    overrides: Arc<ModuleOverrides>,
}

impl WorkerPool {
    pub fn new(threads: usize, executor: Arc<Executor>, overrides: Arc<ModuleOverrides>) -> WorkerPool {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let threads = (0..threads.max(1))
            .map(|i| {
                let (rx, executor, overrides): (Receiver<Job>, _, _) =
                    (rx.clone(), executor.clone(), overrides.clone());
                std::thread::Builder::new()
                    .name(format!("canister-worker-{i}"))
                    .spawn(move || {
                        for job in rx {
                            let done =
                                job.tasks.into_iter().map(|t| run_task(&executor, &overrides, t, job.time)).collect();
                            // The round waits for every job; it only goes
                            // away if the host is shutting down.
                            let _ = job.reply.send(done);
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        WorkerPool { jobs: Some(tx), threads, executor, overrides }
    }

    /// Execute a round on `registry`.
    pub fn execute(&self, registry: &mut Registry, height: u64, time: u64, ops: &[Arc<Operation>]) -> RoundResult {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; ops.len()];
        let mut touched = BTreeSet::new();
        // Phase 1: the set of canisters, in arrival order.
        for (i, op) in ops.iter().enumerate() {
            match op.as_ref() {
                Operation::CreateCanister { sender, controllers, name } => {
                    let controllers = if controllers.is_empty() { vec![*sender] } else { controllers.clone() };
                    outcomes[i] = Some(match registry.create(controllers, name.clone()) {
                        Ok(id) => {
                            touched.insert(id);
                            Outcome::Created(id)
                        }
                        Err(e) => Outcome::Error(e.to_string()),
                    });
                }
                Operation::DeleteCanister { sender, canister } => {
                    outcomes[i] = Some(match registry.delete(sender, canister) {
                        Ok(()) => {
                            touched.insert(*canister);
                            Outcome::Done
                        }
                        Err(e) => Outcome::Error(e.to_string()),
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
        for record in registry.iter().filter(|r| r.has_system_task(time)) {
            groups.entry(record.id()).or_default();
        }
        let mut tasks = Vec::with_capacity(groups.len());
        for (canister, group) in groups {
            match registry.take(&canister) {
                Some(record) => tasks.push(Task { record, ops: group }),
                None => {
                    for (i, _) in group {
                        outcomes[i] = Some(Outcome::Error(format!("canister {canister} does not exist")));
                    }
                }
            }
        }
        // One share per thread, and this thread runs the first itself:
        // handing tiny messages between threads costs more than running
        // them, so a round with one worker involves no handoff at all.
        let shares = self.threads.len().min(tasks.len()).max(1);
        let per_share = tasks.len().div_ceil(shares).max(1);
        let mut chunks: Vec<Vec<Task>> = Vec::with_capacity(shares);
        let mut rest = tasks.into_iter().peekable();
        while rest.peek().is_some() {
            chunks.push(rest.by_ref().take(per_share).collect());
        }
        let (reply, results) = crossbeam_channel::unbounded();
        let mut local = chunks.into_iter();
        let mine = local.next().unwrap_or_default();
        let mut pending = 0;
        for chunk in local {
            let job = Job { tasks: chunk, time, reply: reply.clone() };
            self.jobs.as_ref().expect("the pool is running").send(job).expect("workers outlive the pool's sender");
            pending += 1;
        }
        let mut done: Vec<JobDone> =
            mine.into_iter().map(|t| run_task(&self.executor, &self.overrides, t, time)).collect();
        for _ in 0..pending {
            done.extend(results.recv().expect("every job reports back"));
        }
        let mut canister_digests = Vec::with_capacity(done.len());
        let mut messages = 0;
        for done in done {
            for (i, outcome) in done.outcomes {
                outcomes[i] = Some(outcome);
            }
            touched.insert(done.record.id());
            canister_digests.push((done.record.id(), done.digest));
            messages += done.messages;
            registry.put(done.record);
        }
        canister_digests.sort_by_key(|(id, _)| *id);
        let outcomes: Vec<Outcome> = outcomes.into_iter().map(|o| o.expect("every operation has an outcome")).collect();
        let mut h = tagged("ch-round");
        h.update(height.to_be_bytes());
        h.update(time.to_be_bytes());
        for outcome in &outcomes {
            outcome.digest_into(&mut h);
        }
        for (id, digest) in &canister_digests {
            put_bytes(&mut h, id.as_slice());
            h.update(digest);
        }
        RoundResult { outcomes, digest: h.finalize().into(), canister_digests, touched, messages }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.jobs = None; // workers see the channel close and exit
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Run one canister's share of a round.
fn run_task(exec: &Executor, overrides: &ModuleOverrides, task: Task, time: u64) -> JobDone {
    let Task { mut record, ops } = task;
    let mut dirty = DirtySet::default();
    let mut entries: Vec<(Option<usize>, Outcome)> = Vec::new();
    let mut messages = 0;
    if let Some(result) = record.run_timer_if_due(exec, time) {
        dirty.add(&result);
        entries.push((None, Outcome::from(&result)));
    }
    if let Some(result) = record.run_heartbeat(exec, time) {
        dirty.add(&result);
        entries.push((None, Outcome::from(&result)));
    }
    for (index, op) in &ops {
        let done = |r: Result<(), crate::canister::CanisterError>| match r {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Error(e.to_string()),
        };
        let outcome = match op.as_ref() {
            Operation::Update { sender, method, arg, .. } => {
                messages += 1;
                match record.update(exec, sender, method, arg, time) {
                    Ok(result) => {
                        dirty.add(&result);
                        Outcome::from(&result)
                    }
                    Err(e) => Outcome::Error(e.to_string()),
                }
            }
            Operation::InstallCode { sender, mode, wasm, arg, .. } => {
                let hash: Hash = Sha256::digest(wasm).into();
                let module = match overrides.get(&hash) {
                    Some(replacement) => exec.compile_substitute(replacement, hash),
                    None => exec.compile(wasm),
                };
                match module {
                    Ok(module) => done(record.install_module(exec, sender, *mode, module, arg, time)),
                    Err(e) => Outcome::Error(crate::canister::CanisterError::Module(e).to_string()),
                }
            }
            Operation::Uninstall { sender, .. } => done(record.uninstall(exec, sender)),
            Operation::Stop { sender, .. } => done(record.stop(exec, sender)),
            Operation::Start { sender, .. } => done(record.start(exec, sender)),
            Operation::SetControllers { sender, controllers, .. } => {
                done(record.set_controllers(exec, sender, controllers.clone()))
            }
            Operation::TakeSnapshot { sender, replace, .. } => match record.take_snapshot(sender, *replace, time) {
                Ok(id) => Outcome::SnapshotTaken(id),
                Err(e) => Outcome::Error(e.to_string()),
            },
            Operation::LoadSnapshot { sender, snapshot, .. } => done(record.load_snapshot(exec, sender, *snapshot)),
            Operation::DeleteSnapshot { sender, snapshot, .. } => done(record.delete_snapshot(sender, *snapshot)),
            Operation::CreateCanister { .. } | Operation::DeleteCanister { .. } => {
                unreachable!("operations on the set of canisters run in phase 1")
            }
        };
        entries.push((Some(*index), outcome));
    }
    let digest = canister_digest(&record, &entries, &dirty);
    let outcomes = entries.into_iter().filter_map(|(i, o)| i.map(|i| (i, o))).collect();
    JobDone { record, outcomes, digest, messages }
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
        h.update([u8::from(record.status() == crate::canister::CanisterStatus::Running)]);
        h.update(record.version().to_be_bytes());
        for log in record.log() {
            h.update(log.index.to_be_bytes());
            h.update(log.time.to_be_bytes());
            put_bytes(&mut h, &log.content);
        }
        digest_state(&mut h, record.state());
        for snapshot in record.snapshots() {
            h.update(snapshot.id.to_be_bytes());
            h.update(snapshot.taken_at.to_be_bytes());
            digest_state(&mut h, &snapshot.state);
        }
    }
    h.finalize().into()
}

fn digest_state(h: &mut Sha256, state: &crate::execution::CanisterState) {
    put_bytes(h, state.module.as_ref().map_or(&[][..], |m| &m.hash[..]));
    for (map, pages) in [(&state.heap, state.heap_pages), (&state.stable, state.stable_pages)] {
        h.update(pages.to_be_bytes());
        digest_memory(h, map, pages * 16);
    }
    for g in &state.globals {
        put_bytes(h, format!("{g:?}").as_bytes());
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
