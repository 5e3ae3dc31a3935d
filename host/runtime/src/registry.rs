//! The set of canisters: creating them (with IC-format ids), finding them
//! by id or name, and deleting them.

use std::collections::BTreeMap;

use candid::Principal;

use crate::canister::{Canister, CanisterError, CanisterStatus};

/// The id of the `index`th canister, in the IC's format: the index as 8
/// big-endian bytes, then the "opaque id" class bytes 0x01 0x01.
pub fn canister_id(index: u64) -> Principal {
    let mut bytes = index.to_be_bytes().to_vec();
    bytes.extend([1, 1]);
    Principal::from_slice(&bytes)
}

/// Every canister, by id, and the index the next one's id will use.
#[derive(Default)]
pub struct Registry {
    canisters: BTreeMap<Principal, Canister>,
    next_index: u64,
}

impl Registry {
    /// Create an empty canister controlled by `controllers`, optionally
    /// with a unique human name.
    pub fn create(&mut self, controllers: Vec<Principal>, name: Option<String>) -> Result<Principal, CanisterError> {
        if let Some(name) = &name
            && self.canisters.values().any(|c| c.name() == Some(name))
        {
            return Err(CanisterError::NameTaken(name.clone()));
        }
        let id = canister_id(self.next_index);
        self.next_index += 1;
        self.canisters.insert(id, Canister::new(id, name, controllers));
        Ok(id)
    }

    /// The canister with this id.
    pub fn get(&self, id: &Principal) -> Result<&Canister, CanisterError> {
        self.canisters.get(id).ok_or(CanisterError::NotFound(*id))
    }

    /// The canister with this id, to change it.
    pub fn get_mut(&mut self, id: &Principal) -> Result<&mut Canister, CanisterError> {
        self.canisters.get_mut(id).ok_or(CanisterError::NotFound(*id))
    }

    /// Delete a stopped canister and its snapshots (a controller must ask);
    /// returns what was deleted.
    pub fn delete(&mut self, sender: &Principal, id: &Principal) -> Result<Canister, CanisterError> {
        let record = self.get(id)?;
        if !record.controllers().contains(sender) {
            return Err(CanisterError::NotController {
                caller: *sender,
                canister: *id,
                controllers: record.controllers().to_vec(),
            });
        }
        if record.status() != CanisterStatus::Stopped {
            return Err(CanisterError::NotStopped { canister: *id, action: "delete it" });
        }
        self.canisters.remove(id).ok_or(CanisterError::NotFound(*id))
    }

    /// Take a canister out (to run it on another thread); `put` it back.
    pub fn take(&mut self, id: &Principal) -> Option<Canister> {
        self.canisters.remove(id)
    }

    /// Put back a canister taken out.
    pub fn put(&mut self, record: Canister) {
        self.canisters.insert(record.id(), record);
    }

    /// Index the next created canister's id will use.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Make the next created canister's id use `index` (undoing creations).
    pub(crate) fn set_next_index(&mut self, index: u64) {
        self.next_index = index;
    }

    /// A registry holding `records`, creating ids from `next_index` on.
    pub fn from_parts(records: Vec<Canister>, next_index: u64) -> Registry {
        Registry { canisters: records.into_iter().map(|r| (r.id(), r)).collect(), next_index }
    }

    /// Every canister, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Canister> {
        self.canisters.values()
    }

    /// Every canister, in id order, to change them.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Canister> {
        self.canisters.values_mut()
    }

    /// How many canisters there are.
    pub fn len(&self) -> usize {
        self.canisters.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.canisters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_ic_format() {
        // The IC's first application canister id on a fresh subnet.
        assert_eq!(canister_id(0).to_text(), "rwlgt-iiaaa-aaaaa-aaaaa-cai");
        assert_eq!(canister_id(1).to_text(), "rrkah-fqaaa-aaaaa-aaaaq-cai");
    }

    #[test]
    fn names_are_unique() {
        let mut r = Registry::default();
        let a = r.create(vec![], Some("ledger".into())).unwrap();
        assert_eq!(r.create(vec![], Some("ledger".into())), Err(CanisterError::NameTaken("ledger".into())));
        let b = r.create(vec![], None).unwrap();
        assert_eq!(r.get(&a).unwrap().name(), Some("ledger"));
        assert_eq!(r.get(&b).unwrap().name(), None);
        assert_eq!(r.len(), 2);
    }
}
