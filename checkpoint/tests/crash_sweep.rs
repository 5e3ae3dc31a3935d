//! Single-fault sweeps over every operation of creating (and pruning) a
//! checkpoint, on the simulated filesystem.
//!
//! After each fault the simulated disk is written to a real directory and
//! opened with the real implementation. That must yield exactly the previous
//! checkpoint or the new one, fully verified, with the root hash computed
//! when it was written: never a mix, never an error.

mod common;

use std::path::Path;
use std::sync::Arc;

use checkpoint::sim::{Fault, SimFs, View};
use checkpoint::{Hash, StateDir, Verification};
use common::*;

const ROOT: &str = "/sim";

fn open(sim: &SimFs) -> StateDir {
    StateDir::open_with(Path::new(ROOT), Arc::new(sim.clone())).unwrap()
}

/// What a real open of the materialized disk finds: `(height, root)`.
fn recover(sim: &SimFs, view: View) -> Option<(u64, Hash)> {
    let real = tempfile::tempdir().unwrap();
    sim.materialize(view, real.path()).unwrap();
    let dir = StateDir::open(real.path()).unwrap_or_else(|e| panic!("open after {view:?}: {e}"));
    let loaded = dir.newest(Verification::Full).unwrap_or_else(|e| panic!("recovery after {view:?}: {e}"));
    loaded.map(|l| {
        assert!(l.skipped.is_empty(), "a damaged checkpoint was published: {:?}", l.skipped);
        (l.checkpoint.height(), l.checkpoint.root_hash())
    })
}

/// A simulated disk holding checkpoint 1, the page maps for checkpoint 2
/// (over a real copy of checkpoint 1, which they keep alive), and the root
/// hashes of checkpoints 1 and 2.
struct Setup {
    sim: SimFs,
    gen2: Gen2,
    root1: Hash,
    root2: Hash,
    _real: tempfile::TempDir,
}

fn setup() -> Setup {
    let sim = SimFs::new(ROOT);
    let c1 = open(&sim).create(Gen1::new().spec()).unwrap();
    let real = tempfile::tempdir().unwrap();
    sim.materialize(View::Current, real.path()).unwrap();
    let gen2 = Gen2::new(&real.path().join("checkpoints/0000000000000001"));
    let probe = sim.fork();
    let root2 = open(&probe).create(gen2.spec(&c1)).unwrap().root_hash();
    Setup { sim, gen2, root1: c1.root_hash(), root2, _real: real }
}

/// Run `step` once on a fork with `fault` armed; return the fork.
fn run_with_fault(base: &SimFs, fault: Fault, step: &dyn Fn(&StateDir) -> checkpoint::Result<()>) -> (SimFs, bool) {
    let sim = base.fork();
    let dir = open(&sim);
    sim.set_fault(fault);
    let ok = step(&dir).is_ok();
    (sim, ok)
}

fn count_ops(base: &SimFs, step: &dyn Fn(&StateDir) -> checkpoint::Result<()>) -> (u64, u64) {
    let (sim, ok) = run_with_fault(base, Fault::None, step);
    assert!(ok, "the step fails even without faults");
    sim.counters()
}

fn create_gen2(gen2: &Gen2) -> impl Fn(&StateDir) -> checkpoint::Result<()> + '_ {
    move |dir| {
        let c1 = dir.load(1, Verification::Structure)?;
        dir.create(gen2.spec(&c1)).map(|_| ())
    }
}

fn create_gen1(dir: &StateDir) -> checkpoint::Result<()> {
    dir.create(Gen1::new().spec()).map(|_| ())
}

#[test]
fn every_failed_operation_leaves_the_previous_checkpoint_and_a_retry_succeeds() {
    let Setup { sim: base, gen2, root1, root2, _real } = setup();
    let create_gen2 = create_gen2(&gen2);
    let (ops, _) = count_ops(&base, &create_gen2);
    assert!(ops > 30, "suspiciously few operations: {ops}");
    for n in 1..=ops {
        for persistent in [false, true] {
            let (sim, ok) = run_with_fault(&base, Fault::FailOp { n, persistent }, &create_gen2);
            assert!(!ok, "failing operation {n} went unnoticed: {:?}", sim.trace().last());
            let found = recover(&sim, View::Current);
            let allowed = [Some((1, root1)), Some((2, root2))];
            assert!(allowed.contains(&found), "fault at op {n} (persistent {persistent}): recovered {found:?}");
            if !persistent {
                // Nothing was lost: the same process can simply try again.
                sim.set_fault(Fault::None);
                create_gen2(&open_again(&sim)).unwrap_or_else(|e| panic!("retry after fault at op {n}: {e}"));
                assert_eq!(recover(&sim, View::Current), Some((2, root2)));
            }
        }
    }
}

/// A second handle on the same simulated disk (the first was dropped with
/// its fault; the simulation has no lock contention).
fn open_again(sim: &SimFs) -> StateDir {
    open(sim)
}

#[test]
fn a_crash_at_any_sync_recovers_the_previous_or_the_new_checkpoint() {
    let Setup { sim: base, gen2, root1, root2, _real } = setup();
    let create_gen2 = create_gen2(&gen2);
    let (_, syncs) = count_ops(&base, &create_gen2);
    assert!(syncs >= 8, "suspiciously few syncs: {syncs}");
    let mut saw_new = false;
    for n in 1..=syncs + 1 {
        let (sim, ok) = run_with_fault(&base, Fault::CrashAtSync { n }, &create_gen2);
        assert_eq!(ok, n > syncs, "crash at sync {n}");
        for view in [View::Durable, View::Mixed { seed: n }, View::Mixed { seed: n + 1000 }] {
            let found = recover(&sim, view);
            assert!(
                found == Some((1, root1)) || found == Some((2, root2)),
                "crash at sync {n}, {view:?}: recovered {found:?}"
            );
            saw_new |= found == Some((2, root2));
        }
        if n <= syncs {
            // Before the publishing rename is synced, a pure power loss must
            // keep the old checkpoint.
            if n < syncs {
                assert_eq!(recover(&sim, View::Durable), Some((1, root1)), "crash at sync {n}");
            }
        }
    }
    assert!(saw_new, "no crash point ever recovered the new checkpoint");
}

#[test]
fn a_crash_while_creating_the_first_checkpoint_recovers_nothing_or_it() {
    let base = SimFs::new(ROOT);
    drop(open(&base));
    let (_, syncs) = count_ops(&base, &create_gen1);
    let probe = base.fork();
    let root1 = open(&probe).create(Gen1::new().spec()).unwrap().root_hash();
    for n in 1..=syncs {
        let (sim, _) = run_with_fault(&base, Fault::CrashAtSync { n }, &create_gen1);
        for view in [View::Durable, View::Mixed { seed: n }] {
            let found = recover(&sim, view);
            assert!(found.is_none() || found == Some((1, root1)), "crash at sync {n}, {view:?}: {found:?}");
        }
    }
}

#[test]
fn a_crash_while_pruning_never_damages_a_kept_checkpoint() {
    let Setup { sim: base, gen2, root2, _real, .. } = setup();
    create_gen2(&gen2)(&open(&base)).unwrap();
    let prune = |dir: &StateDir| dir.prune(1).map(|_| ());
    let (ops, syncs) = count_ops(&base, &prune);
    for n in 1..=ops {
        let (sim, _) = run_with_fault(&base, Fault::FailOp { n, persistent: false }, &prune);
        assert_eq!(recover(&sim, View::Current), Some((2, root2)), "fault at op {n}");
    }
    for n in 1..=syncs {
        let (sim, _) = run_with_fault(&base, Fault::CrashAtSync { n }, &prune);
        assert_eq!(recover(&sim, View::Durable), Some((2, root2)), "crash at sync {n}");
    }
}
