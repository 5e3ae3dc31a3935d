//! Who sent a request: the interface spec's "Authentication".
//!
//! - no key, no signature, no delegation: the anonymous principal;
//! - otherwise the sender must be the self-authenticating principal of
//!   `sender_pubkey`, each delegation in the chain must be signed by the
//!   key before it and unexpired, and `sender_sig` must be the last key's
//!   signature of the request id.
//!
//! Keys are DER SubjectPublicKeyInfo: Ed25519, ECDSA on secp256k1, ECDSA
//! on P-256 (signatures are raw r‖s over SHA-256 of the message).

use candid::Principal;
use ic_transport_types::{EnvelopeContent, SignedDelegation};

use crate::envelope::Request;

/// Most delegations in a chain (the IC's limit).
pub const MAX_DELEGATIONS: usize = 20;
/// Most targets one delegation may name (the IC's limit).
pub const MAX_TARGETS: usize = 1000;

const ED25519_PREFIX: &[u8] = &[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
const SECP256K1_PREFIX: &[u8] = &[
    0x30, 0x56, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
    0x0a, 0x03, 0x42, 0x00,
];
const P256_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a request's sender was not accepted (a 400 on the IC; 403 for
/// targets).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Some but not all of key and signature were sent.
    #[error("Request is missing its sender public key or signature: send both, or neither for the anonymous sender")]
    Incomplete,
    /// No key, but the sender is not anonymous.
    #[error("Sender {0} is not anonymous, so the request must be signed")]
    Unsigned(Principal),
    /// The sender is not the key's principal.
    #[error("Sender {sender} does not match the public key's principal {derived}")]
    WrongSender {
        /// The content's sender.
        sender: Principal,
        /// The principal of `sender_pubkey`.
        derived: Principal,
    },
    /// A key of a kind this host does not verify.
    #[error("Unsupported public key ({0} bytes): send an Ed25519, ECDSA secp256k1 or ECDSA P-256 key in DER form")]
    UnsupportedKey(usize),
    /// A signature does not verify.
    #[error("Invalid signature: {0}")]
    BadSignature(String),
    /// A delegation has expired.
    #[error("Invalid delegation: expired at {expiration} ns, before now ({now} ns)")]
    Expired {
        /// When it expired.
        expiration: u64,
        /// Now.
        now: u64,
    },
    /// The chain is too long, or a delegation names too many targets.
    #[error("Invalid delegation: {0}")]
    TooLarge(String),
    /// The delegation's targets do not include the canister called.
    #[error("Invalid delegation: canister {0} is not one of the delegation's targets")]
    NotATarget(Principal),
}

/// Check `request`'s sender at `now_ns`.
pub fn authenticate(request: &Request, now_ns: u64) -> Result<(), AuthError> {
    let envelope = &request.envelope;
    let sender = request.sender();
    let chain: &[SignedDelegation] = envelope.sender_delegation.as_deref().unwrap_or(&[]);
    let (pubkey, signature) = match (&envelope.sender_pubkey, &envelope.sender_sig) {
        (None, None) if chain.is_empty() => {
            return if sender == Principal::anonymous() { Ok(()) } else { Err(AuthError::Unsigned(sender)) };
        }
        (Some(key), Some(sig)) => (key, sig),
        _ => return Err(AuthError::Incomplete),
    };
    let derived = Principal::self_authenticating(pubkey);
    if derived != sender {
        return Err(AuthError::WrongSender { sender, derived });
    }
    if chain.len() > MAX_DELEGATIONS {
        return Err(AuthError::TooLarge(format!("{} delegations, at most {MAX_DELEGATIONS}", chain.len())));
    }
    let mut key: &[u8] = pubkey;
    let mut targets: Option<Vec<Principal>> = None;
    for link in chain {
        let delegation = &link.delegation;
        verify(key, &delegation.signable(), &link.signature)?;
        if delegation.expiration < now_ns {
            return Err(AuthError::Expired { expiration: delegation.expiration, now: now_ns });
        }
        if let Some(these) = &delegation.targets {
            if these.len() > MAX_TARGETS {
                return Err(AuthError::TooLarge(format!("{} targets, at most {MAX_TARGETS}", these.len())));
            }
            // Each delegation can only narrow what the chain allows.
            targets = Some(match targets {
                None => these.clone(),
                Some(before) => before.into_iter().filter(|t| these.contains(t)).collect(),
            });
        }
        key = &delegation.pubkey;
    }
    verify(key, &request.request_id.signable(), signature)?;
    if let (Some(targets), EnvelopeContent::Call { canister_id, .. } | EnvelopeContent::Query { canister_id, .. }) =
        (&targets, request.content())
        && !targets.contains(canister_id)
    {
        return Err(AuthError::NotATarget(*canister_id));
    }
    Ok(())
}

/// Verify `signature` of `message` by the DER public key `key`.
pub fn verify(key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), AuthError> {
    use k256::ecdsa::signature::Verifier;
    let bad = |e: &dyn std::fmt::Display| AuthError::BadSignature(e.to_string());
    if key.starts_with(ED25519_PREFIX) {
        let key = ic_ed25519::PublicKey::deserialize_rfc8410_der(key).map_err(|e| bad(&format!("{e:?}")))?;
        key.verify_signature(message, signature).map_err(|e| bad(&format!("Ed25519: {e:?}")))
    } else if let Some(point) = key.strip_prefix(SECP256K1_PREFIX) {
        let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| bad(&e))?;
        let signature = k256::ecdsa::Signature::from_slice(signature).map_err(|e| bad(&e))?;
        key.verify(message, &signature).map_err(|e| bad(&format!("ECDSA secp256k1: {e}")))
    } else if let Some(point) = key.strip_prefix(P256_PREFIX) {
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| bad(&e))?;
        let signature = p256::ecdsa::Signature::from_slice(signature).map_err(|e| bad(&e))?;
        key.verify(message, &signature).map_err(|e| bad(&format!("ECDSA P-256: {e}")))
    } else {
        Err(AuthError::UnsupportedKey(key.len()))
    }
}
