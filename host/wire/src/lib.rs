//! The IC's HTTP interface on the wire, independent of any server:
//!
//! - [`envelope`]: decoding a request envelope, its request id, and the
//!   checks every request passes (expiry window, effective canister id);
//! - [`auth`]: who sent it: anonymous, a self-authenticating key (Ed25519,
//!   ECDSA secp256k1 or P-256), or a delegation chain ending in one;
//! - [`keys`]: the host's BLS root key and Ed25519 node key, kept in the
//!   state directory so clients' fetched root keys stay valid;
//! - [`certificate`]: hash trees of the state clients may read, signed by
//!   the root key;
//! - [`query`]: query responses signed by the node key.
//!
//! The formats are the IC interface specification's; the types and hashing
//! come from `ic-transport-types` and `ic-certification`, the crates the
//! Rust agent itself uses.

#![deny(unsafe_code)]

pub mod auth;
pub mod certificate;
pub mod envelope;
pub mod keys;
pub mod query;
pub mod signer;

pub use candid::Principal;
pub use ic_transport_types::{EnvelopeContent, RejectCode, RequestId};

/// Encode `value` as CBOR with the self-describe tag, as the IC does.
pub fn to_cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut serializer = serde_cbor::Serializer::new(Vec::new());
    // Writing to a Vec cannot fail; the types encoded here have no maps
    // with non-string keys.
    serializer.self_describe().expect("writing to a Vec");
    value.serialize(&mut serializer).expect("a serializable wire type");
    serializer.into_inner()
}
