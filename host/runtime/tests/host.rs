//! The host runtime: rounds, the durable log, checkpoints, recovery, and
//! replay verification.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candid::{Decode, Encode};
use canister_host::*;
use sha2::{Digest, Sha256};

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);
const USER: Principal = Principal::anonymous();

fn config(workers: usize) -> HostConfig {
    HostConfig {
        workers,
        checkpoint_interval: 1_000_000,
        time: TimeSource::Deterministic { start: 1_000_000_000, step: 1_000 },
        ..HostConfig::default()
    }
}

fn nat(bytes: &[u8]) -> u64 {
    Decode!(bytes, u64).unwrap()
}

/// The canisters of the workload, created in this order.
struct Ids {
    counter: Principal,
    ledger: Principal,
    kv: Principal,
    stress: Principal,
}

fn setup(host: &Host) -> Ids {
    let create = |name: &str| host.create_canister(OWNER, vec![], Some(name.into())).unwrap();
    let ids = Ids { counter: create("counter"), ledger: create("ledger"), kv: create("kv"), stress: create("stress") };
    let install =
        |id, wasm: &[u8], arg: Vec<u8>| host.install_code(OWNER, id, InstallMode::Install, wasm.to_vec(), arg).unwrap();
    install(ids.counter, canisters::COUNTER, vec![]);
    install(ids.ledger, canisters::LEDGER, Encode!(&50u64, &1000u64).unwrap());
    install(ids.kv, canisters::KV, vec![]);
    install(ids.stress, canisters::MEMORY_STRESS, vec![]);
    host.update_call(ids.stress, USER, "grow", Encode!(&16u64).unwrap()).unwrap();
    ids
}

/// Step `i` of a deterministic workload: several calls submitted together,
/// so rounds hold messages for several canisters (and some that fail).
fn step(host: &Host, ids: &Ids, i: u64) {
    let mut calls = vec![
        host.submit_update(ids.counter, USER, if i % 7 == 6 { "inc_then_trap" } else { "inc" }, vec![]),
        host.submit_update(ids.ledger, USER, "transfer", Encode!(&(i % 50), &((i * 7) % 50), &(i % 300)).unwrap()),
        host.submit_update(
            ids.kv,
            USER,
            "put",
            Encode!(&(i % 40).to_le_bytes().to_vec(), &vec![i as u8; (i % 50) as usize]).unwrap(),
        ),
    ];
    let offset = testkit::HEAP_START + (i * 4099) % (15 * 65536);
    calls.push(host.submit_update(
        ids.stress,
        USER,
        "write_bytes",
        Encode!(&offset, &vec![(i % 255) as u8; 300]).unwrap(),
    ));
    for call in calls {
        let _ = call.wait();
    }
    if i % 10 == 9 {
        // Lifecycle operations are logged and replayed too.
        host.stop(OWNER, ids.kv).unwrap();
        let snapshot = host.take_snapshot(OWNER, ids.kv, None).unwrap();
        if i % 20 == 19 {
            host.load_snapshot(OWNER, ids.kv, snapshot).unwrap();
        }
        host.start(OWNER, ids.kv).unwrap();
        host.install_code(OWNER, ids.counter, InstallMode::UPGRADE, canisters::COUNTER.to_vec(), vec![]).unwrap();
    }
}

#[test]
fn calls_and_state_survive_close_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (ids, digest) = {
        let host = Host::open(tmp.path(), config(2)).unwrap();
        let ids = setup(&host);
        assert_eq!(nat(&host.update_call(ids.counter, USER, "inc", vec![]).unwrap()), 1);
        assert_eq!(nat(&host.update_call(ids.counter, USER, "inc", vec![]).unwrap()), 2);
        assert_eq!(nat(&host.query_call(ids.counter, USER, "get", vec![]).unwrap()), 2);
        let err = host.update_call(ids.counter, USER, "inc_then_trap", vec![]).unwrap_err();
        assert!(
            matches!(&err, CallError::Failed { code: ErrorCode::CanisterCalledTrap, message }
                if message.contains("deliberate trap")),
            "{err}"
        );
        assert_eq!(err.reject_code(), RejectCode::CanisterError);
        assert_eq!(host.resolve("ledger"), Some(ids.ledger));
        let digest = host.state_digest().unwrap();
        host.close().unwrap();
        (ids, digest)
    };
    let host = Host::open(tmp.path(), config(2)).unwrap();
    assert_eq!(host.recovery().replayed_rounds, 0, "close should have checkpointed");
    assert_eq!(host.state_digest().unwrap(), digest);
    assert_eq!(nat(&host.query_call(ids.counter, USER, "get", vec![]).unwrap()), 2);
    assert_eq!(nat(&host.update_call(ids.counter, USER, "inc", vec![]).unwrap()), 3);
    let info = host.canister_info(ids.counter).unwrap();
    assert_eq!((info.status, info.name.as_deref()), (CanisterStatus::Running, Some("counter")));
    assert!(info.methods().iter().any(|(m, k)| m == "inc" && *k == MethodKind::Update));
}

#[test]
fn recovery_equals_never_stopping() {
    for checkpoint_midway in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let (ids, digest) = {
            let host = Host::open(tmp.path(), config(2)).unwrap();
            let ids = setup(&host);
            for i in 0..20 {
                step(&host, &ids, i);
                if checkpoint_midway && i == 10 {
                    host.checkpoint().unwrap();
                }
            }
            (ids, host.state_digest().unwrap())
            // Dropped without close: no final checkpoint.
        };
        let host = Host::open(tmp.path(), config(2)).unwrap();
        assert!(host.recovery().replayed_rounds > 10, "{:?}", host.recovery());
        assert_eq!(host.recovery().checkpoint > 0, checkpoint_midway);
        assert_eq!(host.state_digest().unwrap(), digest, "checkpoint midway: {checkpoint_midway}");
        // And it carries on from there.
        for i in 20..25 {
            step(&host, &ids, i);
        }
        let digest = host.state_digest().unwrap();
        drop(host);
        assert_eq!(Host::open(tmp.path(), config(2)).unwrap().state_digest().unwrap(), digest);
    }
}

#[test]
fn results_do_not_depend_on_the_number_of_workers() {
    let tmp = tempfile::tempdir().unwrap();
    let digest = {
        let host = Host::open(tmp.path(), config(2)).unwrap();
        host.checkpoint().unwrap(); // an empty checkpoint to verify from
        let ids = setup(&host);
        for i in 0..30 {
            step(&host, &ids, i);
        }
        host.state_digest().unwrap()
    };
    let mut finals = Vec::new();
    for workers in [1, 2, 1] {
        let mut progress = Vec::new();
        let options = VerifyOptions { workers, progress_every: 10, ..VerifyOptions::default() };
        let report = verify(tmp.path(), options, &mut |p| progress.push((p.height, p.rounds, p.last_height))).unwrap();
        // Progress every 10 rounds, counting up towards the end of the log.
        assert_eq!(progress.len() as u64, report.rounds / 10);
        assert!(
            progress
                .iter()
                .enumerate()
                .all(|(i, (_, rounds, last))| *rounds == 10 * (i as u64 + 1) && *last == report.to_height)
        );
        assert_eq!(report.divergence, None, "{workers} workers");
        assert!(report.rounds > 30 && report.messages >= 120, "{report:?}");
        finals.push(report.final_state);
    }
    assert!(finals.iter().all(|f| *f == digest), "replays disagree with the live run");
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack.windows(from.len()).position(|w| w == from).expect("pattern present");
    [&haystack[..at], to, &haystack[at + from.len()..]].concat()
}

#[test]
fn verify_names_the_round_where_a_modified_module_diverges() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = {
        let host = Host::open(tmp.path(), config(2)).unwrap();
        host.checkpoint().unwrap();
        let ids = setup(&host);
        for i in 0..5 {
            step(&host, &ids, i);
        }
        ids
    };
    // The same ledger, except that its transfer method is gone: installs and
    // init behave identically, transfers do not.
    let modified = replace(canisters::LEDGER, b"canister_update transfer", b"canister_update transfeR");
    let ledger_hash: [u8; 32] = Sha256::digest(canisters::LEDGER).into();
    let options =
        VerifyOptions { workers: 2, replace_modules: HashMap::from([(ledger_hash, modified)]), ..Default::default() };
    let report = verify(tmp.path(), options, &mut |_| {}).unwrap();
    let divergence = report.divergence.expect("the modified module must diverge");
    // Rounds 1-9 set up (creates, installs, grow); the first transfer runs
    // in one of the rounds of step 0.
    assert!((10..=13).contains(&divergence.height), "{divergence}");
    assert_eq!(divergence.canister, Some(ids.ledger));
    assert!(divergence.to_string().contains(&format!("round {}", divergence.height)));
    assert!(divergence.to_string().contains(&ids.ledger.to_text()));
    assert_eq!(report.to_height, divergence.height, "the replay stops at the first divergence");
    // The unmodified history verifies.
    assert_eq!(verify(tmp.path(), VerifyOptions::default(), &mut |_| {}).unwrap().divergence, None);
}

#[test]
fn checkpoints_every_n_rounds_prune_old_checkpoints_and_log() {
    let tmp = tempfile::tempdir().unwrap();
    let config = HostConfig { checkpoint_interval: 5, keep_checkpoints: 2, wal_segment_bytes: 4096, ..config(2) };
    let host = Host::open(tmp.path(), config.clone()).unwrap();
    let ids = setup(&host);
    for i in 0..10 {
        step(&host, &ids, i);
    }
    // Checkpoints are written beside rounds; closing the host waits for
    // the one being written, so it is on disk before the directory is
    // listed.
    let digest = host.state_digest().unwrap();
    let height = host.height().height;
    drop(host);
    let mut checkpoints: Vec<String> = std::fs::read_dir(tmp.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    checkpoints.sort();
    assert_eq!(checkpoints.len(), 2, "{checkpoints:?}");
    let newest = u64::from_str_radix(checkpoints.last().unwrap(), 16).unwrap();
    assert!(newest.is_multiple_of(5) && height - newest < 5, "height {height}, newest {newest}");
    // Segments entirely before the oldest kept checkpoint are gone.
    let oldest = u64::from_str_radix(&checkpoints[0], 16).unwrap();
    let mut segments: Vec<u64> = std::fs::read_dir(tmp.path().join("log"))
        .unwrap()
        .map(|e| u64::from_str_radix(&e.unwrap().file_name().into_string().unwrap()[4..20], 16).unwrap())
        .collect();
    segments.sort();
    assert!(segments[0] > 1 && segments[0] <= oldest + 1, "segments {segments:?}, oldest checkpoint {oldest}");
    let host = Host::open(tmp.path(), config).unwrap();
    assert_eq!(host.state_digest().unwrap(), digest);
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_and_replays_more_log() {
    let tmp = tempfile::tempdir().unwrap();
    let config = HostConfig { checkpoint_interval: 6, keep_checkpoints: 3, ..config(2) };
    let digest = {
        let host = Host::open(tmp.path(), config.clone()).unwrap();
        let ids = setup(&host);
        for i in 0..8 {
            step(&host, &ids, i);
        }
        host.state_digest().unwrap()
    };
    let mut checkpoints: Vec<_> =
        std::fs::read_dir(tmp.path().join("checkpoints")).unwrap().map(|e| e.unwrap().path()).collect();
    checkpoints.sort();
    assert!(checkpoints.len() >= 2);
    let newest = checkpoints.last().unwrap();
    let heap = newest.join(format!("canisters/{}/stable.bin", canister_id(0).to_text()));
    std::fs::remove_file(&heap).unwrap();
    std::fs::write(&heap, b"not the right contents").unwrap();
    let host = Host::open(tmp.path(), config).unwrap();
    let recovery = host.recovery();
    assert_eq!(recovery.skipped_checkpoints.len(), 1, "{recovery:?}");
    assert!(recovery.checkpoint < recovery.skipped_checkpoints[0], "{recovery:?}");
    assert!(recovery.replayed_rounds >= 6, "{recovery:?}");
    assert_eq!(host.state_digest().unwrap(), digest);
}

#[test]
fn a_torn_log_tail_is_truncated_and_a_flipped_bit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let digest = {
        let host = Host::open(tmp.path(), config(2)).unwrap();
        let ids = setup(&host);
        for i in 0..5 {
            step(&host, &ids, i);
        }
        host.state_digest().unwrap()
    };
    let segment = std::fs::read_dir(tmp.path().join("log")).unwrap().next().unwrap().unwrap().path();
    let original = std::fs::read(&segment).unwrap();
    // A torn append: half a record header.
    let mut torn = original.clone();
    torn.extend_from_slice(b"CHRD\x10\x00");
    std::fs::write(&segment, &torn).unwrap();
    {
        let host = Host::open(tmp.path(), config(2)).unwrap();
        assert_eq!(host.recovery().truncated_log_bytes, 6);
        assert_eq!(host.state_digest().unwrap(), digest);
    }
    assert_eq!(std::fs::read(&segment).unwrap(), original, "the torn tail was not cut off exactly");
    // A flipped bit in the middle: refused, with the segment and offset.
    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 0x04;
    std::fs::write(&segment, &flipped).unwrap();
    let err = Host::open(tmp.path(), config(2)).err().expect("a corrupt log must be refused").to_string();
    assert!(err.contains(&segment.display().to_string()) && err.contains("corrupt at byte"), "{err}");
}

#[test]
fn queries_run_beside_a_long_round_and_never_see_half_of_one() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::open(tmp.path(), config(2)).unwrap());
    let a = host.create_canister(OWNER, vec![], None).unwrap();
    let b = host.create_canister(OWNER, vec![], None).unwrap();
    let spinner = host.create_canister(OWNER, vec![], None).unwrap();
    for id in [a, b] {
        host.install_code(OWNER, id, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    }
    host.install_code(OWNER, spinner, InstallMode::Install, canisters::MEMORY_STRESS.to_vec(), vec![]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let worker = {
        let (host, done) = (host.clone(), done.clone());
        std::thread::spawn(move || {
            for _ in 0..30 {
                // Both counters move in the same round: they are submitted
                // while the scheduler runs a round of spinning (tens of
                // milliseconds), so the next round gathers both.
                let spin = host.submit_update(spinner, USER, "spin", Encode!(&30_000_000u64).unwrap());
                std::thread::sleep(std::time::Duration::from_millis(3));
                let (x, y) = (host.submit_update(a, USER, "inc", vec![]), host.submit_update(b, USER, "inc", vec![]));
                spin.wait().unwrap();
                x.wait().unwrap();
                y.wait().unwrap();
            }
            host.update_call(spinner, USER, "spin", Encode!(&400_000_000u64).unwrap()).unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };
    // Each round moves both counters. Rounds may complete between two
    // queries, so the counter read second may be ahead, but never behind:
    // that would mean a round was visible for one canister and not the other.
    let (mut queries, mut during_spin) = (0, 0);
    while !done.load(Ordering::SeqCst) {
        let (first, second) = if queries % 2 == 0 { (a, b) } else { (b, a) };
        let x = nat(&host.query_call(first, USER, "get", vec![]).unwrap());
        let y = nat(&host.query_call(second, USER, "get", vec![]).unwrap());
        assert!(y >= x, "a query saw half of a round: {x} then {y}");
        queries += 1;
        if x == 30 {
            during_spin += 1;
        }
    }
    worker.join().unwrap();
    assert!(queries > 10 && during_spin > 0, "{queries} queries, {during_spin} while the spin round ran");
}

#[test]
fn stopped_canisters_and_inspect_message_through_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::open(tmp.path(), config(2)).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::SYSAPI.to_vec(), vec![]).unwrap();
    let err = host.update_call(id, USER, "refused_by_inspect", vec![]).unwrap_err();
    assert!(err.to_string().contains("did not accept"), "{err}");
    host.update_call(id, USER, "inc", vec![]).unwrap();
    host.stop(OWNER, id).unwrap();
    assert!(host.update_call(id, USER, "inc", vec![]).unwrap_err().to_string().contains("stopped"));
    assert!(host.query_call(id, USER, "counter", vec![]).unwrap_err().to_string().contains("stopped"));
    let err = host.delete_canister(USER, id).unwrap_err().to_string();
    assert!(err.contains("not a controller"), "{err}");
    host.delete_canister(OWNER, id).unwrap();
    assert!(host.query_call(id, USER, "counter", vec![]).unwrap_err().to_string().contains("does not exist"));
    assert!(host.canister_log(id).is_err());
}

/// A round in which the host runs out of mappings (`vm.max_map_count`) is
/// not applied and not logged: the failing canister's call is refused as
/// transient, the other canisters' calls still complete, the host keeps
/// serving, and a restart replays the log without meeting the failure.
#[test]
fn a_host_failure_is_not_an_outcome_and_never_reaches_the_log() {
    const TEST: &str = "a_host_failure_is_not_an_outcome_and_never_reaches_the_log";
    if testkit::child_role().as_deref() == Some("enomem") {
        host_failure_child();
        println!("child-ok");
        return;
    }
    // Exhausting vm.max_map_count breaks every mmap in the process, so the
    // scenario runs in its own.
    let out = testkit::in_child(TEST, "enomem");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("child-ok"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

fn host_failure_child() {
    let tmp = tempfile::tempdir().unwrap();
    let writes = testkit::writes_to_exhaust_mappings();
    let (counter, stress, height) = {
        let host = Host::open(tmp.path(), config(2)).unwrap();
        let create = |name: &str| host.create_canister(OWNER, vec![], Some(name.into())).unwrap();
        let (counter, stress) = (create("counter"), create("stress"));
        host.install_code(OWNER, counter, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
        host.install_code(OWNER, stress, InstallMode::Install, canisters::MEMORY_STRESS.to_vec(), vec![]).unwrap();
        let pages = (writes * 2 * 4096).div_ceil(65536);
        host.update_call(stress, USER, "grow", Encode!(&pages).unwrap()).unwrap();
        let height = host.height().height;
        // Writing every other page needs more mappings than the process may
        // have; the counter's call is submitted beside it.
        let sweep = Encode!(&testkit::HEAP_START, &writes, &8192u64, &false, &1u8).unwrap();
        let failing = host.submit_update(stress, USER, "write_pages", sweep);
        let beside = host.submit_update(counter, USER, "inc", vec![]);
        match failing.wait() {
            Err(e @ CallError::NotApplied(_)) => {
                assert_eq!(e.reject_code(), RejectCode::SysTransient);
                assert!(e.to_string().contains("vm.max_map_count"), "{e}");
            }
            other => panic!("expected the round not to be applied, got {other:?}"),
        }
        assert_eq!(nat(&beside.wait().unwrap()), 1);
        // Only the counter's round was applied and logged.
        assert_eq!(host.height().height, height + 1);
        assert_eq!(nat(&host.update_call(counter, USER, "inc", vec![]).unwrap()), 2);
        let probe = Encode!(&testkit::HEAP_START, &8u64).unwrap();
        assert_eq!(host.query_call(stress, USER, "read_bytes", probe).unwrap(), Encode!(&vec![0u8; 8]).unwrap());
        (counter, stress, host.height().height)
        // Dropped without a checkpoint: the restart replays the log.
    };
    let host = Host::open(tmp.path(), config(2)).unwrap();
    assert_eq!(host.height().height, height);
    assert_eq!(nat(&host.query_call(counter, USER, "get", vec![]).unwrap()), 2);
    assert!(host.canister_info(stress).is_ok());
}

#[test]
fn an_invalid_configuration_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, HostConfig); 4] = [
        ("checkpoint_interval", HostConfig { checkpoint_interval: 0, ..config(1) }),
        ("wal_segment_bytes", HostConfig { wal_segment_bytes: 0, ..config(1) }),
        ("workers", HostConfig { workers: 0, ..config(1) }),
        (
            "execution.update_instruction_limit",
            HostConfig {
                execution: ExecutionConfig { update_instruction_limit: 0, ..ExecutionConfig::default() },
                ..config(1)
            },
        ),
    ];
    for (name, bad) in cases {
        match Host::open(tmp.path(), bad) {
            Err(e @ HostError::InvalidConfig(_)) => assert!(e.to_string().contains(name), "{e}"),
            Err(other) => panic!("{name}: expected an invalid configuration, got {other}"),
            Ok(_) => panic!("{name}: an invalid configuration was accepted"),
        }
    }
    // Nothing was created on the way.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

fn small_limits() -> HostConfig {
    HostConfig {
        max_ingress_bytes: 1 << 20,
        max_round_bytes: 3 << 20,
        execution: ExecutionConfig { max_module_bytes: 1 << 20, ..ExecutionConfig::default() },
        ..config(2)
    }
}

/// Requests beyond the limits are refused before they reach a round, so
/// nothing is logged for them and the host goes on serving.
#[test]
fn oversized_requests_are_refused_before_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::open(tmp.path(), small_limits()).unwrap();
    let counter = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, counter, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    let height = host.height().height;
    let err = host.update_call(counter, USER, "inc", vec![0; (1 << 20) + 1]).unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::InvalidManagementPayload), "{err}");
    let module = [canisters::COUNTER, &vec![0; 1 << 20]].concat();
    let err = host.install_code(OWNER, counter, InstallMode::Reinstall, module, vec![]).unwrap_err();
    assert!(err.to_string().contains("the module is"), "{err}");
    let many = vec![OWNER; MAX_CONTROLLERS + 1];
    assert!(host.create_canister(OWNER, many, None).is_err());
    assert!(host.create_canister(OWNER, vec![], Some("n".repeat(MAX_NAME_BYTES + 1))).is_err());
    assert_eq!(host.height().height, height, "a refused request reached a round");
    assert_eq!(nat(&host.update_call(counter, USER, "inc", vec![]).unwrap()), 1);
}

/// Rounds are bounded by bytes as well as by operations: no logged round
/// holds more than `max_round_bytes` of operations, however many large
/// calls arrive at once.
#[test]
fn rounds_are_bounded_by_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small_limits();
    let bound = config.max_round_bytes;
    {
        let host = Host::open(tmp.path(), config).unwrap();
        let counter = host.create_canister(OWNER, vec![], None).unwrap();
        host.install_code(OWNER, counter, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
        let calls: Vec<_> = (0..10).map(|_| host.submit_update(counter, USER, "inc", vec![7; 1 << 20])).collect();
        for call in calls {
            call.wait().unwrap();
        }
    }
    let (wal, found) = wal::Wal::open_read_only(&tmp.path().join("log")).unwrap();
    for record in &found.records {
        let round = round::RoundRecord::decode(&wal.read(record).unwrap()).unwrap();
        let bytes: usize = round.operations.iter().map(round::Operation::size_bytes).sum();
        assert!(bytes <= bound, "round {} holds {bytes} bytes of operations", round.height);
    }
}

/// A gzip-compressed module installs, and its hash is that of the bytes
/// installed, as on the IC.
#[test]
fn gzip_modules_install() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(canisters::COUNTER).unwrap();
    let gz = gz.finish().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::open(tmp.path(), config(1)).unwrap();
    let counter = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, counter, InstallMode::Install, gz.clone(), vec![]).unwrap();
    assert_eq!(nat(&host.update_call(counter, USER, "inc", vec![]).unwrap()), 1);
    assert_eq!(host.canister_info(counter).unwrap().module_hash(), Some(Sha256::digest(&gz).into()));
    host.close().unwrap();
    let host = Host::open(tmp.path(), config(1)).unwrap();
    assert_eq!(nat(&host.update_call(counter, USER, "inc", vec![]).unwrap()), 2);
}

/// A module compiles on the installer's thread, before its round: other
/// canisters' calls complete while it compiles.
#[test]
fn compilation_never_stalls_rounds() {
    let functions: String =
        (0..40_000).map(|i| format!("(func (result i32) (i32.add (i32.const {i}) (i32.const 1)))")).collect();
    let big = wat::parse_str(format!("(module (memory 1) {functions})")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::open(tmp.path(), config(2)).unwrap());
    let counter = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, counter, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    let big_id = host.create_canister(OWNER, vec![], None).unwrap();
    let installed = Arc::new(AtomicBool::new(false));
    let installer = {
        let (host, installed) = (host.clone(), installed.clone());
        std::thread::spawn(move || {
            host.install_code(OWNER, big_id, InstallMode::Install, big, vec![]).unwrap();
            installed.store(true, Ordering::SeqCst);
        })
    };
    while host.executor().compilations_in_progress() == 0 {
        assert!(!installed.load(Ordering::SeqCst), "the install finished before it was seen compiling");
        std::thread::yield_now();
    }
    assert_eq!(nat(&host.update_call(counter, USER, "inc", vec![]).unwrap()), 1);
    assert!(!installed.load(Ordering::SeqCst), "the update waited for the compilation");
    installer.join().unwrap();
}

/// A query that recurses until wasm's stack runs out traps, whatever the
/// stack of the thread that asked: queries run on the host's threads.
#[test]
fn stack_exhaustion_in_a_query_is_a_trap_on_any_caller_thread() {
    const DEEP: &str = r#"(module
        (import "ic0" "msg_reply" (func $reply))
        (memory 1)
        (func $down (param i64) (result i64)
            (if (result i64) (i64.eqz (local.get 0))
                (then (i64.const 0))
                (else (i64.add (i64.const 1) (call $down (i64.sub (local.get 0) (i64.const 1)))))))
        (func (export "canister_query deep") (drop (call $down (i64.const 100000000))) (call $reply))
        (func (export "canister_update deep_update") (drop (call $down (i64.const 100000000))) (call $reply)))"#;
    let tmp = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::open(tmp.path(), config(1)).unwrap());
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, wat::parse_str(DEEP).unwrap(), vec![]).unwrap();
    let small = {
        let host = host.clone();
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || host.query_call(id, USER, "deep", vec![]))
            .unwrap()
    };
    let err = small.join().expect("the caller's thread survived").unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::CanisterTrapped), "{err}");
    assert!(err.to_string().contains("stack"), "{err}");
    let err = host.update_call(id, USER, "deep_update", vec![]).unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::CanisterTrapped), "{err}");
}
