//! Request statuses: what `read_state` of `request_status/<id>` certifies.
//! Kept for as long as the IC keeps them (the ingress lifetime after a
//! call finished), and bounded in number: when full of unfinished calls,
//! new ones are refused with 429 rather than growing without bound.
//! Finished statuses go to the journal too (if there is one), so they
//! survive a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use wire::Principal;

use crate::journal::{Journal, Record};

/// A request id.
pub(crate) type RequestId = [u8; 32];

/// Where a call stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Status {
    /// Submitted; its round is not durable yet.
    Processing,
    /// Replied (durably).
    Replied(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Rejected, with the reject code, message and IC error code.
    Rejected { code: u64, message: String, error_code: String },
}

impl Status {
    pub fn is_final(&self) -> bool {
        !matches!(self, Status::Processing)
    }
}

struct Entry {
    sender: Principal,
    status: Status,
    finished: Option<Instant>,
}

/// The store.
pub(crate) struct Statuses {
    retention: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
    journal: Option<Mutex<Journal>>,
    /// Woken whenever a call finishes (or is forgotten).
    pub changed: tokio::sync::Notify,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<RequestId, Entry>,
    /// Finished ids, oldest first.
    finished: VecDeque<(Instant, RequestId)>,
}

/// What [`Statuses::admit`] decided.
pub(crate) enum Admission {
    /// A new call: run it.
    New,
    /// Seen before (a retry): do not run it again.
    Known,
    /// Too many unfinished calls.
    Full,
}

impl Statuses {
    pub fn new(retention: Duration, capacity: usize) -> Statuses {
        Statuses {
            retention,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            journal: None,
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The store, journaled at `path`, with the statuses the journal holds
    /// that are still within their retention.
    pub fn journaled(retention: Duration, capacity: usize, path: &std::path::Path) -> std::io::Result<Statuses> {
        let now = wall_ns();
        let (journal, records) = Journal::open(path, |r| age(now, r.finished_ns) < retention)?;
        let mut statuses = Statuses::new(retention, capacity);
        {
            let inner = statuses.inner.get_mut().unwrap_or_else(|e| e.into_inner());
            let mut records = records;
            records.sort_by_key(|r| r.finished_ns);
            for record in records.into_iter().rev().take(statuses.capacity).rev() {
                let Ok(sender) = Principal::try_from_slice(&record.sender) else { continue };
                let finished = Instant::now().checked_sub(age(now, record.finished_ns)).unwrap_or_else(Instant::now);
                inner.finished.push_back((finished, record.id));
                inner.entries.insert(record.id, Entry { sender, status: record.status, finished: Some(finished) });
            }
        }
        statuses.journal = Some(Mutex::new(journal));
        Ok(statuses)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it leaves only a map behind.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record a new call from `sender`, unless it is known or there is no room.
    pub fn admit(&self, id: RequestId, sender: Principal) -> Admission {
        let mut inner = self.lock();
        let now = Instant::now();
        // Forget finished statuses past their retention, then the oldest
        // finished ones while over capacity.
        while let Some(&(at, old)) = inner.finished.front() {
            if now.duration_since(at) < self.retention && inner.entries.len() < self.capacity {
                break;
            }
            inner.finished.pop_front();
            inner.entries.remove(&old);
        }
        if inner.entries.contains_key(&id) {
            return Admission::Known;
        }
        if inner.entries.len() >= self.capacity {
            return Admission::Full;
        }
        inner.entries.insert(id, Entry { sender, status: Status::Processing, finished: None });
        Admission::New
    }

    /// The call finished.
    pub fn finish(&self, id: RequestId, status: Status) {
        let mut inner = self.lock();
        let now = Instant::now();
        if let Some(entry) = inner.entries.get_mut(&id) {
            entry.status = status;
            let sender = entry.sender;
            let status = entry.status.clone();
            if entry.finished.is_none() {
                entry.finished = Some(now);
                inner.finished.push_back((now, id));
            }
            // Journaled before anyone hears of it (under the lock, so the
            // journal's order is the store's).
            self.journal_finished(
                &inner,
                Record { id, sender: sender.as_slice().to_vec(), finished_ns: wall_ns(), status },
            );
        }
        drop(inner);
        self.changed.notify_waiters();
    }

    /// Append a finished status to the journal; rewrite the journal once
    /// stale records outnumber live ones. A journal that cannot be written
    /// costs only survival across a restart, so it is logged, not fatal.
    fn journal_finished(&self, inner: &Inner, record: Record) {
        let Some(journal) = &self.journal else { return };
        let mut journal = journal.lock().unwrap_or_else(|e| e.into_inner());
        let live = inner.finished.len();
        let result = if journal.records() >= 2 * live.max(1024) {
            let now = wall_ns();
            let records: Vec<Record> = inner
                .finished
                .iter()
                .filter_map(|(at, id)| {
                    let entry = inner.entries.get(id)?;
                    Some(Record {
                        id: *id,
                        sender: entry.sender.as_slice().to_vec(),
                        finished_ns: now.saturating_sub(at.elapsed().as_nanos() as u64),
                        status: entry.status.clone(),
                    })
                })
                .collect();
            Journal::rewrite(journal.path(), &records).map(|rewritten| *journal = rewritten)
        } else {
            journal.append(&record)
        };
        if let Err(error) = result {
            tracing::warn!(%error, path = %journal.path().display(), "cannot journal a request status; it will not survive a restart");
        }
    }

    /// Forget a call the host did not apply, so a retry runs it again.
    pub fn forget(&self, id: &RequestId) {
        self.lock().entries.remove(id);
        self.changed.notify_waiters();
    }

    /// The status of `id` and who sent it.
    pub fn get(&self, id: &RequestId) -> Option<(Principal, Status)> {
        let inner = self.lock();
        let entry = inner.entries.get(id)?;
        let expired = entry.finished.is_some_and(|at| at.elapsed() >= self.retention);
        (!expired).then(|| (entry.sender, entry.status.clone()))
    }
}

/// Nanoseconds since the epoch, now.
fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// How long ago `then_ns` was, at `now_ns`.
fn age(now_ns: u64, then_ns: u64) -> Duration {
    Duration::from_nanos(now_ns.saturating_sub(then_ns))
}
