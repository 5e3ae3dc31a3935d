//! Every implemented System API import, through the `sysapi` canister, and a
//! Motoko-shaped module that must run unmodified.

use candid::{Decode, Encode, Nat};
use canister_host::*;
use embedder::*;
use testkit::*;

struct Fixture {
    exec: Executor,
    record: Canister,
    owner: Principal,
}

const TIME: u64 = 1_700_000_000_000_000_000;

impl Fixture {
    fn new(config: ExecutionConfig) -> Fixture {
        let exec = Executor::new(engine(), config);
        let owner = Principal::from_slice(&[0xab; 29]);
        let mut record = Canister::new(canister_id(42), None, vec![owner]);
        record.install_code(&exec, &owner, InstallMode::Install, canisters::SYSAPI, b"raw init bytes", TIME).unwrap();
        Fixture { exec, record, owner }
    }

    fn call(&mut self, method: &str, arg: Vec<u8>) -> MessageResult {
        self.record.update(&self.exec, &self.owner, method, &arg, TIME).unwrap()
    }

    fn ask(&self, method: &str, arg: Vec<u8>) -> MessageResult {
        self.record.query(&self.exec, &Principal::anonymous(), method, &arg, TIME).unwrap()
    }

    /// The message of the trap (of any kind) that `method` ends in.
    fn trap(&mut self, method: &str, arg: Vec<u8>) -> String {
        match self.call(method, arg).outcome {
            Err(e) if e.trap_message().is_some() => e.trap_message().unwrap_or_default().to_string(),
            other => panic!("{method}: expected a trap, got {other:?}"),
        }
    }

    fn logged(&self, text: &str) -> bool {
        self.record.canister_log().any(|l| l.content == text.as_bytes())
    }
}

fn default() -> Fixture {
    Fixture::new(ExecutionConfig::default())
}

#[test]
fn init_sees_its_argument_and_installer() {
    let f = default();
    assert_eq!(reply::<Vec<u8>>(&f.ask("init_arg", vec![])), b"raw init bytes");
    assert_eq!(reply::<Vec<u8>>(&f.ask("installer", vec![])), f.owner.as_slice());
    assert!(f.logged("init"));
}

#[test]
fn message_identity_imports() {
    let mut f = default();
    assert_eq!(reply::<Vec<u8>>(&f.call("caller", vec![])), f.owner.as_slice());
    assert_eq!(reply::<Vec<u8>>(&f.ask("caller_query", vec![])), Principal::anonymous().as_slice());
    assert_eq!(reply::<Vec<u8>>(&f.ask("self_id", vec![])), canister_id(42).as_slice());
    let big = vec![0x5a; 65536];
    assert_eq!(reply::<Vec<u8>>(&f.call("echo", Encode!(&big).unwrap())), big);
    assert_eq!(reply::<u32>(&f.ask("status", vec![])), 1);
    assert_eq!(reply::<u64>(&f.ask("version", vec![])), f.record.version());
    assert_eq!(reply::<u64>(&f.ask("time_now", vec![])), TIME);
    assert_eq!(reply::<u64>(&f.call("deadline", vec![])), 0);
    assert_eq!(reply::<u32>(&f.ask("replicated", vec![])), 0);
    assert_eq!(reply::<u32>(&f.call("replicated_update", vec![])), 1);
}

#[test]
fn performance_counters_count_this_message_deterministically() {
    let mut f = default();
    let run = |f: &mut Fixture, n: u64| {
        let r = f.call("perf", Encode!(&n).unwrap());
        (Decode!(r.reply().unwrap(), u64, u64).unwrap(), r.stats.instructions)
    };
    let ((small, small_legacy), _) = run(&mut f, 10);
    let ((large, large_legacy), total) = run(&mut f, 100_000);
    assert!(large > small + 100_000, "{small} vs {large}");
    assert!(large_legacy >= large && large_legacy < large + 1000, "{large} vs {large_legacy}");
    assert!(total > large);
    assert!(small_legacy >= small);
    assert_eq!(run(&mut f, 100_000).0, (large, large_legacy), "counters must not depend on timing");
    assert!(f.trap("perf_invalid", vec![]).contains("unknown counter type 7"));
}

#[test]
fn cycles_are_a_fixed_balance_and_nothing_is_attached() {
    let mut f = Fixture::new(ExecutionConfig { cycle_balance: 123_456_789, ..ExecutionConfig::default() });
    let r = f.call("cycles", vec![]);
    let (balance, balance128, available, available128, accepted, accepted128) =
        Decode!(r.reply().unwrap(), u64, Vec<u8>, u64, Vec<u8>, u64, Vec<u8>).unwrap();
    assert_eq!(balance, 123_456_789);
    assert_eq!(balance128, 123_456_789u128.to_le_bytes());
    assert_eq!((available, accepted), (0, 0));
    assert_eq!((available128, accepted128), (vec![0; 16], vec![0; 16]));
    // Refunds exist only in callbacks.
    for method in ["cycles_refunded", "cycles_refunded128"] {
        assert!(f.trap(method, vec![]).contains("cannot be called from an update method"), "{method}");
    }
    // A balance that does not fit the 64-bit call.
    let mut f = Fixture::new(ExecutionConfig { cycle_balance: u128::from(u64::MAX) + 1, ..ExecutionConfig::default() });
    assert!(f.trap("cycles", vec![]).contains("canister_cycle_balance128"));
}

#[test]
fn certified_data_is_stored_and_no_certificate_is_present() {
    let mut f = default();
    f.call("set_certified_data", Encode!(&vec![7u8; 32]).unwrap());
    assert_eq!(f.record.state().certified_data, vec![7; 32]);
    assert!(f.trap("set_certified_data", Encode!(&vec![7u8; 33]).unwrap()).contains("exceeds the maximum of 32"));
    assert_eq!(f.record.state().certified_data, vec![7; 32]);
    assert_eq!(reply::<u32>(&f.ask("certificate_present", vec![])), 0);
    for method in ["certificate_size", "certificate_copy"] {
        let r = f.ask(method, vec![]);
        assert!(
            matches!(&r.outcome, Err(ExecutionError::ContractViolation(m)) if m.contains("no data certificate")),
            "{:?}",
            r.outcome
        );
    }
}

#[test]
fn debug_print_and_trap_go_to_the_canister_log() {
    let mut f = default();
    f.call("print", Encode!(&"hello, log").unwrap());
    assert!(f.logged("hello, log"));
    // As on the IC: the log holds the canister's own message, and the
    // outcome's code says it called ic0.trap.
    assert_eq!(f.trap("trap_with", Encode!(&"boom").unwrap()), "boom");
    assert!(f.logged("[TRAP]: boom"));
    let r = f.call("trap_with", Encode!(&"again").unwrap());
    assert_eq!(r.outcome.unwrap_err().code(), ErrorCode::CanisterCalledTrap);
    let indices: Vec<u64> = f.record.canister_log().map(|l| l.index).collect();
    assert!(indices.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn the_global_timer_is_set_and_fires_once_due() {
    let mut f = default();
    assert_eq!(reply::<u64>(&f.call("set_timer", Encode!(&(TIME + 100)).unwrap())), 0);
    assert_eq!(reply::<u64>(&f.call("set_timer", Encode!(&(TIME + 200)).unwrap())), TIME + 100);
    assert!(f.record.run_timer_if_due(&f.exec, TIME + 199).is_none());
    assert_eq!(reply::<u64>(&f.ask("timer_fired", vec![])), 0);
    let r = f.record.run_timer_if_due(&f.exec, TIME + 200).unwrap();
    assert!(r.outcome.is_ok(), "{:?}", r.outcome);
    assert_eq!(reply::<u64>(&f.ask("timer_fired", vec![])), 1);
    assert_eq!(f.record.state().global_timer, 0, "a fired timer is cleared");
    assert!(f.record.run_timer_if_due(&f.exec, TIME + 300).is_none());
}

#[test]
fn is_controller_checks_principals() {
    let f = default();
    assert!(reply::<bool>(&f.ask("is_controller", Encode!(&f.owner.as_slice().to_vec()).unwrap())));
    assert!(!reply::<bool>(&f.ask("is_controller", Encode!(&vec![1u8, 2, 3]).unwrap())));
    let r = f.ask("is_controller", Encode!(&vec![0u8; 30]).unwrap());
    assert!(matches!(&r.outcome, Err(ExecutionError::ContractViolation(m)) if m.contains("not a principal")));
}

#[test]
fn stable_memory_grows_reads_writes_and_rolls_back() {
    let mut f = Fixture::new(ExecutionConfig { stable_limit_bytes: 10 * 65536, ..ExecutionConfig::default() });
    assert_eq!(reply::<u64>(&f.ask("stable_size", vec![])), 0);
    assert_eq!(reply::<i32>(&f.call("stable_grow", Encode!(&2u32).unwrap())), 0);
    assert_eq!(reply::<u64>(&f.ask("stable_size", vec![])), 2);
    f.call("stable_write", Encode!(&65534u32, &b"across pages".to_vec()).unwrap());
    assert_eq!(reply::<Vec<u8>>(&f.ask("stable_read", Encode!(&65534u32, &12u32).unwrap())), b"across pages");
    assert_eq!(reply::<i64>(&f.call("stable64_grow", Encode!(&3u64).unwrap())), 2);
    assert_eq!(reply::<u64>(&f.ask("stable64_size", vec![])), 5);
    // The configured cap: 10 pages.
    assert_eq!(reply::<i64>(&f.call("stable64_grow", Encode!(&6u64).unwrap())), -1);
    assert_eq!(reply::<i32>(&f.call("stable_grow", Encode!(&5u32).unwrap())), 5);
    assert_eq!(reply::<i32>(&f.call("stable_grow", Encode!(&1u32).unwrap())), -1);
    let data = vec![0xcd; 100_000];
    f.call("stable64_write", Encode!(&200_000u64, &data).unwrap());
    assert_eq!(reply::<Vec<u8>>(&f.ask("stable64_read", Encode!(&200_000u64, &100_000u64).unwrap())), data);
    // Out of bounds traps; a trap after a write undoes it.
    assert!(
        f.trap("stable64_write", Encode!(&(10 * 65536 - 1u64), &vec![1u8, 2]).unwrap())
            .contains("outside the stable memory")
    );
    f.trap("stable64_write_then_trap", Encode!(&200_000u64, &vec![0u8; 10]).unwrap());
    assert_eq!(reply::<Vec<u8>>(&f.ask("stable64_read", Encode!(&200_000u64, &10u64).unwrap())), vec![0xcd; 10]);
    assert_eq!(f.record.state().stable_pages, WasmPages(10));
}

#[test]
fn replies_and_rejects_follow_the_call_context_rules() {
    let mut f = default();
    let r = f.call("reject", Encode!(&"not today").unwrap());
    assert_eq!(r.outcome, Ok(Response::Reject("not today".into())));
    assert!(f.trap("reply_twice", vec![]).contains("at most once"));
    let before = reply::<u64>(&f.ask("counter", vec![]));
    let r = f.call("no_reply", vec![]);
    assert_eq!(r.outcome, Err(ExecutionError::DidNotReply));
    assert_eq!(reply::<u64>(&f.ask("counter", vec![])), before + 1, "state changes of a non-replying update are kept");
    assert!(f.trap("method_name", vec![]).contains("cannot be called from an update method"));
    for (method, import) in [
        ("reject_code", "msg_reject_code"),
        ("reject_msg_size", "msg_reject_msg_size"),
        ("reject_msg_copy", "msg_reject_msg_copy"),
    ] {
        assert_eq!(f.trap(method, vec![]), format!("ic0.{import} cannot be called from an update method"));
    }
    // A call started but never performed is not made.
    let r = f.call("call_out", vec![]);
    assert!(r.reply().is_some() && r.calls.is_empty(), "{:?}", r.outcome);
}

#[test]
fn inspect_message_sees_the_method_and_can_refuse() {
    let mut f = default();
    let anyone = Principal::anonymous();
    f.record.inspect(&f.exec, &anyone, "inc", &[], TIME).unwrap();
    let err = f.record.inspect(&f.exec, &anyone, "refused_by_inspect", &[], TIME).unwrap_err();
    assert!(err.to_string().contains("did not accept"), "{err}");
    // Without inspection the method itself works.
    assert!(f.call("refused_by_inspect", vec![]).outcome.is_ok());
}

#[test]
fn upgrade_hooks_run_with_stable_memory_in_between() {
    let mut f = default();
    for _ in 0..3 {
        f.call("inc", vec![]);
    }
    let (exec, owner) = (&f.exec, f.owner);
    f.record.install_code(exec, &owner, InstallMode::UPGRADE, canisters::SYSAPI, b"after", TIME).unwrap();
    assert_eq!(reply::<u64>(&f.ask("restored", vec![])), 3);
    assert_eq!(reply::<u64>(&f.ask("counter", vec![])), 0);
    assert_eq!(reply::<Vec<u8>>(&f.ask("post_upgrade_arg", vec![])), b"after");
    f.call("set_fail_pre_upgrade", Encode!(&true).unwrap());
    let err = f.record.install_code(&f.exec, &owner, InstallMode::UPGRADE, canisters::SYSAPI, b"x", TIME).unwrap_err();
    assert!(err.to_string().contains("pre_upgrade: deliberate trap"), "{err}");
    assert_eq!(reply::<Vec<u8>>(&f.ask("post_upgrade_arg", vec![])), b"after");
}

#[test]
fn a_motoko_shaped_module_runs_unmodified() {
    let exec = executor(TrackingMode::ReadMapped, true);
    let owner = Principal::from_slice(&[3]);
    let anyone = Principal::anonymous();
    let mut record = Canister::new(canister_id(7), None, vec![owner]);
    record
        .install_code(
            &exec,
            &owner,
            InstallMode::Install,
            canisters::MOTOKO_STYLE,
            &Encode!(&None::<String>).unwrap(),
            TIME,
        )
        .unwrap();
    let greet = |record: &Canister, name: &str| {
        reply::<String>(&record.query(&exec, &anyone, "greet", &Encode!(&name).unwrap(), TIME).unwrap())
    };
    assert_eq!(greet(&record, "World"), "Hello, World!");
    let r = record.update(&exec, &anyone, "count_greetings", &Encode!(&"a").unwrap(), TIME).unwrap();
    assert_eq!(reply::<Nat>(&r), Nat::from(1u32));
    // The async helper calls itself through the legacy call_simple: the
    // call is made (0), with the arguments it gave.
    let r = record.update(&exec, &anyone, "__motoko_async_helper", &Encode!().unwrap(), TIME).unwrap();
    assert_eq!(reply::<u32>(&r), 0);
    assert_eq!(r.calls.len(), 1);
    assert_eq!(
        (r.calls[0].method.as_str(), r.calls[0].callee.as_slice()),
        ("__motoko_async_helper", record.id().as_slice())
    );
    assert_eq!(r.calls[0].arg, b"DIDL\0\0");
    // ...and the canister keeps working.
    record.update(&exec, &anyone, "set_greeting", &Encode!(&"Hi, ").unwrap(), TIME).unwrap();
    assert_eq!(greet(&record, "there"), "Hi, there!");
    let r = record.update(&exec, &anyone, "count_greetings", &Encode!(&"b").unwrap(), TIME).unwrap();
    assert_eq!(reply::<Nat>(&r), Nat::from(2u32));
    record
        .install_code(
            &exec,
            &owner,
            InstallMode::UPGRADE,
            canisters::MOTOKO_STYLE,
            &Encode!(&Some("Yo, ")).unwrap(),
            TIME,
        )
        .unwrap();
    assert_eq!(greet(&record, "again"), "Yo, again!");
    let interface = reply::<String>(
        &record.query(&exec, &anyone, "__get_candid_interface_tmp_hack", &Encode!().unwrap(), TIME).unwrap(),
    );
    assert!(interface.contains("greet"), "{interface}");
}
