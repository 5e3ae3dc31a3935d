//! Many threads, each running its own canister: fault handling is per
//! thread and per store, so results must equal a sequential run's.

use candid::Encode;
use embedder::*;
use sha2::{Digest, Sha256};
use testkit::*;

const THREADS: usize = 8;
const MESSAGES: usize = 500;

/// Run a deterministic mix of messages against canister `n`; return every
/// outcome and a digest of the final heap.
fn workload(exec: &Executor, n: usize) -> (Vec<String>, [u8; 32]) {
    let mut outcomes = Vec::with_capacity(MESSAGES);
    let mut seed = n as u64 * 7919 + 1;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut c = match n % 3 {
        0 => stress_canister(exec, 256 * 4096),
        1 => install(exec, canisters::KV, &[]),
        _ => install(exec, canisters::COUNTER, &[]),
    };
    for i in 0..MESSAGES {
        let r = match n % 3 {
            0 => {
                let offset = HEAP_START + next() % (255 * 4096);
                let data = vec![(next() % 251) as u8; (next() % 6000) as usize + 1];
                match i % 4 {
                    3 => update(exec, &mut c, "write_then_trap", Encode!(&offset, &8u64, &64u64, &9u8).unwrap()),
                    2 => query(exec, &c, "read_bytes", Encode!(&offset, &64u64).unwrap()),
                    _ => update(exec, &mut c, "write_bytes", Encode!(&offset, &data).unwrap()),
                }
            }
            1 => {
                let key = (next() % 64).to_le_bytes().to_vec();
                match i % 3 {
                    0 => update(exec, &mut c, "put", Encode!(&key, &vec![i as u8; i % 40]).unwrap()),
                    1 => query(exec, &c, "get", Encode!(&key).unwrap()),
                    _ => update(exec, &mut c, "delete", Encode!(&key).unwrap()),
                }
            }
            _ if i % 5 == 4 => update(exec, &mut c, "inc_then_trap", vec![]),
            _ => update(exec, &mut c, "inc", vec![]),
        };
        outcomes.push(format!("{:?} committed={} dirty={:?}", r.outcome, r.committed, r.dirty.heap));
    }
    let mut h = Sha256::new();
    for p in 0..heap_page_count(&c) {
        h.update(c.state().heap.get_page(page_delta::PageIndex(p)));
    }
    (outcomes, h.finalize().into())
}

#[test]
fn eight_threads_with_their_own_canisters_match_a_sequential_run() {
    for mode in [TrackingMode::ReadMapped, TrackingMode::Prefetch] {
        let exec = executor(mode, true);
        let sequential: Vec<_> = (0..THREADS).map(|n| workload(&exec, n)).collect();
        let parallel: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|n| {
                    s.spawn({
                        let exec = &exec;
                        move || workload(exec, n)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (n, (seq, par)) in sequential.iter().zip(&parallel).enumerate() {
            assert_eq!(seq.1, par.1, "{mode:?}: canister {n}'s heap differs");
            assert_eq!(seq.0, par.0, "{mode:?}: canister {n}'s outcomes differ");
        }
        // The workload really did things: traps, rejects-free replies, writes.
        assert!(sequential[0].0.iter().any(|o| o.contains("deliberate trap")));
        assert!(sequential[1].0.iter().any(|o| o.contains("committed=true")));
    }
}
