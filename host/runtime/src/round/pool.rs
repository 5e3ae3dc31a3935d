//! The worker pool: threads that run canisters' shares of a round.

use std::collections::HashMap;
use std::sync::Arc;

use checkpoint::Hash;
use crossbeam_channel::{Receiver, Sender};
use embedder::Executor;

use super::execute::run_task;
use super::{Operation, Outcome};
use crate::canister::Canister;

/// Replacement modules, by the SHA-256 of the module they replace (replay
/// verification runs a history against a modified module).
pub type ModuleOverrides = HashMap<Hash, Vec<u8>>;

/// The work for one canister in a round.
pub(super) struct Task {
    pub(super) canister: Canister,
    /// Its operations, with their positions in the round.
    pub(super) ops: Vec<(usize, Arc<Operation>)>,
}

/// A share of a round's tasks, for one thread.
struct Job {
    tasks: Vec<Task>,
    time: u64,
    reply: Sender<Vec<TaskDone>>,
}

/// What one canister's work produced.
pub(super) struct TaskDone {
    pub(super) canister: Canister,
    /// Each operation's outcome, with its position in the round.
    pub(super) outcomes: Vec<(usize, Outcome)>,
    pub(super) digest: Hash,
    /// Update messages executed.
    pub(super) messages: usize,
}

/// Threads that run canisters' work; results never depend on their number.
pub struct WorkerPool {
    jobs: Option<Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    executor: Arc<Executor>,
    overrides: Arc<ModuleOverrides>,
}

impl WorkerPool {
    /// A pool of `threads` workers (at least one) running messages with
    /// `executor`, substituting the modules `overrides` names.
    pub fn new(threads: usize, executor: Arc<Executor>, overrides: Arc<ModuleOverrides>) -> WorkerPool {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let threads = (0..threads.max(1))
            .map(|i| {
                let (rx, executor, overrides): (Receiver<Job>, _, _) =
                    (rx.clone(), executor.clone(), overrides.clone());
                std::thread::Builder::new()
                    .name(format!("canister-worker-{i}"))
                    .spawn(move || {
                        for job in rx {
                            let done =
                                job.tasks.into_iter().map(|t| run_task(&executor, &overrides, t, job.time)).collect();
                            // The round waits for every job; it only goes
                            // away if the host is shutting down.
                            let _ = job.reply.send(done);
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        WorkerPool { jobs: Some(tx), threads, executor, overrides }
    }

    /// Run `tasks` in shares, one per thread, and return what each did, in
    /// no particular order. This thread runs the first share itself:
    /// handing tiny messages between threads costs more than running them,
    /// so a round with one worker involves no handoff at all.
    pub(super) fn run(&self, tasks: Vec<Task>, time: u64) -> Vec<TaskDone> {
        let shares = self.threads.len().min(tasks.len()).max(1);
        let per_share = tasks.len().div_ceil(shares).max(1);
        let mut chunks: Vec<Vec<Task>> = Vec::with_capacity(shares);
        let mut rest = tasks.into_iter().peekable();
        while rest.peek().is_some() {
            chunks.push(rest.by_ref().take(per_share).collect());
        }
        let (reply, results) = crossbeam_channel::unbounded();
        let mut local = chunks.into_iter();
        let mine = local.next().unwrap_or_default();
        let mut pending = 0;
        for chunk in local {
            let job = Job { tasks: chunk, time, reply: reply.clone() };
            self.jobs.as_ref().expect("the pool is running").send(job).expect("workers outlive the pool's sender");
            pending += 1;
        }
        let mut done: Vec<TaskDone> =
            mine.into_iter().map(|t| run_task(&self.executor, &self.overrides, t, time)).collect();
        for _ in 0..pending {
            done.extend(results.recv().expect("every job reports back"));
        }
        done
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.jobs = None; // workers see the channel close and exit
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
