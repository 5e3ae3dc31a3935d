//! Canister lifecycle: create, install, status, info, logs, stop, start,
//! delete, uninstall, controllers.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use canister_host::{CanisterInfo, Host, InstallMode, Principal, WasmMemoryPersistence};
use serde_json::json;

use super::Report;
use crate::args::{Controllers, Create, Install, Logs, Mode, Persistence, Status};
use crate::candid_io::{self, Interface};
use crate::exit::usage;
use crate::state::{self, Context};

/// Largest module `install` reads (the IC's limit on a whole module,
/// installed from chunks, is 100 MiB).
const MAX_WASM_BYTES: u64 = 100 << 20;

/// `create`.
pub fn create(cx: &Context, args: Create) -> anyhow::Result<Report> {
    let controllers = args.controllers.iter().map(|p| state::principal(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let host = cx.open()?;
    let id = host.create_canister(cx.sender, controllers, args.name.clone())?;
    let name = args.name.map(|n| format!(" ({n})")).unwrap_or_default();
    Ok(Report::new(format!("{id}{name}"), json!({ "canister_id": id.to_text() })))
}

/// A module file, gunzipped if it is gzipped.
pub fn read_wasm(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).map_err(|e| usage(format!("cannot read the module {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_WASM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(format!("cannot read the module {}: {e}", path.display())))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut wasm = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .take(MAX_WASM_BYTES + 1)
            .read_to_end(&mut wasm)
            .map_err(|e| usage(format!("{} is not a valid gzip file: {e}", path.display())))?;
        bytes = wasm;
    }
    if bytes.len() as u64 > MAX_WASM_BYTES {
        return Err(usage(format!("{} is larger than {MAX_WASM_BYTES} bytes", path.display())));
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(usage(format!("{} is not a WebAssembly module (nor a gzipped one)", path.display())));
    }
    Ok(bytes)
}

fn install_mode(args: &Install, installed: bool) -> anyhow::Result<InstallMode> {
    let mode = match args.mode {
        Mode::Auto if installed => Mode::Upgrade,
        Mode::Auto => Mode::Install,
        mode => mode,
    };
    if mode != Mode::Upgrade && (args.wasm_memory_persistence.is_some() || args.skip_pre_upgrade) {
        return Err(usage("--wasm-memory-persistence and --skip-pre-upgrade apply to upgrades only"));
    }
    Ok(match mode {
        Mode::Install => InstallMode::Install,
        Mode::Reinstall => InstallMode::Reinstall,
        _ => InstallMode::Upgrade {
            wasm_memory_persistence: args.wasm_memory_persistence.map(|p| match p {
                Persistence::Keep => WasmMemoryPersistence::Keep,
                Persistence::Replace => WasmMemoryPersistence::Replace,
            }),
            skip_pre_upgrade: args.skip_pre_upgrade,
        },
    })
}

/// `install`.
pub fn install(cx: &Context, args: Install) -> anyhow::Result<Report> {
    let wasm = read_wasm(&args.wasm)?;
    let text = candid_io::read_argument(args.argument.as_deref(), args.file.argument_file.as_deref())?;
    let interface = Interface::find(args.candid.as_deref(), Some(&wasm))?;
    let init_types = interface.as_ref().map(|i| i.init_args());
    if interface.is_none() && text.is_some() && args.argument_type == crate::args::ArgType::Idl {
        cx.warn("the module has no candid:service metadata and no --candid was given: the argument's types are inferred from its values");
    }
    let arg = match (&text, &interface, &init_types) {
        (None, _, _) => Vec::new(),
        (Some(t), Some(i), Some(types)) => candid_io::encode(Some(t), args.argument_type, Some((i, types)))?,
        (Some(t), _, _) => candid_io::encode(Some(t), args.argument_type, None)?,
    };
    let host = cx.open()?;
    let canister = state::canister(&host, &args.canister)?;
    let installed = host.canister_info(canister).ok().is_some_and(|c| c.state.module.is_some());
    let mode = install_mode(&args, installed)?;
    let label = match mode {
        InstallMode::Install => "installed",
        InstallMode::Reinstall => "reinstalled",
        InstallMode::Upgrade { .. } => "upgraded",
    };
    let spinner = cx.progress(&format!("compiling and installing {} ({} bytes)", args.wasm.display(), wasm.len()));
    host.install_code(cx.sender, canister, mode, wasm, arg)?;
    spinner.finish();
    let hash = host.canister_info(canister)?.module_hash().unwrap_or_default();
    Ok(Report::new(
        format!("{label} {} in {canister} (module hash {})", args.wasm.display(), hex::encode(hash)),
        json!({ "canister_id": canister.to_text(), "mode": label, "module_hash": hex::encode(hash) }),
    ))
}

fn time_text(nanos: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
}

fn status_json(c: &CanisterInfo) -> serde_json::Value {
    json!({
        "canister_id": c.id.to_text(),
        "name": c.name,
        "status": format!("{:?}", c.status).to_lowercase(),
        "controllers": c.controllers.iter().map(|p| p.to_text()).collect::<Vec<_>>(),
        "module_hash": c.module_hash().map(hex::encode),
        "heap_bytes": c.state.heap_pages.bytes(),
        "stable_bytes": c.state.stable_pages.bytes(),
        "version": c.version,
        "snapshots": c.snapshots.iter().map(|s| s.id).collect::<Vec<_>>(),
        "calls_open": c.calls_open,
        "calls_outstanding": c.calls_outstanding,
    })
}

fn status_text(c: &CanisterInfo) -> String {
    let name = c.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
    let controllers: Vec<String> = c.controllers.iter().map(|p| p.to_text()).collect();
    format!(
        "{}{name}\n  status:      {:?}\n  controllers: {}\n  module hash: {}\n  heap:        {} bytes\n  stable:      \
         {} bytes\n  version:     {}\n  snapshots:   {}\n  open calls:  {} ({} outstanding)",
        c.id,
        c.status,
        controllers.join(", "),
        c.module_hash().map_or_else(|| "none (empty)".into(), hex::encode),
        c.state.heap_pages.bytes(),
        c.state.stable_pages.bytes(),
        c.version,
        c.snapshots.len(),
        c.calls_open,
        c.calls_outstanding,
    )
}

/// `status`.
pub fn status(cx: &Context, args: Status) -> anyhow::Result<Report> {
    let host = cx.open()?;
    let mut canisters = match &args.canister {
        Some(c) => vec![host.canister_info(state::canister(&host, c)?)?],
        None => host.canisters(),
    };
    canisters.sort_by_key(|c| c.id);
    let text = if canisters.is_empty() {
        "no canisters; `canister-host create` makes one".to_string()
    } else {
        canisters.iter().map(status_text).collect::<Vec<_>>().join("\n")
    };
    let json = if args.all {
        json!(canisters.iter().map(status_json).collect::<Vec<_>>())
    } else {
        status_json(&canisters[0])
    };
    Ok(Report::new(text, json))
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path).into_iter().flatten().flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
}

/// `info`.
pub fn info(cx: &Context) -> anyhow::Result<Report> {
    let host = cx.open()?;
    let round = host.height();
    let recovery = host.recovery().clone();
    let canisters = host.canisters().len();
    drop(host);
    let heights = checkpoint::StateDir::open_read_only(&cx.dir)?.heights()?;
    let log_bytes = dir_bytes(&cx.dir.join("log"));
    let text = format!(
        "state directory: {}\nheight:          {} ({})\ncanisters:       {canisters}\ncheckpoints:     {}\nlog:             \
         {log_bytes} bytes\nopened from:     checkpoint {}, {} rounds replayed",
        cx.dir.display(),
        round.height,
        if round.time == 0 { "no rounds yet".into() } else { time_text(round.time) },
        heights.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
        recovery.checkpoint,
        recovery.replayed_rounds,
    );
    Ok(Report::new(
        text,
        json!({
            "state_dir": cx.dir,
            "height": round.height,
            "time_nanos": round.time,
            "canisters": canisters,
            "checkpoints": heights,
            "log_bytes": log_bytes,
            "recovered_from_checkpoint": recovery.checkpoint,
            "replayed_rounds": recovery.replayed_rounds,
        }),
    ))
}

/// `logs`: print as records arrive; with `--follow`, keep the host running.
pub fn logs(cx: &Context, args: Logs) -> anyhow::Result<()> {
    let host = cx.open()?;
    let canister = state::canister(&host, &args.canister)?;
    let mut next = 0;
    loop {
        let from = next;
        for record in host.canister_log(canister)?.into_iter().filter(|r| r.index >= from) {
            next = record.index + 1;
            let content = String::from_utf8_lossy(&record.content);
            if cx.json {
                let line = json!({ "index": record.index, "time_nanos": record.time, "content": content });
                println!("{line}");
            } else {
                println!("[{}. {}]: {content}", record.index, time_text(record.time));
            }
        }
        if !args.follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A lifecycle change.
#[derive(Copy, Clone, Debug)]
pub enum Lifecycle {
    /// `stop`.
    Stop,
    /// `start`.
    Start,
    /// `delete`.
    Delete,
    /// `uninstall`.
    Uninstall,
}

/// `stop`, `start`, `delete`, `uninstall`.
pub fn lifecycle(cx: &Context, name: &str, change: Lifecycle) -> anyhow::Result<Report> {
    let host = cx.open()?;
    let canister = state::canister(&host, name)?;
    let (sender, done) = (
        cx.sender,
        match change {
            Lifecycle::Stop => "stopped",
            Lifecycle::Start => "started",
            Lifecycle::Delete => "deleted",
            Lifecycle::Uninstall => "uninstalled",
        },
    );
    match change {
        Lifecycle::Stop => host.stop(sender, canister)?,
        Lifecycle::Start => host.start(sender, canister)?,
        Lifecycle::Delete => host.delete_canister(sender, canister)?,
        Lifecycle::Uninstall => host.uninstall(sender, canister)?,
    }
    Ok(Report::new(format!("{done} {canister}"), json!({ "canister_id": canister.to_text(), "done": done })))
}

fn controller_report(host: &Host, canister: Principal) -> anyhow::Result<Report> {
    let controllers: Vec<String> = host.canister_info(canister)?.controllers.iter().map(|p| p.to_text()).collect();
    Ok(Report::new(controllers.join("\n"), json!({ "canister_id": canister.to_text(), "controllers": controllers })))
}

/// `controllers list|add|remove`.
pub fn controllers(cx: &Context, args: Controllers) -> anyhow::Result<Report> {
    let (name, change) = match &args {
        Controllers::List(t) => (&t.canister, None),
        Controllers::Add(c) => (&c.canister, Some((true, &c.principals))),
        Controllers::Remove(c) => (&c.canister, Some((false, &c.principals))),
    };
    let change = match change {
        Some((add, ps)) => Some((add, ps.iter().map(|p| state::principal(p)).collect::<anyhow::Result<Vec<_>>>()?)),
        None => None,
    };
    let host = cx.open()?;
    let canister = state::canister(&host, name)?;
    if let Some((add, principals)) = change {
        let mut controllers = host.canister_info(canister)?.controllers;
        if add {
            for p in principals {
                if !controllers.contains(&p) {
                    controllers.push(p);
                }
            }
        } else {
            let missing: Vec<String> =
                principals.iter().filter(|p| !controllers.contains(p)).map(|p| p.to_text()).collect();
            if !missing.is_empty() {
                return Err(usage(format!("not controllers of {canister}: {}", missing.join(", "))));
            }
            controllers.retain(|p| !principals.contains(p));
        }
        host.set_controllers(cx.sender, canister, controllers)?;
    }
    controller_report(&host, canister)
}
