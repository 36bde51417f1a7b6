//! Tables with an exact part and a longest-prefix-match part.
//!
//! The policy tables match a pod IP exactly and the IP protocol by prefix
//! (8 bits, so `/0` means any protocol), or a policy id exactly and the peer
//! address by prefix. Entries are kept per (exact part, prefix length,
//! masked prefix) in one hash map; a lookup tries the prefix lengths present
//! in the table, longest first. Policy tables use few distinct lengths, so a
//! lookup is a handful of hash probes. Prefixes are up to 128 bits wide, so
//! IPv6 peers fit the same table.

use std::hash::Hash;

use foldhash::fast::FixedState;
use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use super::exact::HASH_SEED;
use crate::control::{TableError, TableId};

/// The key of a prefix table entry: an exact part and a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixKey<E> {
    /// The exactly matched part.
    pub exact: E,
    /// The prefix value, masked to `len` bits (right-aligned in `width` bits).
    pub prefix: u128,
    /// Prefix length in bits.
    pub len: u8,
}

/// A table of exact part + longest prefix match, with a default action.
#[derive(Debug, Clone)]
pub struct PrefixTable<E, A> {
    id: TableId,
    width: u8,
    entries: HashMap<PrefixKey<E>, A, FixedState>,
    /// Number of entries with each prefix length (index = length).
    len_counts: Vec<u32>,
    /// The lengths present, longest first.
    lengths: Vec<u8>,
    default: A,
    initial_default: A,
    capacity: usize,
}

/// `value` with only its top `len` of `width` bits kept.
#[inline]
pub fn mask_prefix(value: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let keep = u128::MAX << (width - len.min(width));
    let in_width = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    value & keep & in_width
}

impl<E, A> PrefixTable<E, A>
where
    E: Copy + Eq + Hash + std::fmt::Debug,
    A: Copy + std::fmt::Debug,
{
    /// An empty table whose prefix part is `width` bits wide.
    pub fn new(id: TableId, width: u8, capacity: usize, default: A) -> Self {
        PrefixTable {
            id,
            width,
            entries: HashMap::with_hasher(FixedState::with_seed(HASH_SEED)),
            len_counts: vec![0; usize::from(width) + 1],
            lengths: Vec::new(),
            default,
            initial_default: default,
            capacity,
        }
    }

    /// Width of the prefix part in bits.
    pub fn width(&self) -> u8 {
        self.width
    }

    /// The action of the longest prefix matching `value` under `exact`, or the
    /// default; the flag says whether it was a hit.
    #[inline(always)]
    pub fn lookup(&self, exact: E, value: u128) -> (A, bool) {
        for &len in &self.lengths {
            let key = PrefixKey {
                exact,
                prefix: mask_prefix(value, len, self.width),
                len,
            };
            if let Some(a) = self.entries.get(&key) {
                return (*a, true);
            }
        }
        (self.default, false)
    }

    /// Checks a key's length and host bits (P4Runtime requires the bits past
    /// the prefix to be zero).
    fn check(&self, key: &PrefixKey<E>) -> Result<(), TableError> {
        if key.len > self.width {
            return Err(TableError::InvalidValue {
                table: self.id,
                what: format!(
                    "prefix length {} exceeds the {}-bit field",
                    key.len, self.width
                ),
            });
        }
        if mask_prefix(key.prefix, key.len, self.width) != key.prefix {
            return Err(TableError::InvalidValue {
                table: self.id,
                what: format!(
                    "prefix {:#x}/{} has bits set past its length",
                    key.prefix, key.len
                ),
            });
        }
        Ok(())
    }

    /// The action of exactly `key`.
    pub fn get(&self, key: &PrefixKey<E>) -> Option<&A> {
        self.entries.get(key)
    }

    /// Adds an entry.
    pub fn insert(&mut self, key: PrefixKey<E>, action: A) -> Result<(), TableError> {
        self.check(&key)?;
        let full = self.entries.len() >= self.capacity;
        // One hash and probe finds the key or the slot it goes in.
        match self.entries.entry(key) {
            Entry::Occupied(_) => {
                return Err(TableError::AlreadyExists {
                    table: self.id,
                    key: format!("{key:?}"),
                })
            }
            Entry::Vacant(_) if full => {
                return Err(TableError::Full {
                    table: self.id,
                    capacity: self.capacity,
                })
            }
            Entry::Vacant(slot) => {
                slot.insert(action);
            }
        }
        self.count_len(key.len, true);
        Ok(())
    }

    /// Replaces an entry's action, returning the old one.
    pub fn modify(&mut self, key: PrefixKey<E>, action: A) -> Result<A, TableError> {
        self.check(&key)?;
        match self.entries.get_mut(&key) {
            Some(slot) => Ok(std::mem::replace(slot, action)),
            None => Err(TableError::NotFound {
                table: self.id,
                key: format!("{key:?}"),
            }),
        }
    }

    /// Removes an entry, returning its action.
    pub fn delete(&mut self, key: &PrefixKey<E>) -> Result<A, TableError> {
        let action = self
            .entries
            .remove(key)
            .ok_or_else(|| TableError::NotFound {
                table: self.id,
                key: format!("{key:?}"),
            })?;
        self.count_len(key.len, false);
        Ok(action)
    }

    fn count_len(&mut self, len: u8, added: bool) {
        let count = &mut self.len_counts[usize::from(len)];
        if added {
            *count += 1;
        } else {
            *count -= 1;
        }
        // The list changes only when a length appears or disappears; it is
        // rebuilt in place then (no allocation per write).
        if *count == u32::from(added) {
            let counts = &self.len_counts;
            self.lengths.clear();
            self.lengths.extend(
                (0..=self.width)
                    .rev()
                    .filter(|&l| counts[usize::from(l)] > 0),
            );
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

    /// Sets the default action, returning the old one.
    pub fn set_default(&mut self, action: A) -> A {
        std::mem::replace(&mut self.default, action)
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = (&PrefixKey<E>, &A)> {
        self.entries.iter()
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry and restores the default.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.len_counts.iter_mut().for_each(|c| *c = 0);
        self.lengths.clear();
        self.default = self.initial_default;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(exact: u8, prefix: u32, len: u8) -> PrefixKey<u8> {
        PrefixKey {
            exact,
            prefix: u128::from(prefix),
            len,
        }
    }

    #[test]
    fn longest_prefix_wins_per_exact_part() {
        let mut t: PrefixTable<u8, u8> = PrefixTable::new(TableId::AclIpsetMatchEgress, 32, 16, 0);
        t.insert(key(1, 0x0a00_0000, 8), 1).unwrap();
        t.insert(key(1, 0x0a01_0000, 16), 2).unwrap();
        t.insert(key(2, 0, 0), 3).unwrap();
        let cases = [
            (1u8, 0x0a01_0203u32, (2u8, true)),
            (1, 0x0a02_0304, (1, true)),
            (1, 0x0b00_0001, (0, false)),
            (2, 0xdead_beef, (3, true)),
            (3, 0x0a01_0203, (0, false)),
        ];
        for (exact, ip, want) in cases {
            assert_eq!(t.lookup(exact, u128::from(ip)), want, "{exact} {ip:x}");
        }
        t.delete(&key(1, 0x0a01_0000, 16)).unwrap();
        assert_eq!(t.lookup(1, 0x0a01_0203), (1, true));
    }

    #[test]
    fn host_bits_and_long_prefixes_are_refused() {
        let mut t: PrefixTable<u32, u8> = PrefixTable::new(TableId::AclPodIpProtoEgress, 8, 16, 0);
        assert!(matches!(
            t.insert(
                PrefixKey {
                    exact: 1,
                    prefix: 6,
                    len: 4
                },
                1
            ),
            Err(TableError::InvalidValue { .. })
        ));
        assert!(matches!(
            t.insert(
                PrefixKey {
                    exact: 1,
                    prefix: 6,
                    len: 9
                },
                1
            ),
            Err(TableError::InvalidValue { .. })
        ));
        t.insert(
            PrefixKey {
                exact: 1,
                prefix: 6,
                len: 8,
            },
            1,
        )
        .unwrap();
        t.insert(
            PrefixKey {
                exact: 1,
                prefix: 0,
                len: 0,
            },
            2,
        )
        .unwrap();
        assert_eq!(t.lookup(1, 6), (1, true));
        assert_eq!(t.lookup(1, 17), (2, true));
    }
}
