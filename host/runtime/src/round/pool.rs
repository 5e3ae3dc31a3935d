//! The worker pool: threads that run canisters' shares of a round.
//!
//! A panic while running one canister's share is caught: the pool reports
//! it (the round then restores that canister from its fork and is not
//! applied) instead of losing the canister or leaving the round waiting.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use candid::Principal;

use checkpoint::Hash;
use crossbeam_channel::{Receiver, Sender};
use embedder::Executor;

use super::execute::run_task;
use super::{Operation, Outcome};
use crate::canister::{Canister, InterMessage, Origin};
use crate::query_pool::WASM_THREAD_STACK;

/// Replacement modules, by the SHA-256 of the module they replace (replay
/// verification runs a history against a modified module).
pub type ModuleOverrides = HashMap<Hash, Vec<u8>>;

/// The work for one canister in a round.
pub(super) struct Task {
    pub(super) canister: Canister,
    /// Its operations, with their positions in the round.
    pub(super) ops: Vec<(usize, Arc<Operation>)>,
    /// Whether this is the round's first iteration (later ones only run
    /// the input queue).
    pub(super) first: bool,
}

/// A share of a round's tasks, for one thread.
struct Job {
    tasks: Vec<Task>,
    height: u64,
    time: u64,
    reply: Sender<Vec<TaskResult>>,
}

/// What running one task came to: done, or a panic (a bug) that lost the
/// canister it was running.
pub(super) type TaskResult = Result<TaskDone, Panicked>;

/// A task that panicked.
pub(super) struct Panicked {
    pub(super) canister: Principal,
    pub(super) message: String,
}

/// Runs one canister's share of a round.
/// Its arguments are the task, and the round's height and time.
pub(super) type TaskRunner = dyn Fn(Task, u64, u64) -> TaskDone + Send + Sync;

/// Run `task`, catching a panic.
fn run_guarded(runner: &TaskRunner, task: Task, height: u64, time: u64) -> TaskResult {
    let canister = task.canister.id();
    catch_unwind(AssertUnwindSafe(|| runner(task, height, time))).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with no message".into());
        tracing::error!(%canister, %message, "a worker panicked running a canister; its round will not be applied");
        Panicked { canister, message }
    })
}

/// What one canister's work produced.
pub(super) struct TaskDone {
    pub(super) canister: Canister,
    /// The outcome of each of the round's operations that completed, with
    /// its position in the round (the others are pending).
    pub(super) outcomes: Vec<(usize, Outcome)>,
    /// The outcomes of operations of earlier rounds that completed.
    pub(super) late: Vec<(Origin, Outcome)>,
    pub(super) digest: Hash,
    /// Requests and responses for other canisters, in the order sent.
    pub(super) sent: Vec<(Principal, InterMessage)>,
    /// Update messages executed.
    pub(super) messages: usize,
    /// Distinct pages the round's messages wrote (heap and stable).
    pub(super) dirty_pages: usize,
    /// Instructions its messages used.
    pub(super) instructions: u64,
    /// A failure of the host (not of the canister) that the round must not
    /// record: it is not applied.
    pub(super) host_failure: Option<String>,
}

/// Threads that run canisters' work; results never depend on their number.
pub struct WorkerPool {
    /// What calls to the management canister install modules with.
    executor: Option<Arc<Executor>>,
    jobs: Option<Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    runner: Arc<TaskRunner>,
}

impl WorkerPool {
    /// A pool of `threads` workers (at least one) running messages with
    /// `executor`, substituting the modules `overrides` names.
    pub fn new(threads: usize, executor: Arc<Executor>, overrides: Arc<ModuleOverrides>) -> WorkerPool {
        let runner_executor = executor.clone();
        let mut pool = WorkerPool::with_runner(
            threads,
            Arc::new(move |task, height, time| run_task(&runner_executor, &overrides, task, height, time)),
        );
        pool.executor = Some(executor);
        pool
    }

    /// The executor, if the pool runs real canisters.
    pub(super) fn executor(&self) -> Option<&Arc<Executor>> {
        self.executor.as_ref()
    }

    /// A pool of `threads` workers running tasks with `runner`.
    pub(super) fn with_runner(threads: usize, runner: Arc<TaskRunner>) -> WorkerPool {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let threads = (0..threads.max(1))
            .map(|i| {
                let (rx, runner): (Receiver<Job>, _) = (rx.clone(), runner.clone());
                std::thread::Builder::new()
                    .name(format!("canister-worker-{i}"))
                    .stack_size(WASM_THREAD_STACK)
                    .spawn(move || {
                        for job in rx {
                            let done =
                                job.tasks.into_iter().map(|t| run_guarded(&*runner, t, job.height, job.time)).collect();
                            // The round waits for every job; it only goes
                            // away if the host is shutting down.
                            let _ = job.reply.send(done);
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        WorkerPool { executor: None, jobs: Some(tx), threads, runner }
    }

    /// Run `tasks` in shares, one per thread, and return what each did, in
    /// no particular order. This thread runs the first share itself:
    /// handing tiny messages between threads costs more than running them,
    /// so a round with one worker involves no handoff at all.
    pub(super) fn run(&self, tasks: Vec<Task>, height: u64, time: u64) -> Vec<TaskResult> {
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
        let mut sent: Vec<Principal> = Vec::new();
        let mut pending = 0;
        for chunk in local {
            let ids = chunk.iter().map(|t| t.canister.id());
            sent.extend(ids);
            let job = Job { tasks: chunk, height, time, reply: reply.clone() };
            // Workers only exit when the pool is dropped; a job no worker
            // takes is reported lost below.
            if self.jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok()) {
                pending += 1;
            }
        }
        // Only the jobs hold senders now, so a worker that dies with its
        // job ends the wait below instead of hanging it.
        drop(reply);
        let mut done: Vec<TaskResult> = mine.into_iter().map(|t| run_guarded(&*self.runner, t, height, time)).collect();
        for _ in 0..pending {
            match results.recv() {
                Ok(share) => done.extend(share),
                Err(_) => break,
            }
        }
        let reported: HashSet<Principal> =
            done.iter().map(|r| r.as_ref().map_or_else(|p| p.canister, |d| d.canister.id())).collect();
        for canister in sent.into_iter().filter(|c| !reported.contains(c)) {
            done.push(Err(Panicked { canister, message: "the worker running it stopped".into() }));
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
