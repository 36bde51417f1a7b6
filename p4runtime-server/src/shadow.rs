//! What the server keeps beside the dataplane for the committed pipeline:
//! one-shot `tx_balance_*` entries as written (with the hidden members and
//! group behind each), and the opaque metadata of table entries.

use std::collections::HashMap;

use dataplane::control::{ServiceProto, VipKey};

use crate::proto::p4::v1::ActionProfileActionSet;
use crate::translate::Key;

/// Member and group ids from here up are the target's own (one-shots).
pub const HIDDEN_BASE: u32 = 0x8000_0000;

/// A one-shot entry as written, and the hidden objects behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct OneShot {
    /// The action set as the controller wrote it.
    pub set: ActionProfileActionSet,
    /// The hidden group.
    pub group: u32,
    /// The hidden members.
    pub members: Vec<u32>,
}

/// An entry's `controller_metadata` and `metadata`, as written.
pub type EntryMeta = (u64, Vec<u8>);

/// What the server keeps beside the dataplane for the committed pipeline:
/// one-shot entries as written, and the opaque metadata of table entries.
#[derive(Debug, Clone)]
pub struct Shadow {
    map: HashMap<(ServiceProto, VipKey), OneShot>,
    meta: HashMap<(u32, Key), EntryMeta>,
    next_id: u32,
}

impl Default for Shadow {
    fn default() -> Self {
        Shadow {
            map: HashMap::new(),
            meta: HashMap::new(),
            next_id: HIDDEN_BASE,
        }
    }
}

impl Shadow {
    /// The one-shot entry of `tx_balance_*` key `key`, if it is one.
    pub fn get(&self, proto: ServiceProto, key: &VipKey) -> Option<&OneShot> {
        self.map.get(&(proto, *key))
    }

    /// The metadata written with entry `key` of table `table_id`.
    pub fn meta(&self, table_id: u32, key: &Key) -> Option<&EntryMeta> {
        self.meta.get(&(table_id, *key))
    }

    /// Forgets everything (the dataplane was reset).
    pub fn clear(&mut self) {
        self.map.clear();
        self.meta.clear();
        self.next_id = HIDDEN_BASE;
    }

    pub(crate) fn alloc(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(HIDDEN_BASE);
        id
    }

    /// Records `meta` as the metadata of entry `key` of table `table`.
    pub(crate) fn apply_meta(&mut self, table: u32, key: Key, meta: MetaChange) {
        match meta {
            Some(meta) => {
                self.meta.insert((table, key), meta);
            }
            // Most entries carry no metadata: skip hashing the key then.
            None if self.meta.is_empty() => {}
            None => {
                self.meta.remove(&(table, key));
            }
        }
    }

    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Set(p, k, s) => {
                self.map.insert((p, k), s);
            }
            Change::Drop(p, k) => {
                self.map.remove(&(p, k));
            }
        }
    }
}

/// A change to the one-shot bookkeeping, made once its ops committed.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Set(ServiceProto, VipKey, OneShot),
    Drop(ServiceProto, VipKey),
}

/// An entry's metadata after an update (`None`: none). The entry is the
/// update's subject.
pub(crate) type MetaChange = Option<EntryMeta>;
