//! A canister's log: what `ic0.debug_print` printed, and the messages of
//! traps, in replicated executions. Bounded: the oldest records go first.
//! A persistent queue, so a canister forks in O(1) (see `Canister::fork`).

use embedder::MessageResult;
use rpds::QueueSync;

/// Most canister log records kept per canister; older ones are dropped first.
pub const MAX_CANISTER_LOG_RECORDS: usize = 4096;
/// Most bytes of content kept per canister; older records are dropped first.
pub const MAX_CANISTER_LOG_BYTES: usize = 256 << 10;

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
    /// Bytes of content held.
    bytes: usize,
}

impl Default for CanisterLog {
    fn default() -> Self {
        CanisterLog { records: QueueSync::new_sync(), next_index: 0, bytes: 0 }
    }
}

impl CanisterLog {
    /// A log holding `records`, whose next record gets `next_index`.
    pub(crate) fn from_parts(records: Vec<CanisterLogRecord>, next_index: u64) -> CanisterLog {
        let mut log = CanisterLog::default();
        for record in records {
            log.push(record);
        }
        log.next_index = next_index;
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
            self.push(CanisterLogRecord { index: self.next_index, time, content });
            self.next_index += 1;
        }
    }

    /// Append a record, dropping the oldest ones past the bounds.
    fn push(&mut self, record: CanisterLogRecord) {
        self.bytes += record.content.len();
        self.records.enqueue_mut(record);
        while self.records.len() > MAX_CANISTER_LOG_RECORDS || self.bytes > MAX_CANISTER_LOG_BYTES {
            let oldest = self.records.peek().map_or(0, |r| r.content.len());
            if !self.records.dequeue_mut() {
                break;
            }
            self.bytes -= oldest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_by_records_and_by_bytes() {
        let mut log = CanisterLog::default();
        for i in 0..MAX_CANISTER_LOG_RECORDS as u64 + 10 {
            log.push(CanisterLogRecord { index: i, time: 0, content: vec![1] });
        }
        assert_eq!(log.iter().count(), MAX_CANISTER_LOG_RECORDS);
        assert_eq!(log.iter().next().unwrap().index, 10, "the oldest go first");
        let big = MAX_CANISTER_LOG_BYTES / 4 + 1;
        for i in 0..8 {
            log.push(CanisterLogRecord { index: 10_000 + i, time: 0, content: vec![2; big] });
        }
        let held: usize = log.iter().map(|r| r.content.len()).sum();
        assert!(held <= MAX_CANISTER_LOG_BYTES, "{held} bytes held");
        assert_eq!(log.iter().last().unwrap().index, 10_007);
        assert_eq!(log.iter().count(), 3);
    }
}
