//! Action selectors: action-profile members and groups (`as_sl3_tcp`,
//! `as_sl3_udp`).
//!
//! A member holds one action's data (here: the endpoint pointer of
//! `set_default_lb_dest`); a group holds members with weights. A table entry
//! that points at a group picks one member per packet by hashing the
//! selector fields (source IP and source port): the same flow always gets
//! the same member while the group is unchanged.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use super::exact::HASH_SEED;
use crate::control::{SelectorId, TableError, TableId};

/// A group: its members with weights, and the expanded slot array the
/// fast path indexes by flow hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorGroup {
    /// (member id, weight), in the order written.
    pub members: Vec<(u32, u32)>,
    /// Most members the group may hold (0: the selector's limit).
    pub max_size: u32,
    /// Action data of each slot: a member appears `weight` times.
    slots: Box<[u32]>,
}

impl SelectorGroup {
    /// The slots (action data per slot), for tests and reads.
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }
}

/// Most slots a group's weights may expand to.
pub const MAX_GROUP_SLOTS: u64 = 1 << 16;

/// Members and groups of one action selector.
#[derive(Debug, Clone)]
pub struct ActionSelector {
    id: SelectorId,
    members: HashMap<u32, u32, FixedState>,
    groups: HashMap<u32, SelectorGroup, FixedState>,
    /// How many groups hold each member.
    member_refs: HashMap<u32, u32, FixedState>,
    /// How many table entries point at each member or group.
    entry_refs: HashMap<SelectorRef, u32, FixedState>,
    max_members: usize,
    max_groups: usize,
    max_group_size: usize,
}

/// What a selector-backed table entry points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorRef {
    /// One member: always its action.
    Member(u32),
    /// A group: a member chosen per flow.
    Group(u32),
}

/// The selection hash over (source IP, source port): a fixed, well-mixed
/// function, so a flow's choice is stable across workers and restarts.
#[inline]
pub fn selector_hash(src_ip: u32, src_port: u16) -> u32 {
    let x = (u64::from(src_ip) << 16 | u64::from(src_port)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let x = (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x ^ (x >> 32)) as u32
}

impl ActionSelector {
    /// An empty selector.
    pub fn new(
        id: SelectorId,
        max_members: usize,
        max_groups: usize,
        max_group_size: usize,
    ) -> Self {
        let state = || FixedState::with_seed(HASH_SEED);
        ActionSelector {
            id,
            members: HashMap::with_hasher(state()),
            groups: HashMap::with_hasher(state()),
            member_refs: HashMap::with_hasher(state()),
            entry_refs: HashMap::with_hasher(state()),
            max_members,
            max_groups,
            max_group_size,
        }
    }

    fn table(&self) -> TableId {
        self.id.table()
    }

    /// The action data the entry `target` gives a flow with selector hash `hash`.
    #[inline]
    pub fn select(&self, target: SelectorRef, hash: u32) -> Option<u32> {
        match target {
            SelectorRef::Member(m) => self.members.get(&m).copied(),
            SelectorRef::Group(g) => {
                let slots = &self.groups.get(&g)?.slots;
                if slots.is_empty() {
                    return None;
                }
                // Multiply-shift maps the hash onto the slots without a division.
                let idx = (u64::from(hash) * slots.len() as u64) >> 32;
                slots.get(idx as usize).copied()
            }
        }
    }

    /// A member's action data.
    pub fn member(&self, id: u32) -> Option<u32> {
        self.members.get(&id).copied()
    }

    /// A group.
    pub fn group(&self, id: u32) -> Option<&SelectorGroup> {
        self.groups.get(&id)
    }

    /// Every member.
    pub fn members(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.members.iter().map(|(k, v)| (*k, *v))
    }

    /// Every group.
    pub fn groups(&self) -> impl Iterator<Item = (u32, &SelectorGroup)> + '_ {
        self.groups.iter().map(|(k, v)| (*k, v))
    }

    /// True when `target` exists (entries may only point at existing ones).
    pub fn contains(&self, target: SelectorRef) -> bool {
        match target {
            SelectorRef::Member(m) => self.members.contains_key(&m),
            SelectorRef::Group(g) => self.groups.contains_key(&g),
        }
    }

    /// Adds a member.
    pub fn insert_member(&mut self, id: u32, action: u32) -> Result<(), TableError> {
        if self.members.contains_key(&id) {
            return Err(TableError::AlreadyExists {
                table: self.table(),
                key: format!("member {id}"),
            });
        }
        if self.members.len() >= self.max_members {
            return Err(TableError::Full {
                table: self.table(),
                capacity: self.max_members,
            });
        }
        self.members.insert(id, action);
        Ok(())
    }

    /// Changes a member's action data; every group holding it follows.
    pub fn modify_member(&mut self, id: u32, action: u32) -> Result<u32, TableError> {
        let old = match self.members.get_mut(&id) {
            Some(slot) => std::mem::replace(slot, action),
            None => {
                return Err(TableError::NotFound {
                    table: self.table(),
                    key: format!("member {id}"),
                })
            }
        };
        let holding: Vec<u32> = self
            .groups
            .iter()
            .filter(|(_, g)| g.members.iter().any(|(m, _)| *m == id))
            .map(|(gid, _)| *gid)
            .collect();
        for gid in holding {
            if let Some(group) = self.groups.get(&gid) {
                let members = group.members.clone();
                let slots = self.expand(&members)?;
                if let Some(group) = self.groups.get_mut(&gid) {
                    group.slots = slots;
                }
            }
        }
        Ok(old)
    }

    /// Removes a member that no group and no entry uses.
    pub fn delete_member(&mut self, id: u32) -> Result<u32, TableError> {
        if !self.members.contains_key(&id) {
            return Err(TableError::NotFound {
                table: self.table(),
                key: format!("member {id}"),
            });
        }
        if self.member_refs.get(&id).copied().unwrap_or(0) > 0
            || self
                .entry_refs
                .get(&SelectorRef::Member(id))
                .copied()
                .unwrap_or(0)
                > 0
        {
            return Err(TableError::InUse {
                table: self.table(),
                what: format!("member {id}"),
            });
        }
        Ok(self.members.remove(&id).unwrap_or_default())
    }

    fn expand(&self, members: &[(u32, u32)]) -> Result<Box<[u32]>, TableError> {
        let total: u64 = members.iter().map(|(_, w)| u64::from(*w)).sum();
        if total > MAX_GROUP_SLOTS {
            return Err(TableError::InvalidValue {
                table: self.table(),
                what: format!("group weights add up to {total}, more than {MAX_GROUP_SLOTS}"),
            });
        }
        let mut slots = Vec::with_capacity(total as usize);
        for &(m, w) in members {
            let action = self
                .members
                .get(&m)
                .copied()
                .ok_or_else(|| TableError::NotFound {
                    table: self.table(),
                    key: format!("member {m} (named by a group)"),
                })?;
            slots.extend(std::iter::repeat_n(action, w as usize));
        }
        Ok(slots.into_boxed_slice())
    }

    fn check_group(&self, members: &[(u32, u32)], max_size: u32) -> Result<(), TableError> {
        let limit = if max_size == 0 {
            self.max_group_size
        } else {
            (max_size as usize).min(self.max_group_size)
        };
        if max_size as usize > self.max_group_size {
            return Err(TableError::InvalidValue {
                table: self.table(),
                what: format!(
                    "group max_size {max_size} exceeds the selector's {}",
                    self.max_group_size
                ),
            });
        }
        if members.len() > limit {
            return Err(TableError::Full {
                table: self.table(),
                capacity: limit,
            });
        }
        for (i, (m, w)) in members.iter().enumerate() {
            if *w == 0 {
                return Err(TableError::InvalidValue {
                    table: self.table(),
                    what: format!("member {m} has weight 0"),
                });
            }
            if members[..i].iter().any(|(o, _)| o == m) {
                return Err(TableError::InvalidValue {
                    table: self.table(),
                    what: format!("member {m} listed twice"),
                });
            }
        }
        Ok(())
    }

    fn set_member_refs(&mut self, members: &[(u32, u32)], add: bool) {
        for (m, _) in members {
            let c = self.member_refs.entry(*m).or_insert(0);
            if add {
                *c += 1;
            } else {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Adds a group.
    pub fn insert_group(
        &mut self,
        id: u32,
        members: Vec<(u32, u32)>,
        max_size: u32,
    ) -> Result<(), TableError> {
        if self.groups.contains_key(&id) {
            return Err(TableError::AlreadyExists {
                table: self.table(),
                key: format!("group {id}"),
            });
        }
        if self.groups.len() >= self.max_groups {
            return Err(TableError::Full {
                table: self.table(),
                capacity: self.max_groups,
            });
        }
        self.check_group(&members, max_size)?;
        let slots = self.expand(&members)?;
        self.set_member_refs(&members, true);
        self.groups.insert(
            id,
            SelectorGroup {
                members,
                max_size,
                slots,
            },
        );
        Ok(())
    }

    /// Replaces a group's members, returning the old group.
    pub fn modify_group(
        &mut self,
        id: u32,
        members: Vec<(u32, u32)>,
        max_size: u32,
    ) -> Result<SelectorGroup, TableError> {
        let Some(old) = self.groups.get(&id) else {
            return Err(TableError::NotFound {
                table: self.table(),
                key: format!("group {id}"),
            });
        };
        let max_size = if max_size == 0 {
            old.max_size
        } else {
            max_size
        };
        self.check_group(&members, max_size)?;
        let slots = self.expand(&members)?;
        let old = self
            .groups
            .insert(
                id,
                SelectorGroup {
                    members,
                    max_size,
                    slots,
                },
            )
            .expect("group checked above");
        self.set_member_refs(&old.members, false);
        let new_members = self.groups[&id].members.clone();
        self.set_member_refs(&new_members, true);
        Ok(old)
    }

    /// Removes a group no entry uses.
    pub fn delete_group(&mut self, id: u32) -> Result<SelectorGroup, TableError> {
        if !self.groups.contains_key(&id) {
            return Err(TableError::NotFound {
                table: self.table(),
                key: format!("group {id}"),
            });
        }
        if self
            .entry_refs
            .get(&SelectorRef::Group(id))
            .copied()
            .unwrap_or(0)
            > 0
        {
            return Err(TableError::InUse {
                table: self.table(),
                what: format!("group {id}"),
            });
        }
        let old = self.groups.remove(&id).expect("group checked above");
        self.set_member_refs(&old.members, false);
        Ok(old)
    }

    /// Records that a table entry now points at `target` (`add`) or no longer does.
    pub fn count_entry_ref(&mut self, target: SelectorRef, add: bool) {
        let c = self.entry_refs.entry(target).or_insert(0);
        if add {
            *c += 1;
        } else {
            *c = c.saturating_sub(1);
        }
    }

    /// Removes every member and group.
    pub fn clear(&mut self) {
        self.members.clear();
        self.groups.clear();
        self.member_refs.clear();
        self.entry_refs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector() -> ActionSelector {
        let mut s = ActionSelector::new(SelectorId::Tcp, 16, 4, 8);
        for m in 1..=3 {
            s.insert_member(m, 100 + m).unwrap();
        }
        s
    }

    #[test]
    fn same_flow_same_member_and_spread_over_members() {
        let mut s = selector();
        s.insert_group(7, vec![(1, 1), (2, 1), (3, 1)], 0).unwrap();
        let mut seen = std::collections::HashMap::new();
        for port in 0..3000u16 {
            let h = selector_hash(0x0a00_0001, 10_000 + port);
            let a = s.select(SelectorRef::Group(7), h).unwrap();
            assert_eq!(s.select(SelectorRef::Group(7), h), Some(a));
            *seen.entry(a).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3);
        for (_, n) in seen {
            assert!((800..1200).contains(&n), "uneven spread: {n}");
        }
    }

    #[test]
    fn weights_expand_and_member_changes_follow() {
        let mut s = selector();
        s.insert_group(1, vec![(1, 3), (2, 1)], 0).unwrap();
        assert_eq!(s.group(1).unwrap().slots(), &[101, 101, 101, 102]);
        s.modify_member(2, 200).unwrap();
        assert_eq!(s.group(1).unwrap().slots(), &[101, 101, 101, 200]);
    }

    #[test]
    fn references_protect_members_and_groups() {
        let mut s = selector();
        s.insert_group(1, vec![(1, 1)], 0).unwrap();
        assert!(matches!(s.delete_member(1), Err(TableError::InUse { .. })));
        s.count_entry_ref(SelectorRef::Group(1), true);
        assert!(matches!(s.delete_group(1), Err(TableError::InUse { .. })));
        s.count_entry_ref(SelectorRef::Group(1), false);
        s.delete_group(1).unwrap();
        s.delete_member(1).unwrap();
        assert!(matches!(
            s.insert_group(2, vec![(9, 1)], 0),
            Err(TableError::NotFound { .. })
        ));
        assert!(matches!(
            s.insert_group(2, vec![(2, 0)], 0),
            Err(TableError::InvalidValue { .. })
        ));
        assert!(matches!(
            s.insert_group(2, vec![(2, 1), (2, 1)], 0),
            Err(TableError::InvalidValue { .. })
        ));
        assert!(matches!(
            s.insert_group(2, vec![(2, 1), (3, 1)], 1),
            Err(TableError::Full { .. })
        ));
    }
}
