//! Threads the host owns for running queries (and `inspect_message`).
//!
//! Wasm runs on a native stack: on a caller's thread with a small stack,
//! deep recursion in a query would overflow it and abort the process
//! before wasmtime's own stack limit is reached. Queries therefore run on
//! these threads, whose stacks are sized for the engine's limit, and the
//! queue in front of them is bounded, so a flood of queries is refused
//! instead of growing memory.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Native stack of every thread that runs wasm: room for the engine's wasm
/// stack limit (wasmtime's default of 512 KiB) plus the host's own frames,
/// several times over.
pub(crate) const WASM_THREAD_STACK: usize = 8 << 20;

type Job = Box<dyn FnOnce() + Send>;

/// Run `f` on a new thread with a stack sized for wasm, and wait for it:
/// for work that runs canister code on behalf of a caller whose stack size
/// is unknown (recovery, verification).
pub(crate) fn on_wasm_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("canister-host-replay".into())
            .stack_size(WASM_THREAD_STACK)
            .spawn_scoped(scope, f)
            .expect("starting a thread to replay on");
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// A bounded pool of query threads.
pub(crate) struct QueryPool {
    jobs: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl QueryPool {
    /// `threads` threads (at least one) behind a queue of `queue` jobs.
    pub(crate) fn new(threads: usize, queue: usize) -> std::io::Result<QueryPool> {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = crossbeam_channel::bounded(queue.max(1));
        let threads = (0..threads.max(1))
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new().name(format!("canister-query-{i}")).stack_size(WASM_THREAD_STACK).spawn(
                    move || {
                        for job in rx {
                            // A panic (a bug) fails that query only: its
                            // caller hears of it, and the thread goes on.
                            let _ = catch_unwind(AssertUnwindSafe(job));
                        }
                    },
                )
            })
            .collect::<std::io::Result<_>>()?;
        Ok(QueryPool { jobs: Some(tx), threads })
    }

    /// Run `f` on a pool thread and wait for its result; an error says why
    /// it could not run.
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.jobs.as_ref().map(|jobs| jobs.try_send(job)) {
            Some(Ok(())) => rx.recv().map_err(|_| "the query failed with an internal error (a bug)".to_string()),
            Some(Err(TrySendError::Full(_))) => {
                Err("the host is busy with queries (its queue is full); retry later".to_string())
            }
            Some(Err(TrySendError::Disconnected(_))) | None => Err("the host is shutting down".to_string()),
        }
    }
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
