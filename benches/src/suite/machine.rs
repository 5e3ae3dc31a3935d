//! The machine, build and commit a run was measured on: figures mean
//! little without them.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Where and what a run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// The kernel release.
    pub kernel: String,
    /// The filesystem the fixtures were on (type and device).
    pub filesystem: String,
    /// `release` or `debug`: figures of different builds are not comparable.
    pub profile: String,
    /// The commit measured (`+dirty` with uncommitted changes), if known.
    pub commit: String,
    /// When the run ended (UTC, RFC 3339).
    pub date: String,
}

impl Machine {
    /// Describe this machine, with `scratch`'s filesystem.
    pub fn describe(scratch: &Path) -> Machine {
        Machine {
            cpu: cpu_model().unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            filesystem: filesystem_of(scratch).unwrap_or_else(|| "unknown".into()),
            profile: build_profile().into(),
            commit: commit().unwrap_or_else(|| "unknown".into()),
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

/// The profile this code was compiled in.
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) { "debug" } else { "release" }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The type and device of the mount that holds `path`: the longest mount
/// point in /proc/mounts that prefixes it.
fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point).then(|| (point.len(), format!("{kind} ({device})")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
}

/// The current commit of the repository the suite runs in (or was built
/// from), marked `+dirty` when the tree has changes.
fn commit() -> Option<String> {
    let git = |dir: &Path, args: &[&str]| -> Option<String> {
        let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let cwd = std::env::current_dir().ok();
    let dirs = cwd.iter().map(|d| d.as_path()).chain([Path::new(env!("CARGO_MANIFEST_DIR"))]);
    for dir in dirs {
        if let Some(head) = git(dir, &["rev-parse", "--short=12", "HEAD"]) {
            let dirty = git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            return Some(if dirty { format!("{head}+dirty") } else { head });
        }
    }
    None
}
