//! What the HTTP interface serves: a [`Host`], or anything else that can
//! answer for canisters the same way (a read replica of a host, say).

use canister_host::prometheus::proto::MetricFamily;
use canister_host::{CallError, CanisterInfo, Certifier, Host};
use wire::Principal;

/// The state the server answers for.
pub trait Backend: Send + Sync + 'static {
    /// A canister, as of the state served (`None`: not there).
    fn canister_info(&self, canister: Principal) -> Option<CanisterInfo>;

    /// Run a query on the state served; `certifier` certifies the
    /// canister's certified data for `ic0.data_certificate_*`.
    fn query(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        certifier: Option<Certifier>,
    ) -> Result<Vec<u8>, CallError>;

    /// Run an update and wait until its round is durable.
    fn update(&self, canister: Principal, sender: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError>;

    /// Call a method of the management canister.
    fn management(&self, sender: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError>;

    /// The backend's own metrics.
    fn gather_metrics(&self) -> Vec<MetricFamily>;

    /// Why this backend takes no calls at all (a read replica points at
    /// its primary); `None` when it takes them.
    fn refuses_calls(&self) -> Option<String> {
        None
    }
}

impl Backend for Host {
    fn canister_info(&self, canister: Principal) -> Option<CanisterInfo> {
        Host::canister_info(self, canister).ok()
    }

    fn query(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        certifier: Option<Certifier>,
    ) -> Result<Vec<u8>, CallError> {
        self.query_call_certified(canister, sender, method, arg, certifier)
    }

    fn update(&self, canister: Principal, sender: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.update_call(canister, sender, method, arg)
    }

    fn management(&self, sender: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.management_call(sender, method, arg)
    }

    fn gather_metrics(&self) -> Vec<MetricFamily> {
        Host::gather_metrics(self)
    }
}
