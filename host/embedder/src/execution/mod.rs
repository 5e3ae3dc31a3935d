//! Running messages: instances over tracked memory, fuel, and turning what a
//! message did into the canister's next state.
//!
//! An update runs on the canister's *live instance* when it has one: the
//! instance's memory already holds the committed state, so after a success
//! only the pages it dirtied are compared, copied into the heap's page map
//! and made read-only again. Any failure drops the live instance, so the
//! next message starts from the committed state. Queries run on an
//! instance their thread kept from an earlier query of the canister, caught
//! up to the state and rolled back after (`query_instances`), or else on a
//! fresh instance over an O(1) copy of the state.

mod compile;
mod config;
mod executor;
mod instance;
mod outcome;
mod query_instances;
mod slicing;
mod state;

pub use config::ExecutionConfig;
pub use executor::Executor;
pub use outcome::{
    Call, CallbackKind, CallbackTarget, DirtyPages, ExecutionError, Incoming, MessageResult, MessageStats, Target,
};
pub(crate) use slicing::PACING_REPORTS_PER_SLICE;
pub use slicing::{Cancelled, SliceGate};
pub use state::{CanisterState, Executable, GlobalValue};
