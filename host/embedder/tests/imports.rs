//! Real IC canisters import these; a module importing all of them with the
//! spec's signatures must install and run (until it calls an unsupported
//! one), whatever the toolchain that built it.

use embedder::system_api::spec;
use embedder::*;
use testkit::*;

const IMPORTED_BY_REAL_CANISTERS: &[&str] = &[
    "call_cycles_add",
    "call_data_append",
    "call_new",
    "call_on_cleanup",
    "call_perform",
    "call_simple",
    "canister_self_copy",
    "canister_self_size",
    "certified_data_set",
    "data_certificate_copy",
    "data_certificate_present",
    "data_certificate_size",
    "debug_print",
    "msg_arg_data_copy",
    "msg_arg_data_size",
    "msg_caller_copy",
    "msg_caller_size",
    "msg_reject",
    "msg_reject_code",
    "msg_reject_msg_copy",
    "msg_reject_msg_size",
    "msg_reply",
    "msg_reply_data_append",
    "stable64_size",
    "stable_grow",
    "stable_read",
    "stable_size",
    "stable_write",
    "time",
    "trap",
];

fn wat_type(t: &wasmparser::ValType) -> &'static str {
    match t {
        wasmparser::ValType::I32 => "i32",
        wasmparser::ValType::I64 => "i64",
        other => panic!("unexpected type {other:?}"),
    }
}

/// A module importing `names` with the spec's signatures; its update
/// `call_<name>` calls the import with zero arguments.
fn importing(names: &[&str]) -> Vec<u8> {
    let mut wat = String::from("(module\n");
    let mut funcs = String::new();
    for name in names {
        let import = spec::lookup(name).unwrap_or_else(|| panic!("{name} is not in the spec table"));
        let params: Vec<_> = import.params.iter().map(wat_type).collect();
        let results: Vec<_> = import.results.iter().map(wat_type).collect();
        wat += &format!(
            "  (import \"ic0\" \"{name}\" (func ${name} (param {}) (result {})))\n",
            params.join(" "),
            results.join(" ")
        );
        let args: String = params.iter().map(|t| format!("({t}.const 0)")).collect();
        let drops = "(drop)".repeat(results.len());
        funcs += &format!("  (func (export \"canister_update call_{name}\") (call ${name} {args}) {drops})\n");
    }
    wat += "  (memory 1)\n";
    wat += &funcs;
    wat += ")";
    wat::parse_str(&wat).unwrap()
}

#[test]
fn a_module_importing_everything_real_canisters_use_instantiates() {
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut c = install(&exec, &importing(IMPORTED_BY_REAL_CANISTERS), &[]);
    // Running methods instantiates the module; an unsupported import traps
    // with the documented message when (and only when) it is called.
    // call_simple makes the call it describes (here to the empty principal).
    let r = update(&exec, &mut c, "call_call_simple", vec![]);
    assert_eq!((r.outcome, r.calls.len()), (Ok(Response::None), 1));
    for name in ["call_perform", "call_cycles_add"] {
        let r = update(&exec, &mut c, &format!("call_{name}"), vec![]);
        let expected = format!("ic0.{name}: no call is being built; call ic0.call_new first");
        assert_eq!(r.outcome, Err(ExecutionError::ContractViolation(expected)));
    }
    let r = update(&exec, &mut c, "call_msg_reject_code", vec![]);
    let expected = "ic0.msg_reject_code cannot be called from an update method";
    assert_eq!(r.outcome, Err(ExecutionError::ContractViolation(expected.into())));
    // Implemented ones work.
    let r = update(&exec, &mut c, "call_time", vec![]);
    assert_eq!(r.outcome, Err(ExecutionError::DidNotReply), "time() works; the method just never replies");
}

#[test]
fn every_spec_import_links() {
    let names: Vec<&str> = spec::IMPORTS.iter().map(|i| i.name).collect();
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut c = install(&exec, &importing(&names), &[]);
    let r = update(&exec, &mut c, "call_canister_version", vec![]);
    assert_eq!(r.outcome, Err(ExecutionError::DidNotReply));
    for import in spec::IMPORTS.iter().filter(|i| !i.implemented) {
        let r = update(&exec, &mut c, &format!("call_{}", import.name), vec![]);
        assert_eq!(
            r.outcome,
            Err(ExecutionError::ContractViolation(format!("unsupported System API: ic0.{}", import.name)))
        );
    }
}
