//! The cases, one module per group. Each group sets up its fixtures only
//! when one of its cases is selected, and then measures its baselines too.

mod checkpoints;
mod disk;
mod history;
mod host_calls;
mod http;
mod install;
mod load;
mod memory;
mod message;
mod plain;
mod reopen;
mod replication;
mod scaling;

use std::path::Path;

use canister_host::{Host, HostConfig, InstallMode, Principal};

use super::error::CaseContext;
use super::measure::Runner;
use super::{BenchError, Published};

/// The sender of every message.
const OWNER: Principal = Principal::from_slice(&[0x11; 29]);

/// Run every group.
pub(crate) fn run_all(r: &mut Runner) -> Result<(), BenchError> {
    // First, so memory earlier cases freed does not hide what it uses.
    memory::run(r)?;
    plain::run(r)?;
    message::run(r)?;
    host_calls::run(r)?;
    http::run(r)?;
    install::run(r)?;
    scaling::run(r)?;
    load::run(r)?;
    history::run(r)?;
    reopen::run(r)?;
    checkpoints::run(r)?;
    replication::run(r)?;
    Ok(())
}

/// The IC's published figures the cases are compared to.
pub(crate) fn published() -> Vec<Published> {
    const UPDATE: &str = "dfinity/ic rs/execution_environment/benches (execute_update_bench), \
                          baseline SYSTEM_API_UPDATE.min, wasm32: an empty update, execution only";
    const HEAP: &str = "dfinity/ic rs/embedders/benches/heap.rs, baseline EMBEDDERS_HEAP.min, wasm32: \
                        1 GiB sweeps at 4 KiB stride (262,144 pages), scaled to the case's pages";
    // 1 GiB forward write sweep: 2.23 s; forward update read sweep: 201 ms.
    let per_page = |seconds: f64| seconds * 1e9 / 262_144.0;
    let mut figures = vec![Published { name: "ic/update_empty".into(), ns: 238_000.0, source: UPDATE.into() }];
    for pages in [1u64, 16, 256] {
        for (op, seconds) in [("write", 2.23), ("read", 0.201)] {
            figures.push(Published {
                name: format!("ic/update_{op}_{pages}_pages"),
                ns: per_page(seconds) * pages as f64,
                source: HEAP.into(),
            });
        }
    }
    figures
}

/// A host that checkpoints only when asked, and compiles every module (the
/// compiled-module cache has its own cases, in `reopen`).
fn host_config(fsync: bool, workers: usize) -> HostConfig {
    HostConfig { fsync, workers, checkpoint_interval: u64::MAX / 2, module_cache_bytes: 0, ..HostConfig::default() }
}

/// Open a host on a fresh directory `name` in the scratch directory.
fn open_host(r: &Runner, name: &str, config: HostConfig) -> Result<Host, BenchError> {
    let dir = r.scratch().join(name.replace('/', "_"));
    Host::open(&dir, config).case(name)
}

/// Create a canister and install `wasm` on it.
fn install(host: &Host, case: &str, wasm: &[u8], arg: Vec<u8>) -> Result<Principal, BenchError> {
    let id = host.create_canister(OWNER, vec![], None).case(case)?;
    host.install_code(OWNER, id, InstallMode::Install, wasm.to_vec(), arg).case(case)?;
    Ok(id)
}

/// Total bytes of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    sum_files(dir, &|m| m.len())
}

/// Bytes the files under `dir` occupy on disk (allocated blocks: holes in
/// sparse files take none, hard-linked files count once per link).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    sum_files(dir, &|m| m.blocks() * 512)
}

/// `size` summed over the files under `dir`, recursively.
fn sum_files(dir: &Path, size: &dyn Fn(&std::fs::Metadata) -> u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => sum_files(&e.path(), size),
            Ok(_) => e.metadata().map_or(0, |m| size(&m)),
            Err(_) => 0,
        })
        .sum()
}

/// Sizes for names: 1KiB, 64MiB, 1GiB.
fn size_label(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b % 1024 == 0 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}

/// Counts for names: 100, 10k, 1M, 10M.
fn count_label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 10_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
