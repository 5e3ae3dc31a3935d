//! `checkpoint create|list|show|verify|prune`. Listing, showing and
//! verifying read published checkpoints only, without the lock.

use anyhow::Context as _;
use canister_host::HostConfig;
use checkpoint::{StateDir, Verification};
use serde_json::json;

use super::Report;
use crate::args::{CheckpointAction, CheckpointArgs, Restore};
use crate::exit::usage;
use crate::state::Context;

fn read_only(cx: &Context) -> anyhow::Result<StateDir> {
    Ok(StateDir::open_read_only(cx.existing_dir()?)?)
}

fn known(dir: &StateDir, height: u64) -> anyhow::Result<()> {
    let heights = dir.heights()?;
    if heights.contains(&height) {
        return Ok(());
    }
    Err(usage(format!(
        "there is no checkpoint {height}; kept: {}",
        heights.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    )))
}

/// Run a `checkpoint` subcommand.
pub fn run(cx: &Context, args: CheckpointArgs) -> anyhow::Result<Report> {
    match args.action.unwrap_or(CheckpointAction::Create) {
        CheckpointAction::Create => {
            let host = cx.open()?;
            let spinner = cx.progress("writing a checkpoint");
            let height = host.checkpoint()?;
            spinner.finish();
            Ok(Report::new(format!("checkpoint {height}"), json!({ "height": height })))
        }
        CheckpointAction::List => {
            let dir = read_only(cx)?;
            let mut rows = Vec::new();
            for height in dir.heights()? {
                let checkpoint = dir.load(height, Verification::Structure)?;
                let files = checkpoint.manifest().files();
                let bytes: u64 = files.iter().map(|f| f.size).sum();
                rows.push(json!({
                    "height": height,
                    "root_hash": hex::encode(checkpoint.root_hash()),
                    "files": files.len(),
                    "bytes": bytes,
                }));
            }
            let text = rows
                .iter()
                .map(|r| {
                    format!(
                        "{:>10}  {}  {} files, {} bytes",
                        r["height"],
                        r["root_hash"].as_str().unwrap_or(""),
                        r["files"],
                        r["bytes"]
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Report::new(if text.is_empty() { "no checkpoints".into() } else { text }, json!(rows)))
        }
        CheckpointAction::Show { height } => {
            let dir = read_only(cx)?;
            known(&dir, height)?;
            let checkpoint = dir.load(height, Verification::Structure)?;
            let files: Vec<_> = checkpoint
                .manifest()
                .files()
                .iter()
                .map(|f| json!({ "path": f.path, "size": f.size, "hash": hex::encode(f.hash()) }))
                .collect();
            let mut text = format!("checkpoint {height}\nroot hash {}\n", hex::encode(checkpoint.root_hash()));
            for f in &files {
                text.push_str(&format!("  {:>12}  {}\n", f["size"], f["path"].as_str().unwrap_or("")));
            }
            Ok(Report::new(
                text,
                json!({ "height": height, "root_hash": hex::encode(checkpoint.root_hash()), "files": files }),
            ))
        }
        CheckpointAction::Verify { height } => {
            let dir = read_only(cx)?;
            known(&dir, height)?;
            let spinner = cx.progress(&format!("rehashing checkpoint {height}"));
            let checkpoint = dir.verify(height)?;
            spinner.finish();
            let root = hex::encode(checkpoint.root_hash());
            Ok(Report::new(
                format!("checkpoint {height} verifies: every chunk matches its manifest (root hash {root})"),
                json!({ "height": height, "root_hash": root, "ok": true }),
            ))
        }
        CheckpointAction::Prune { keep } => {
            if keep == 0 {
                return Err(usage("--keep must be at least 1: the host needs a checkpoint to start from"));
            }
            let host = cx.open_with(HostConfig { keep_checkpoints: keep, ..HostConfig::default() })?;
            host.checkpoint()?;
            drop(host);
            let kept = read_only(cx)?.heights()?;
            Ok(Report::new(
                format!("kept checkpoints {}", kept.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
                json!({ "kept": kept }),
            ))
        }
    }
}

/// `restore`: say what rolling back would discard; do it with `--yes`.
pub fn restore(cx: &Context, args: Restore) -> anyhow::Result<Report> {
    if let Some(url) = &args.from {
        return restore_from(cx, url, args.height);
    }
    let dir = cx.existing_dir()?;
    let height = args.height.ok_or_else(|| usage("restore needs --height (or --from)"))?;
    let plan = canister_host::restore(dir, height, args.yes).map_err(|e| match e {
        canister_host::HostError::Operation(message) => usage(message),
        e => e.into(),
    })?;
    let lost = if plan.discarded_rounds == 0 {
        "no rounds".to_string()
    } else {
        format!(
            "rounds {}..={} ({} rounds: every update in them)",
            plan.height + 1,
            plan.last_height,
            plan.discarded_rounds
        )
    };
    let checkpoints = plan.discarded_checkpoints.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let json = json!({
        "height": plan.height,
        "last_height": plan.last_height,
        "discarded_rounds": plan.discarded_rounds,
        "discarded_checkpoints": plan.discarded_checkpoints,
        "applied": args.yes,
    });
    if !args.yes {
        return Err(usage(format!(
            "restoring checkpoint {} would discard {lost}{}; nothing was changed: run again with --yes to do it",
            plan.height,
            if checkpoints.is_empty() { String::new() } else { format!(" and checkpoints {checkpoints}") },
        )));
    }
    Ok(Report::new(format!("restored checkpoint {}: discarded {lost}", plan.height), json))
}

/// `restore --from URL`: a checkpoint and the log after it from the store,
/// each chunk checked against its manifest; then the host opens on them,
/// replaying the log (each record checked against the hash chain), and
/// checkpoints where it got to.
fn restore_from(cx: &Context, url: &str, height: Option<u64>) -> anyhow::Result<Report> {
    let remote = replication::Remote::from_url(url).map_err(|e| usage(e.to_string()))?;
    let restored = remote.restore(height, &cx.dir).with_context(|| format!("restoring from {url}"))?;
    let host = cx.open_with(HostConfig::default()).context("opening the restored state")?;
    let (last, digest) = (host.height().height, host.state_digest()?);
    host.close().context("checkpointing the restored state")?;
    Ok(Report::new(
        format!(
            "restored checkpoint {} from {url} ({} files, {} bytes downloaded) and replayed the log to round {last}; state digest {}",
            restored.height,
            restored.files,
            restored.downloaded_bytes,
            hex::encode(digest)
        ),
        json!({
            "checkpoint": restored.height,
            "height": last,
            "files": restored.files,
            "downloaded_bytes": restored.downloaded_bytes,
            "chunks_downloaded": restored.downloaded,
            "chunks_reused": restored.reused,
            "log_from": restored.log_from,
            "digest": hex::encode(digest),
        }),
    ))
}
