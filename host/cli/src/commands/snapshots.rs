//! `snapshot create|list|load|delete`.

use serde_json::json;

use super::Report;
use crate::args::Snapshot;
use crate::state::{self, Context};

/// Run a `snapshot` subcommand.
pub fn run(cx: &Context, args: Snapshot) -> anyhow::Result<Report> {
    let host = cx.open()?;
    let name = match &args {
        Snapshot::Create(t) => &t.canister,
        Snapshot::List(t) => &t.canister,
        Snapshot::Load(s) | Snapshot::Delete(s) => &s.canister,
        Snapshot::Download(s) => &s.canister,
        Snapshot::Upload(s) => &s.canister,
    };
    let canister = state::canister(&host, name)?;
    let id = canister.to_text();
    Ok(match args {
        Snapshot::Create(t) => {
            let snapshot = host.take_snapshot(cx.sender, canister, t.id)?;
            Report::new(
                format!("took snapshot {snapshot} of {canister}"),
                json!({ "canister_id": id, "snapshot_id": snapshot }),
            )
        }
        Snapshot::List(_) => {
            let snapshots = host.canister_info(canister)?.snapshots;
            let text = if snapshots.is_empty() {
                format!("{canister} has no snapshots")
            } else {
                snapshots
                    .iter()
                    .map(|s| format!("{}: {} bytes, taken at {}", s.id, s.size_bytes, s.taken_at))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let list: Vec<_> = snapshots
                .iter()
                .map(|s| json!({ "snapshot_id": s.id, "size_bytes": s.size_bytes, "taken_at_nanos": s.taken_at }))
                .collect();
            Report::new(text, json!({ "canister_id": id, "snapshots": list }))
        }
        Snapshot::Load(s) => {
            host.load_snapshot(cx.sender, canister, s.id)?;
            Report::new(
                format!("loaded snapshot {} into {canister}", s.id),
                json!({ "canister_id": id, "snapshot_id": s.id }),
            )
        }
        Snapshot::Download(s) => super::snapshot_files::download(cx, &host, canister, s)?,
        Snapshot::Upload(s) => super::snapshot_files::upload(cx, &host, canister, s)?,
        Snapshot::Delete(s) => {
            host.delete_snapshot(cx.sender, canister, s.id)?;
            Report::new(
                format!("deleted snapshot {} of {canister}", s.id),
                json!({ "canister_id": id, "snapshot_id": s.id }),
            )
        }
    })
}
