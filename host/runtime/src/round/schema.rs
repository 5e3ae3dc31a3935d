//! What a round is made of, as the write-ahead log records it.

use candid::{CandidType, Deserialize, Principal};
use embedder::{ErrorCode, MessageResult, Response};
use serde::Serialize;

use crate::canister::{CanisterError, InstallMode};

/// The format version of round records: the first four bytes (little
/// endian) of every record body. Bumped whenever the encoding of records,
/// what their digests cover, or how a round's operations are spread over
/// rounds changes (any of which makes an old log replay differently).
pub const ROUND_RECORD_FORMAT: u32 = 5;
/// The last format whose records were Candid; this build still reads them
/// (they differ from the current one in encoding only).
const CANDID_RECORD_FORMAT: u32 = 4;

/// What an operation takes in a record besides its variable parts (a
/// generous bound: two principals, tags, lengths).
pub const OPERATION_OVERHEAD: usize = 256;

/// One state-changing request, as recorded in the log. `sender` is who
/// asks, `canister` the canister it is for; each variant is the `Host`
/// method of the same name.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // see above: the variants mirror `Host`'s methods and their arguments
pub enum Operation {
    CreateCanister {
        sender: Principal,
        controllers: Vec<Principal>,
        name: Option<String>,
    },
    DeleteCanister {
        sender: Principal,
        canister: Principal,
    },
    InstallCode {
        sender: Principal,
        canister: Principal,
        mode: InstallMode,
        #[serde(with = "serde_bytes")]
        wasm: Vec<u8>,
        #[serde(with = "serde_bytes")]
        arg: Vec<u8>,
    },
    Uninstall {
        sender: Principal,
        canister: Principal,
    },
    Stop {
        sender: Principal,
        canister: Principal,
    },
    Start {
        sender: Principal,
        canister: Principal,
    },
    SetControllers {
        sender: Principal,
        canister: Principal,
        controllers: Vec<Principal>,
    },
    TakeSnapshot {
        sender: Principal,
        canister: Principal,
        replace: Option<u64>,
    },
    LoadSnapshot {
        sender: Principal,
        canister: Principal,
        snapshot: u64,
    },
    DeleteSnapshot {
        sender: Principal,
        canister: Principal,
        snapshot: u64,
    },
    Update {
        sender: Principal,
        canister: Principal,
        method: String,
        arg: Vec<u8>,
    },
    /// A call to the management canister (`aaaaa-aa`) by a user.
    Management {
        sender: Principal,
        method: String,
        arg: Vec<u8>,
    },
}

impl Operation {
    /// The canister whose worker runs this operation (None for operations
    /// on the set of canisters).
    pub fn canister(&self) -> Option<Principal> {
        use Operation::*;
        match self {
            CreateCanister { .. } | DeleteCanister { .. } | Management { .. } => None,
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

    /// Roughly how many bytes it takes in a log record: what rounds are
    /// bounded by.
    pub fn size_bytes(&self) -> usize {
        let variable = match self {
            Operation::CreateCanister { controllers, name, .. } => {
                controllers.len() * 30 + name.as_ref().map_or(0, String::len)
            }
            Operation::InstallCode { wasm, arg, .. } => wasm.len() + arg.len(),
            Operation::SetControllers { controllers, .. } => controllers.len() * 30,
            Operation::Update { method, arg, .. } | Operation::Management { method, arg, .. } => {
                method.len() + arg.len()
            }
            _ => 0,
        };
        OPERATION_OVERHEAD + variable
    }

    /// Whether it is an update message.
    pub fn is_update(&self) -> bool {
        matches!(self, Operation::Update { .. })
    }
}

/// What an operation produced: its reply to the caller.
///
/// Digests cover only what replicates: replies, the canister's own reject
/// messages, and the error *code* of a failure, never its prose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An update's reply.
    Reply(Vec<u8>),
    /// The canister rejected the update (`ic0.msg_reject`).
    Reject(String),
    /// The operation failed.
    Error {
        /// The IC's code for the failure: what replicates.
        code: ErrorCode,
        /// Why, for the caller.
        message: String,
    },
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
            Err(error) => Outcome::Error { code: error.code(), message: error.to_string() },
        }
    }
}

impl Outcome {
    /// The outcome of an operation that failed with `error`.
    pub fn failed(error: &CanisterError) -> Outcome {
        Outcome::Error { code: error.code(), message: error.to_string() }
    }
}

/// A round as the log records it: its input, and digests of its results.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoundRecord {
    /// The round's height.
    pub height: u64,
    /// The round's time, in nanoseconds since the epoch.
    pub time: u64,
    /// Its operations, in arrival order.
    pub operations: Vec<Operation>,
    /// The round's digest.
    #[serde(with = "serde_bytes")]
    pub digest: Vec<u8>,
    /// The digest of each canister that did anything, in id order.
    #[serde(with = "digest_pairs")]
    pub canister_digests: Vec<(Principal, Vec<u8>)>,
}

/// `canister_digests` with each digest as a CBOR byte string: a fixed
/// size, where an array of small integers would vary with the digest.
mod digest_pairs {
    use candid::Principal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(pairs: &[(Principal, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        let as_bytes: Vec<(&Principal, &Bytes)> = pairs.iter().map(|(p, d)| (p, Bytes::new(d))).collect();
        as_bytes.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Principal, Vec<u8>)>, D::Error> {
        let pairs = Vec::<(Principal, ByteBuf)>::deserialize(d)?;
        Ok(pairs.into_iter().map(|(p, b)| (p, b.into_vec())).collect())
    }
}

impl RoundRecord {
    /// The record's bytes: the format version, then the record in CBOR
    /// (Candid, as format 4 used, cost half a round's time to encode: it
    /// rebuilds the type table of every operation kind for each record).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = ROUND_RECORD_FORMAT.to_le_bytes().to_vec();
        serde_cbor::to_writer(&mut bytes, self).expect("round records always encode");
        bytes
    }

    /// A record from its bytes; a record of another format version is
    /// refused, not misread.
    pub fn decode(bytes: &[u8]) -> Result<RoundRecord, String> {
        let Some((version, body)) = bytes.split_first_chunk::<4>() else {
            return Err("the record is too short to hold a format version".into());
        };
        match u32::from_le_bytes(*version) {
            ROUND_RECORD_FORMAT => serde_cbor::from_slice(body).map_err(|e| e.to_string()),
            CANDID_RECORD_FORMAT => candid::decode_one(body).map_err(|e| e.to_string()),
            version => Err(format!(
                "it has format version {version}, and this build reads versions {CANDID_RECORD_FORMAT} and \
                 {ROUND_RECORD_FORMAT}; use the build that wrote it"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RoundRecord {
        RoundRecord {
            height: 3,
            time: 4,
            operations: vec![Operation::Stop { sender: Principal::anonymous(), canister: Principal::anonymous() }],
            digest: vec![1; 32],
            canister_digests: vec![],
        }
    }

    fn update() -> RoundRecord {
        let sender = Principal::from_slice(&[7; 29]);
        let canister = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
        let operations = vec![
            Operation::Update { sender, canister, method: "transfer".into(), arg: vec![0, 1, 2, 255] },
            Operation::InstallCode {
                sender,
                canister,
                mode: InstallMode::Upgrade {
                    wasm_memory_persistence: Some(crate::canister::WasmMemoryPersistence::Keep),
                    skip_pre_upgrade: true,
                },
                wasm: b"\0asm".to_vec(),
                arg: vec![],
            },
        ];
        RoundRecord {
            height: 9,
            time: 10,
            operations,
            digest: vec![2; 32],
            canister_digests: vec![(canister, vec![3; 32])],
        }
    }

    #[test]
    fn records_carry_their_format_version_and_other_versions_are_refused() {
        let bytes = record().encode();
        assert_eq!(bytes[..4], 5u32.to_le_bytes(), "the version leads the record");
        assert_eq!(RoundRecord::decode(&bytes).unwrap(), record());
        assert_eq!(RoundRecord::decode(&update().encode()).unwrap(), update());

        let mut newer = bytes.clone();
        newer[..4].copy_from_slice(&6u32.to_le_bytes());
        let error = RoundRecord::decode(&newer).unwrap_err();
        assert!(error.contains("format version 6") && error.contains("reads versions 4 and 5"), "{error}");
        // A record from before records were versioned (bare Candid).
        let bare = candid::encode_one(record()).unwrap();
        assert!(RoundRecord::decode(&bare).unwrap_err().contains("format version"));
        assert!(RoundRecord::decode(&[1, 0]).unwrap_err().contains("too short"));
    }

    #[test]
    fn a_records_size_does_not_depend_on_its_digests() {
        let sizes: Vec<usize> = [[0u8; 32], [0xff; 32], [23; 32], [24; 32]]
            .iter()
            .map(|d| {
                let mut r = update();
                r.digest = d.to_vec();
                r.canister_digests[0].1 = d.to_vec();
                r.encode().len()
            })
            .collect();
        assert!(sizes.iter().all(|s| *s == sizes[0]), "{sizes:?}");
    }

    #[test]
    fn records_written_in_candid_by_format_4_still_decode() {
        for record in [record(), update()] {
            let mut bytes = 4u32.to_le_bytes().to_vec();
            bytes.extend(candid::encode_one(&record).unwrap());
            assert_eq!(RoundRecord::decode(&bytes).unwrap(), record);
        }
    }

    #[test]
    fn the_encoding_is_fixed() {
        // Written out by hand from the CBOR encoding of `record()`: a change
        // here makes logs unreadable, so it needs a new format version.
        let digest = "01".repeat(32);
        let expected: String = [
            ("05000000", "format 5"),
            ("a5", "a map of 5"),
            ("66686569676874", "\"height\""),
            ("03", "3"),
            ("6474696d65", "\"time\""),
            ("04", "4"),
            ("6a6f7065726174696f6e73", "\"operations\""),
            ("81", "an array of 1"),
            ("a1", "a map of 1"),
            ("6453746f70", "\"Stop\""),
            ("a2", "a map of 2"),
            ("6673656e646572", "\"sender\""),
            ("4104", "h'04' (the anonymous principal)"),
            ("6863616e6973746572", "\"canister\""),
            ("4104", "h'04'"),
            ("66646967657374", "\"digest\""),
            ("5820", "32 bytes:"),
            (digest.as_str(), "1, 32 times"),
            ("7063616e69737465725f64696765737473", "\"canister_digests\""),
            ("80", "an empty array"),
        ]
        .iter()
        .map(|(bytes, _meaning)| *bytes)
        .collect();
        let hex: String = record().encode().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }
}
