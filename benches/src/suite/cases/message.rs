//! One message on the executor, no host around it: what the canister's
//! code, the System API and memory tracking cost.
//!
//! Each update case runs on one canister in steady state (the instance
//! kept between messages, as the host keeps it), each message writing a
//! new value so every page it writes really changes. Untracked memory
//! persists nothing, so its executor keeps no instance: its small messages
//! pay for a fresh one, its large ones show the memory's physical cost. Write and read cases
//! also run with untracked memory (`untracked/...`, no persistence) and
//! with the IC's 2021 tracking (`naive/...`, a fault and an `mprotect` per
//! page). Queries get a fresh instance each time, as on the host.

use std::collections::BTreeMap;
use std::sync::Arc;

use embedder::{
    Call, CanisterState, Engine, EntryPoint, Executable, ExecutionConfig, Executor, MessageResult, MethodKind,
    TrackingMode,
};

use super::plain::{FRESH_INSTANCE, WARM_CALL};
use super::{BenchError, Runner};
use crate::suite::error::CaseContext;

const CALLER: &[u8] = &[0x11; 29];
const PAGES: [u32; 3] = [1, 16, 256];

/// The counts of every message of a case, keeping only those that were the
/// same for all of them: only deterministic counts are compared exactly.
#[derive(Default)]
struct Counts(Option<BTreeMap<String, u64>>);

impl Counts {
    fn see(&mut self, r: &MessageResult) {
        let stats = &r.stats;
        let now = BTreeMap::from([
            ("instructions".to_string(), stats.instructions),
            ("dirty_pages".to_string(), stats.dirty_pages),
            ("stable_dirty_pages".to_string(), stats.stable_dirty_pages),
            ("faults".to_string(), stats.memory.faults),
            ("mprotects".to_string(), stats.memory.mprotects),
            ("pages_copied".to_string(), stats.memory.pages_copied),
        ]);
        match &mut self.0 {
            None => self.0 = Some(now),
            Some(seen) => seen.retain(|k, v| now.get(k) == Some(v)),
        }
    }
}

/// A canister of the bench module, initialised.
fn bench_canister(exec: &Executor, case: &str) -> Result<Executable, BenchError> {
    let module = exec.compile(canisters::BENCH).case(case)?;
    let mut canister = Executable::new(CanisterState::default().with_module(module));
    let r = exec.execute(&mut canister, Call::entry(EntryPoint::Init, &[], CALLER, 1));
    r.outcome.case(case)?;
    Ok(canister)
}

/// One message; a reply is required.
fn message(exec: &Executor, c: &mut Executable, kind: MethodKind, method: &str, arg: &[u8]) -> MessageResult {
    let call = Call::method(method, kind, arg, CALLER, 1);
    if kind == MethodKind::Query { exec.query(c.state(), call) } else { exec.execute(c, call) }
}

/// Measure `method` on a fresh canister as case `name`; `arg` makes each
/// message's argument.
fn case(
    r: &mut Runner,
    exec: &Executor,
    name: &str,
    baselines: &[&str],
    (kind, method): (MethodKind, &str),
    mut arg: impl FnMut() -> Vec<u8>,
) -> Result<(), BenchError> {
    // Run what is selected, its untracked and naive variants, and the two
    // cases others here are compared to.
    let unprefixed = name.trim_start_matches("untracked/").trim_start_matches("naive/");
    if !r.selected(unprefixed) && !["update/empty", "update/write_1_pages"].contains(&name) {
        return Ok(());
    }
    let mut canister = bench_canister(exec, name)?;
    // Settle first-touch effects (the stack page the argument lands in, say)
    // before counting: the counts describe the steady state.
    for _ in 0..2 {
        message(exec, &mut canister, kind, method, &arg()).outcome.case(name)?;
    }
    let mut counts = Counts::default();
    let result = r.latency(name, baselines, || {
        let result = message(exec, &mut canister, kind, method, &arg());
        if result.reply().is_none() {
            return Err(BenchError::Case { case: name.into(), message: format!("no reply: {:?}", result.outcome) });
        }
        counts.see(&result);
        Ok(())
    })?;
    result.counts = counts.0.unwrap_or_default();
    Ok(())
}

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let mut names = vec!["update/empty".to_string(), "query/empty".into(), "update/stable_write_4KiB".into()];
    for op in ["write", "read"] {
        names.extend(PAGES.map(|n| format!("update/{op}_{n}_pages")));
    }
    for size in ["1KiB", "1MiB"] {
        names.extend([format!("update/arg_{size}"), format!("update/reply_{size}")]);
    }
    if !r.any(&names) {
        return Ok(());
    }
    if !r.has(WARM_CALL) {
        super::plain::calls(r)?;
    }
    let engine = Arc::new(Engine::new().case("engine")?);
    let update = MethodKind::Update;
    // Baselines first, so a ratio's both sides come from the same minutes.
    for (prefix, mode) in
        [("untracked/", TrackingMode::Untracked), ("naive/", TrackingMode::Naive), ("", TrackingMode::default())]
    {
        let exec = Executor::new(engine.clone(), ExecutionConfig { tracking: mode, ..ExecutionConfig::default() });
        let alternatives = |case: &str| [format!("untracked/{case}"), format!("naive/{case}")];
        let empty = format!("{prefix}update/empty");
        let empty_baselines = if prefix.is_empty() {
            vec![FRESH_INSTANCE, WARM_CALL, "untracked/update/empty", "naive/update/empty", "ic/update_empty"]
        } else {
            vec![FRESH_INSTANCE, WARM_CALL]
        };
        case(r, &exec, &empty, &empty_baselines, (update, "empty"), Vec::new)?;
        for op in ["write", "read"] {
            for pages in PAGES {
                let base = format!("update/{op}_{pages}_pages");
                let name = format!("{prefix}{base}");
                let [untracked, naive] = alternatives(&base);
                let published = format!("ic/update_{op}_{pages}_pages");
                let baselines: Vec<&str> =
                    if prefix.is_empty() { vec![&untracked, &naive, &published] } else { vec![&published] };
                let method = if op == "write" { "write_pages" } else { "read_pages" };
                let count = pages.to_le_bytes().to_vec();
                case(r, &exec, &name, &baselines, (update, method), || count.clone())?;
            }
        }
    }
    let exec = Executor::new(engine, ExecutionConfig::default());
    case(r, &exec, "query/empty", &[FRESH_INSTANCE, WARM_CALL], (MethodKind::Query, "empty_query"), Vec::new)?;
    case(r, &exec, "update/stable_write_4KiB", &["update/write_1_pages"], (update, "stable_write"), Vec::new)?;
    for (label, bytes) in [("1KiB", 1usize << 10), ("1MiB", 1 << 20)] {
        let arg = vec![7u8; bytes];
        case(r, &exec, &format!("update/arg_{label}"), &["update/empty"], (update, "arg"), || arg.clone())?;
        let len = (bytes as u32).to_le_bytes().to_vec();
        case(r, &exec, &format!("update/reply_{label}"), &["update/empty"], (update, "reply"), || len.clone())?;
    }
    Ok(())
}
