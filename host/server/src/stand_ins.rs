//! Stand-ins for the two system canisters icp-cli asks to create a
//! canister: the cycles minting canister's `get_default_subnets` and the
//! cycles ledger's `create_canister`. A local host has neither (and no
//! cycles to pay with), so creation maps to the management canister's
//! provisional creation, as PocketIC's `provisional_create_canister_with_cycles`
//! does. A canister the host runs at one of these ids always wins: the
//! stand-ins answer only ids the host does not use.

use candid::types::reserved::Reserved;
use candid::{CandidType, Decode, Deserialize, Encode, Nat};
use canister_host::{CallError, ErrorCode};
use ic_management_canister_types::{CanisterIdRecord, CanisterSettings, ProvisionalCreateCanisterWithCyclesArgs};
use wire::Principal;

use crate::Backend;

/// The cycles minting canister (CMC) on the IC.
const CYCLES_MINTING_CANISTER: &str = "rkp4c-7iaaa-aaaaa-aaaca-cai";
/// The cycles ledger on the IC.
const CYCLES_LEDGER: &str = "um5iw-rqaaa-aaaaq-qaaba-cai";

/// A method one of the stand-ins answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum StandIn {
    /// CMC `get_default_subnets : () -> (vec principal)`, a query.
    DefaultSubnets,
    /// Cycles ledger `create_canister`, an update.
    CreateCanister,
}

impl StandIn {
    /// The stand-in for `method` of `canister`, unless the host runs a
    /// canister with that id.
    pub fn of(host: &dyn Backend, canister: Principal, method: &str) -> Option<StandIn> {
        // The method first: it rules out nearly every call without
        // rendering the id as text.
        let (id, stand_in) = match method {
            "get_default_subnets" => (CYCLES_MINTING_CANISTER, StandIn::DefaultSubnets),
            "create_canister" => (CYCLES_LEDGER, StandIn::CreateCanister),
            _ => return None,
        };
        (canister.to_text() == id && host.canister_info(canister).is_none()).then_some(stand_in)
    }

    /// Whether it may run as a query (it changes nothing).
    pub fn is_query(self) -> bool {
        self == StandIn::DefaultSubnets
    }

    /// Answer `arg` from `sender`, on a host whose one subnet is `subnet`.
    pub fn call(
        self,
        host: &dyn Backend,
        subnet: Principal,
        sender: Principal,
        arg: &[u8],
    ) -> Result<Vec<u8>, CallError> {
        match self {
            StandIn::DefaultSubnets => encode(Encode!(&vec![subnet])),
            StandIn::CreateCanister => create_canister(host, sender, arg),
        }
    }
}

/// The cycles ledger's argument (the fields this host uses; Candid skips
/// the rest).
#[derive(CandidType, Deserialize)]
struct CreateCanisterArgs {
    amount: Nat,
    creation_args: Option<CreationArgs>,
}

#[derive(CandidType, Deserialize)]
struct CreationArgs {
    /// Every canister is on the host's one subnet, whatever is asked.
    subnet_selection: Option<Reserved>,
    settings: Option<CanisterSettings>,
}

/// The success case of the cycles ledger's result (a value of this type is
/// a value of the full `variant { Ok; Err }` type).
#[derive(CandidType)]
enum CreateCanisterResult {
    Ok { block_id: Nat, canister_id: Principal },
}

/// Create the canister with the cycles asked for, controlled by the
/// settings' controllers or else by `sender`, as the cycles ledger does.
fn create_canister(host: &dyn Backend, sender: Principal, arg: &[u8]) -> Result<Vec<u8>, CallError> {
    let args = Decode!(arg, CreateCanisterArgs).map_err(|e| CallError::Failed {
        code: ErrorCode::InvalidManagementPayload,
        message: format!("the cycles ledger stand-in cannot decode the create_canister argument: {e}"),
    })?;
    let settings = args.creation_args.and_then(|c| c.settings);
    let provisional = ProvisionalCreateCanisterWithCyclesArgs {
        amount: Some(args.amount),
        settings,
        specified_id: None,
        sender_canister_version: None,
    };
    let reply = host.management(sender, "provisional_create_canister_with_cycles", encode(Encode!(&provisional))?)?;
    let CanisterIdRecord { canister_id } = Decode!(&reply, CanisterIdRecord)
        .map_err(|e| CallError::Unavailable(format!("the management canister's reply did not decode (a bug): {e}")))?;
    encode(Encode!(&CreateCanisterResult::Ok { block_id: Nat::from(0u8), canister_id }))
}

fn encode(bytes: candid::Result<Vec<u8>>) -> Result<Vec<u8>, CallError> {
    bytes.map_err(|e| CallError::Unavailable(format!("cannot encode a reply (a bug): {e}")))
}
