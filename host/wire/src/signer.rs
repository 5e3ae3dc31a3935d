//! Group signing: certificates asked for at about the same time share one
//! BLS signature, as rounds share one fsync in group commit. Signing takes
//! about a millisecond, far longer than a round; so while one caller
//! signs, the others queue, and the next caller to find the queue waiting
//! signs all of it at once (see [`certify_together`]). Nothing is signed
//! ahead of demand, and no caller waits for more than the signature in
//! progress plus its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use crate::certificate::{Tree, certify_together};
use crate::envelope::now_ns;
use crate::keys::Keys;

/// Signs certificates with the root key, in groups.
pub struct Signer {
    keys: Keys,
    state: Mutex<State>,
    signed: Condvar,
    signatures: AtomicU64,
    certificates: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Trees waiting for a signer, by ticket.
    queue: Vec<(u64, Tree)>,
    /// Certificates made, not yet collected, by ticket.
    done: HashMap<u64, Vec<u8>>,
    next_ticket: u64,
    /// Whether a caller is signing now.
    signing: bool,
}

impl Signer {
    /// A signer with `keys`.
    pub fn new(keys: Keys) -> Signer {
        Signer {
            keys,
            state: Mutex::default(),
            signed: Condvar::new(),
            signatures: AtomicU64::new(0),
            certificates: AtomicU64::new(0),
        }
    }

    /// The keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The certificate of `tree` with the current time, CBOR-encoded.
    /// Blocks while another caller signs (call it from a blocking thread).
    pub fn certify(&self, tree: Tree) -> Vec<u8> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, tree));
        loop {
            if let Some(certificate) = state.done.remove(&ticket) {
                return certificate;
            }
            if state.signing {
                state = self.signed.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Nobody is signing: sign everything waiting, this one included.
            state.signing = true;
            let batch = std::mem::take(&mut state.queue);
            drop(state);
            let (tickets, trees): (Vec<u64>, Vec<Tree>) = batch.into_iter().unzip();
            // A panic here would be a bug; it must still not leave the
            // waiters hanging: they get an empty (unusable) certificate.
            let n = trees.len();
            let signed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                certify_together(trees, now_ns(), &self.keys)
            }));
            let certificates = signed.unwrap_or_else(|_| vec![Vec::new(); n]);
            self.signatures.fetch_add(1, Ordering::Relaxed);
            self.certificates.fetch_add(certificates.len() as u64, Ordering::Relaxed);
            state = self.lock();
            state.done.extend(tickets.into_iter().zip(certificates));
            state.signing = false;
            self.signed.notify_all();
        }
    }

    /// Signatures made, and certificates they served.
    pub fn counts(&self) -> (u64, u64) {
        (self.signatures.load(Ordering::Relaxed), self.certificates.load(Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Signing never panics with the lock held; if it did, the queue is
        // still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use ic_certification::{Certificate, LookupResult};

    use super::*;

    const X: [u8; 32] = [1; 32];
    const Y: [u8; 32] = [2; 32];

    fn keys() -> Keys {
        Keys::from_secret(&[9; 64])
    }

    /// The certificate in `bytes`, its signature checked against the root key.
    fn verified(bytes: &[u8], keys: &Keys) -> Certificate {
        let certificate: Certificate = serde_cbor::from_slice(bytes).unwrap();
        let message = [b"\x0Dic-state-root".as_slice(), &certificate.tree.digest()].concat();
        let raw_key = &keys.root_key_der()[keys.root_key_der().len() - 96..];
        ic_verify_bls_signature::verify_bls_signature(&certificate.signature, &message, raw_key).unwrap();
        certificate
    }

    fn status(id: &[u8; 32]) -> Vec<&[u8]> {
        vec![b"request_status".as_slice(), id.as_slice(), b"reply"]
    }

    #[test]
    fn trees_signed_together_each_reveal_only_their_own_paths() {
        let keys = keys();
        // X has replied; a client asks about Y, which is unknown (absent).
        let mut replied = Tree::new();
        replied.insert(&status(&X), b"secret reply".to_vec());
        let mut unknown = Tree::new();
        unknown.ensure(&[b"request_status".as_slice()]);
        let mut subnet = Tree::new();
        subnet.insert(&[b"subnet".as_slice(), b"s", b"public_key"], b"key".to_vec());

        let certificates = certify_together(vec![replied, unknown, subnet], 42, &keys);
        let certificates: Vec<Certificate> = certificates.iter().map(|c| verified(c, &keys)).collect();
        // One signature over one root.
        let roots: Vec<_> = certificates.iter().map(|c| c.tree.digest()).collect();
        assert!(roots.iter().all(|r| *r == roots[0]));
        assert!(certificates.iter().all(|c| c.signature == certificates[0].signature));
        for c in &certificates {
            assert_eq!(c.tree.lookup_path([b"time".as_slice()]), LookupResult::Found(&[42][..]));
        }
        let [replied, unknown, subnet] = &certificates[..] else { unreachable!() };
        assert_eq!(replied.tree.lookup_path(status(&X)), LookupResult::Found(&b"secret reply"[..]));
        // Y is provably absent, and X's reply is not shown to Y's client.
        assert_eq!(unknown.tree.lookup_path(status(&Y)), LookupResult::Absent);
        assert_eq!(unknown.tree.lookup_path(status(&X)), LookupResult::Unknown);
        assert_eq!(subnet.tree.lookup_path(status(&X)), LookupResult::Unknown);
        assert_eq!(
            subnet.tree.lookup_path([b"subnet".as_slice(), b"s", b"public_key"]),
            LookupResult::Found(&b"key"[..])
        );
    }

    #[test]
    fn concurrent_callers_each_get_their_own_valid_certificate() {
        let signer = Signer::new(keys());
        let threads = 32u8;
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let signer = &signer;
                    scope.spawn(move || {
                        let mut tree = Tree::new();
                        tree.insert(&status(&[i; 32]), vec![i]);
                        (i, signer.certify(tree))
                    })
                })
                .collect();
            for handle in handles {
                let (i, bytes) = handle.join().unwrap();
                let certificate = verified(&bytes, signer.keys());
                assert_eq!(certificate.tree.lookup_path(status(&[i; 32])), LookupResult::Found(&[i][..]));
            }
        });
        let (signatures, certificates) = signer.counts();
        assert_eq!(certificates, threads as u64);
        assert!((1..=threads as u64).contains(&signatures));
    }
}
