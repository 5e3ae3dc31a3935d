//! One module per group of commands. Each command returns what it found as
//! a [`Report`]: text for people, JSON for scripts (`--json`).

mod bench;
mod call;
mod canister;
mod checkpoints;
mod follow;
mod serve;

pub use serve::URL_FILE as SERVER_URL_FILE;
mod snapshot_files;
mod snapshots;
pub mod verify;

use crate::args::{Cli, Command};
use crate::state::Context;

/// What a command prints on stdout, and its exit code.
pub struct Report {
    /// For people.
    pub text: String,
    /// For `--json`.
    pub json: serde_json::Value,
    /// The exit code: a report can be a failed check's.
    pub code: u8,
}

impl Report {
    /// A report of `text`, and `json` for scripts.
    pub fn new(text: impl Into<String>, json: serde_json::Value) -> Report {
        Report { text: text.into(), json, code: crate::exit::OK }
    }
}

/// Run the command `cli` names.
pub fn run(cli: Cli) -> anyhow::Result<Option<Report>> {
    let cx = Context::new(&cli.global)?;
    let report = match cli.command {
        Command::Create(args) => canister::create(&cx, args)?,
        Command::Install(args) => canister::install(&cx, args)?,
        Command::Call(args) => call::call(&cx, args)?,
        Command::Query(args) => call::query(&cx, args)?,
        Command::Status(args) => canister::status(&cx, args)?,
        Command::Info => canister::info(&cx)?,
        Command::Logs(args) => return canister::logs(&cx, args).map(|()| None),
        Command::Stop(t) => canister::lifecycle(&cx, &t.canister, canister::Lifecycle::Stop)?,
        Command::Start(t) => canister::lifecycle(&cx, &t.canister, canister::Lifecycle::Start)?,
        Command::Delete(t) => canister::lifecycle(&cx, &t.canister, canister::Lifecycle::Delete)?,
        Command::Uninstall(t) => canister::lifecycle(&cx, &t.canister, canister::Lifecycle::Uninstall)?,
        Command::Controllers(args) => canister::controllers(&cx, args)?,
        Command::Snapshot(args) => snapshots::run(&cx, args)?,
        Command::Checkpoint(args) => checkpoints::run(&cx, args)?,
        Command::Verify(args) => verify::run(&cx, args)?,
        Command::Restore(args) => checkpoints::restore(&cx, args)?,
        Command::Serve(args) => serve::run(&cx, args)?,
        Command::Follow(args) => follow::run(&cx, args)?,
        Command::Bench(args) => bench::run(&cx, args)?,
        Command::Demo(args) => crate::demo::run(&cx, args)?,
        Command::DemoLoad(args) => return crate::demo::load::run(&cx, args).map(|()| None),
    };
    Ok(Some(report))
}
