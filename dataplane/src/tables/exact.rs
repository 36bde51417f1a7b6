//! Exact-match tables.

use std::hash::Hash;

use foldhash::fast::FixedState;
use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use crate::control::{TableError, TableId};

/// Seed of the table hash: fixed, so lookups cost the same in every run.
pub(crate) const HASH_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// An exact-match table: key to action data, a default action for misses,
/// and a capacity.
#[derive(Debug, Clone)]
pub struct ExactTable<K, A> {
    id: TableId,
    entries: HashMap<K, A, FixedState>,
    default: A,
    initial_default: A,
    capacity: usize,
}

impl<K, A> ExactTable<K, A>
where
    K: Copy + Eq + Hash + std::fmt::Debug,
    A: Copy + std::fmt::Debug,
{
    /// An empty table whose misses run `default`.
    pub fn new(id: TableId, capacity: usize, default: A) -> Self {
        ExactTable {
            id,
            entries: HashMap::with_hasher(FixedState::with_seed(HASH_SEED)),
            default,
            initial_default: default,
            capacity,
        }
    }

    /// Which table this is.
    pub fn id(&self) -> TableId {
        self.id
    }

    /// The action data of `key`, if present.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&A> {
        self.entries.get(key)
    }

    /// The action of `key`, or the default action on a miss; the flag says
    /// whether it was a hit.
    #[inline]
    pub fn lookup(&self, key: &K) -> (A, bool) {
        match self.entries.get(key) {
            Some(a) => (*a, true),
            None => (self.default, false),
        }
    }

    /// The default action.
    pub fn default_action(&self) -> A {
        self.default
    }

    /// The default action the program starts with.
    pub fn initial_default(&self) -> A {
        self.initial_default
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Most entries the table may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &A)> {
        self.entries.iter()
    }

    /// Adds `key`; fails when it exists or the table is full.
    pub fn insert(&mut self, key: K, action: A) -> Result<(), TableError> {
        let full = self.entries.len() >= self.capacity;
        // One hash and probe finds the key or the slot it goes in.
        match self.entries.entry(key) {
            Entry::Occupied(_) => Err(TableError::AlreadyExists {
                table: self.id,
                key: format!("{key:?}"),
            }),
            Entry::Vacant(_) if full => Err(TableError::Full {
                table: self.id,
                capacity: self.capacity,
            }),
            Entry::Vacant(slot) => {
                slot.insert(action);
                Ok(())
            }
        }
    }

    /// Sets `key` to `action` whether or not it exists, unchecked: for
    /// replaying an insert or modify that succeeded on an identical copy.
    pub(crate) fn put(&mut self, key: K, action: A) {
        self.entries.insert(key, action);
    }

    /// Removes `key` if present, unchecked: for replaying a delete that
    /// succeeded on an identical copy.
    pub(crate) fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Replaces the action of `key`, returning the old one.
    pub fn modify(&mut self, key: K, action: A) -> Result<A, TableError> {
        match self.entries.get_mut(&key) {
            Some(slot) => Ok(std::mem::replace(slot, action)),
            None => Err(TableError::NotFound {
                table: self.id,
                key: format!("{key:?}"),
            }),
        }
    }

    /// Removes `key`, returning its action.
    pub fn delete(&mut self, key: &K) -> Result<A, TableError> {
        self.entries
            .remove(key)
            .ok_or_else(|| TableError::NotFound {
                table: self.id,
                key: format!("{key:?}"),
            })
    }

    /// Sets the default action, returning the old one.
    pub fn set_default(&mut self, action: A) -> A {
        std::mem::replace(&mut self.default, action)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.default = self.initial_default;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_modify_delete_and_errors() {
        let mut t: ExactTable<u32, u16> = ExactTable::new(TableId::Ipv4ToPort, 2, 7);
        assert_eq!(t.lookup(&1), (7, false));
        t.insert(1, 10).unwrap();
        assert!(matches!(
            t.insert(1, 11),
            Err(TableError::AlreadyExists { .. })
        ));
        assert_eq!(t.lookup(&1), (10, true));
        assert_eq!(t.modify(1, 12).unwrap(), 10);
        t.insert(2, 20).unwrap();
        let full = t.insert(3, 30).unwrap_err();
        assert!(
            matches!(full, TableError::Full { capacity: 2, .. }),
            "{full}"
        );
        assert_eq!(t.delete(&1).unwrap(), 12);
        let missing = t.delete(&1).unwrap_err();
        assert!(
            missing.to_string().contains("ipv4_to_port_table"),
            "{missing}"
        );
        assert!(matches!(t.modify(9, 1), Err(TableError::NotFound { .. })));
        assert_eq!(t.set_default(3), 7);
        assert_eq!(t.lookup(&5), (3, false));
        t.clear();
        assert_eq!(t.lookup(&5), (7, false));
        assert!(t.is_empty());
    }
}
