//! Query responses, signed by the node key so agents that verify query
//! signatures (the default in agent-js and ic-agent) accept them.

use ic_transport_types::{NodeSignature, QueryResponse, RejectResponse, ReplyResponse, RequestId};

use crate::keys::Keys;

/// How a query ended.
pub enum QueryOutcome {
    /// The canister replied with these bytes.
    Reply(Vec<u8>),
    /// It was rejected.
    Reject {
        /// The reject code (1 to 5).
        code: ic_transport_types::RejectCode,
        /// Why.
        message: String,
        /// The IC's error code, `IC0xxx`.
        error_code: String,
    },
}

/// The CBOR response to query `request_id`, signed at `time_ns`.
pub fn signed_response(outcome: QueryOutcome, request_id: RequestId, time_ns: u64, keys: &Keys) -> Vec<u8> {
    let unsigned = match outcome {
        QueryOutcome::Reply(arg) => QueryResponse::Replied { reply: ReplyResponse { arg }, signatures: Vec::new() },
        QueryOutcome::Reject { code, message, error_code } => QueryResponse::Rejected {
            reject: RejectResponse { reject_code: code, reject_message: message, error_code: Some(error_code) },
            signatures: Vec::new(),
        },
    };
    let signature = keys.sign_node(&unsigned.signable(request_id, time_ns)).to_vec();
    let node = NodeSignature { timestamp: time_ns, signature, identity: keys.node_id() };
    let signed = match unsigned {
        QueryResponse::Replied { reply, .. } => QueryResponse::Replied { reply, signatures: vec![node] },
        QueryResponse::Rejected { reject, .. } => QueryResponse::Rejected { reject, signatures: vec![node] },
    };
    crate::to_cbor(&signed)
}
