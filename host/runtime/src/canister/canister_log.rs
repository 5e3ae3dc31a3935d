//! A canister's log: what `ic0.debug_print` printed, and the messages of
//! traps, in replicated executions. Bounded: the oldest records go first.
//! A persistent queue, so a canister forks in O(1) (see `Canister::fork`).

use embedder::MessageResult;
use rpds::QueueSync;

/// Most canister log records kept per canister; older ones are dropped first.
pub const MAX_CANISTER_LOG_RECORDS: usize = 4096;

/// One `debug_print` (or trap message) of a replicated execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanisterLogRecord {
    /// Its position in the canister's log, counting dropped records.
    pub index: u64,
    /// The round time of the message that printed it.
    pub time: u64,
    /// What was printed.
    pub content: Vec<u8>,
}

/// A canister's log records, oldest first, and the next record's index.
#[derive(Clone, Debug)]
pub(crate) struct CanisterLog {
    records: QueueSync<CanisterLogRecord>,
    next_index: u64,
}

impl Default for CanisterLog {
    fn default() -> Self {
        CanisterLog { records: QueueSync::new_sync(), next_index: 0 }
    }
}

impl CanisterLog {
    /// A log holding `records`, whose next record gets `next_index`.
    pub(crate) fn from_parts(records: Vec<CanisterLogRecord>, next_index: u64) -> CanisterLog {
        let mut log = CanisterLog { next_index, ..CanisterLog::default() };
        for record in records {
            log.records.enqueue_mut(record);
        }
        log
    }

    /// The records, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &CanisterLogRecord> {
        self.records.iter()
    }

    /// The index the next record will get.
    pub(crate) fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Append what a message printed at `time`, and its trap message.
    pub(crate) fn record(&mut self, time: u64, result: &MessageResult) {
        let trap = result.outcome.as_ref().err().and_then(|e| e.trap_message()).map(|m| format!("[TRAP]: {m}"));
        for content in result.debug_prints.iter().cloned().chain(trap.map(String::into_bytes)) {
            self.records.enqueue_mut(CanisterLogRecord { index: self.next_index, time, content });
            self.next_index += 1;
            if self.records.len() > MAX_CANISTER_LOG_RECORDS {
                self.records.dequeue_mut();
            }
        }
    }
}
