//! Writing checkpoints beside rounds, as the IC's tip thread does.
//!
//! Between rounds the scheduler copies the state out of the registry
//! ([`StateCopy`]: page maps and modules are shared, so this costs the
//! metadata) and hands it to a thread that writes, publishes and prunes
//! the checkpoint while rounds go on. When the thread is done, the
//! scheduler moves the memories it rewrote whole onto their new files
//! (`persist::rebase`).
//!
//! One checkpoint is written at a time. A round that reaches the next
//! checkpoint height while one is still being written waits for it: that
//! is the back-pressure that bounds memory (pages shared with the copy
//! cannot be freed until it is written) and keeps checkpoint heights a
//! function of the round heights alone.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use checkpoint::{Checkpoint, StateDir};
use crossbeam_channel::{Receiver, bounded};

use crate::error::HostError;
use crate::persist::{self, Published, Rewritten, StateCopy};

/// What writing a checkpoint produced.
pub(crate) struct Written {
    /// The published checkpoint.
    pub(crate) checkpoint: Checkpoint,
    /// The memories it rewrote whole.
    pub(crate) rewritten: Rewritten,
    /// The oldest checkpoint kept after pruning.
    pub(crate) oldest: Option<u64>,
    /// How long writing, publishing and pruning took.
    pub(crate) elapsed: Duration,
}

/// The outcome of one checkpoint thread, with the files of the new
/// checkpoint the next one can link.
pub(crate) type CheckpointOutcome = Result<(Written, Published), HostError>;

/// A checkpoint being written.
pub(crate) struct InFlight {
    height: u64,
    done: Receiver<CheckpointOutcome>,
    thread: Option<JoinHandle<()>>,
}

impl InFlight {
    /// Start writing `copy` on a new thread, linking the files of
    /// `published` (the newest checkpoint's).
    pub(crate) fn start(
        dir: Arc<StateDir>,
        mut copy: StateCopy,
        published: Arc<Published>,
        max_overlays: usize,
        keep: usize,
    ) -> Result<InFlight, HostError> {
        let height = copy.height();
        let (tx, done) = bounded(1);
        let work = move || {
            let started = Instant::now();
            let result = persist::save(&dir, &mut copy, &published, max_overlays).and_then(|saved| {
                let (checkpoint, next, rewritten) = saved;
                dir.prune(keep)?;
                let oldest = dir.heights()?.first().copied();
                Ok((Written { checkpoint, rewritten, oldest, elapsed: started.elapsed() }, next))
            });
            // The scheduler waits for this thread before it goes away, so
            // the receiver is alive.
            let _ = tx.send(result);
        };
        let thread = std::thread::Builder::new()
            .name(format!("checkpoint-{height}"))
            .spawn(work)
            .map_err(|e| HostError::Stopped(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(InFlight { height, done, thread: Some(thread) })
    }

    /// The height being written.
    pub(crate) fn height(&self) -> u64 {
        self.height
    }

    /// The channel the outcome arrives on (to wait for it with others).
    pub(crate) fn done(&self) -> &Receiver<CheckpointOutcome> {
        &self.done
    }

    /// Wait for the outcome.
    pub(crate) fn finish(mut self) -> CheckpointOutcome {
        let received = self.done.recv().ok();
        self.finished(received)
    }

    /// Join the thread, which sent `received` (`None`: it ended without
    /// sending).
    pub(crate) fn finished(&mut self, received: Option<CheckpointOutcome>) -> CheckpointOutcome {
        self.join();
        // A thread that panicked (a bug) sent nothing: that checkpoint
        // failed, and the previous one stays the newest.
        received
            .unwrap_or_else(|| Err(HostError::Operation("internal error (a bug) while writing the checkpoint".into())))
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for InFlight {
    /// A host going away waits for its checkpoint: the thread holds the
    /// state directory (and its lock).
    fn drop(&mut self) {
        self.join();
    }
}
