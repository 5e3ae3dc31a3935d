//! The demo's child process: a host under load, to be killed. It opens the
//! state directory, sends Zipf-distributed transfers from client threads,
//! and reports on stdout one line per acknowledged (durable) transfer and a
//! line of counters every 100 ms, until the demo kills it. If the demo goes
//! away first, writing to stdout fails and the child stops.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use canister_host::{Host, Principal};
use clap::Args;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

use super::{LEDGER, ZIPF_EXPONENT, host_config};
use crate::state::Context;

/// How the child runs.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Ledger accounts.
    #[arg(long)]
    pub accounts: u64,
    /// Client threads.
    #[arg(long)]
    pub threads: usize,
    /// Rounds between checkpoints.
    #[arg(long)]
    pub checkpoint_interval: u64,
    /// Stop after this long even if nobody kills the process.
    #[arg(long, default_value_t = 600.0)]
    pub max_seconds: f64,
}

/// One line of the child's output.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The host is open and the load starts.
    Ready,
    /// A transfer was acknowledged: it is durable.
    Ack {
        /// Its index in the ledger's transaction log.
        index: u64,
        /// From, to, amount.
        transfer: (u64, u64, u64),
        /// Time from submission to the acknowledgement, in microseconds.
        latency_us: u64,
    },
    /// The host's counters.
    Stats {
        /// The last round's height.
        height: u64,
        /// Rounds since open.
        rounds: u64,
        /// Pages written since open.
        dirty_pages: u64,
        /// Checkpoints written since open.
        checkpoints: u64,
    },
}

impl Line {
    /// The line as the child writes it.
    pub fn encode(&self) -> String {
        match self {
            Line::Ready => "ready".into(),
            Line::Ack { index, transfer: (f, t, a), latency_us } => format!("ack {index} {f} {t} {a} {latency_us}"),
            Line::Stats { height, rounds, dirty_pages, checkpoints } => {
                format!("stats {height} {rounds} {dirty_pages} {checkpoints}")
            }
        }
    }

    /// A line the child wrote; `None` for anything else (a line cut short
    /// by the kill).
    pub fn decode(line: &str) -> Option<Line> {
        let mut words = line.split(' ');
        let kind = words.next()?;
        let numbers: Vec<u64> = words.map(str::parse).collect::<Result<_, _>>().ok()?;
        match (kind, numbers.as_slice()) {
            ("ready", []) => Some(Line::Ready),
            ("ack", &[index, f, t, a, latency_us]) => Some(Line::Ack { index, transfer: (f, t, a), latency_us }),
            ("stats", &[height, rounds, dirty_pages, checkpoints]) => {
                Some(Line::Stats { height, rounds, dirty_pages, checkpoints })
            }
            _ => None,
        }
    }
}

/// Transfers between Zipf-distributed accounts, as in the micropayments
/// workload: a few accounts are very busy, most are rarely touched.
struct Transfers {
    rng: SmallRng,
    zipf: Zipf<f64>,
}

impl Transfers {
    fn new(accounts: u64, seed: u64) -> anyhow::Result<Transfers> {
        let zipf = Zipf::new(accounts as f64, ZIPF_EXPONENT).context("a Zipf distribution over the accounts")?;
        Ok(Transfers { rng: SmallRng::seed_from_u64(seed), zipf })
    }

    fn account(&mut self) -> u64 {
        self.zipf.sample(&mut self.rng) as u64 - 1
    }

    fn next(&mut self) -> (u64, u64, u64) {
        let (from, to) = (self.account(), self.account());
        (from, to, 1 + self.account() % 10)
    }
}

fn client(host: &Host, ledger: Principal, mut transfers: Transfers, out: &Mutex<std::io::Stdout>, stop: &AtomicBool) {
    let sender = Principal::anonymous();
    while !stop.load(Ordering::Relaxed) {
        let transfer = transfers.next();
        let arg = candid::encode_args(transfer).expect("three nat64s encode");
        let started = Instant::now();
        let Ok(reply) = host.update_call(ledger, sender, "transfer_indexed", arg) else { continue };
        let latency_us = started.elapsed().as_micros() as u64;
        let Ok(index) = candid::decode_one::<u64>(&reply) else { continue };
        let line = Line::Ack { index, transfer, latency_us }.encode();
        // The demo has gone away: stop.
        if writeln!(out.lock().unwrap_or_else(|e| e.into_inner()), "{line}").is_err() {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Run the load until killed (or `max_seconds`).
pub fn run(cx: &Context, args: LoadArgs) -> anyhow::Result<()> {
    let host = Host::open(&cx.dir, host_config(args.checkpoint_interval))
        .with_context(|| format!("opening {}", cx.dir.display()))?;
    let ledger = host.resolve(LEDGER).context("the demo's ledger canister is missing")?;
    let deadline = Duration::try_from_secs_f64(args.max_seconds)
        .ok()
        .and_then(|max| Instant::now().checked_add(max))
        .context("--max-seconds must be a positive duration")?;
    let out = Mutex::new(std::io::stdout());
    writeln!(out.lock().unwrap_or_else(|e| e.into_inner()), "{}", Line::Ready.encode())?;
    let stop = AtomicBool::new(false);
    let clients =
        (0..args.threads as u64).map(|seed| Transfers::new(args.accounts, seed)).collect::<Result<Vec<_>, _>>()?;
    std::thread::scope(|scope| {
        for transfers in clients {
            let (host, out, stop) = (&host, &out, &stop);
            scope.spawn(move || client(host, ledger, transfers, out, stop));
        }
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let counters = host.counters();
            let stats = Line::Stats {
                height: host.height().height,
                rounds: counters.rounds,
                dirty_pages: counters.dirty_pages,
                checkpoints: counters.checkpoints,
            };
            if writeln!(out.lock().unwrap_or_else(|e| e.into_inner()), "{}", stats.encode()).is_err() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_torn_lines_are_ignored() {
        let lines = [
            Line::Ready,
            Line::Ack { index: 7, transfer: (1, 2, 3), latency_us: 950 },
            Line::Stats { height: 10, rounds: 9, dirty_pages: 40, checkpoints: 1 },
        ];
        for line in lines {
            assert_eq!(Line::decode(&line.encode()), Some(line));
        }
        assert_eq!(Line::decode("ack 7 1 2"), None);
        assert_eq!(Line::decode("ack 7 1 2 3 9"), Some(Line::Ack { index: 7, transfer: (1, 2, 3), latency_us: 9 }));
        assert_eq!(Line::decode("ac"), None);
    }

    #[test]
    fn transfers_stay_within_the_accounts() {
        let mut transfers = Transfers::new(100, 1).unwrap();
        for _ in 0..10_000 {
            let (from, to, amount) = transfers.next();
            assert!(from < 100 && to < 100 && (1..=10).contains(&amount));
        }
    }
}
