//! What can go wrong in the host, and in a call.

use embedder::{EngineError, ErrorCode, ModuleError, RejectCode};

use crate::replay::Divergence;
use crate::round::NotApplied;
use crate::wal::WalError;

/// Why the host could not open, or could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The configuration is invalid.
    #[error("invalid host configuration: {0}")]
    InvalidConfig(String),
    /// Reading or writing checkpoints failed.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    /// Reading or writing the write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A checkpoint's contents do not decode.
    #[error("checkpoint {height:016x}: {what}: {reason}")]
    CorruptCheckpoint {
        /// The checkpoint's height.
        height: u64,
        /// The file at fault.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A module stored in a checkpoint does not compile.
    #[error("a canister module in the checkpoint is invalid: {0}")]
    Module(#[from] ModuleError),
    /// The wasmtime engine could not be set up.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A log record's body does not decode.
    #[error("write-ahead log record {height} cannot be decoded: {reason}")]
    BadRecord {
        /// The record's height.
        height: u64,
        /// Why it does not decode.
        reason: String,
    },
    /// The log lacks a round that replay needs.
    #[error("the write-ahead log has no record for round {missing}, which recovery from checkpoint {checkpoint} needs")]
    LogGap {
        /// The checkpoint replay starts from.
        checkpoint: u64,
        /// The first missing round.
        missing: u64,
    },
    /// Replaying the log did not reproduce a recorded digest.
    #[error(
        "replaying round {} gave different results than the log records ({}recorded {}, replayed {}); this \
         engine does not reproduce the history, so the host will not start",
        .0.height, .0.canister.map(|c| format!("canister {c}: ")).unwrap_or_default(), .0.recorded, .0.replayed
    )]
    ReplayDiverged(Divergence),
    /// Replaying a logged round failed in the host, not in a canister (for
    /// example it ran out of address space or mappings), so the log could
    /// not be checked past it.
    #[error(
        "replaying round {height} failed: {failure}; this is the host's failure, not a divergence: fix it and \
         open the state directory again"
    )]
    ReplayFailed {
        /// The round.
        height: u64,
        /// What failed.
        failure: NotApplied,
    },
    /// An operation failed with an IC error code.
    #[error("{code}: {message}")]
    Rejected {
        /// The IC's code for the failure.
        code: ErrorCode,
        /// Why.
        message: String,
    },
    /// The round holding an operation was not applied (the host failed
    /// while running it); nothing changed, and retrying may succeed.
    #[error("{0}; nothing was changed: retry")]
    NotApplied(NotApplied),
    /// An operation was refused; the text says why.
    #[error("{0}")]
    Operation(String),
    /// The host stopped on an earlier error, or was closed.
    #[error("the host has stopped: {0}")]
    Stopped(String),
}

/// Why a call produced no reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The canister rejected it (`ic0.msg_reject`).
    #[error("the canister rejected the call: {0}")]
    Rejected(String),
    /// It failed: a trap, a missing method or canister, a refusal.
    #[error("{code}: {message}")]
    Failed {
        /// The IC's code for the failure.
        code: ErrorCode,
        /// Why.
        message: String,
    },
    /// The host failed while running the round that held it, so that round
    /// was not applied; retrying may succeed.
    #[error("{0}; nothing was changed: retry")]
    NotApplied(NotApplied),
    /// The host stopped before answering.
    #[error("the host has stopped: {0}")]
    Unavailable(String),
}

impl CallError {
    /// The reject code a client sees.
    pub fn reject_code(&self) -> RejectCode {
        match self {
            CallError::Rejected(_) => RejectCode::CanisterReject,
            CallError::Failed { code, .. } => code.reject_code(),
            CallError::NotApplied(_) | CallError::Unavailable(_) => RejectCode::SysTransient,
        }
    }

    /// The IC error code, if the failure has one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            CallError::Failed { code, .. } => Some(*code),
            _ => None,
        }
    }
}
