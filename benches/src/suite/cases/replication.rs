//! Shipping a canister's checkpoint to a store in a local directory and
//! restoring it (`replication::Remote`), against `cp --sparse=always` of
//! the heap file (`cp/dense_{size}`, measured here unless the checkpoint
//! cases already did):
//!
//! - `replication/ship_{64MiB,1GiB}`: the first shipment, every chunk
//!   uploaded (each MiB of the heap holds different bytes, so none is
//!   stored once for several);
//! - `replication/ship_{size}_1_dirty`: the next checkpoint after one page
//!   changed, to a store holding the first: only the changed chunks go;
//! - `replication/restore_{size}`: the checkpoint into a fresh state
//!   directory, every chunk checked against the manifest;
//! - `replication/restore_{size}_1_dirty_seeded`: the next checkpoint
//!   (one page changed), seeded with the first restored (as a follower
//!   starting over does): only the changed chunks are downloaded;
//! - `replication/follower_lag`: under load (two threads sending updates
//!   without pause), how long after an update is acknowledged a read
//!   replica's query shows it, with shipping and catching up every
//!   [`LAG_INTERVAL`]; against `replication/lag_interval`, that interval
//!   (recorded as a case, so the ratio says what the lag costs beyond
//!   waiting for the next pass);
//! - `replication/ack_while_shipping`: an update's acknowledgement under
//!   that load while the log is sealed and shipped every interval and the
//!   replica catches up, against `replication/ack_under_load`, the same
//!   before shipping started.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use candid::{Decode, Encode};
use canister_host::{Host, Principal};
use replication::{Follower, Remote, Replicator, Shipping};

use super::checkpoints::cp_sparse;
use super::{BenchError, OWNER, Runner, host_config, install, open_host, size_label};
use crate::MIB;
use crate::suite::error::CaseContext;

const PAGE: u64 = 4096;
const CHUNK: u64 = 1 << 20;

/// How often the lag case ships, and how often its follower catches up.
const LAG_INTERVAL: Duration = Duration::from_millis(50);

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let lag = [
        "replication/follower_lag",
        "replication/lag_interval",
        "replication/ack_under_load",
        "replication/ack_while_shipping",
    ];
    if r.any(&lag) {
        follower_lag(r, lag)?;
    }
    let sizes: &[u64] = if r.quick() { &[64 * MIB] } else { &[64 * MIB, 1024 * MIB] };
    for &size in sizes {
        let label = size_label(size);
        let names = [
            format!("replication/ship_{label}"),
            format!("replication/ship_{label}_1_dirty"),
            format!("replication/restore_{label}"),
            format!("replication/restore_{label}_1_dirty_seeded"),
        ];
        if r.any(&names) {
            measure(r, size, &names)?;
        }
    }
    Ok(())
}

fn measure(r: &mut Runner, size: u64, [ship, ship_dirty, restore, seeded]: &[String; 4]) -> Result<(), BenchError> {
    let case = ship.as_str();
    let host = open_host(r, case, host_config(false, 1))?;
    let id = install(&host, case, canisters::MEMORY_STRESS, vec![])?;
    host.update_call(id, OWNER, "grow", Encode!(&(size / 65536)).case(case)?).case(case)?;
    // Two bytes per page, from the chunk's number: no two chunks alike.
    let start = canisters::MEMORY_STRESS_HEAP_START;
    for chunk in 0..(size - start) / CHUNK {
        for (byte, value) in [(0, chunk as u8), (1, (chunk >> 8) as u8)] {
            write(&host, id, start + chunk * CHUNK + byte, CHUNK / PAGE, value, case)?;
        }
    }
    let first = checkpoint(&host, r, case)?;
    write(&host, id, start, 1, 0xee, case)?;
    let second = checkpoint(&host, r, case)?;
    drop(host);

    let cp = format!("cp/dense_{}", size_label(size));
    if !r.has(&cp) {
        let heap = largest_file(&first).case(case)?;
        let copy = r.scratch().join("replication-cp");
        r.timed(&cp, &[], 3, || cp_sparse(&heap, &copy, &cp))?;
    }
    let samples = if size > 64 * MIB { 3 } else { 5 };
    let stores = r.scratch().join("replication-stores");
    let fresh = |n: &str| -> Result<(PathBuf, Remote), BenchError> {
        let dir = stores.join(n);
        let _ = std::fs::remove_dir_all(&dir);
        Ok((dir.clone(), Remote::local(&dir).case(n)?))
    };
    // Ship `checkpoint` to a fresh store already holding `prior`, timed.
    let time_ship = |name: &str, prior: Option<&Path>, checkpoint: &Path| -> Result<(Duration, u64), BenchError> {
        let (dir, remote) = fresh(name)?;
        if let Some(prior) = prior {
            remote.ship_checkpoint(prior).case(name)?;
        }
        // A new remote: it knows only what it asks the store.
        let remote = Remote::local(&dir).case(name)?;
        let began = Instant::now();
        let uploaded = remote.ship_checkpoint(checkpoint).case(name)?.uploaded_bytes;
        let elapsed = began.elapsed();
        std::fs::remove_dir_all(dir).case(name)?;
        Ok((elapsed, uploaded))
    };
    for (name, baselines, prior, checkpoint) in [
        (ship, vec![cp.as_str()], None, &first),
        (ship_dirty, vec![ship.as_str(), &cp], Some(first.as_path()), &second),
    ] {
        let mut uploaded = 0;
        let result = r.timed(name, &baselines, samples, || {
            let (elapsed, bytes) = time_ship(name, prior, checkpoint)?;
            uploaded = bytes;
            Ok(elapsed)
        })?;
        result.bytes.insert("uploaded".into(), uploaded);
    }
    let (store, remote) = fresh(restore)?;
    remote.ship_checkpoint(&first).case(restore)?;
    let target = r.scratch().join("replication-restored");
    r.timed(restore, &[&cp], samples, || {
        let _ = std::fs::remove_dir_all(&target);
        let began = Instant::now();
        remote.restore_checkpoint(None, &target).case(restore)?;
        Ok(began.elapsed())
    })?;
    // The first restored stays as the seed of the second's restores.
    remote.ship_checkpoint(&second).case(seeded)?;
    let seed = target
        .join(checkpoint::layout::CHECKPOINTS_DIR)
        .join(first.file_name().ok_or_else(|| failed(seeded, "a checkpoint path without a name"))?);
    let next = r.scratch().join("replication-restored-next");
    let mut downloaded = 0;
    let result = r.timed(seeded, &[restore.as_str(), &cp], samples, || {
        let _ = std::fs::remove_dir_all(&next);
        let began = Instant::now();
        let restored = remote.restore_checkpoint_seeded(None, &next, std::slice::from_ref(&seed)).case(seeded)?;
        downloaded = restored.downloaded_bytes;
        Ok(began.elapsed())
    })?;
    result.bytes.insert("downloaded".into(), downloaded);
    for dir in [&target, &next] {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::fs::remove_dir_all(store).case(restore)?;
    Ok(())
}

fn follower_lag(r: &mut Runner, [lag, interval, alone, shipping]: [&str; 4]) -> Result<(), BenchError> {
    let config = canister_host::HostConfig { checkpoint_interval: 100, ..host_config(true, 1) };
    let host = Arc::new(open_host(r, lag, config)?);
    let id = install(&host, lag, canisters::COUNTER, vec![])?;
    host.checkpoint().case(lag)?;
    let inc = Encode!().case(lag)?;
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (host, stop, inc) = (host.clone(), stop.clone(), inc.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = host.update_call(id, OWNER, "inc", inc.clone());
                }
            })
        })
        .collect();
    let acks = if r.quick() { 300 } else { 3_000 };
    let time_acks = || -> Result<Vec<Duration>, BenchError> {
        let timed = |_| {
            let sent = Instant::now();
            host.update_call(id, OWNER, "inc", inc.clone()).case(lag).map(|_| sent.elapsed())
        };
        (0..acks).map(timed).collect()
    };
    let acks_alone = time_acks()?;

    let (store, replica) = (r.scratch().join("replication-lag-store"), r.scratch().join("replication-lag-replica"));
    for dir in [&store, &replica] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let primary = r.scratch().join(lag.replace('/', "_"));
    let shipper = Remote::local(&store).case(lag)?;
    let options = Shipping { sealer: Some(host.log_sealer()), ..Shipping::default() };
    let replicator = Replicator::start_with(shipper, primary, LAG_INTERVAL, options).case(lag)?;
    let follower = Arc::new(Follower::new(Remote::local(&store).case(lag)?, &replica, None).case(lag)?);
    let deadline = Instant::now() + Duration::from_secs(60);
    while follower.catch_up().is_err() {
        if Instant::now() > deadline {
            return Err(failed(lag, "the follower never caught up with the first shipment"));
        }
        std::thread::sleep(LAG_INTERVAL);
    }
    let following = follower.follow(LAG_INTERVAL).case(lag)?;
    let acks_shipping = time_acks()?;
    let samples = if r.quick() { 20 } else { 100 };
    let mut lags = Vec::new();
    for _ in 0..samples {
        let reply = host.update_call(id, OWNER, "inc", inc.clone()).case(lag)?;
        let acked = Instant::now();
        let value = Decode!(&reply, u64).case(lag)?;
        loop {
            let seen = follower.query(id, OWNER, "get", inc.clone(), None).ok().and_then(|r| Decode!(&r, u64).ok());
            if seen.is_some_and(|seen| seen >= value) {
                break;
            }
            if acked.elapsed() > Duration::from_secs(60) {
                return Err(failed(lag, format!("the follower never showed value {value}")));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        lags.push(acked.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    load.into_iter().for_each(|t| drop(t.join()));
    drop(following);
    replicator.stop();
    drop(follower);
    let intervals = vec![LAG_INTERVAL; lags.len()];
    for (name, baselines, values) in [
        (alone, vec![], acks_alone),
        (shipping, vec![alone], acks_shipping),
        (interval, vec![], intervals),
        (lag, vec![interval], lags),
    ] {
        r.samples(name, &baselines, &values).counts.insert("interval_ms".into(), LAG_INTERVAL.as_millis() as u64);
    }
    let host = Arc::try_unwrap(host).map_err(|_| failed(lag, "the load still holds the host"))?;
    host.close().case(lag)
}

fn failed(case: &str, message: impl Into<String>) -> BenchError {
    BenchError::Case { case: case.to_string(), message: message.into() }
}

fn write(host: &Host, id: Principal, offset: u64, pages: u64, value: u8, case: &str) -> Result<(), BenchError> {
    let arg = Encode!(&offset, &pages, &PAGE, &false, &value).case(case)?;
    host.update_call(id, OWNER, "write_pages", arg).case(case).map(drop)
}

/// Take a checkpoint; its directory.
fn checkpoint(host: &Host, r: &Runner, case: &str) -> Result<PathBuf, BenchError> {
    let height = host.checkpoint().case(case)?;
    let dir = r.scratch().join(case.replace('/', "_"));
    Ok(dir.join(checkpoint::layout::CHECKPOINTS_DIR).join(checkpoint::layout::checkpoint_dir_name(height)))
}

/// The largest file under `dir` (a checkpoint's heap).
fn largest_file(dir: &Path) -> std::io::Result<PathBuf> {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if best.as_ref().is_none_or(|(len, _)| meta.len() > *len) {
                best = Some((meta.len(), entry.path()));
            }
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no file"))
}
