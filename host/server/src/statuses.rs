//! Request statuses: what `read_state` of `request_status/<id>` certifies.
//! Kept for as long as the IC keeps them (the ingress lifetime after a
//! call finished), and bounded in number: when full of unfinished calls,
//! new ones are refused with 429 rather than growing without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wire::Principal;

/// A request id.
pub(crate) type RequestId = [u8; 32];

/// Where a call stands.
#[derive(Clone, Debug)]
pub(crate) enum Status {
    /// Submitted; its round is not durable yet.
    Processing,
    /// Replied (durably).
    Replied(Vec<u8>),
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
            changed: tokio::sync::Notify::new(),
        }
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
            if entry.finished.is_none() {
                entry.finished = Some(now);
                inner.finished.push_back((now, id));
            }
        }
        drop(inner);
        self.changed.notify_waiters();
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
