//! Why a lifecycle operation was refused.

use candid::Principal;
use embedder::{ErrorCode, ExecutionError, ModuleError, WasmPages};

use super::snapshots::MAX_SNAPSHOTS;

/// Why an operation on a canister was refused or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // the fields are named by what they hold; the messages say the rest
pub enum CanisterError {
    /// The request is malformed or exceeds a limit (see `Host`'s checks).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No canister has this id.
    #[error("canister {0} does not exist")]
    NotFound(Principal),
    /// Another canister has this name.
    #[error("a canister named {0:?} already exists; names must be unique")]
    NameTaken(String),
    /// Only controllers may do this.
    #[error("{caller} is not a controller of canister {canister}; its controllers are: {}", list(.controllers))]
    NotController { caller: Principal, canister: Principal, controllers: Vec<Principal> },
    /// The canister is stopped and takes no messages.
    #[error("canister {canister} is stopped; start it to send it messages")]
    Stopped { canister: Principal },
    /// The canister must be stopped first.
    #[error("canister {canister} must be stopped to {action}; stop it first")]
    NotStopped { canister: Principal, action: &'static str },
    /// `install` on a canister that has code.
    #[error("canister {canister} already has code installed; use reinstall or upgrade")]
    AlreadyInstalled { canister: Principal },
    /// An upgrade of a canister without code.
    #[error("canister {canister} has no code installed; install a module first")]
    Empty { canister: Principal },
    /// An upgrade keeping the heap, to a module whose memory cannot hold it.
    #[error(
        "canister {canister} has a heap of {heap}, and the new module's memory holds at most {maximum}; \
         upgrade without keeping the heap, or raise the module's maximum"
    )]
    HeapDoesNotFit { canister: Principal, heap: WasmPages, maximum: WasmPages },
    /// The canister is stopping: it takes no new messages.
    #[error("canister {canister} is stopping; it takes no new messages until it is started again")]
    Stopping { canister: Principal },
    /// A stop waited too long for the canister's calls to finish.
    #[error(
        "stopping canister {canister} timed out: its calls did not finish within 5 minutes; it is still stopping \
         (start it again, or wait and retry the stop)"
    )]
    StopTimedOut { canister: Principal },
    /// A stop was cancelled by a start before it completed.
    #[error("the stop of canister {canister} was cancelled: it was started again before its calls completed")]
    StopCancelled { canister: Principal },
    /// The upgrade's options do not suit the modules (enhanced orthogonal
    /// persistence); the reason is the IC's text.
    #[error("cannot upgrade canister {canister}: {reason}")]
    UpgradeOption { canister: Principal, reason: String },
    /// The module cannot be installed.
    #[error("cannot install the module: {0}")]
    Module(#[from] ModuleError),
    /// An install or upgrade hook failed; nothing changed.
    #[error("{entry} failed, so nothing changed: {error}")]
    HookFailed { entry: &'static str, error: ExecutionError },
    /// `canister_inspect_message` refused an ingress message.
    #[error("canister {canister} rejected the message in canister_inspect_message: {reason}")]
    InspectRejected { canister: Principal, reason: String },
    /// No snapshot has this id.
    #[error("canister {canister} has no snapshot {id:016x}")]
    SnapshotNotFound { canister: Principal, id: u64 },
    /// The canister holds the most snapshots it may.
    #[error("canister {canister} already holds {MAX_SNAPSHOTS} snapshots; delete one or replace it")]
    TooManySnapshots { canister: Principal },
}

impl CanisterError {
    /// The IC's error code for this failure: what replicated outcomes
    /// record.
    pub fn code(&self) -> ErrorCode {
        match self {
            CanisterError::NotFound(_) => ErrorCode::CanisterNotFound,
            CanisterError::NameTaken(_) | CanisterError::InvalidRequest(_) => ErrorCode::InvalidManagementPayload,
            CanisterError::NotController { .. } => ErrorCode::CanisterInvalidController,
            CanisterError::Stopped { .. } => ErrorCode::CanisterStopped,
            CanisterError::NotStopped { .. } => ErrorCode::CanisterNotStopped,
            CanisterError::AlreadyInstalled { .. } => ErrorCode::CanisterNonEmpty,
            CanisterError::Empty { .. } => ErrorCode::CanisterWasmModuleNotFound,
            CanisterError::Module(_) | CanisterError::HeapDoesNotFit { .. } => ErrorCode::CanisterInvalidWasm,
            CanisterError::HookFailed { error, .. } => error.code(),
            CanisterError::UpgradeOption { .. } => ErrorCode::CanisterContractViolation,
            CanisterError::Stopping { .. } => ErrorCode::CanisterStopping,
            CanisterError::StopCancelled { .. } => ErrorCode::CanisterStoppingCancelled,
            CanisterError::StopTimedOut { .. } => ErrorCode::StopCanisterRequestTimeout,
            CanisterError::InspectRejected { .. } | CanisterError::TooManySnapshots { .. } => {
                ErrorCode::CanisterRejectedMessage
            }
            CanisterError::SnapshotNotFound { .. } => ErrorCode::CanisterSnapshotNotFound,
        }
    }

    /// Whether the host, not the request or the canister, failed (see
    /// `ExecutionError::is_host_failure`).
    pub fn is_host_failure(&self) -> bool {
        matches!(self, CanisterError::HookFailed { error, .. } if error.is_host_failure())
    }
}

fn list(principals: &[Principal]) -> String {
    if principals.is_empty() {
        "(none)".into()
    } else {
        principals.iter().map(Principal::to_text).collect::<Vec<_>>().join(", ")
    }
}
