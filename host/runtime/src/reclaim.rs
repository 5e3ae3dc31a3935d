//! Returning freed page data to the operating system, off the scheduler.
//!
//! Taking a checkpoint in frees the delta pages it wrote; deleting,
//! uninstalling or reinstalling a canister frees its memory. Those are
//! many 4 KiB allocations, and the C allocator keeps them mapped: without
//! a trim the process stays as large as its largest delta. Trimming costs
//! about 40 ms per freed GiB (the `madvise` calls), so a thread of its own
//! does it: the scheduler only nudges it, and nudges that arrive while a
//! trim is pending merge into it.

use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use prometheus::IntCounter;

/// The thread that trims the allocator when nudged.
pub(crate) struct Reclaimer {
    nudges: Option<Sender<()>>,
    requested: IntCounter,
    thread: Option<JoinHandle<()>>,
}

impl Reclaimer {
    /// Start the thread. `requested` counts the trims asked for (nudges
    /// that did not merge into a pending one), `trims` those finished:
    /// when the two are equal, every nudge so far was followed by a trim.
    pub(crate) fn start(requested: IntCounter, trims: IntCounter) -> std::io::Result<Reclaimer> {
        let (nudges, nudged) = bounded::<()>(1);
        let thread = std::thread::Builder::new().name("canister-host-reclaim".into()).spawn(move || {
            while nudged.recv().is_ok() {
                embedder::return_free_memory();
                trims.inc();
            }
        })?;
        Ok(Reclaimer { nudges: Some(nudges), requested, thread: Some(thread) })
    }

    /// Ask for a trim soon. Never blocks: with one already pending, this
    /// one merges into it.
    pub(crate) fn nudge(&self) {
        // Full: a trim is pending, and will see this memory too.
        if let Some(nudges) = &self.nudges
            && nudges.try_send(()).is_ok()
        {
            self.requested.inc();
        }
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its current trim.
        self.nudges = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
