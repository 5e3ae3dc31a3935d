//! The state directory a command works on, and the host over it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use canister_host::{Host, HostConfig, Principal};

use crate::args::Global;
use crate::exit::usage;
use crate::progress::Progress;

/// Where state lives when neither `--state-dir` nor `$CANISTER_HOST_DIR`
/// says.
pub const DEFAULT_DIR: &str = ".canister-host";

/// What every command knows: the global options, resolved.
#[derive(Clone)]
pub struct Context {
    /// The state directory.
    pub dir: PathBuf,
    /// Whether `--state-dir` or `$CANISTER_HOST_DIR` chose it.
    pub dir_given: bool,
    /// Who acts.
    pub sender: Principal,
    /// JSON output.
    pub json: bool,
    /// No progress or warnings.
    pub quiet: bool,
}

impl Context {
    /// Resolve the global options.
    pub fn new(global: &Global) -> anyhow::Result<Context> {
        let sender = principal(&global.sender)?;
        let dir = global.state_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        Ok(Context { dir, dir_given: global.state_dir.is_some(), sender, json: global.json, quiet: global.quiet })
    }

    /// A warning on stderr, unless quiet.
    pub fn warn(&self, message: &str) {
        if !self.quiet {
            eprintln!("warning: {message}");
        }
    }

    /// A progress spinner or bar on stderr (hidden when quiet or not a
    /// terminal).
    pub fn progress(&self, message: &str) -> Progress {
        Progress::spinner(message, self.quiet)
    }

    /// Open the host over the state directory, creating it if needed. Takes
    /// the directory's lock: another process holding it is an error naming
    /// that process.
    pub fn open(&self) -> anyhow::Result<Host> {
        self.open_with(HostConfig::default())
    }

    /// [`Context::open`] with a configuration.
    pub fn open_with(&self, config: HostConfig) -> anyhow::Result<Host> {
        let spinner = self.progress("opening the state directory (compiling modules, replaying the log)");
        let fresh = self.refuse_foreign_dir()?;
        let marker = self.dir.join(replication::REPLICA_MARKER);
        if marker.exists() {
            // A host would append its own rounds, and the follower would
            // then replace them, or stop at a chain that no longer fits.
            return Err(usage(format!(
                "{} is a read replica kept by `canister-host follow`: query it (`canister-host query`, or the \
                 follower's server); to make it a primary instead (it then stops following), delete {}",
                self.dir.display(),
                marker.display()
            )));
        }
        let host = Host::open(&self.dir, config).map_err(|e| {
            let locked = matches!(&e, canister_host::HostError::Checkpoint(checkpoint::Error::Locked { .. }));
            let served = std::fs::read_to_string(self.dir.join(crate::commands::SERVER_URL_FILE)).ok();
            let error = anyhow::Error::new(e).context(format!("cannot open the state directory {}", self.dir.display()));
            match served {
                Some(url) if locked => error.context(format!(
                    "a server holds the state directory at {url}: send calls to it (icp, dfx, an agent), or stop it first"
                )),
                _ => error,
            }
        })?;
        if fresh {
            // Checkpoint the empty state, so the whole history stays
            // verifiable and every round can be queried back in time.
            host.checkpoint().context("checkpointing the new state directory")?;
        }
        spinner.finish();
        let report = host.recovery();
        tracing::info!(
            checkpoint = report.checkpoint,
            replayed = report.replayed_rounds,
            truncated = report.truncated_log_bytes,
            "opened"
        );
        Ok(host)
    }

    /// Whether the state directory is new (no checkpoints yet). A directory
    /// of other files is refused: a mistyped --state-dir must not scatter
    /// a state directory into, say, `$HOME`.
    pub fn refuse_foreign_dir(&self) -> anyhow::Result<bool> {
        let fresh = !self.dir.join("checkpoints").is_dir();
        let occupied = std::fs::read_dir(&self.dir).map(|mut entries| entries.next().is_some()).unwrap_or(false);
        if fresh && occupied {
            return Err(usage(format!(
                "{} holds other files and is not a canister-host state directory; choose a new or empty \
                 directory with --state-dir",
                self.dir.display()
            )));
        }
        Ok(fresh)
    }

    /// The state directory, which read-only commands need to exist.
    pub fn existing_dir(&self) -> anyhow::Result<&Path> {
        if !self.dir.join("checkpoints").is_dir() {
            return Err(usage(format!(
                "{} is not a state directory (it has no checkpoints/); pass --state-dir or set CANISTER_HOST_DIR",
                self.dir.display()
            )));
        }
        Ok(&self.dir)
    }
}

/// A principal in its textual form.
pub fn principal(text: &str) -> anyhow::Result<Principal> {
    Principal::from_text(text).map_err(|e| usage(format!("{text:?} is not a principal: {e}")))
}

/// The canister `name_or_id` names on `host`.
pub fn canister(host: &Host, name_or_id: &str) -> anyhow::Result<Principal> {
    if let Some(id) = host.resolve(name_or_id) {
        return Ok(id);
    }
    // A well-formed id of no canister is the host's to reject, as on the IC.
    if let Ok(id) = Principal::from_text(name_or_id) {
        return Ok(id);
    }
    Err(usage(format!(
        "there is no canister named {name_or_id:?}; `canister-host status --all` lists them, `canister-host create \
         --name {name_or_id}` makes one"
    )))
}
