//! One query against a committed view: shared by the live host (which runs
//! it on its query threads) and by time travel (which runs it on a replayed
//! past state).

use std::sync::Arc;

use candid::Principal;
use embedder::{Call, Executor, MethodKind};

use crate::canister::{CanisterError, CanisterStatus};
use crate::composite::{Answer, CompositeQuery};
use crate::error::CallError;
use crate::round::Outcome;
use crate::view::CommittedView;

/// Makes the certificate a query may read with `ic0.data_certificate_*`,
/// from the canister's id and its certified data in the state the query
/// runs on (a server holding a root key supplies one).
pub type Certifier = Arc<dyn Fn(Principal, &[u8]) -> Vec<u8> + Send + Sync>;

/// A query ready to run on a thread with a wasm-sized stack.
pub(crate) type QueryJob = Box<dyn FnOnce() -> Result<Vec<u8>, CallError> + Send>;

pub(crate) fn refused(error: &CanisterError) -> CallError {
    CallError::Failed { code: error.code(), message: error.to_string() }
}

/// Check that `canister` can take a query now, and build the job that runs
/// `method` on `view`. Composite queries see every canister of the view.
pub(crate) fn prepare(
    executor: &Arc<Executor>,
    view: &Arc<CommittedView>,
    canister: Principal,
    sender: Principal,
    method: &str,
    arg: Vec<u8>,
    certifier: Option<Certifier>,
) -> Result<QueryJob, CallError> {
    let info = view.canisters.get(&canister).ok_or_else(|| refused(&CanisterError::NotFound(canister)))?;
    if info.status == CanisterStatus::Stopped {
        return Err(refused(&CanisterError::Stopped { canister }));
    }
    let kind = info.state.module.as_ref().and_then(|m| m.info.methods.get(method)).copied();
    let (executor, method, time) = (executor.clone(), method.to_string(), view.round.time);
    if kind == Some(MethodKind::CompositeQuery) {
        let view = view.clone();
        return Ok(Box::new(move || {
            match CompositeQuery::new(&executor, &view, time).call(canister, sender, &method, &arg, 0) {
                Ok(Answer::Reply(bytes)) => Ok(bytes),
                Ok(Answer::Reject(text)) => Err(CallError::Rejected(text)),
                Ok(Answer::Failed(code, message)) => Err(CallError::Failed { code, message }),
                Err(failure) => Err(CallError::Failed { code: failure.code, message: failure.message }),
            }
        }));
    }
    let state = info.state.clone();
    // Signing a certificate costs far more than a query: make one only for
    // a module that can read it.
    let reads_certificate =
        state.module.as_ref().is_some_and(|m| m.info.imports.iter().any(|i| i.name.starts_with("data_certificate_")));
    let certifier = certifier.filter(|_| reads_certificate);
    Ok(Box::new(move || {
        let certificate = certifier.map(|certify| certify(canister, &state.certified_data));
        let call = Call::method(&method, MethodKind::Query, &arg, sender.as_slice(), time)
            .with_data_certificate(certificate.as_deref());
        let result = executor.query(&state, call);
        match result.outcome {
            // A query's host failure is the host's to report, but not a
            // round's: nothing is applied either way.
            Err(e) if e.is_host_failure() => Err(CallError::Unavailable(e.to_string())),
            _ => crate::host::call_result(Ok(Outcome::from(&result))),
        }
    }))
}
