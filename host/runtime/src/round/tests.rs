//! Rounds that fail in the host: a panic or a host failure while running
//! one canister leaves the registry as it was, and the pool keeps working.

use std::sync::Arc;

use candid::Principal;
use embedder::{Engine, ExecutionConfig, Executor};

use super::pool::{Task, TaskDone, WorkerPool};
use super::{Operation, Outcome, state_digest};
use crate::registry::Registry;

const OWNER: Principal = Principal::from_slice(&[7; 29]);

/// What a runner that does nothing reports: every operation done.
fn done(task: Task) -> TaskDone {
    let outcomes = task.ops.iter().map(|(i, _)| (*i, Outcome::Done)).collect();
    TaskDone {
        canister: task.canister,
        outcomes,
        late: vec![],
        digest: [0; 32],
        sent: vec![],
        messages: 0,
        dirty_pages: 0,
        instructions: 0,
        host_failure: None,
    }
}

fn updates(ids: &[Principal]) -> Vec<Arc<Operation>> {
    ids.iter()
        .map(|&canister| Arc::new(Operation::Update { sender: OWNER, canister, method: "m".into(), arg: vec![] }))
        .collect()
}

fn registry(canisters: usize) -> (Registry, Vec<Principal>) {
    let mut registry = Registry::default();
    let ids = (0..canisters).map(|_| registry.create(vec![OWNER], None).unwrap()).collect();
    (registry, ids)
}

#[test]
fn a_panic_running_one_canister_leaves_the_registry_as_it_was_and_the_pool_working() {
    let (mut registry, ids) = registry(3);
    // With two threads the last canister runs on a worker, not here.
    let bad = ids[2];
    let pool = WorkerPool::with_runner(
        2,
        Arc::new(move |task: Task, _, _| {
            assert!(task.canister.id() != bad, "deliberate panic");
            done(task)
        }),
    );
    let before = state_digest(&registry);
    let failure = pool.execute(&mut registry, 1, 1, &updates(&ids)).unwrap_err();
    assert_eq!(failure.canister, bad);
    assert!(failure.reason.contains("deliberate panic"), "{}", failure.reason);
    assert_eq!(registry.len(), 3, "a canister was lost");
    assert_eq!(state_digest(&registry), before);
    // The same pool runs the next round.
    let result = pool.execute(&mut registry, 1, 1, &updates(&ids[..2])).unwrap();
    assert_eq!(result.outcomes, vec![Some(Outcome::Done); 2]);
}

#[test]
fn a_host_failure_undoes_the_whole_round_creations_and_deletions_included() {
    let executor = Arc::new(Executor::new(Arc::new(Engine::new().unwrap()), ExecutionConfig::default()));
    let (mut registry, ids) = registry(3);
    registry.get_mut(&ids[0]).unwrap().stop(&executor, &OWNER).unwrap();
    let failing = ids[1];
    let exec = executor.clone();
    let pool = WorkerPool::with_runner(
        2,
        Arc::new(move |mut task: Task, _, _| {
            // Change the canister, as a message would, before failing.
            task.canister.set_controllers(&exec, &OWNER, vec![]).unwrap();
            let failed = task.canister.id() == failing;
            TaskDone { host_failure: failed.then(|| "out of mappings".to_string()), ..done(task) }
        }),
    );
    let before = state_digest(&registry);
    let mut ops = vec![
        Arc::new(Operation::CreateCanister { sender: OWNER, controllers: vec![], name: Some("new".into()) }),
        Arc::new(Operation::DeleteCanister { sender: OWNER, canister: ids[0] }),
    ];
    ops.extend(updates(&ids[1..]));
    let failure = pool.execute(&mut registry, 1, 1, &ops).unwrap_err();
    assert_eq!((failure.canister, failure.reason.as_str()), (failing, "out of mappings"));
    assert_eq!(state_digest(&registry), before, "the round left changes behind");
    // The id the undone creation used is handed out again.
    assert_eq!(registry.create(vec![], None).unwrap(), crate::registry::canister_id(3));
}
