//! Deterministic time slicing: a message longer than one slice of
//! instructions runs on a thread of its own, a slice per round.
//!
//! The runtime first runs every message with one slice of fuel (the fast
//! path, on its worker). A message that needs more is run again from the
//! start with its full limit, on its own thread, under a [`SliceGate`]:
//! the runtime allows it one more slice each round and waits until it has
//! used that slice (or finished), so it never holds up a round for more
//! than about a slice. What the message computes never depends on the
//! slicing; only *which round* reports it does, and that is a function of
//! the instructions it used (see the runtime's rounds), so replay agrees.
//!
//! The message runs as a future that wasmtime suspends every
//! [`PACING_REPORTS_PER_SLICE`]th of a slice of fuel (exactly there, on a
//! fiber, whatever the timing); at each suspension its thread reports the
//! instructions used and waits while the message has used its allowance.

use std::sync::{Condvar, Mutex, MutexGuard};

/// How many times per slice a sliced message reports its progress, so it
/// pauses within this fraction of a slice of its allowance.
pub(crate) const PACING_REPORTS_PER_SLICE: u64 = 16;

/// The meeting point of a sliced message's thread and the rounds.
#[derive(Debug, Default)]
pub struct SliceGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// Instructions the message may use so far.
    allowed: u64,
    /// Instructions it has used, as last reported.
    used: u64,
    finished: bool,
    cancelled: bool,
}

/// The message was cancelled while paused: nobody wants its result.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Cancelled;

impl SliceGate {
    /// A gate that allows nothing yet.
    pub fn new() -> SliceGate {
        SliceGate::default()
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let the message use up to `instructions` in all.
    pub fn allow(&self, instructions: u64) {
        let mut state = self.lock();
        state.allowed = state.allowed.max(instructions);
        self.changed.notify_all();
    }

    /// Wait until the message has used `instructions` or finished; true if
    /// it finished.
    pub fn wait_for(&self, instructions: u64) -> bool {
        let mut state = self.lock();
        while !state.finished && state.used < instructions {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.finished
    }

    /// The instructions the message has reported using so far.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    /// Stop the message at its next check: its result is not wanted.
    pub fn cancel(&self) {
        self.lock().cancelled = true;
        self.changed.notify_all();
    }

    /// The message's thread: it has used `used` instructions. Blocks while
    /// that is all it is allowed; fails if it was cancelled.
    pub(crate) fn report(&self, used: u64) -> Result<(), Cancelled> {
        let mut state = self.lock();
        state.used = used;
        self.changed.notify_all();
        while state.used >= state.allowed && !state.cancelled {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.cancelled { Err(Cancelled) } else { Ok(()) }
    }

    /// The message's thread: it is done.
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.changed.notify_all();
    }
}

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the sliced message was cancelled")
    }
}

impl std::error::Error for Cancelled {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_gate_paces_a_message_a_slice_at_a_time() {
        let gate = Arc::new(SliceGate::new());
        gate.allow(10);
        let worker = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                for used in [4, 10, 15, 20] {
                    gate.report(used)?;
                }
                gate.finish();
                Ok::<(), Cancelled>(())
            })
        };
        assert!(!gate.wait_for(10), "paused at its allowance");
        gate.allow(20);
        assert!(!gate.wait_for(20));
        gate.allow(30);
        assert!(gate.wait_for(30), "finished");
        assert_eq!(worker.join().unwrap(), Ok(()));

        let stuck = Arc::new(SliceGate::new());
        let worker = {
            let gate = stuck.clone();
            std::thread::spawn(move || gate.report(1))
        };
        stuck.cancel();
        assert_eq!(worker.join().unwrap(), Err(Cancelled));
    }
}
