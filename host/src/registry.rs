//! The set of canisters: creating them (with IC-format ids), finding them
//! by id or name, and deleting them.

use std::collections::BTreeMap;

use candid::Principal;

use crate::canister::{CanisterError, CanisterRecord, CanisterStatus};

/// The id of the `index`th canister, in the IC's format: the index as 8
/// big-endian bytes, then the "opaque id" class bytes 0x01 0x01.
pub fn canister_id(index: u64) -> Principal {
    let mut bytes = index.to_be_bytes().to_vec();
    bytes.extend([1, 1]);
    Principal::from_slice(&bytes)
}

#[derive(Default)]
pub struct Registry {
    canisters: BTreeMap<Principal, CanisterRecord>,
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
        self.canisters.insert(id, CanisterRecord::new(id, name, controllers));
        Ok(id)
    }

    pub fn get(&self, id: &Principal) -> Result<&CanisterRecord, CanisterError> {
        self.canisters.get(id).ok_or(CanisterError::NotFound(*id))
    }

    pub fn get_mut(&mut self, id: &Principal) -> Result<&mut CanisterRecord, CanisterError> {
        self.canisters.get_mut(id).ok_or(CanisterError::NotFound(*id))
    }

    /// The canister a user means: its textual id, or its name.
    pub fn resolve(&self, name_or_id: &str) -> Option<Principal> {
        if let Ok(id) = Principal::from_text(name_or_id)
            && self.canisters.contains_key(&id)
        {
            return Some(id);
        }
        self.canisters.values().find(|c| c.name() == Some(name_or_id)).map(|c| c.id())
    }

    /// Delete a stopped canister and its snapshots (a controller must ask).
    pub fn delete(&mut self, sender: &Principal, id: &Principal) -> Result<(), CanisterError> {
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
        self.canisters.remove(id);
        Ok(())
    }

    /// Take a canister out (to run it on another thread); `put` it back.
    pub fn take(&mut self, id: &Principal) -> Option<CanisterRecord> {
        self.canisters.remove(id)
    }

    pub fn put(&mut self, record: CanisterRecord) {
        self.canisters.insert(record.id(), record);
    }

    /// Index the next created canister's id will use.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// A registry holding `records`, creating ids from `next_index` on.
    pub fn from_parts(records: Vec<CanisterRecord>, next_index: u64) -> Registry {
        Registry { canisters: records.into_iter().map(|r| (r.id(), r)).collect(), next_index }
    }

    pub fn iter(&self) -> impl Iterator<Item = &CanisterRecord> {
        self.canisters.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut CanisterRecord> {
        self.canisters.values_mut()
    }

    pub fn len(&self) -> usize {
        self.canisters.len()
    }

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
    fn names_are_unique_and_resolve() {
        let mut r = Registry::default();
        let a = r.create(vec![], Some("ledger".into())).unwrap();
        assert_eq!(r.create(vec![], Some("ledger".into())), Err(CanisterError::NameTaken("ledger".into())));
        let b = r.create(vec![], None).unwrap();
        assert_eq!(r.resolve("ledger"), Some(a));
        assert_eq!(r.resolve(&b.to_text()), Some(b));
        assert_eq!(r.resolve("nope"), None);
        assert_eq!(r.len(), 2);
    }
}
