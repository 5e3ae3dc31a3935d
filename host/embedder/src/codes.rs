//! The IC's stable vocabulary for failed messages: reject codes (from the
//! interface specification) and error codes (from the replica), with the
//! IC's numbers. Replicated outcomes carry these codes, never prose: a
//! round's digest covers the code of each failure, so rewording a message
//! never changes a digest.

/// Why a call was rejected, as the interface specification numbers it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum RejectCode {
    /// Fatal system error; retrying is unlikely to help.
    SysFatal = 1,
    /// Transient system error; retrying may help.
    SysTransient = 2,
    /// The destination (a canister) does not exist.
    DestinationInvalid = 3,
    /// The canister rejected the call explicitly.
    CanisterReject = 4,
    /// The canister failed (trapped, did not reply...).
    CanisterError = 5,
    /// The outcome is unknown: a best-effort call timed out.
    SysUnknown = 6,
}

/// The replica's error codes that this host produces. The number is the
/// IC's; its first digit is the reject code. Displayed as `IC0502` etc.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ErrorCode {
    /// A stop did not complete in time.
    StopCanisterRequestTimeout = 206,
    /// No canister has this id.
    CanisterNotFound = 301,
    /// The canister has no snapshot with this id.
    CanisterSnapshotNotFound = 305,
    /// The canister (or a limit on it) refused the message.
    CanisterRejectedMessage = 406,
    /// The request's arguments are invalid.
    InvalidManagementPayload = 408,
    /// The canister trapped.
    CanisterTrapped = 502,
    /// The canister called `ic0.trap`.
    CanisterCalledTrap = 503,
    /// The canister broke a System API rule.
    CanisterContractViolation = 504,
    /// The module is not a valid canister module.
    CanisterInvalidWasm = 505,
    /// An update returned without replying.
    CanisterDidNotReply = 506,
    /// The canister ran out of memory.
    CanisterOutOfMemory = 507,
    /// The canister is stopped.
    CanisterStopped = 508,
    /// The canister is stopping.
    CanisterStopping = 509,
    /// The canister must be stopped first.
    CanisterNotStopped = 510,
    /// A stop was cancelled by a start.
    CanisterStoppingCancelled = 511,
    /// The caller is not a controller.
    CanisterInvalidController = 512,
    /// `install` on a canister that has code.
    CanisterNonEmpty = 514,
    /// The engine could not run the module.
    CanisterWasmEngineError = 521,
    /// The message exceeded its instruction limit.
    CanisterInstructionLimitExceeded = 522,
    /// A composite query's calls went deeper than allowed.
    QueryCallGraphTooDeep = 525,
    /// A composite query's calls used more instructions than allowed.
    QueryCallGraphTotalInstructionLimitExceeded = 526,
    /// A composite query was called as an update.
    CompositeQueryCalledInReplicatedMode = 527,
    /// The canister has no such method (of that kind).
    CanisterMethodNotFound = 536,
    /// The canister has no code installed.
    CanisterWasmModuleNotFound = 537,
}

impl ErrorCode {
    /// The reject code this error is reported with.
    pub fn reject_code(self) -> RejectCode {
        match self as u32 / 100 {
            1 => RejectCode::SysFatal,
            2 => RejectCode::SysTransient,
            3 => RejectCode::DestinationInvalid,
            4 => RejectCode::CanisterReject,
            _ => RejectCode::CanisterError,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IC{:04}", *self as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_on_the_ic() {
        assert_eq!(ErrorCode::CanisterTrapped.to_string(), "IC0502");
        assert_eq!(ErrorCode::CanisterNotFound.to_string(), "IC0301");
        assert_eq!(ErrorCode::CanisterNotFound.reject_code(), RejectCode::DestinationInvalid);
        assert_eq!(ErrorCode::CanisterRejectedMessage.reject_code(), RejectCode::CanisterReject);
        assert_eq!(ErrorCode::CanisterInstructionLimitExceeded.reject_code(), RejectCode::CanisterError);
        assert_eq!(RejectCode::CanisterError as u32, 5);
    }
}
