//! The `canister-host` binary end to end: every command through the real
//! binary, in a fresh state directory, with the exit codes and messages a
//! user sees.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

mod common;

const LEDGER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/ledger.wasm");
const COUNTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/counter.wasm");
const MOTOKO_COUNTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/motoko/counter.wasm");
const CALLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/calls.wasm");
const KV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/kv.wasm");
const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/fixtures/assetstorage.wasm.gz");

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin!("canister-host").to_path_buf()
}

/// The binary, on state directory `dir`, with a clean environment.
fn ch(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("CANISTER_HOST_DIR", dir).env_remove("RUST_LOG").timeout(Duration::from_secs(120));
    cmd
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

fn json(cmd: &mut Command) -> serde_json::Value {
    serde_json::from_str(&stdout(cmd.arg("--json"))).unwrap()
}

/// A state directory with the ledger installed as `ledger`: 100 accounts
/// of 1000.
fn with_ledger() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ch(dir.path()).args(["create", "--name", "ledger"]).assert().success();
    ch(dir.path())
        .args(["install", "ledger", "--wasm", LEDGER, "--argument", "(100, 1000)"])
        .assert()
        .success()
        .stdout(contains("installed"));
    dir
}

#[test]
fn calls_are_typed_by_the_modules_candid_metadata() {
    let dir = with_ledger();
    let d = dir.path();
    // Plain numbers become nat64 because the interface says so.
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 30)"]).assert().success().stdout("(970 : nat64)\n");
    ch(d).args(["call", "ledger", "balance", "(2)"]).assert().success().stdout("(1_030 : nat64)\n");
    ch(d).args(["query", "ledger", "balance", "(2)", "--output", "idl"]).assert().success().stdout("(1_030 : nat64)\n");
    let reply = json(ch(d).args(["call", "ledger", "balance", "(2)", "--output", "json"]));
    assert_eq!(reply["reply"], serde_json::json!(["1030"]));
    // DIDL, no types table, one nat64 (0x78) of 1030.
    ch(d)
        .args(["call", "ledger", "balance", "(2)", "--output", "raw"])
        .assert()
        .success()
        .stdout("4449444c0001780604000000000000\n");
    // A raw argument, as hex.
    let arg = "4449444c000178".to_string() + "0200000000000000";
    ch(d).args(["call", "ledger", "balance", &arg, "--type", "raw"]).assert().success().stdout("(1_030 : nat64)\n");
    // From a file and from stdin.
    let file = d.join("arg.did");
    std::fs::write(&file, "(2)").unwrap();
    ch(d)
        .args(["call", "ledger", "balance", "--argument-file"])
        .arg(&file)
        .assert()
        .success()
        .stdout("(1_030 : nat64)\n");
    ch(d)
        .args(["call", "ledger", "balance", "--argument-file", "-"])
        .write_stdin("(1)")
        .assert()
        .success()
        .stdout("(970 : nat64)\n");
}

#[test]
fn a_gzipped_module_from_the_ics_toolchain_installs_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let id = json(ch(dir.path()).args(["create"]))["canister_id"].as_str().unwrap().to_string();
    ch(dir.path()).args(["install", &id, "--wasm", ASSETS]).assert().success();
    ch(dir.path()).args(["call", &id, "api_version"]).assert().success().stdout("(1 : nat16)\n");
}

#[test]
fn without_an_interface_types_are_inferred_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ch(d).args(["create", "--name", "c"]).assert().success();
    ch(d).args(["install", "c", "--wasm", COUNTER]).assert().success();
    ch(d).args(["call", "c", "inc"]).assert().success().stdout("(1 : nat64)\n").stderr(contains("inferred"));
    ch(d).args(["-q", "call", "c", "inc"]).assert().success().stdout("(2 : nat64)\n").stderr("");
    // An interface given on the command line.
    let did = d.join("counter.did");
    std::fs::write(&did, "service : { inc : () -> (nat64); get : () -> (nat64) query }").unwrap();
    ch(d).args(["call", "c", "get", "--candid"]).arg(&did).assert().success().stdout("(2 : nat64)\n").stderr("");
}

#[test]
fn bad_input_gets_a_clear_message_and_its_exit_code() {
    let dir = with_ledger();
    let d = dir.path();
    let usage = |args: &[&str], message: &str| {
        ch(d).args(args).assert().code(2).stderr(contains(message));
    };
    usage(&["install", "ledger", "--wasm", "/no/such/file.wasm"], "cannot read the module /no/such/file.wasm");
    let not_wasm = d.join("not.wasm");
    std::fs::write(&not_wasm, "hello").unwrap();
    usage(&["install", "ledger", "--wasm", not_wasm.to_str().unwrap()], "is not a WebAssembly module");
    usage(&["call", "ledger", "transfer", "(1, 2"], "is not valid Candid");
    usage(&["call", "ledger", "transfer", "(1, 2, \"x\")"], "does not match the expected type (nat64, nat64, nat64)");
    usage(&["call", "ledger", "no_such_method"], "has no method \"no_such_method\"");
    usage(&["call", "nope", "balance", "(1)"], "there is no canister named \"nope\"");
    usage(&["call", "ledger", "balance", "zz", "--type", "raw"], "the raw argument is not hex");
    usage(&["call", "ledger", "balance", "--argument-file", "/no/such/arg"], "cannot read the argument file");
    usage(&["--sender", "not-a-principal", "create"], "is not a principal");
    usage(&["frobnicate"], "unrecognized subcommand");
    usage(&["create", "--name", ""], "a value is required");
    usage(&["install", "ledger", "--wasm", "/tmp"], "cannot read the module /tmp");
    usage(&["snapshot", "download", "ledger", "0", "--dir", "/proc/no/such"], "cannot create /proc/no/such");
    usage(&["demo", "--seconds", "1e300"], "--seconds must be");
    usage(&["demo", "--threads", "100000"], "1 to 1024 threads");
    usage(&["demo", "--accounts", "1"], "at least 2 accounts");
    usage(
        &["install", "ledger", "--wasm", LEDGER, "--mode", "install", "--skip-pre-upgrade"],
        "apply to upgrades only",
    );
    // The canister traps: exit 4, with the IC's code and the trap message.
    ch(d)
        .args(["call", "ledger", "transfer", "(1, 200, 5)"])
        .assert()
        .code(4)
        .stderr(contains("IC0503").and(contains("ledger: unknown account 200")));
    // A well-formed id of no canister: the host rejects it (exit 3).
    ch(d).args(["call", "aaaaa-aa", "balance", "(1)"]).assert().code(3);
    // Not a controller.
    ch(d).args(["--sender", "aaaaa-aa", "stop", "ledger"]).assert().failure().stderr(contains("not a controller"));
    // A directory of other files is not made into a state directory.
    ch(&d.join("snap-other")).args(["info"]).assert().success();
    let other = d.join("other-files");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    ch(&other).args(["create"]).assert().code(2).stderr(contains("holds other files"));
    ch(&other).args(["demo", "--seconds", "1"]).assert().code(2).stderr(contains("holds other files"));
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1, "files were added to a foreign directory");
    // Read-only commands on a directory that is not one.
    ch(&d.join("nothing-here")).args(["checkpoint", "list"]).assert().code(2).stderr(contains("not a state directory"));
    // --json errors are JSON too.
    let out = ch(d).args(["--json", "call", "nope", "x"]).assert().code(2).get_output().stdout.clone();
    let error: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(error["exit_code"], 2);
}

#[test]
fn deeply_nested_candid_is_refused_rather_than_overflowing_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ch(d).args(["create", "--name", "e"]).assert().success();
    ch(d).args(["install", "e", "--wasm", CALLS]).assert().success();
    // An argument: 100,000 nested `opt`s (or vecs) would overflow the parser.
    let deep = d.join("deep.did");
    std::fs::write(&deep, format!("({}1)", "opt ".repeat(100_000))).unwrap();
    ch(d)
        .args(["call", "e", "echo", "--argument-file"])
        .arg(&deep)
        .assert()
        .code(2)
        .stderr(contains("nests values more than 256 levels deep"));
    std::fs::write(&deep, format!("({}1{})", "vec {".repeat(50_000), "}".repeat(50_000))).unwrap();
    ch(d).args(["call", "e", "echo", "--argument-file"]).arg(&deep).assert().code(2);
    // Text that merely mentions opt is not nesting.
    let text = format!("(\"{}\")", "opt ".repeat(1000));
    ch(d).args(["-q", "call", "e", "echo", &text]).assert().success();
    // A reply: `echo` returns its argument's bytes, so a raw argument makes
    // the canister answer `opt opt ... null`, 300 and 900,000 levels deep.
    for levels in [300, 900_000] {
        let hex = format!("4449444c016e000100{}00", "01".repeat(levels));
        std::fs::write(&deep, hex).unwrap();
        ch(d)
            .args(["-q", "call", "e", "echo", "--type", "raw", "--argument-file"])
            .arg(&deep)
            .assert()
            .code(1)
            .stderr(contains("levels deep").or(contains("Recursion limit exceeded")));
    }
}

/// A child that holds the state directory's lock: `logs --follow` keeps a
/// host open until killed.
fn hold_lock(dir: &Path) -> Child {
    let child = std::process::Command::new(bin())
        .args(["logs", "ledger", "--follow"])
        .env("CANISTER_HOST_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(dir.join("LOCK")).unwrap_or_default().trim() != pid {
        assert!(Instant::now() < deadline, "the child never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_locked_directory_names_its_holder_and_read_only_commands_still_work() {
    let dir = with_ledger();
    let d = dir.path();
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 30)"]).assert().success();
    ch(d).args(["checkpoint", "create"]).assert().success();
    let mut holder = hold_lock(d);
    let pid = holder.id();
    ch(d)
        .args(["call", "ledger", "transfer", "(1, 2, 30)"])
        .assert()
        .code(5)
        .stderr(contains(format!("in use by process {pid}")).and(contains("stop that process")));
    ch(d).args(["create"]).assert().code(5);
    // Read-only: no lock needed.
    ch(d).args(["checkpoint", "list"]).assert().success();
    ch(d).args(["verify"]).assert().success().stdout(contains("every recorded digest reproduced"));
    ch(d)
        .args(["query", "ledger", "balance", "(2)", "--at-height", "3"])
        .assert()
        .success()
        .stdout("(1_030 : nat64)\n");
    // kill -9 the holder; the next command reopens and finds everything.
    holder.kill().unwrap();
    holder.wait().unwrap();
    ch(d).args(["call", "ledger", "balance", "(2)"]).assert().success().stdout("(1_030 : nat64)\n");
}

#[test]
fn time_travel_queries_see_each_past_round() {
    let dir = with_ledger();
    let d = dir.path();
    // Rounds: 1 create, 2 install, then one transfer each.
    for _ in 0..3 {
        ch(d).args(["call", "ledger", "transfer", "(1, 2, 10)"]).assert().success();
    }
    for (height, balance) in [(2, "1_000"), (3, "1_010"), (4, "1_020"), (5, "1_030")] {
        ch(d)
            .args(["query", "ledger", "balance", "(2)", "--at-height", &height.to_string()])
            .assert()
            .success()
            .stdout(format!("({balance} : nat64)\n"));
    }
    let past = json(ch(d).args(["query", "ledger", "balance", "(2)", "--at-height", "3"]));
    assert_eq!(past["height"], 3);
    ch(d)
        .args(["query", "ledger", "balance", "(2)", "--at-height", "6"])
        .assert()
        .code(2)
        .stderr(contains("round 6 is not in the history: the log ends at round 5"));
    // Round 1 created the canister; its code came in round 2.
    ch(d).args(["query", "ledger", "balance", "(2)", "--at-height", "1"]).assert().failure().stderr(contains("IC0537"));
}

#[test]
fn lifecycle_snapshots_controllers_and_logs() {
    let dir = with_ledger();
    let d = dir.path();
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 100)"]).assert().success();
    ch(d).args(["snapshot", "create", "ledger"]).assert().code(4).stderr(contains("stop"));
    ch(d).args(["stop", "ledger"]).assert().success().stdout(contains("stopped"));
    ch(d).args(["call", "ledger", "balance", "(2)"]).assert().failure().stderr(contains("stopped"));
    let snap = json(ch(d).args(["snapshot", "create", "ledger"]));
    let id = snap["snapshot_id"].to_string();
    ch(d).args(["snapshot", "list", "ledger"]).assert().success().stdout(contains(format!("{id}: ")));
    ch(d).args(["start", "ledger"]).assert().success();
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 100)"]).assert().success();
    ch(d).args(["stop", "ledger"]).assert().success();
    ch(d).args(["snapshot", "load", "ledger", &id]).assert().success();
    ch(d).args(["start", "ledger"]).assert().success();
    ch(d).args(["call", "ledger", "balance", "(2)"]).assert().success().stdout("(1_100 : nat64)\n");
    ch(d).args(["snapshot", "delete", "ledger", &id]).assert().success();
    ch(d).args(["snapshot", "list", "ledger"]).assert().success().stdout(contains("no snapshots"));

    let other = "rrkah-fqaaa-aaaaa-aaaaq-cai";
    ch(d)
        .args(["controllers", "add", "ledger", other, other])
        .assert()
        .success()
        .stdout(format!("2vxsx-fae\n{other}\n"));
    ch(d).args(["--sender", other, "call", "ledger", "balance", "(2)"]).assert().success();
    ch(d).args(["controllers", "remove", "ledger", other]).assert().success().stdout(contains(other).not());
    ch(d).args(["controllers", "remove", "ledger", other]).assert().code(2).stderr(contains("not controllers"));
    ch(d).args(["controllers", "list", "ledger"]).assert().success().stdout("2vxsx-fae\n");

    ch(d).args(["call", "ledger", "transfer", "(1, 500, 1)"]).assert().code(4);
    ch(d).args(["logs", "ledger"]).assert().success().stdout(contains("[TRAP]: ledger: unknown account 500"));

    let status = json(ch(d).args(["status", "ledger"]));
    assert_eq!(status["status"], "running");
    assert_eq!(status["controllers"], serde_json::json!(["2vxsx-fae"]));
    ch(d).args(["uninstall", "ledger"]).assert().success();
    assert_eq!(json(ch(d).args(["status", "ledger"]))["module_hash"], serde_json::Value::Null);
    ch(d).args(["stop", "ledger"]).assert().success();
    ch(d).args(["delete", "ledger"]).assert().success();
    ch(d).args(["status", "--all"]).assert().success().stdout(contains("no canisters"));
    let info = json(ch(d).args(["info"]));
    assert_eq!(info["canisters"], 0);
}

#[test]
fn a_snapshot_downloads_in_dfxs_layout() {
    let dir = with_ledger();
    let d = dir.path();
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 30)"]).assert().success();
    ch(d).args(["stop", "ledger"]).assert().success();
    let id = json(ch(d).args(["snapshot", "create", "ledger"]))["snapshot_id"].to_string();
    let out = d.join("snap");
    ch(d).args(["snapshot", "download", "ledger", &id, "--dir"]).arg(&out).assert().success();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metadata.json")).unwrap()).unwrap();
    let module = std::fs::read(LEDGER).unwrap();
    assert_eq!(std::fs::read(out.join("wasm_module.bin")).unwrap(), module);
    assert_eq!(meta["wasm_module_size"], module.len());
    let heap = std::fs::read(out.join("wasm_memory.bin")).unwrap();
    assert_eq!(meta["wasm_memory_size"], heap.len());
    // Accounts 0, 1 and 2 after the transfer, as the C ledger lays them out.
    let balances: Vec<u8> = [1000u64, 970, 1030].iter().flat_map(|b| b.to_le_bytes()).collect();
    assert!(heap.windows(balances.len()).any(|w| w == balances), "the heap lacks the balances");
    // As dfx writes them: no stable memory file when it is empty, tagged
    // unions as serde writes the IC's types.
    assert!(!out.join("stable_memory.bin").exists());
    assert_eq!(meta["stable_memory_size"], 0);
    assert_eq!(meta["source"], serde_json::json!({ "taken_from_canister": null }));
    assert_eq!(meta["global_timer"], "inactive");
    assert!(meta["globals"].as_array().unwrap().iter().all(|g| g.is_object()), "{meta}");
    ch(d)
        .args(["snapshot", "download", "ledger", &id, "--dir"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("already holds a snapshot"));
    ch(d).args(["snapshot", "download", "ledger", "7", "--dir"]).arg(d.join("other")).assert().code(3);

    // Uploaded into another canister, the snapshot moves the ledger there.
    ch(d).args(["create", "--name", "copy"]).assert().success();
    let uploaded = json(ch(d).args(["snapshot", "upload", "copy", "--dir"]).arg(&out));
    let copy_id = uploaded["snapshot_id"].to_string();
    ch(d).args(["stop", "copy"]).assert().success();
    ch(d).args(["snapshot", "load", "copy", &copy_id]).assert().success();
    ch(d).args(["start", "copy"]).assert().success();
    ch(d).args(["call", "copy", "balance", "(2)"]).assert().success().stdout("(1_030 : nat64)\n");
    ch(d).args(["call", "copy", "transfer", "(2, 1, 30)"]).assert().success().stdout("(1_000 : nat64)\n");
    // A damaged directory is named, and nothing is created.
    let damaged = d.join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    for f in ["metadata.json", "wasm_module.bin"] {
        std::fs::copy(out.join(f), damaged.join(f)).unwrap();
    }
    std::fs::write(damaged.join("wasm_memory.bin"), &heap[..heap.len() / 2]).unwrap();
    ch(d)
        .args(["snapshot", "upload", "copy", "--dir"])
        .arg(&damaged)
        .assert()
        .code(2)
        .stderr(contains("wasm_memory.bin holds").and(contains("incomplete or damaged")));
    // A module that is not wasm is refused when the snapshot is loaded.
    std::fs::write(damaged.join("wasm_memory.bin"), &heap).unwrap();
    let module_len = std::fs::metadata(damaged.join("wasm_module.bin")).unwrap().len() as usize;
    std::fs::write(damaged.join("wasm_module.bin"), vec![7u8; module_len]).unwrap();
    let bad = json(ch(d).args(["snapshot", "upload", "copy", "--dir"]).arg(&damaged))["snapshot_id"].to_string();
    ch(d).args(["stop", "copy"]).assert().success();
    ch(d).args(["snapshot", "load", "copy", &bad]).assert().code(4).stderr(contains("IC0505"));
    ch(d).args(["start", "copy"]).assert().success();
    ch(d).args(["call", "copy", "balance", "(2)"]).assert().success().stdout("(1_000 : nat64)\n");
}

#[test]
fn upgrades_follow_the_mode_and_keep_what_they_should() {
    let dir = with_ledger();
    let d = dir.path();
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 30)"]).assert().success();
    // `auto` on an installed canister upgrades; `install` is refused; a
    // reinstall with no argument gets init's defaults (1000 accounts of
    // 1_000_000).
    ch(d)
        .args(["install", "ledger", "--wasm", LEDGER, "--argument", "(100, 1000)"])
        .assert()
        .success()
        .stdout(contains("upgraded"));
    ch(d).args(["install", "ledger", "--wasm", LEDGER, "--mode", "install"]).assert().failure();
    ch(d)
        .args(["install", "ledger", "--wasm", LEDGER, "--mode", "reinstall"])
        .assert()
        .success()
        .stdout(contains("reinstalled"));
    ch(d).args(["call", "ledger", "accounts"]).assert().success().stdout("(1_000 : nat64)\n");
    // A raw (hex) init argument: (5 : nat64, 7 : nat64).
    let raw = "4449444c00027878".to_string() + "0500000000000000" + "0700000000000000";
    ch(d)
        .args([
            "install",
            "ledger",
            "--wasm",
            LEDGER,
            "--mode",
            "reinstall",
            "--argument-type",
            "raw",
            "--argument",
            &raw,
        ])
        .assert()
        .success();
    ch(d).args(["call", "ledger", "accounts"]).assert().success().stdout("(5 : nat64)\n");
    // `keep` needs a module built for enhanced orthogonal persistence.
    ch(d)
        .args(["install", "ledger", "--wasm", LEDGER, "--wasm-memory-persistence", "keep"])
        .assert()
        .code(4)
        .stderr(contains("requires that the new canister module supports enhanced orthogonal persistence"));
    // A Motoko canister is one: upgrading it needs `keep`, and keeps its heap.
    ch(d).args(["create", "--name", "mo"]).assert().success();
    ch(d).args(["install", "mo", "--wasm", MOTOKO_COUNTER]).assert().success();
    ch(d).args(["call", "mo", "inc"]).assert().success();
    ch(d)
        .args(["install", "mo", "--wasm", MOTOKO_COUNTER])
        .assert()
        .code(4)
        .stderr(contains("wasm_memory_persistence"));
    ch(d).args(["install", "mo", "--wasm", MOTOKO_COUNTER, "--wasm-memory-persistence", "keep"]).assert().success();
    ch(d).args(["call", "mo", "get"]).assert().success().stdout(contains("1"));
}

#[test]
fn checkpoints_can_be_listed_shown_verified_and_pruned() {
    let dir = with_ledger();
    let d = dir.path();
    for _ in 0..2 {
        ch(d).args(["call", "ledger", "transfer", "(1, 2, 1)"]).assert().success();
        ch(d).args(["checkpoint"]).assert().success();
    }
    let list = json(ch(d).args(["checkpoint", "list"]));
    let heights: Vec<u64> = list.as_array().unwrap().iter().map(|c| c["height"].as_u64().unwrap()).collect();
    assert_eq!(heights, [0, 3, 4]);
    ch(d).args(["checkpoint", "show", "4"]).assert().success().stdout(contains("root hash"));
    ch(d)
        .args(["checkpoint", "show", "9"])
        .assert()
        .code(2)
        .stderr(contains("there is no checkpoint 9; kept: 0, 3, 4"));
    ch(d).args(["checkpoint", "verify", "3"]).assert().success().stdout(contains("verifies"));
    ch(d).args(["checkpoint", "prune", "--keep", "1"]).assert().success().stdout("kept checkpoints 4\n");
    ch(d).args(["checkpoint", "prune", "--keep", "0"]).assert().code(2);
}

#[test]
fn restore_rolls_back_to_a_checkpoint_only_when_told() {
    let dir = with_ledger();
    let d = dir.path();
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 10)"]).assert().success();
    ch(d).args(["checkpoint"]).assert().success().stdout("checkpoint 3\n");
    for _ in 0..2 {
        ch(d).args(["call", "ledger", "transfer", "(1, 2, 10)"]).assert().success();
    }
    ch(d).args(["checkpoint"]).assert().success().stdout("checkpoint 5\n");
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 10)"]).assert().success();
    // Without --yes: what would be lost, and nothing changes.
    ch(d)
        .args(["restore", "--height", "3"])
        .assert()
        .code(2)
        .stderr(contains("would discard rounds 4..=6 (3 rounds").and(contains("checkpoints 5")).and(contains("--yes")));
    ch(d).args(["call", "ledger", "balance", "(2)"]).assert().success().stdout("(1_040 : nat64)\n");
    ch(d)
        .args(["restore", "--height", "4", "--yes"])
        .assert()
        .code(2)
        .stderr(contains("no checkpoint 4 to restore; kept: 0, 3, 5"));
    ch(d).args(["restore", "--height", "3", "--yes"]).assert().success().stdout(contains("discarded rounds 4..=6"));
    ch(d).args(["call", "ledger", "balance", "(2)"]).assert().success().stdout("(1_010 : nat64)\n");
    // The history goes on from round 4, and verifies.
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 1)"]).assert().success();
    let list = json(ch(d).args(["checkpoint", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    ch(d).args(["verify"]).assert().success().stdout(contains("rounds 1..=4"));
}

#[test]
fn verify_reports_the_first_round_a_substituted_module_changes() {
    let dir = with_ledger();
    let d = dir.path();
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 1)"]).assert().success();
    let report = json(ch(d).args(["verify"]));
    assert_eq!((report["from_height"].as_u64(), report["to_height"].as_u64()), (Some(0), Some(3)));
    assert_eq!(report["divergence"], serde_json::Value::Null);
    let kv = format!("ledger={KV}");
    let out = ch(d).args(["--json", "verify", "--substitute", &kv]).assert().code(6).get_output().stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    // The install (round 2) is where the substitute first runs.
    assert_eq!(report["divergence"]["height"], 2);
    ch(d).args(["verify", "--substitute", "nope=x.wasm"]).assert().code(2);
    ch(d).args(["verify", "--substitute", "ledger"]).assert().code(2).stderr(contains("CANISTER=FILE"));
}

#[test]
fn the_demo_kills_a_host_mid_load_and_checks_what_survived() {
    let dir = tempfile::tempdir().unwrap();
    let summary = json(ch(&dir.path().join("demo")).args([
        "demo",
        "--seconds",
        "1",
        "--accounts",
        "500",
        "--threads",
        "2",
        "--checkpoint-interval",
        "50",
    ]));
    assert!(summary["acknowledged_transfers"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["checkpoints_before_kill"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["dirty_pages"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["lost_transfers"], 0);
    assert_eq!(summary["total_supply"], 500 * 1_000_000);
    assert!(summary["ledger_transactions"].as_u64() >= summary["acknowledged_transfers"].as_u64());
    assert_eq!(summary["verify"]["diverged"], false);
    assert_eq!(
        summary["substituted_ledger"]["diverged_at_height"],
        summary["substituted_ledger"]["first_transfer_height"]
    );
    // A directory that already holds a demo is refused.
    ch(&dir.path().join("demo"))
        .args(["demo", "--seconds", "1"])
        .assert()
        .code(2)
        .stderr(contains("fresh --state-dir"));
}

/// The README's tour, run as printed: each `# →` comment is output the
/// command before it must print.
#[test]
fn the_readme_tour_runs_as_printed() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("<!-- tour -->").expect("the README has a tour");
    let block = &readme[start..];
    let script = &block[block.find("```sh\n").unwrap() + 6..];
    let script = &script[..script.find("```").unwrap()];
    let expected: Vec<&str> = script.lines().filter_map(|l| l.split_once("# → ").map(|(_, e)| e.trim())).collect();
    assert!(expected.len() >= 5, "the tour should say what it prints");
    // mktemp in the tour makes its directories in here, removed at the end.
    let scratch = tempfile::tempdir().unwrap();
    let path = format!("{}:{}", bin().parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("PATH", path)
        .env("TMPDIR", scratch.path())
        .env_remove("CANISTER_HOST_DIR")
        .timeout(Duration::from_secs(300))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let mut rest = out.as_str();
    for e in expected {
        let at = rest.find(e).unwrap_or_else(|| panic!("the tour did not print {e:?} (in order); it printed:\n{out}"));
        rest = &rest[at + e.len()..];
    }
}

#[test]
fn bench_measures_stores_compares_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (baseline, report) = (tmp.path().join("baseline.json"), tmp.path().join("report"));
    let bench = |extra: &[&str]| {
        let mut cmd = ch(tmp.path());
        cmd.args(["bench", "--quick", "--filter", "update/write_16_pages", "--scratch"]).arg(tmp.path());
        cmd.arg("--compare").arg(&baseline).args(extra).timeout(Duration::from_secs(300));
        cmd
    };
    // The first --persist creates the baseline.
    let run = json(bench(&["--persist", "--report"]).arg(&report));
    let results = run["run"]["results"].as_array().unwrap();
    let case = |name: &str| results.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no {name}"));
    // The canister writes one byte into each of 16 pages.
    let tracked = case("update/write_16_pages");
    assert_eq!(tracked["counts"]["dirty_pages"], 16);
    assert_eq!(tracked["baselines"][0], "untracked/update/write_16_pages");
    for name in ["untracked/update/write_16_pages", "naive/update/write_16_pages", "wasmtime/fresh_instance"] {
        assert!(case(name)["latency"]["p50_ns"].as_f64().unwrap() > 0.0, "{name}");
    }
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Cost per page against pages touched"));
    assert!(report.join("run.json").exists());

    // The same code against its own baseline: no count differs.
    let again = bench(&[]).assert().get_output().clone();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains("update/write_16_pages") && !text.contains("instructions "), "{text}");

    // A baseline that says the message used one instruction fewer: the
    // count is compared exactly, so this run regressed.
    let mut stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    let instructions = &mut stored["cases"]["update/write_16_pages"]["counts"]["instructions"];
    *instructions = (instructions.as_u64().unwrap() - 1).into();
    std::fs::write(&baseline, stored.to_string()).unwrap();
    bench(&[])
        .assert()
        .code(6)
        .stdout(contains("regressed").and(contains("update/write_16_pages")).and(contains("instructions")));

    // Bad input is refused before anything is measured.
    ch(tmp.path())
        .args(["bench", "--compare"])
        .arg(tmp.path().join("missing.json"))
        .assert()
        .code(2)
        .stderr(contains("cannot read"));
    ch(tmp.path())
        .args(["bench", "--quick", "--filter", "no-such-case"])
        .assert()
        .code(2)
        .stderr(contains("no case matches"));
    ch(tmp.path()).args(["bench", "--noise", "0"]).assert().code(2).stderr(contains("--noise"));
}

/// GET `path` from `port` on loopback: the status line and the body.
fn http_get(port: u16, path: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    (head.lines().next().unwrap().to_string(), response[split + 4..].to_vec())
}

#[test]
fn serve_owns_the_directory_until_sigterm_then_checkpoints() {
    let dir = with_ledger();
    let d = dir.path();
    let port_file = d.join("port");
    let server = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .env("CANISTER_HOST_DIR", d)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port = common::wait_for_port(&port_file);
    // The status endpoint serves the root key (DER of a BLS key: 133 bytes).
    let (status, body) = http_get(port, "/api/v2/status");
    assert!(status.contains("200"), "{status}");
    let body: std::collections::BTreeMap<String, serde_cbor::Value> = serde_cbor::from_slice(&body).unwrap();
    assert_eq!(body["replica_health_status"], serde_cbor::Value::Text("healthy".into()));
    assert!(matches!(&body["root_key"], serde_cbor::Value::Bytes(key) if key.len() == 133));
    // Changing state is refused while it serves, naming its URL.
    ch(d)
        .args(["call", "ledger", "transfer", "(1, 2, 3)"])
        .assert()
        .code(5)
        .stderr(contains(format!("http://127.0.0.1:{port}")));
    let before = json(ch(d).args(["checkpoint", "list"]));
    // SIGTERM: in-flight requests finish, the host checkpoints, exit 0.
    let pid = server.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = server.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("checkpoint written"));
    // The rounds since the last checkpoint (create, install) are now in one.
    let after = json(ch(d).args(["checkpoint", "list"]));
    let newest =
        |list: &serde_json::Value| list.as_array().unwrap().iter().map(|c| c["height"].as_u64().unwrap()).max();
    assert!(newest(&after) > newest(&before), "{before} -> {after}");
    ch(d).args(["call", "ledger", "transfer", "(1, 2, 3)"]).assert().success();
}
