//! What a round is made of, as the write-ahead log records it.

use candid::{CandidType, Deserialize, Principal};
use embedder::{MessageResult, Response};

use crate::canister::InstallMode;

/// One state-changing request, as recorded in the log. `sender` is who
/// asks, `canister` the canister it is for; each variant is the `Host`
/// method of the same name.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see above: the variants mirror `Host`'s methods and their arguments
pub enum Operation {
    CreateCanister { sender: Principal, controllers: Vec<Principal>, name: Option<String> },
    DeleteCanister { sender: Principal, canister: Principal },
    InstallCode { sender: Principal, canister: Principal, mode: InstallMode, wasm: Vec<u8>, arg: Vec<u8> },
    Uninstall { sender: Principal, canister: Principal },
    Stop { sender: Principal, canister: Principal },
    Start { sender: Principal, canister: Principal },
    SetControllers { sender: Principal, canister: Principal, controllers: Vec<Principal> },
    TakeSnapshot { sender: Principal, canister: Principal, replace: Option<u64> },
    LoadSnapshot { sender: Principal, canister: Principal, snapshot: u64 },
    DeleteSnapshot { sender: Principal, canister: Principal, snapshot: u64 },
    Update { sender: Principal, canister: Principal, method: String, arg: Vec<u8> },
}

impl Operation {
    /// The canister whose worker runs this operation (None for operations
    /// on the set of canisters).
    pub fn canister(&self) -> Option<Principal> {
        use Operation::*;
        match self {
            CreateCanister { .. } | DeleteCanister { .. } => None,
            InstallCode { canister, .. }
            | Uninstall { canister, .. }
            | Stop { canister, .. }
            | Start { canister, .. }
            | SetControllers { canister, .. }
            | TakeSnapshot { canister, .. }
            | LoadSnapshot { canister, .. }
            | DeleteSnapshot { canister, .. }
            | Update { canister, .. } => Some(*canister),
        }
    }

    /// Whether it is an update message.
    pub fn is_update(&self) -> bool {
        matches!(self, Operation::Update { .. })
    }
}

/// What an operation produced: its reply to the caller.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An update's reply.
    Reply(Vec<u8>),
    /// The canister rejected the update (`ic0.msg_reject`).
    Reject(String),
    /// The operation failed; the text says why.
    Error(String),
    /// A canister was created with this id.
    Created(Principal),
    /// A snapshot was taken with this id.
    SnapshotTaken(u64),
    /// A lifecycle operation succeeded.
    Done,
}

impl From<&MessageResult> for Outcome {
    fn from(result: &MessageResult) -> Outcome {
        match &result.outcome {
            Ok(Response::Reply(bytes)) => Outcome::Reply(bytes.clone()),
            Ok(Response::Reject(message)) => Outcome::Reject(message.clone()),
            Ok(Response::None) => Outcome::Done,
            Err(error) => Outcome::Error(error.to_string()),
        }
    }
}

/// A round as the log records it: its input, and digests of its results.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoundRecord {
    /// The round's height.
    pub height: u64,
    /// The round's time, in nanoseconds since the epoch.
    pub time: u64,
    /// Its operations, in arrival order.
    pub operations: Vec<Operation>,
    /// The round's digest.
    pub digest: Vec<u8>,
    /// The digest of each canister that did anything, in id order.
    pub canister_digests: Vec<(Principal, Vec<u8>)>,
}

impl RoundRecord {
    /// The record's bytes (Candid).
    pub fn encode(&self) -> Vec<u8> {
        candid::encode_one(self).expect("round records always encode")
    }

    /// A record from its bytes.
    pub fn decode(bytes: &[u8]) -> Result<RoundRecord, String> {
        candid::decode_one(bytes).map_err(|e| e.to_string())
    }
}
