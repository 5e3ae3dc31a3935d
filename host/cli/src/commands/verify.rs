//! `verify`: replay the logged history read-only and report the first
//! divergence.

use std::collections::HashMap;

use canister_host::{HostConfig, PastState, VerifyOptions, VerifyReport};
use serde_json::json;

use super::Report;
use super::canister::read_wasm;
use crate::exit::usage;
use crate::progress::Progress;
use crate::state::Context;

/// The modules to substitute, keyed by the hash of the module each
/// replaces. `CANISTER=FILE` replaces the module the canister runs now
/// (wherever it appears in the history); `SHA256=FILE` names the module.
fn substitutions(cx: &Context, specs: &[String]) -> anyhow::Result<HashMap<[u8; 32], Vec<u8>>> {
    let mut map = HashMap::new();
    for spec in specs {
        let (target, file) = spec
            .split_once('=')
            .ok_or_else(|| usage(format!("--substitute {spec:?}: write CANISTER=FILE.wasm or SHA256=FILE.wasm")))?;
        let wasm = read_wasm(std::path::Path::new(file))?;
        let hash: [u8; 32] = match hex::decode(target).ok().and_then(|b| b.try_into().ok()) {
            Some(hash) => hash,
            None => {
                let past = PastState::open(&cx.dir, HostConfig::default().execution, None)?;
                let canister = past
                    .canister(target)
                    .ok_or_else(|| usage(format!("--substitute: there is no canister {target:?}")))?;
                canister.module_hash().ok_or_else(|| {
                    usage(format!(
                        "--substitute: canister {target} has no module now; name the module to replace by its \
                         SHA-256 instead"
                    ))
                })?
            }
        };
        map.insert(hash, wasm);
    }
    Ok(map)
}

/// The oldest kept checkpoint, where a replay starts by default.
fn oldest(cx: &Context) -> anyhow::Result<u64> {
    checkpoint::StateDir::open_read_only(&cx.dir)?
        .heights()?
        .first()
        .copied()
        .ok_or_else(|| usage(format!("{} has no checkpoint to verify from", cx.dir.display())))
}

/// Replay with a progress bar.
pub fn replay(cx: &Context, options: VerifyOptions) -> anyhow::Result<VerifyReport> {
    let bar = Progress::bar("verifying", 0, cx.quiet);
    let report = canister_host::verify(&cx.dir, VerifyOptions { progress_every: 16, ..options }, &mut |p| {
        bar.set(p.rounds, p.last_height.saturating_sub(p.height - p.rounds));
    })?;
    bar.finish();
    Ok(report)
}

/// The report of a verification, as text and JSON.
pub fn describe(report: &VerifyReport) -> Report {
    let summary = format!(
        "replayed rounds {}..={} from checkpoint {} ({} rounds, {} messages) in {:.2?}: {:.0} rounds/s",
        report.from_height + 1,
        report.to_height,
        report.from_height,
        report.rounds,
        report.messages,
        report.elapsed,
        report.rounds_per_second(),
    );
    let verdict = match &report.divergence {
        None => "every recorded digest reproduced".to_string(),
        Some(d) => format!("DIVERGED: {d}"),
    };
    Report::new(
        format!("{summary}\n{verdict}"),
        json!({
            "from_height": report.from_height,
            "to_height": report.to_height,
            "rounds": report.rounds,
            "messages": report.messages,
            "seconds": report.elapsed.as_secs_f64(),
            "final_state": hex::encode(report.final_state),
            "divergence": report.divergence.as_ref().map(|d| json!({
                "height": d.height,
                "canister_id": d.canister.map(|c| c.to_text()),
                "recorded": d.recorded,
                "replayed": d.replayed,
            })),
        }),
    )
}

/// `verify`.
pub fn run(cx: &Context, args: crate::args::Verify) -> anyhow::Result<Report> {
    cx.existing_dir()?;
    let from = match args.from {
        Some(h) => h,
        None => oldest(cx)?,
    };
    let replace_modules = substitutions(cx, &args.substitute)?;
    let options = VerifyOptions {
        from_height: Some(from),
        to_height: args.to,
        workers: HostConfig::default().workers,
        execution: HostConfig::default().execution,
        replace_modules,
        progress_every: 0,
    };
    let report = replay(cx, options)?;
    let mut out = describe(&report);
    if report.divergence.is_some() {
        out.code = crate::exit::CHECK_FAILED;
    }
    Ok(out)
}
