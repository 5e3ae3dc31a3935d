//! Single-fault sweeps over every file operation of the write-ahead log
//! (open, append, segment rotation, pruning) on the simulated filesystem,
//! as the checkpoint sweeps do for checkpoints.
//!
//! Each run stops at the first error, as the host does. The simulated disk
//! is then written out (only what was synced, or a seeded mix of synced
//! and unsynced state) and opened with the real implementation: it must
//! open, hold every acknowledged record with its exact contents, hold
//! nothing that was never appended, and accept further appends.

use std::path::Path;
use std::sync::Arc;

use canister_host::wal::{Wal, WalError};
use checkpoint::sim::{Fault, SimFs, View};

const ROOT: &str = "/sim";
const SEGMENT_BYTES: u64 = 200;

fn body(height: u64) -> Vec<u8> {
    format!("round {height}").into_bytes()
}

fn log_dir() -> std::path::PathBuf {
    Path::new(ROOT).join("log")
}

/// A simulated disk holding records 1..=6 over several segments.
fn base() -> SimFs {
    let sim = SimFs::new(ROOT);
    let (mut wal, _) = Wal::open_with(Arc::new(sim.clone()), &log_dir(), true, SEGMENT_BYTES).unwrap();
    for h in 1..=6 {
        wal.append(h, &body(h)).unwrap();
    }
    sim
}

/// Reopen, append 7..=12 (rotating segments), prune through 8, append 13.
/// Returns the heights whose append returned (the acknowledged ones) and
/// the highest height attempted.
fn step(sim: &SimFs) -> (Vec<u64>, u64) {
    let mut acked = Vec::new();
    let Ok((mut wal, _)) = Wal::open_with(Arc::new(sim.clone()), &log_dir(), true, SEGMENT_BYTES) else {
        return (acked, 6);
    };
    for h in 7..=13 {
        if h == 13 && wal.prune_through(8).is_err() {
            return (acked, 12);
        }
        if wal.append(h, &body(h)).is_err() {
            return (acked, h);
        }
        acked.push(h);
    }
    (acked, 13)
}

/// Open what `view` of the disk holds with the real filesystem and check
/// it against what was acknowledged.
fn check(sim: &SimFs, view: View, acked: &[u64], attempted: u64, what: &str) {
    let real = tempfile::tempdir().unwrap();
    sim.materialize(view, real.path()).unwrap();
    let dir = real.path().join("log");
    let (mut wal, found) = Wal::open(&dir, true, SEGMENT_BYTES).unwrap_or_else(|e| panic!("{what}, {view:?}: {e}"));
    let heights: Vec<u64> = found.records.iter().map(|r| r.height).collect();
    assert!(heights.windows(2).all(|w| w[1] == w[0] + 1), "{what}, {view:?}: a gap in {heights:?}");
    for record in &found.records {
        assert_eq!(wal.read(record).unwrap(), body(record.height), "{what}, {view:?}: record {}", record.height);
    }
    let last = heights.last().copied().unwrap_or(0);
    assert!(last <= attempted, "{what}, {view:?}: record {last} was never appended");
    for h in acked {
        assert!(
            heights.contains(h) || (*h <= 8 && heights.first().is_some_and(|f| *f > *h)),
            "{what}, {view:?}: lost {h}"
        );
    }
    // The log goes on from where it ends.
    let next = wal.last_height().map_or(1, |h| h + 1);
    wal.append(next, &body(next)).unwrap_or_else(|e: WalError| panic!("{what}, {view:?}: append after: {e}"));
}

#[test]
fn a_fault_at_any_operation_loses_no_acknowledged_record() {
    let base = base();
    let (ops, syncs) = {
        let sim = base.fork();
        sim.set_fault(Fault::None);
        let (acked, _) = step(&sim);
        assert_eq!(acked, (7..=13).collect::<Vec<_>>(), "the step fails without faults");
        sim.counters()
    };
    assert!(ops > 20 && syncs > 5, "the sweep covers too little: {ops} operations, {syncs} syncs");
    let mut faults: Vec<Fault> = (1..=ops)
        .flat_map(|n| [Fault::FailOp { n, persistent: false }, Fault::FailOp { n, persistent: true }])
        .collect();
    faults.extend((1..=syncs).map(|n| Fault::CrashAtSync { n }));
    for (i, fault) in faults.into_iter().enumerate() {
        let sim = base.fork();
        sim.set_fault(fault);
        let (acked, attempted) = step(&sim);
        let what = format!("{fault:?}");
        for view in [View::Durable, View::Mixed { seed: i as u64 }] {
            check(&sim, view, &acked, attempted, &what);
        }
    }
}
