//! A canister's log: what `ic0.debug_print` printed, and the messages of
//! traps, in replicated executions. Bounded: the oldest records go first.

use std::collections::VecDeque;

use embedder::{ExecutionError, MessageResult};

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CanisterLog {
    records: VecDeque<CanisterLogRecord>,
    next_index: u64,
}

impl CanisterLog {
    /// A log holding `records`, whose next record gets `next_index`.
    pub(crate) fn from_parts(records: Vec<CanisterLogRecord>, next_index: u64) -> CanisterLog {
        CanisterLog { records: records.into(), next_index }
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
        let trap = match &result.outcome {
            Err(ExecutionError::Trapped(message)) => Some(format!("[TRAP]: {message}").into_bytes()),
            _ => None,
        };
        for content in result.debug_prints.iter().cloned().chain(trap) {
            self.records.push_back(CanisterLogRecord { index: self.next_index, time, content });
            self.next_index += 1;
            if self.records.len() > MAX_CANISTER_LOG_RECORDS {
                self.records.pop_front();
            }
        }
    }
}
