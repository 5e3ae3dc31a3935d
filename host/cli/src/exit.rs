//! Exit codes, and which failures map to which.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the host failed (storage, a corrupt state directory, a bug) |
//! | 2 | usage: bad arguments, an unreadable file, bad Candid, no such canister name |
//! | 3 | the canister or the host rejected the call (reject codes 1 to 4) |
//! | 4 | the canister trapped or failed (reject code 5, `CANISTER_ERROR`) |
//! | 5 | another process holds the state directory's lock |
//! | 6 | a check failed: a replay diverged, the demo lost a transfer |

use canister_host::{CallError, HostError, RejectCode};

/// Success.
pub const OK: u8 = 0;
/// The host failed.
pub const HOST: u8 = 1;
/// Bad input.
pub const USAGE: u8 = 2;
/// A reject.
pub const REJECTED: u8 = 3;
/// A trap or canister error.
pub const TRAPPED: u8 = 4;
/// The state directory is locked.
pub const LOCKED: u8 = 5;
/// A check failed.
pub const CHECK_FAILED: u8 = 6;

/// A failure whose exit code is set by the command that found it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    /// The exit code.
    pub code: u8,
    /// What failed, and what to do.
    pub message: String,
}

/// A usage error: the input was wrong.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Classified { code: USAGE, message: message.into() }.into()
}

/// A failed check.
pub fn check_failed(message: impl Into<String>) -> anyhow::Error {
    Classified { code: CHECK_FAILED, message: message.into() }.into()
}

fn of_reject(code: RejectCode) -> u8 {
    if code == RejectCode::CanisterError { TRAPPED } else { REJECTED }
}

/// The exit code for `error`: the first cause in its chain that says.
pub fn code_of(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(c) = cause.downcast_ref::<Classified>() {
            return c.code;
        }
        if let Some(e) = cause.downcast_ref::<CallError>() {
            return match e {
                CallError::NotApplied(_) | CallError::Unavailable(_) => HOST,
                e => of_reject(e.reject_code()),
            };
        }
        if let Some(e) = cause.downcast_ref::<HostError>() {
            return match e {
                HostError::Rejected { code, .. } => of_reject(code.reject_code()),
                HostError::Checkpoint(checkpoint::Error::Locked { .. }) => LOCKED,
                HostError::ReplayDiverged(_) => CHECK_FAILED,
                _ => HOST,
            };
        }
        if let Some(checkpoint::Error::Locked { .. }) = cause.downcast_ref::<checkpoint::Error>() {
            return LOCKED;
        }
    }
    HOST
}
