//! The host's keys: a BLS12-381 root key that signs certificates (clients
//! fetch its public half from `/api/v2/status`), and an Ed25519 node key
//! that signs query responses. Both come from one 64-byte secret kept in
//! the state directory, so a fetched root key stays valid across restarts.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use candid::Principal;
use sha2::{Digest, Sha256};

/// DER prefix of an IC BLS12-381 public key (the 96 key bytes follow).
pub const ROOT_KEY_DER_PREFIX: &[u8] = &[
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x01, 0x02,
    0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x02, 0x01, 0x03, 0x61, 0x00,
];

const SECRET_BYTES: usize = 64;

/// Why the keys could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a key file.
    #[error(
        "{0} is not a key file ({1} bytes, expected {SECRET_BYTES}): restore it from a backup, or delete it to make new keys (clients must then fetch the root key again)"
    )]
    Corrupt(String, usize),
}

/// The root and node keys.
pub struct Keys {
    root: ic_verify_bls_signature::PrivateKey,
    root_der: Vec<u8>,
    node: ic_ed25519::PrivateKey,
    node_der: Vec<u8>,
}

impl Keys {
    /// The keys in `path`, made (from the system's randomness) and stored
    /// durably first if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Keys, KeyError> {
        let io = |what, source| KeyError::Io { what, path: path.display().to_string(), source };
        let secret = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = vec![0u8; SECRET_BYTES];
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut secret))
                    .map_err(|e| io("reading randomness for", e))?;
                store(path, &secret).map_err(|e| io("writing", e))?;
                secret
            }
            Err(e) => return Err(io("reading", e)),
        };
        let secret: [u8; SECRET_BYTES] =
            secret.as_slice().try_into().map_err(|_| KeyError::Corrupt(path.display().to_string(), secret.len()))?;
        Ok(Keys::from_secret(&secret))
    }

    /// Keys derived from `secret` (deterministic: tests use fixed ones).
    pub fn from_secret(secret: &[u8; SECRET_BYTES]) -> Keys {
        let root = bls_key(&secret[..32]);
        let root_der = [ROOT_KEY_DER_PREFIX, &root.public_key().serialize()].concat();
        let node = ic_ed25519::PrivateKey::generate_from_seed(&secret[32..]);
        let node_der = node.public_key().serialize_rfc8410_der();
        Keys { root, root_der, node, node_der }
    }

    /// The root public key, DER (what `/api/v2/status` serves).
    pub fn root_key_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The subnet's id: the root key's self-authenticating principal, as
    /// clients derive it when a certificate has no delegation.
    pub fn subnet_id(&self) -> Principal {
        Principal::self_authenticating(&self.root_der)
    }

    /// The node key's public half, DER (44 bytes).
    pub fn node_key_der(&self) -> &[u8] {
        &self.node_der
    }

    /// The node's id.
    pub fn node_id(&self) -> Principal {
        Principal::self_authenticating(&self.node_der)
    }

    /// Sign with the root key (BLS, signature in G1).
    pub fn sign_root(&self, message: &[u8]) -> [u8; 48] {
        self.root.sign(message).serialize()
    }

    /// Sign with the node key (Ed25519).
    pub fn sign_node(&self, message: &[u8]) -> [u8; 64] {
        self.node.sign_message(message)
    }
}

/// A BLS secret key from 32 seed bytes: hashed, then reduced below the
/// group order by clearing the top bits (the order starts 0x73...).
fn bls_key(seed: &[u8]) -> ic_verify_bls_signature::PrivateKey {
    let mut bytes: [u8; 32] =
        Sha256::new().chain_update(b"canister-host root key").chain_update(seed).finalize().into();
    bytes[0] &= 0x3f;
    ic_verify_bls_signature::PrivateKey::deserialize(&bytes).expect("a 32-byte scalar below the group order")
}

/// Write `secret` to `path` durably: a temporary file, synced, renamed, and
/// the directory synced.
fn store(path: &Path, secret: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    // Readable by the owner only: it is the host's signing secret.
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(secret)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
