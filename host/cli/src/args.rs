//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run Internet Computer canisters locally, with orthogonal persistence:
/// every canister's heap survives every message, restart and crash.
#[derive(Debug, Parser)]
#[command(name = "canister-host", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The state directory, created on first use [default: ./.canister-host;
    /// for `demo`, a temporary directory].
    #[arg(long, global = true, env = "CANISTER_HOST_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The principal to act as (default: the anonymous principal, 2vxsx-fae).
    #[arg(long, global = true, default_value = "2vxsx-fae")]
    pub sender: String,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars, warnings or informational messages.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Log more (-v: debug, -vv: trace); `RUST_LOG` overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty canister and print its id.
    Create(Create),
    /// Install, reinstall or upgrade a canister's code.
    Install(Install),
    /// Call a canister's method (an update, or a query if the method is one).
    Call(Call),
    /// Run a query, on the current state or on any kept past round.
    Query(Query),
    /// Show a canister's status (or every canister's).
    Status(Status),
    /// Show the state directory: height, canisters, checkpoints, log size.
    Info,
    /// Print a canister's log (its `debug_print` output and traps).
    Logs(Logs),
    /// Stop a canister: it takes no more messages.
    Stop(Target),
    /// Start a stopped canister.
    Start(Target),
    /// Delete a stopped canister and its snapshots.
    Delete(Target),
    /// Remove a canister's code and state, keeping the canister.
    Uninstall(Target),
    /// List or change a canister's controllers.
    #[command(subcommand)]
    Controllers(Controllers),
    /// Take, list, load and delete canister snapshots.
    #[command(subcommand)]
    Snapshot(Snapshot),
    /// Take, list, inspect, verify and prune checkpoints.
    Checkpoint(CheckpointArgs),
    /// Replay the logged history and check every recorded digest.
    Verify(Verify),
    /// Roll the state back to a kept checkpoint, discarding every later
    /// round (refused without --yes; says what would be lost); or, with
    /// --from, build a fresh state directory from a store `serve
    /// --replicate-to` shipped to.
    Restore(Restore),
    /// Run the micropayments demo: load, a crash, recovery, verification.
    Demo(Demo),
    /// Serve the IC's HTTP interface (agent-js, ic-agent, icp-cli, dfx talk
    /// to it unchanged) until SIGINT or SIGTERM, then checkpoint.
    Serve(Serve),
    /// Keep a read replica of a store `serve --replicate-to` ships to in
    /// the state directory, and serve queries from it over the IC's HTTP
    /// interface; updates are refused, naming the primary.
    Follow(Follow),
    /// Run the benchmark suite: every case beside its baselines, as
    /// p50/p90/p99 and ratios; write a report; check for regressions.
    Bench(Bench),
    /// The demo's load generator, run by `demo` as a child process.
    #[command(hide = true)]
    DemoLoad(crate::demo::load::LoadArgs),
}

/// A canister, by id or name.
#[derive(Debug, Args)]
pub struct Target {
    /// The canister's id or name.
    pub canister: String,
}

/// `create`.
#[derive(Debug, Args)]
pub struct Create {
    /// A unique name to refer to the canister by.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub name: Option<String>,
    /// A controller (repeat for several; default: the sender).
    #[arg(long = "controller")]
    pub controllers: Vec<String>,
}

/// How an install treats the canister.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// `install` if the canister is empty, `upgrade` otherwise.
    Auto,
    /// The canister must be empty.
    Install,
    /// Wipe the canister's state, then install.
    Reinstall,
    /// Keep stable memory (and the heap with `keep`), run the upgrade hooks.
    Upgrade,
}

/// How a Candid argument is written.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ArgType {
    /// Candid text, such as `(42 : nat64, "hi")`.
    Idl,
    /// Hex of the raw argument bytes.
    Raw,
}

/// What happens to the heap on upgrade.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Persistence {
    /// Keep the heap (required for enhanced orthogonal persistence).
    Keep,
    /// Start from a fresh heap.
    Replace,
}

/// An argument, given inline or in a file.
#[derive(Debug, Args)]
pub struct Argument {
    /// Read the argument from a file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub argument_file: Option<PathBuf>,
}

/// `install`.
#[derive(Debug, Args)]
pub struct Install {
    /// The canister's id or name.
    pub canister: String,
    /// The module (`.wasm`, or gzipped `.wasm.gz`).
    #[arg(long, value_name = "FILE")]
    pub wasm: PathBuf,
    /// How to install.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// The init or upgrade argument.
    #[arg(long, conflicts_with = "argument_file", allow_hyphen_values = true)]
    pub argument: Option<String>,
    /// How the argument is written.
    #[arg(long, value_enum, default_value_t = ArgType::Idl)]
    pub argument_type: ArgType,
    /// The argument in a file.
    #[command(flatten)]
    pub file: Argument,
    /// On upgrade: keep or replace the heap.
    #[arg(long, value_enum)]
    pub wasm_memory_persistence: Option<Persistence>,
    /// On upgrade: do not run `canister_pre_upgrade`.
    #[arg(long)]
    pub skip_pre_upgrade: bool,
    /// The canister's Candid interface (default: the module's
    /// `candid:service` metadata).
    #[arg(long, value_name = "FILE")]
    pub candid: Option<PathBuf>,
}

/// How a reply is printed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Candid text, laid out for reading.
    Pp,
    /// Candid text on one line.
    Idl,
    /// Hex of the raw reply bytes.
    Raw,
    /// JSON (as `idl2json` maps Candid).
    Json,
}

/// What `call` and `query` share.
#[derive(Debug, Args)]
pub struct Message {
    /// The canister's id or name.
    pub canister: String,
    /// The method.
    pub method: String,
    /// The argument (default: none, `()`).
    #[arg(allow_hyphen_values = true)]
    pub argument: Option<String>,
    /// How the argument is written.
    #[arg(long = "type", value_enum, default_value_t = ArgType::Idl)]
    pub arg_type: ArgType,
    /// The argument in a file.
    #[command(flatten)]
    pub file: Argument,
    /// How to print the reply.
    #[arg(long, value_enum, default_value_t = Output::Pp)]
    pub output: Output,
    /// The canister's Candid interface (default: the module's
    /// `candid:service` metadata).
    #[arg(long, value_name = "FILE")]
    pub candid: Option<PathBuf>,
}

/// `call`.
#[derive(Debug, Args)]
pub struct Call {
    /// The message.
    #[command(flatten)]
    pub message: Message,
    /// Send it as a query (no state change).
    #[arg(long, conflicts_with = "update")]
    pub query: bool,
    /// Send it as an update (durable before the reply).
    #[arg(long)]
    pub update: bool,
}

/// `query`.
#[derive(Debug, Args)]
pub struct Query {
    /// The message.
    #[command(flatten)]
    pub message: Message,
    /// Run it on the state as of this past round (read-only, no lock). A
    /// read replica's directory (`follow`) is always queried this way, at
    /// its last round.
    #[arg(long, value_name = "HEIGHT")]
    pub at_height: Option<u64>,
}

/// `status`.
#[derive(Debug, Args)]
pub struct Status {
    /// The canister's id or name.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub canister: Option<String>,
    /// Every canister.
    #[arg(long)]
    pub all: bool,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct Logs {
    /// The canister's id or name.
    pub canister: String,
    /// Keep running the host and print new records as they come (Ctrl-C
    /// stops).
    #[arg(long)]
    pub follow: bool,
}

/// `controllers`.
#[derive(Debug, Subcommand)]
pub enum Controllers {
    /// List a canister's controllers.
    List(Target),
    /// Add controllers.
    Add(ControllerChange),
    /// Remove controllers.
    Remove(ControllerChange),
}

/// `controllers add|remove`.
#[derive(Debug, Args)]
pub struct ControllerChange {
    /// The canister's id or name.
    pub canister: String,
    /// The principals to add or remove.
    #[arg(required = true)]
    pub principals: Vec<String>,
}

/// `snapshot`.
#[derive(Debug, Subcommand)]
pub enum Snapshot {
    /// Snapshot a stopped canister (replacing snapshot ID if given).
    Create(SnapshotTarget),
    /// List a canister's snapshots.
    List(Target),
    /// Restore a stopped canister from a snapshot.
    Load(SnapshotId),
    /// Delete a snapshot.
    Delete(SnapshotId),
    /// Save a snapshot to a directory in dfx's layout (`metadata.json`,
    /// `wasm_module.bin`, `wasm_memory.bin`, `stable_memory.bin`).
    Download(SnapshotDir),
    /// Make a snapshot from a directory in dfx's layout (from `download`,
    /// dfx or icp-cli); `load` then restores the canister from it.
    Upload(SnapshotUploadArgs),
}

/// `snapshot upload`.
#[derive(Debug, Args)]
pub struct SnapshotUploadArgs {
    /// The canister's id or name.
    pub canister: String,
    /// The snapshot to replace, if any.
    pub replace: Option<u64>,
    /// The directory holding the snapshot.
    #[arg(long)]
    pub dir: PathBuf,
}

/// A snapshot and a directory.
#[derive(Debug, Args)]
pub struct SnapshotDir {
    /// The canister's id or name.
    pub canister: String,
    /// The snapshot.
    pub id: u64,
    /// The directory (created if missing; must not hold a snapshot yet).
    #[arg(long)]
    pub dir: PathBuf,
}

/// A canister and perhaps one of its snapshots.
#[derive(Debug, Args)]
pub struct SnapshotTarget {
    /// The canister's id or name.
    pub canister: String,
    /// The snapshot to replace.
    pub id: Option<u64>,
}

/// A canister and one of its snapshots.
#[derive(Debug, Args)]
pub struct SnapshotId {
    /// The canister's id or name.
    pub canister: String,
    /// The snapshot.
    pub id: u64,
}

/// `checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// What to do (default: create).
    #[command(subcommand)]
    pub action: Option<CheckpointAction>,
}

/// `checkpoint` subcommands.
#[derive(Debug, Subcommand)]
pub enum CheckpointAction {
    /// Take a checkpoint now.
    Create,
    /// List the kept checkpoints (read-only, no lock).
    List,
    /// Show a checkpoint's manifest (read-only, no lock).
    Show {
        /// The checkpoint's height.
        height: u64,
    },
    /// Rehash every chunk of a checkpoint against its manifest (read-only).
    Verify {
        /// The checkpoint's height.
        height: u64,
    },
    /// Keep only the newest K checkpoints (and the log after the oldest).
    Prune {
        /// How many to keep.
        #[arg(long)]
        keep: usize,
    },
}

/// `verify`.
#[derive(Debug, Args)]
pub struct Verify {
    /// The checkpoint to start from (default: the oldest kept).
    #[arg(long)]
    pub from: Option<u64>,
    /// The last round to replay (default: the log's last).
    #[arg(long)]
    pub to: Option<u64>,
    /// Replay with another module: `CANISTER=FILE.wasm`, where CANISTER is
    /// an id or name (the module it runs now is replaced wherever it
    /// appears in the history) or the hex SHA-256 of the module to replace.
    #[arg(long, value_name = "CANISTER=FILE")]
    pub substitute: Vec<String>,
}

/// `restore`.
#[derive(Debug, Args)]
pub struct Restore {
    /// The checkpoint to roll back to (`checkpoint list` shows them), or,
    /// with --from, the shipped checkpoint to start from (default: the
    /// newest).
    #[arg(long, required_unless_present = "from")]
    pub height: Option<u64>,
    /// Really discard the later rounds.
    #[arg(long, conflicts_with = "from")]
    pub yes: bool,
    /// The store to restore from (`file:///path` or `s3://bucket/prefix`):
    /// its checkpoint, then the shipped log after it, into the state
    /// directory, which must hold no checkpoint yet.
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct Demo {
    /// Ledger accounts.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Client threads sending transfers.
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Seconds of load before the host is killed.
    #[arg(long, default_value_t = 8.0)]
    pub seconds: f64,
    /// Rounds between checkpoints.
    #[arg(long, default_value_t = 200)]
    pub checkpoint_interval: u64,
}

/// `bench`.
#[derive(Debug, Args)]
pub struct Bench {
    /// Small sizes and short sampling (about a minute); what CI runs.
    #[arg(long)]
    pub quick: bool,
    /// Run only the cases whose name contains this (repeat for several);
    /// their baselines run with them.
    #[arg(long, value_name = "TEXT")]
    pub filter: Vec<String>,
    /// Write the HTML report (index.html) and the run (run.json) here.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Compare to a stored baseline; exit 6 when a case regressed.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = DEFAULT_BASELINE)]
    pub compare: Option<PathBuf>,
    /// Store this run's figures in the baseline (--compare's file, or
    /// benches/baseline.json); cases not run keep their stored figures.
    #[arg(long)]
    pub persist: bool,
    /// A ratio that moved less than this percentage is noise.
    #[arg(long, value_name = "PERCENT", default_value_t = 25.0)]
    pub noise: f64,
    /// Where fixtures are made: a directory on the disk to measure
    /// (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
}

/// The committed baseline, relative to the repository's root.
pub const DEFAULT_BASELINE: &str = "benches/baseline.json";

/// Where and how an HTTP server listens (`serve`, `follow`).
#[derive(Debug, Args)]
pub struct Listen {
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:4943")]
    pub listen: std::net::SocketAddr,
    /// Write the port actually bound to this file once listening.
    #[arg(long, value_name = "FILE")]
    pub port_file: Option<PathBuf>,
    /// Requests served at once; more are answered 429 (agents retry).
    #[arg(long, default_value_t = 256)]
    pub max_concurrent: usize,
    /// Largest request body in bytes; larger ones get 413 (the IC's
    /// ingress limit is 2 MiB of argument, plus the envelope).
    #[arg(long, default_value_t = server::ServerConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Seconds any request may take before the server answers 503.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub request_timeout: u64,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct Serve {
    #[command(flatten)]
    pub http: Listen,
    /// Threads running queries (default: the host's).
    #[arg(long)]
    pub query_threads: Option<usize>,
    /// Queries waiting for a thread before more are refused (default: the
    /// host's).
    #[arg(long)]
    pub query_queue: Option<usize>,
    /// Ship every checkpoint and the log to this store (`file:///path`,
    /// or `s3://bucket/prefix` with the AWS_* environment variables) in the
    /// background, sealing the log at every pass so the store trails by
    /// about one pass; `restore --from` rebuilds the state from it on any
    /// machine, and `follow --from` serves queries from it.
    #[arg(long, value_name = "URL")]
    pub replicate_to: Option<String>,
    /// Seconds between shipping passes (each seals a log segment when
    /// there were rounds, so shorter intervals store more, smaller ones).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub replicate_every: f64,
    /// Keep only the newest N checkpoints in the store, with the log a
    /// restore of the oldest replays and the chunks they name (older
    /// ones are deleted after each checkpoint ships). Default: keep
    /// everything.
    #[arg(long, value_name = "N", requires = "replicate_to")]
    pub replicate_keep: Option<usize>,
}

/// `follow`.
#[derive(Debug, Args)]
pub struct Follow {
    /// The store a primary ships to (`serve --replicate-to`):
    /// `file:///path`, or `s3://bucket/prefix` with the AWS_* environment
    /// variables.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Where the primary serves, named in the error updates get.
    #[arg(long, value_name = "URL")]
    pub primary: Option<String>,
    /// Seconds between looks at the store for new checkpoints and log
    /// segments.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub every: f64,
    #[command(flatten)]
    pub http: Listen,
}
