//! Certificates: a hash tree of the state a client asked about, its root
//! hash signed by the root key (no delegation: this host is its own root
//! subnet).
//!
//! Each response is built as its own tree, holding `time` and exactly the
//! paths asked for. Trees requested at about the same time are signed
//! together (see [`crate::signer`]): each response is then a witness of
//! the union, revealing its own paths in full and, at every level it
//! passes through, the other labels with their contents pruned. So a path
//! a response lacks is still provably absent (what an agent polling for a
//! request's status needs to keep polling), and nobody sees another
//! request's reply.

use std::collections::BTreeMap;

use ic_certification::{Certificate, HashTree, empty, fork, label, leaf, pruned};

use crate::keys::Keys;

/// The domain separator of a signed state root.
const STATE_ROOT_DOMAIN: &[u8] = b"\x0Dic-state-root";

/// A tree being built: labels (sorted by bytes, as lookups require) to
/// leaves or subtrees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree(BTreeMap<Vec<u8>, Node>);

/// A node of a [`Tree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A value.
    Leaf(Vec<u8>),
    /// Labelled children.
    Sub(Tree),
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Put `value` at `path` (at least one label), replacing whatever was
    /// there or below.
    pub fn insert<L: AsRef<[u8]>>(&mut self, path: &[L], value: Vec<u8>) {
        let Some((last, parents)) = path.split_last() else { return };
        let mut tree = self;
        for label in parents {
            let node = tree.0.entry(label.as_ref().to_vec()).or_insert_with(|| Node::Sub(Tree::new()));
            if let Node::Leaf(_) = node {
                *node = Node::Sub(Tree::new());
            }
            let Node::Sub(sub) = node else { unreachable!("made a subtree just above") };
            tree = sub;
        }
        tree.0.insert(last.as_ref().to_vec(), Node::Leaf(value));
    }

    /// Make `path` exist as a (possibly empty) subtree, so the absence of
    /// anything below it is provable.
    pub fn ensure<L: AsRef<[u8]>>(&mut self, path: &[L]) {
        let mut tree = self;
        for l in path {
            let node = tree.0.entry(l.as_ref().to_vec()).or_insert_with(|| Node::Sub(Tree::new()));
            match node {
                Node::Sub(sub) => tree = sub,
                Node::Leaf(_) => return,
            }
        }
    }

    /// As an `ic-certification` hash tree: each level a balanced binary
    /// tree of forks over its labelled children, in label order.
    pub fn to_hash_tree(&self) -> HashTree {
        self.witness(None)
    }

    /// Put every path of `other` into this tree (its values win).
    pub fn merge(&mut self, other: &Tree) {
        for (l, node) in &other.0 {
            match (self.0.get_mut(l), node) {
                (Some(Node::Sub(mine)), Node::Sub(theirs)) => mine.merge(theirs),
                _ => drop(self.0.insert(l.clone(), node.clone())),
            }
        }
    }

    /// This tree as a hash tree revealing what `keep` holds (`None`: all of
    /// it). At each level `keep` reaches, every label stays, with the
    /// contents of those `keep` lacks pruned; the root hash is the same
    /// whatever is kept.
    pub fn witness(&self, keep: Option<&Tree>) -> HashTree {
        let children: Vec<HashTree> = self
            .0
            .iter()
            .map(|(l, node)| {
                let kept = match keep {
                    None => Some(None),
                    Some(k) => match k.0.get(l) {
                        None => None,
                        Some(Node::Leaf(_)) => Some(None),
                        Some(Node::Sub(sub)) => Some(Some(sub)),
                    },
                };
                let sub = match (node, kept) {
                    (Node::Leaf(v), Some(_)) => leaf(v.clone()),
                    (Node::Sub(t), Some(keep)) => t.witness(keep),
                    (node, None) => pruned(node.to_hash_tree().digest()),
                };
                label(l.clone(), sub)
            })
            .collect();
        balanced(children)
    }
}

impl Node {
    fn to_hash_tree(&self) -> HashTree {
        match self {
            Node::Leaf(v) => leaf(v.clone()),
            Node::Sub(t) => t.to_hash_tree(),
        }
    }
}

fn balanced(mut nodes: Vec<HashTree>) -> HashTree {
    match nodes.len() {
        0 => empty(),
        1 => nodes.pop().expect("one node"),
        n => {
            let right = nodes.split_off(n / 2);
            fork(balanced(nodes), balanced(right))
        }
    }
}

/// The certificates of `trees` (each with `time` set to `time_ns`), made
/// with one signature: of the root of their union, of which each
/// certificate is a witness revealing only its own tree.
pub fn certify_together(trees: Vec<Tree>, time_ns: u64, keys: &Keys) -> Vec<Vec<u8>> {
    let time = leb128(time_ns);
    let mut union = Tree::new();
    for tree in &trees {
        union.merge(tree);
    }
    union.insert(&["time"], time.clone());
    let full = union.to_hash_tree();
    let message = [STATE_ROOT_DOMAIN, &full.digest()].concat();
    let signature = keys.sign_root(&message).to_vec();
    if trees.len() == 1 {
        return vec![crate::to_cbor(&Certificate { tree: full, signature, delegation: None })];
    }
    trees
        .into_iter()
        .map(|mut keep| {
            keep.insert(&["time"], time.clone());
            let tree = union.witness(Some(&keep));
            crate::to_cbor(&Certificate { tree, signature: signature.clone(), delegation: None })
        })
        .collect()
}

/// Unsigned LEB128, the encoding of numbers in the state tree.
pub fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}
