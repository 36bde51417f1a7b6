//! The binding of a P4Info to the dataplane, by name.
//!
//! Every table, action, action profile and counter of the P4Info must be one
//! the dataplane implements (fully-qualified `k8s_dp_control.<name>`), with
//! the match fields (name, width, match kind) and action parameters (name,
//! width) the dataplane's typed tables take, and sizes the dataplane's
//! configuration can hold. The first object that does not fit is named in
//! an `INVALID_ARGUMENT` error. The binding then maps P4Info ids to the
//! dataplane's tables for the write and read paths.

mod target;

use std::collections::HashMap;

/// Maps keyed by P4Info id. Every update looks its table (and action) up
/// by id: a fixed fast hash, since the ids come from the P4Info, not from
/// the wire (an unknown id on the wire is only a miss).
type IdMap<T> = HashMap<u32, T, foldhash::fast::FixedState>;

use dataplane::control::ServiceProto;
use dataplane::DataplaneConfig;

use crate::error::P4rtError;
use crate::proto::p4::config::v1::{self as p4info, match_field, P4Info};

pub use target::{
    capacity, known_actions, known_tables, table_name, ActionKind, CounterKind, MatchKind, Scope,
    TableKind, CONTROL,
};
use target::{qualified, ACTIONS, TABLES};

/// A bound match field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundField {
    /// P4Info id.
    pub id: u32,
    /// P4Info name.
    pub name: String,
    /// Width in bits.
    pub width: u32,
    /// Match kind.
    pub kind: MatchKind,
    /// Position in the dataplane key (index into the table's spec).
    pub slot: usize,
}

/// A bound action parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundParam {
    /// P4Info id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Width in bits.
    pub width: u32,
    /// Position in the dataplane action's arguments.
    pub slot: usize,
}

/// A bound action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundAction {
    /// P4Info id.
    pub id: u32,
    /// Fully-qualified name.
    pub name: String,
    /// The dataplane action.
    pub kind: ActionKind,
    /// Parameters, in slot order.
    pub params: Vec<BoundParam>,
}

/// A bound table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundTable {
    /// P4Info id.
    pub id: u32,
    /// Fully-qualified name.
    pub name: String,
    /// The dataplane table.
    pub kind: TableKind,
    /// Match fields, in slot order.
    pub fields: Vec<BoundField>,
    /// (action id, scope) of every action the table may use.
    pub actions: Vec<(u32, Scope)>,
    /// True when the default action is constant.
    pub const_default: bool,
    /// The action profile of an indirect table.
    pub profile: Option<u32>,
    /// P4Info size.
    pub size: i64,
}

impl BoundTable {
    /// The scope of action `id` in this table, if it may use it.
    pub fn action_scope(&self, id: u32) -> Option<Scope> {
        self.actions.iter().find(|(a, _)| *a == id).map(|(_, s)| *s)
    }
}

/// A bound action profile (selector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundProfile {
    /// P4Info id.
    pub id: u32,
    /// Fully-qualified name.
    pub name: String,
    /// The dataplane selector.
    pub selector: ServiceProto,
    /// The table using it.
    pub table_id: u32,
    /// Most members.
    pub size: i64,
    /// Most members per group (0: no limit stated).
    pub max_group_size: i32,
}

/// A bound counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundCounter {
    /// P4Info id.
    pub id: u32,
    /// Fully-qualified name.
    pub name: String,
    /// Which dataplane counter.
    pub kind: CounterKind,
    /// Number of indices.
    pub size: i64,
}

/// A P4Info bound to the dataplane.
#[derive(Debug, Clone)]
pub struct Binding {
    tables: IdMap<BoundTable>,
    actions: IdMap<BoundAction>,
    profiles: IdMap<BoundProfile>,
    counters: IdMap<BoundCounter>,
}

fn invalid(msg: String) -> P4rtError {
    P4rtError::InvalidArgument(msg)
}

fn preamble(p: &Option<p4info::Preamble>, what: &str) -> Result<(u32, String), P4rtError> {
    let p = p
        .as_ref()
        .ok_or_else(|| invalid(format!("P4Info {what} without a preamble")))?;
    Ok((p.id, p.name.clone()))
}

impl Binding {
    /// Binds `info` to a dataplane configured by `cfg`; `INVALID_ARGUMENT`
    /// names the first object the target cannot implement.
    pub fn new(info: &P4Info, cfg: &DataplaneConfig) -> Result<Self, P4rtError> {
        Self::refuse_unsupported(info)?;
        let actions = Self::bind_actions(info)?;
        let mut tables = IdMap::default();
        for t in &info.tables {
            let bound = Self::bind_table(t, &actions, cfg)?;
            if tables.insert(bound.id, bound).is_some() {
                return Err(invalid(format!(
                    "P4Info: table id {} used twice",
                    t.preamble.as_ref().map_or(0, |p| p.id)
                )));
            }
        }
        let mut profiles = IdMap::default();
        for p in &info.action_profiles {
            let bound = Self::bind_profile(p, &tables, cfg)?;
            profiles.insert(bound.id, bound);
        }
        for t in tables.values() {
            if let TableKind::TxBalance(proto) = t.kind {
                let ok = t
                    .profile
                    .and_then(|id| profiles.get(&id))
                    .is_some_and(|p| p.selector == proto);
                if !ok {
                    return Err(invalid(format!(
                        "table {}: needs its action selector (implementation_id {}) in the P4Info",
                        t.name,
                        t.profile.unwrap_or(0)
                    )));
                }
            } else if let Some(id) = t.profile {
                return Err(invalid(format!(
                    "table {}: implementation {id} is not supported (the target's table is direct)",
                    t.name
                )));
            }
        }
        let mut counters = IdMap::default();
        for c in &info.counters {
            let (id, name) = preamble(&c.preamble, "counter")?;
            let unit = c.spec.as_ref().map_or(0, |s| s.unit);
            use p4info::counter_spec::Unit;
            let kind = match (
                name.strip_prefix(CONTROL).and_then(|n| n.strip_prefix('.')),
                Unit::try_from(unit),
            ) {
                (Some("pkt_cntr"), Ok(Unit::Packets)) => CounterKind::Packets,
                (Some("byte_cntr"), Ok(Unit::Bytes)) => CounterKind::Bytes,
                _ => {
                    return Err(invalid(format!(
                        "counter {name} (id {id}, unit {unit}) is not implemented by this target"
                    )))
                }
            };
            if c.size < 0 || c.size as u64 > cfg.counter_size as u64 {
                return Err(invalid(format!(
                    "counter {name}: size {} exceeds the target's {}",
                    c.size, cfg.counter_size
                )));
            }
            counters.insert(
                id,
                BoundCounter {
                    id,
                    name,
                    kind,
                    size: c.size,
                },
            );
        }
        Ok(Binding {
            tables,
            actions,
            profiles,
            counters,
        })
    }

    fn refuse_unsupported(info: &P4Info) -> Result<(), P4rtError> {
        let first = |kind: &str, p: Option<&p4info::Preamble>| {
            let (id, name) = p.map_or((0, String::new()), |p| (p.id, p.name.clone()));
            Err(invalid(format!(
                "{kind} {name} (id {id}) is not implemented by this target"
            )))
        };
        if let Some(o) = info.direct_counters.first() {
            return first("direct counter", o.preamble.as_ref());
        }
        if let Some(o) = info.meters.first() {
            return first("meter", o.preamble.as_ref());
        }
        if let Some(o) = info.direct_meters.first() {
            return first("direct meter", o.preamble.as_ref());
        }
        if let Some(o) = info.controller_packet_metadata.first() {
            return first("controller packet metadata", o.preamble.as_ref());
        }
        if let Some(o) = info.value_sets.first() {
            return first("value set", o.preamble.as_ref());
        }
        if let Some(o) = info.registers.first() {
            return first("register", o.preamble.as_ref());
        }
        if let Some(o) = info.digests.first() {
            return first("digest", o.preamble.as_ref());
        }
        if let Some(o) = info.externs.first() {
            return Err(invalid(format!(
                "extern type {} (id {}) is not implemented by this target",
                o.extern_type_name, o.extern_type_id
            )));
        }
        Ok(())
    }

    fn bind_actions(info: &P4Info) -> Result<IdMap<BoundAction>, P4rtError> {
        let mut out = IdMap::default();
        for a in &info.actions {
            let (id, name) = preamble(&a.preamble, "action")?;
            let Some((_, kind, params)) = ACTIONS.iter().find(|(n, _, _)| qualified(n) == name)
            else {
                return Err(invalid(format!(
                    "action {name} (id {id}) is not implemented by this target"
                )));
            };
            let mut bound = Vec::with_capacity(params.len());
            for p in &a.params {
                let Some(slot) = params.iter().position(|(n, _)| *n == p.name) else {
                    return Err(invalid(format!(
                        "action {name}: parameter {} (id {}) is not implemented by this target",
                        p.name, p.id
                    )));
                };
                let want = params[slot].1;
                if p.bitwidth < 0 || p.bitwidth as u32 != want {
                    return Err(invalid(format!(
                        "action {name}: parameter {} is {} bits wide, the target's is {want}",
                        p.name, p.bitwidth
                    )));
                }
                bound.push(BoundParam {
                    id: p.id,
                    name: p.name.clone(),
                    width: want,
                    slot,
                });
            }
            if bound.len() != params.len() {
                let missing = params
                    .iter()
                    .find(|(n, _)| !a.params.iter().any(|p| p.name == *n))
                    .map_or("?", |(n, _)| *n);
                return Err(invalid(format!(
                    "action {name}: parameter {missing} is missing"
                )));
            }
            bound.sort_by_key(|p| p.slot);
            if out
                .insert(
                    id,
                    BoundAction {
                        id,
                        name: name.clone(),
                        kind: *kind,
                        params: bound,
                    },
                )
                .is_some()
            {
                return Err(invalid(format!(
                    "P4Info: action id {id} used twice ({name})"
                )));
            }
        }
        Ok(out)
    }

    fn bind_table(
        t: &p4info::Table,
        actions: &IdMap<BoundAction>,
        cfg: &DataplaneConfig,
    ) -> Result<BoundTable, P4rtError> {
        let (id, name) = preamble(&t.preamble, "table")?;
        let Some(spec) = TABLES.iter().find(|s| qualified(s.name) == name) else {
            return Err(invalid(format!(
                "table {name} (id {id}) is not implemented by this target"
            )));
        };
        let mut fields = Vec::with_capacity(spec.fields.len());
        for f in &t.match_fields {
            let Some(slot) = spec.fields.iter().position(|(n, _, _)| *n == f.name) else {
                return Err(invalid(format!(
                    "table {name}: match field {} (id {}) is not implemented by this target",
                    f.name, f.id
                )));
            };
            let (_, width, kind) = spec.fields[slot];
            let got = match &f.r#match {
                Some(match_field::Match::MatchType(m)) => {
                    match match_field::MatchType::try_from(*m) {
                        Ok(match_field::MatchType::Exact) => Some(MatchKind::Exact),
                        Ok(match_field::MatchType::Lpm) => Some(MatchKind::Lpm),
                        _ => None,
                    }
                }
                _ => None,
            };
            if got != Some(kind) {
                return Err(invalid(format!(
                    "table {name}: match field {} must be {kind:?}, the P4Info has {:?}",
                    f.name, f.r#match
                )));
            }
            if f.bitwidth < 0 || f.bitwidth as u32 != width {
                return Err(invalid(format!(
                    "table {name}: match field {} is {} bits wide, the target's is {width}",
                    f.name, f.bitwidth
                )));
            }
            if fields
                .iter()
                .any(|b: &BoundField| b.slot == slot || b.id == f.id)
            {
                return Err(invalid(format!(
                    "table {name}: match field {} (id {}) appears twice",
                    f.name, f.id
                )));
            }
            fields.push(BoundField {
                id: f.id,
                name: f.name.clone(),
                width,
                kind,
                slot,
            });
        }
        if fields.len() != spec.fields.len() {
            let missing = spec
                .fields
                .iter()
                .find(|(n, _, _)| !t.match_fields.iter().any(|f| f.name == *n))
                .map_or("?", |(n, _, _)| *n);
            return Err(invalid(format!(
                "table {name}: match field {missing} is missing"
            )));
        }
        fields.sort_by_key(|f| f.slot);
        let mut refs = Vec::with_capacity(t.action_refs.len());
        for r in &t.action_refs {
            let Some(a) = actions.get(&r.id) else {
                return Err(invalid(format!(
                    "table {name}: action id {} is not in the P4Info",
                    r.id
                )));
            };
            if !spec.actions.contains(&a.kind) {
                return Err(invalid(format!(
                    "table {name}: action {} is not implemented by this target for this table",
                    a.name
                )));
            }
            use p4info::action_ref::Scope as S;
            let scope = match S::try_from(r.scope) {
                Ok(S::TableOnly) => Scope::TableOnly,
                Ok(S::DefaultOnly) => Scope::DefaultOnly,
                _ => Scope::TableAndDefault,
            };
            refs.push((r.id, scope));
        }
        if t.const_default_action_id != 0
            && !refs.iter().any(|(a, _)| *a == t.const_default_action_id)
        {
            return Err(invalid(format!(
                "table {name}: const default action {} is not one of its actions",
                t.const_default_action_id
            )));
        }
        if let Some(kinds) = target::const_default(spec.kind) {
            let declared = actions.get(&t.const_default_action_id).map(|a| a.kind);
            if !declared.is_some_and(|k| kinds.contains(&k)) {
                return Err(invalid(format!(
                    "table {name}: this target fixes the default action to {kinds:?}; the P4Info must declare it as const_default_action_id (it has {})",
                    t.const_default_action_id
                )));
            }
        }
        let cap = capacity(spec.kind, cfg);
        if t.size < 0 || t.size as u64 > cap as u64 {
            return Err(invalid(format!(
                "table {name}: size {} exceeds the target's capacity {cap}",
                t.size
            )));
        }
        if t.idle_timeout_behavior != 0 {
            return Err(invalid(format!(
                "table {name}: idle timeout notification is not implemented by this target"
            )));
        }
        if let Some(&d) = t.direct_resource_ids.first() {
            return Err(invalid(format!(
                "table {name}: direct resource {d} is not implemented by this target"
            )));
        }
        if t.is_const_table || t.has_initial_entries {
            return Err(invalid(format!(
                "table {name}: const tables / initial entries are not implemented by this target"
            )));
        }
        Ok(BoundTable {
            id,
            name,
            kind: spec.kind,
            fields,
            actions: refs,
            const_default: t.const_default_action_id != 0,
            profile: (t.implementation_id != 0).then_some(t.implementation_id),
            size: t.size,
        })
    }

    fn bind_profile(
        p: &p4info::ActionProfile,
        tables: &IdMap<BoundTable>,
        cfg: &DataplaneConfig,
    ) -> Result<BoundProfile, P4rtError> {
        let (id, name) = preamble(&p.preamble, "action profile")?;
        let selector = match name.strip_prefix(CONTROL).and_then(|n| n.strip_prefix('.')) {
            Some("as_sl3_tcp") => ServiceProto::Tcp,
            Some("as_sl3_udp") => ServiceProto::Udp,
            _ => {
                return Err(invalid(format!(
                    "action profile {name} (id {id}) is not implemented by this target"
                )))
            }
        };
        if !p.with_selector {
            return Err(invalid(format!(
                "action profile {name}: must be an action selector (with_selector)"
            )));
        }
        let [table_id] = p.table_ids[..] else {
            return Err(invalid(format!(
                "action profile {name}: must serve exactly one table, not {:?}",
                p.table_ids
            )));
        };
        let ok = tables
            .get(&table_id)
            .is_some_and(|t| t.kind == TableKind::TxBalance(selector));
        if !ok {
            return Err(invalid(format!(
                "action profile {name}: table {table_id} is not its tx_balance table"
            )));
        }
        if p.size < 0 || p.size as u64 > cfg.selector_members as u64 {
            return Err(invalid(format!(
                "action profile {name}: size {} exceeds the target's {} members",
                p.size, cfg.selector_members
            )));
        }
        if p.max_group_size < 0 || p.max_group_size as u64 > cfg.group_max_members as u64 {
            return Err(invalid(format!(
                "action profile {name}: max_group_size {} exceeds the target's {}",
                p.max_group_size, cfg.group_max_members
            )));
        }
        Ok(BoundProfile {
            id,
            name,
            selector,
            table_id,
            size: p.size,
            max_group_size: p.max_group_size,
        })
    }

    /// The table with P4Info id `id`.
    pub fn table(&self, id: u32) -> Option<&BoundTable> {
        self.tables.get(&id)
    }

    /// The table bound to `kind`.
    pub fn table_of(&self, kind: TableKind) -> Option<&BoundTable> {
        self.tables.values().find(|t| t.kind == kind)
    }

    /// Every bound table, by id.
    pub fn tables(&self) -> impl Iterator<Item = &BoundTable> {
        let mut v: Vec<_> = self.tables.values().collect();
        v.sort_by_key(|t| t.id);
        v.into_iter()
    }

    /// The action with P4Info id `id`.
    pub fn action(&self, id: u32) -> Option<&BoundAction> {
        self.actions.get(&id)
    }

    /// Every bound action.
    pub fn actions(&self) -> impl Iterator<Item = &BoundAction> {
        self.actions.values()
    }

    /// The action `table` uses for `kind` (several P4 actions may map to
    /// one dataplane action, e.g. `acl_deny`/`udp_acl_deny`: the first wins).
    pub fn action_for(&self, table: &BoundTable, kinds: &[ActionKind]) -> Option<&BoundAction> {
        kinds.iter().find_map(|k| {
            table
                .actions
                .iter()
                .filter_map(|(id, _)| self.actions.get(id))
                .find(|a| a.kind == *k)
        })
    }

    /// The action profile with id `id`.
    pub fn profile(&self, id: u32) -> Option<&BoundProfile> {
        self.profiles.get(&id)
    }

    /// Every bound action profile.
    pub fn profiles(&self) -> impl Iterator<Item = &BoundProfile> {
        let mut v: Vec<_> = self.profiles.values().collect();
        v.sort_by_key(|p| p.id);
        v.into_iter()
    }

    /// The counter with id `id`.
    pub fn counter(&self, id: u32) -> Option<&BoundCounter> {
        self.counters.get(&id)
    }

    /// Every bound counter.
    pub fn counters(&self) -> impl Iterator<Item = &BoundCounter> {
        let mut v: Vec<_> = self.counters.values().collect();
        v.sort_by_key(|c| c.id);
        v.into_iter()
    }

    /// True when `other` names the same objects with the same ids, fields,
    /// parameters and actions (sizes may differ), so state written under
    /// this binding stays valid under `other` (RECONCILE_AND_COMMIT).
    pub fn compatible_with(&self, other: &Binding) -> Result<(), String> {
        fn strip_table(t: &BoundTable) -> (u32, &str, &[BoundField], Vec<u32>, bool, Option<u32>) {
            let mut acts: Vec<u32> = t.actions.iter().map(|(a, _)| *a).collect();
            acts.sort_unstable();
            (t.id, &t.name, &t.fields, acts, t.const_default, t.profile)
        }
        for t in self.tables() {
            match other.table(t.id) {
                Some(o) if strip_table(o) == strip_table(t) => {}
                _ => return Err(format!("table {} (id {}) differs", t.name, t.id)),
            }
        }
        if other.tables.len() != self.tables.len() {
            return Err("the set of tables differs".into());
        }
        for a in self.actions.values() {
            if other.action(a.id) != Some(a) {
                return Err(format!("action {} (id {}) differs", a.name, a.id));
            }
        }
        if other.actions.len() != self.actions.len() {
            return Err("the set of actions differs".into());
        }
        for p in self.profiles.values() {
            match other.profile(p.id) {
                Some(o) if o.name == p.name && o.table_id == p.table_id => {}
                _ => return Err(format!("action profile {} (id {}) differs", p.name, p.id)),
            }
        }
        if other.profiles.len() != self.profiles.len() {
            return Err("the set of action profiles differs".into());
        }
        for c in self.counters.values() {
            match other.counter(c.id) {
                Some(o) if o.name == c.name && o.kind == c.kind => {}
                _ => return Err(format!("counter {} (id {}) differs", c.name, c.id)),
            }
        }
        if other.counters.len() != self.counters.len() {
            return Err("the set of counters differs".into());
        }
        Ok(())
    }
}
