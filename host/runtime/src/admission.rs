//! What a request must satisfy before it may enter a round (and so the
//! write-ahead log): sizes and counts within the IC's limits. A request
//! refused here is answered at once and never logged.

use embedder::ModuleError;

use crate::canister::CanisterError;
use crate::config::HostConfig;
use crate::round::Operation;

/// Most controllers a canister may have (the IC's limit).
pub const MAX_CONTROLLERS: usize = 10;
/// Longest canister name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest method name, in bytes (no canister can export a longer one).
pub const MAX_METHOD_NAME_BYTES: usize = 20_000;

/// The limits requests are checked against.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Admission {
    max_ingress_bytes: usize,
    max_module_bytes: usize,
}

impl Admission {
    pub(crate) fn new(config: &HostConfig) -> Admission {
        Admission { max_ingress_bytes: config.max_ingress_bytes, max_module_bytes: config.execution.max_module_bytes }
    }

    /// Refuse `op` if it exceeds a limit.
    pub(crate) fn check(&self, op: &Operation) -> Result<(), CanisterError> {
        let too_long = |what: &str, len: usize, max: usize| {
            Err(CanisterError::InvalidRequest(format!("{what} is {len} bytes; at most {max} are allowed")))
        };
        let too_many = |count: usize| {
            Err(CanisterError::InvalidRequest(format!(
                "{count} controllers were given; at most {MAX_CONTROLLERS} are allowed"
            )))
        };
        match op {
            Operation::Update { method, .. } | Operation::Management { method, .. }
                if method.len() > MAX_METHOD_NAME_BYTES =>
            {
                too_long("the method name", method.len(), MAX_METHOD_NAME_BYTES)
            }
            Operation::Update { arg, .. } | Operation::InstallCode { arg, .. } | Operation::Management { arg, .. }
                if arg.len() > self.max_ingress_bytes =>
            {
                too_long("the argument", arg.len(), self.max_ingress_bytes)
            }
            Operation::InstallCode { wasm, .. } if wasm.len() > self.max_module_bytes => {
                Err(CanisterError::Module(ModuleError::TooLarge { size: wasm.len(), limit: self.max_module_bytes }))
            }
            Operation::CreateCanister { name: Some(name), .. } if name.len() > MAX_NAME_BYTES => {
                too_long("the name", name.len(), MAX_NAME_BYTES)
            }
            Operation::CreateCanister { controllers, .. } | Operation::SetControllers { controllers, .. }
                if controllers.len() > MAX_CONTROLLERS =>
            {
                too_many(controllers.len())
            }
            _ => Ok(()),
        }
    }
}
