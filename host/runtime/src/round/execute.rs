//! Executing a round: its two phases, and one canister's work.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use candid::Principal;
use checkpoint::Hash;
use embedder::Executor;
use sha2::{Digest, Sha256};

use super::digest::{DirtySet, canister_digest, round_digest};
use super::pool::{ModuleOverrides, Task, TaskDone, WorkerPool};
use super::{Operation, Outcome};
use crate::canister::CanisterError;
use crate::registry::Registry;

/// The results of executing a round.
#[derive(Clone, Debug)]
pub struct RoundResult {
    /// Each operation's outcome, in the round's order.
    pub outcomes: Vec<Outcome>,
    /// The round's digest.
    pub digest: Hash,
    /// Per canister that did anything, sorted by id.
    pub canister_digests: Vec<(Principal, Hash)>,
    /// Canisters whose state may have changed (for publishing to queries).
    pub touched: BTreeSet<Principal>,
    /// Update messages executed.
    pub messages: usize,
}

impl WorkerPool {
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
                Some(canister) => tasks.push(Task { canister, ops: group }),
                None => {
                    for (i, _) in group {
                        outcomes[i] = Some(Outcome::Error(format!("canister {canister} does not exist")));
                    }
                }
            }
        }
        let done = self.run(tasks, time);
        let mut canister_digests = Vec::with_capacity(done.len());
        let mut messages = 0;
        for done in done {
            for (i, outcome) in done.outcomes {
                outcomes[i] = Some(outcome);
            }
            touched.insert(done.canister.id());
            canister_digests.push((done.canister.id(), done.digest));
            messages += done.messages;
            registry.put(done.canister);
        }
        canister_digests.sort_by_key(|(id, _)| *id);
        let outcomes: Vec<Outcome> = outcomes.into_iter().map(|o| o.expect("every operation has an outcome")).collect();
        let digest = round_digest(height, time, &outcomes, &canister_digests);
        RoundResult { outcomes, digest, canister_digests, touched, messages }
    }
}

/// Run one canister's share of a round.
pub(super) fn run_task(exec: &Executor, overrides: &ModuleOverrides, task: Task, time: u64) -> TaskDone {
    let Task { mut canister, ops } = task;
    let mut dirty = DirtySet::default();
    let mut entries: Vec<(Option<usize>, Outcome)> = Vec::new();
    let mut messages = 0;
    if let Some(result) = canister.run_timer_if_due(exec, time) {
        dirty.add(&result);
        entries.push((None, Outcome::from(&result)));
    }
    if let Some(result) = canister.run_heartbeat(exec, time) {
        dirty.add(&result);
        entries.push((None, Outcome::from(&result)));
    }
    for (index, op) in &ops {
        let done = |r: Result<(), CanisterError>| match r {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Error(e.to_string()),
        };
        let outcome = match op.as_ref() {
            Operation::Update { sender, method, arg, .. } => {
                messages += 1;
                match canister.update(exec, sender, method, arg, time) {
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
                    Ok(module) => done(canister.install_module(exec, sender, *mode, module, arg, time)),
                    Err(e) => Outcome::Error(CanisterError::Module(e).to_string()),
                }
            }
            Operation::Uninstall { sender, .. } => done(canister.uninstall(exec, sender)),
            Operation::Stop { sender, .. } => done(canister.stop(exec, sender)),
            Operation::Start { sender, .. } => done(canister.start(exec, sender)),
            Operation::SetControllers { sender, controllers, .. } => {
                done(canister.set_controllers(exec, sender, controllers.clone()))
            }
            Operation::TakeSnapshot { sender, replace, .. } => match canister.take_snapshot(sender, *replace, time) {
                Ok(id) => Outcome::SnapshotTaken(id),
                Err(e) => Outcome::Error(e.to_string()),
            },
            Operation::LoadSnapshot { sender, snapshot, .. } => done(canister.load_snapshot(exec, sender, *snapshot)),
            Operation::DeleteSnapshot { sender, snapshot, .. } => done(canister.delete_snapshot(sender, *snapshot)),
            Operation::CreateCanister { .. } | Operation::DeleteCanister { .. } => {
                unreachable!("operations on the set of canisters run in phase 1")
            }
        };
        entries.push((Some(*index), outcome));
    }
    let digest = canister_digest(&canister, &entries, &dirty);
    let outcomes = entries.into_iter().filter_map(|(i, o)| i.map(|i| (i, o))).collect();
    TaskDone { canister, outcomes, digest, messages }
}
