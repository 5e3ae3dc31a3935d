//! `canister-host demo`: what the host is for, in under a minute.
//!
//! 1. Install the example ledger in a fresh state directory.
//! 2. Start a child host process that sends Zipf-distributed transfers from
//!    client threads; show transfers/s, latency, rounds, dirty pages and
//!    checkpoints live.
//! 3. Once it has taken checkpoints, kill it with SIGKILL mid-load.
//! 4. Reopen: every acknowledged transfer must be in the ledger's log, the
//!    balances must equal the log replayed, the total supply unchanged.
//! 5. Verify the whole history by replay; then replay with a modified
//!    ledger, which must diverge at the first transfer.
//!
//! Every check fails the command (exit code 6) rather than just printing.

pub mod load;
mod recovery;
mod summary;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use canister_host::{Host, HostConfig, InstallMode, Principal, VerifyOptions};
use load::Line;

use crate::args::Demo;
use crate::commands::Report;
use crate::exit::{check_failed, usage};
use crate::progress::Progress;
use crate::state::Context;
use summary::Summary;

/// The ledger canister's name.
const LEDGER: &str = "ledger";
/// Each account's balance at the start.
const INITIAL_BALANCE: u64 = 1_000_000;
/// Most client threads (each is an OS thread in the child host).
const MAX_THREADS: usize = 1024;
/// Longest load: a day.
const MAX_SECONDS: f64 = 86_400.0;
/// The micropayments workload's skew (seed 003).
const ZIPF_EXPONENT: f64 = 1.0001;

/// The demo's hosts keep every checkpoint, so the whole history stays
/// verifiable.
fn host_config(checkpoint_interval: u64) -> HostConfig {
    HostConfig { checkpoint_interval, keep_checkpoints: usize::MAX, ..HostConfig::default() }
}

/// What the child reported, as the parent collects it.
#[derive(Default)]
struct Observed {
    ready: bool,
    /// (index, (from, to, amount)) of every acknowledged transfer.
    acks: Vec<(u64, (u64, u64, u64))>,
    latencies_us: Vec<u64>,
    height: u64,
    rounds: u64,
    dirty_pages: u64,
    checkpoints: u64,
}

impl Observed {
    fn record(&mut self, line: Line) {
        match line {
            Line::Ready => self.ready = true,
            Line::Ack { index, transfer, latency_us } => {
                self.acks.push((index, transfer));
                self.latencies_us.push(latency_us);
            }
            Line::Stats { height, rounds, dirty_pages, checkpoints } => {
                (self.height, self.rounds, self.dirty_pages, self.checkpoints) =
                    (height, rounds, dirty_pages, checkpoints)
            }
        }
    }
}

/// The `q` quantile of `values` (sorted here), in milliseconds.
fn quantile_ms(values: &[u64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
}

/// Install the ledger and checkpoint; returns the checkpoint's height.
fn setup(cx: &Context, args: &Demo) -> anyhow::Result<u64> {
    cx.refuse_foreign_dir()?;
    let host = Host::open(&cx.dir, host_config(args.checkpoint_interval))?;
    if host.resolve(LEDGER).is_some() {
        return Err(usage(format!(
            "{} already holds a demo ledger; give the demo a fresh --state-dir (or none, for a temporary one)",
            cx.dir.display()
        )));
    }
    // Checkpoint the empty state first, so verification covers the install.
    host.checkpoint()?;
    let owner = Principal::anonymous();
    let ledger = host.create_canister(owner, vec![], Some(LEDGER.into()))?;
    let init = candid::encode_args((args.accounts, INITIAL_BALANCE))?;
    host.install_code(owner, ledger, InstallMode::Install, canisters::LEDGER.to_vec(), init)?;
    let height = host.checkpoint()?;
    host.close()?;
    Ok(height)
}

fn spawn_load(cx: &Context, args: &Demo) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding this program to run the load in a child process")?;
    Command::new(exe)
        .arg("demo-load")
        .arg("--state-dir")
        .arg(&cx.dir)
        .args(["--accounts", &args.accounts.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(["--checkpoint-interval", &args.checkpoint_interval.to_string()])
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the child host")
}

/// Run the load in a child host; kill it with SIGKILL once `seconds` have
/// passed and it has taken a checkpoint. Returns what it acknowledged.
fn load_then_kill(cx: &Context, args: &Demo) -> anyhow::Result<(Observed, Duration)> {
    let mut child = spawn_load(cx, args)?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let observed = Arc::new(Mutex::new(Observed::default()));
    let reader = {
        let observed = observed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(line) = Line::decode(&line) {
                    observed.lock().unwrap_or_else(|e| e.into_inner()).record(line);
                }
            }
        })
    };
    let line = Progress::spinner("starting the child host", cx.quiet);
    let mut started = None;
    let give_up = Instant::now() + Duration::from_secs_f64(args.seconds * 4.0 + 60.0);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(status) = child.try_wait()? {
            return Err(anyhow::anyhow!("the child host exited early ({status}); its error is above"));
        }
        let o = observed.lock().unwrap_or_else(|e| e.into_inner());
        if !o.ready {
            continue;
        }
        let since = *started.get_or_insert_with(Instant::now);
        let elapsed = since.elapsed().as_secs_f64();
        let recent = &o.latencies_us[o.latencies_us.len().saturating_sub(2000)..];
        line.message(format!(
            "load: {} transfers, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} rounds, {} dirty pages, {} checkpoints",
            o.acks.len(),
            o.acks.len() as f64 / elapsed.max(1e-3),
            quantile_ms(recent, 0.5),
            quantile_ms(recent, 0.99),
            o.rounds,
            o.dirty_pages,
            o.checkpoints,
        ));
        let due = elapsed >= args.seconds && o.checkpoints > 0 && !o.acks.is_empty();
        if due || Instant::now() > give_up {
            drop(o);
            // SIGKILL: no destructor, no final checkpoint, no flush.
            child.kill().context("killing the child host")?;
            child.wait()?;
            break;
        }
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    line.finish();
    reader.join().map_err(|_| anyhow::anyhow!("reading the child's output failed"))?;
    let observed = std::mem::take(&mut *observed.lock().unwrap_or_else(|e| e.into_inner()));
    if observed.acks.is_empty() || observed.checkpoints == 0 {
        return Err(check_failed(
            "the child host acknowledged no transfers or took no checkpoint before it was killed; the machine may \
             be too slow for the chosen --seconds",
        ));
    }
    Ok((observed, elapsed))
}

/// `demo`.
pub fn run(cx: &Context, args: Demo) -> anyhow::Result<Report> {
    if args.accounts < 2 || !(1..=MAX_THREADS).contains(&args.threads) || args.checkpoint_interval == 0 {
        return Err(usage(format!(
            "the demo needs at least 2 accounts, 1 to {MAX_THREADS} threads and a positive --checkpoint-interval"
        )));
    }
    if !(args.seconds > 0.0 && args.seconds <= MAX_SECONDS) {
        return Err(usage(format!("--seconds must be more than 0 and at most {MAX_SECONDS}")));
    }
    let temp;
    let cx = if cx.dir_given {
        cx.clone()
    } else {
        temp = tempfile::Builder::new().prefix("canister-host-demo-").tempdir()?;
        Context { dir: temp.path().to_path_buf(), ..cx.clone() }
    };
    let say = |text: String| {
        if !cx.quiet && !cx.json {
            eprintln!("{text}");
        }
    };
    let total_started = Instant::now();
    say(format!("state directory: {}", cx.dir.display()));
    let setup_height = setup(&cx, &args)?;
    say(format!("installed the ledger: {} accounts of {INITIAL_BALANCE}; checkpoint {setup_height}", args.accounts));
    let (observed, load_time) = load_then_kill(&cx, &args)?;
    say(format!(
        "killed the child host with SIGKILL (last round seen: {}) after {} acknowledged transfers",
        observed.height,
        observed.acks.len()
    ));
    let recovered = recovery::check(&cx, &args, &observed)?;
    say(format!(
        "reopened: checkpoint {} + {} rounds replayed in {:.2?}; every acknowledged transfer is there, balances \
         match the log, total supply unchanged",
        recovered.report.checkpoint, recovered.report.replayed_rounds, recovered.open_time
    ));
    let verified = crate::commands::verify::replay(&cx, VerifyOptions { workers: 1, ..VerifyOptions::default() })?;
    if let Some(d) = &verified.divergence {
        return Err(check_failed(format!("verifying the history failed: {d}")));
    }
    say(format!(
        "verified {} rounds from checkpoint {}: every digest reproduced",
        verified.rounds, verified.from_height
    ));
    let substituted = recovery::substitute(&cx, setup_height, recovered.ledger)?;
    say(format!("replayed with a modified ledger (a fee on each transfer): {}", substituted.divergence_text()));
    let summary = Summary {
        args: &args,
        observed: &observed,
        load_time,
        recovered: &recovered,
        verified: &verified,
        substituted: &substituted,
        setup_height,
        total_time: total_started.elapsed(),
        p50_ms: quantile_ms(&observed.latencies_us, 0.5),
        p99_ms: quantile_ms(&observed.latencies_us, 0.99),
    };
    Ok(Report::new(summary.table(), summary.json()))
}
