//! The P4Runtime updates upstream's manager writes for a scenario, and the
//! P4Info look-ups (by alias) they are built with.
//!
//! # Id allocation (deterministic: the same file always gives the same ids)
//!
//! - Services are numbered in file order from 0, over both protocols.
//!   Service `s` gets group id `s + 1` in its protocol's action selector
//!   (`as_sl3_tcp` or `as_sl3_udp`); the group id is also its SNAT pointer:
//!   the `set_key_for_reverse_ct` parameter of its endpoints' `set_meta_*`
//!   entries and the key of its `write_source_ip_table` entry. That table is
//!   shared by both protocols, hence one numbering for all services.
//! - Endpoints are numbered in file order across every service, from 1:
//!   endpoint `k` gets DNAT pointer `k` (key of `write_dest_ip_table`,
//!   shared by both protocols) and member id `k` in its service's selector,
//!   whose action is `set_default_lb_dest(k)`.
//! - Policies are numbered in file order from 1 over both directions: the
//!   range tables (`tcp_dport_rc_table`, ...) are keyed by the policy id
//!   alone and shared by both directions. Upstream's ids are 8 bits wide,
//!   so at most 255 policies.
//!
//! # Order
//!
//! Updates come in dependency order, so that writing them in batches, in
//! order, never refers to what is not there yet and never denies traffic
//! through a half-written policy: pods; per service its
//! `write_dest_ip_table` entries, members, group, `set_meta_*` entries,
//! `tx_balance_*` entry and `write_source_ip_table` entry; per policy its
//! range table entry, ipset entries and finally its pod entry.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use p4k8s_p4runtime::canonical;
use p4k8s_p4runtime::proto::p4::config::v1::{
    match_field, Action as InfoAction, ActionProfile, P4Info, Preamble, Table,
};
use p4k8s_p4runtime::proto::p4::v1::{
    action, entity, field_match, table_action, update, Action, ActionProfileGroup,
    ActionProfileMember, Entity, FieldMatch, TableAction, TableEntry, Update,
};
use thiserror::Error;

use super::scenario::{PolicyProto, Scenario, MAX_RANGES};

/// Largest pointer (24-bit `mod_blob_ptr_*` and `ptr` fields).
pub const MAX_POINTER: u64 = (1 << 24) - 1;
/// Largest policy id (8-bit `pol_id`).
pub const MAX_POLICY_ID: usize = 255;

/// A scenario that the P4Info cannot express.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The P4Info lacks a table, action, parameter or action profile.
    #[error("the P4Info has no {0}")]
    Missing(String),
    /// The P4Info's object does not have the shape upstream's has.
    #[error("the P4Info's {0}")]
    Shape(String),
    /// The scenario needs more ids than the fields hold.
    #[error("{0}")]
    TooMany(String),
}

fn alias(p: &Option<Preamble>) -> &str {
    p.as_ref().map_or("", |p| p.alias.as_str())
}

fn name(p: &Option<Preamble>) -> &str {
    p.as_ref().map_or("", |p| p.name.as_str())
}

fn id(p: &Option<Preamble>) -> u32 {
    p.as_ref().map_or(0, |p| p.id)
}

/// Does `preamble` answer to `wanted`: its alias, its full name, or the last
/// component of its full name.
fn answers(p: &Option<Preamble>, wanted: &str) -> bool {
    alias(p) == wanted || name(p) == wanted || name(p).rsplit('.').next() == Some(wanted)
}

/// A P4Info, indexed by alias and by id.
#[derive(Debug, Clone)]
pub struct Info {
    info: P4Info,
    tables_by_id: HashMap<u32, usize>,
    actions_by_id: HashMap<u32, usize>,
}

/// A key value to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// An exact value.
    Exact(u128),
    /// A prefix: value and length.
    Lpm(u128, u32),
}

/// The action an entry gets.
#[derive(Debug, Clone, Copy)]
pub enum Act<'a> {
    /// A direct action with named parameters.
    Direct(&'a str, &'a [(&'a str, u128)]),
    /// An action-selector group.
    Group(u32),
}

impl Info {
    /// Indexes `info`.
    pub fn new(info: P4Info) -> Self {
        let tables_by_id = info
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| (id(&t.preamble), i))
            .collect();
        let actions_by_id = info
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| (id(&a.preamble), i))
            .collect();
        Info {
            info,
            tables_by_id,
            actions_by_id,
        }
    }

    /// The P4Info itself.
    pub fn p4info(&self) -> &P4Info {
        &self.info
    }

    /// The table called `wanted` (alias or name).
    pub fn table(&self, wanted: &str) -> Result<&Table, BuildError> {
        self.info
            .tables
            .iter()
            .find(|t| answers(&t.preamble, wanted))
            .ok_or_else(|| BuildError::Missing(format!("table {wanted}")))
    }

    /// The action called `wanted` (alias or name).
    pub fn action(&self, wanted: &str) -> Result<&InfoAction, BuildError> {
        self.info
            .actions
            .iter()
            .find(|a| answers(&a.preamble, wanted))
            .ok_or_else(|| BuildError::Missing(format!("action {wanted}")))
    }

    /// The action profile called `wanted` (alias or name).
    pub fn profile(&self, wanted: &str) -> Result<&ActionProfile, BuildError> {
        self.info
            .action_profiles
            .iter()
            .find(|a| answers(&a.preamble, wanted))
            .ok_or_else(|| BuildError::Missing(format!("action profile {wanted}")))
    }

    /// The table with id `table_id`.
    pub fn table_by_id(&self, table_id: u32) -> Option<&Table> {
        self.tables_by_id
            .get(&table_id)
            .map(|&i| &self.info.tables[i])
    }

    /// The action with id `action_id`.
    pub fn action_by_id(&self, action_id: u32) -> Option<&InfoAction> {
        self.actions_by_id
            .get(&action_id)
            .map(|&i| &self.info.actions[i])
    }

    /// The action profile with id `profile_id`.
    pub fn profile_by_id(&self, profile_id: u32) -> Option<&ActionProfile> {
        self.info
            .action_profiles
            .iter()
            .find(|p| id(&p.preamble) == profile_id)
    }

    /// A direct action `name(params)`, parameters by name.
    pub fn direct_action(
        &self,
        action_name: &str,
        params: &[(&str, u128)],
    ) -> Result<Action, BuildError> {
        let a = self.action(action_name)?;
        if a.params.len() != params.len() {
            return Err(BuildError::Shape(format!(
                "action {action_name} has {} parameters, not {}",
                a.params.len(),
                params.len()
            )));
        }
        let params = params
            .iter()
            .map(|(pname, value)| {
                let p = a.params.iter().find(|p| p.name == *pname).ok_or_else(|| {
                    BuildError::Missing(format!("parameter {pname} in action {action_name}"))
                })?;
                Ok(action::Param {
                    param_id: p.id,
                    value: canonical::encode(*value),
                })
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(Action {
            action_id: id(&a.preamble),
            params,
        })
    }

    /// An INSERT of an entry of `table_name`, keys in the table's key order.
    pub fn insert_entry(
        &self,
        table_name: &str,
        keys: &[Key],
        act: Act<'_>,
    ) -> Result<Update, BuildError> {
        let t = self.table(table_name)?;
        if t.match_fields.len() != keys.len() {
            return Err(BuildError::Shape(format!(
                "table {table_name} has {} key fields, not {}",
                t.match_fields.len(),
                keys.len()
            )));
        }
        let mut matches = Vec::new();
        for (f, k) in t.match_fields.iter().zip(keys) {
            let kind = match &f.r#match {
                Some(match_field::Match::MatchType(m)) => *m,
                _ => 0,
            };
            let m = match (*k, match_field::MatchType::try_from(kind)) {
                (Key::Exact(v), Ok(match_field::MatchType::Exact)) => {
                    field_match::FieldMatchType::Exact(field_match::Exact {
                        value: canonical::encode(v),
                    })
                }
                (Key::Lpm(_, 0), Ok(match_field::MatchType::Lpm)) => {
                    // A don't-care LPM field is omitted (P4Runtime §9.1.1).
                    continue;
                }
                (Key::Lpm(v, len), Ok(match_field::MatchType::Lpm)) => {
                    field_match::FieldMatchType::Lpm(field_match::Lpm {
                        value: canonical::encode(v),
                        prefix_len: i32::try_from(len).unwrap_or(i32::MAX),
                    })
                }
                (k, _) => {
                    return Err(BuildError::Shape(format!(
                        "table {table_name} field {} is not matched as {k:?}",
                        f.name
                    )))
                }
            };
            matches.push(FieldMatch {
                field_id: f.id,
                field_match_type: Some(m),
            });
        }
        let action = match act {
            Act::Direct(n, params) => table_action::Type::Action(self.direct_action(n, params)?),
            Act::Group(g) => table_action::Type::ActionProfileGroupId(g),
        };
        Ok(insert(entity::Entity::TableEntry(Box::new(TableEntry {
            table_id: id(&t.preamble),
            r#match: matches,
            action: Some(TableAction {
                r#type: Some(action),
            }),
            ..Default::default()
        }))))
    }
}

fn insert(e: entity::Entity) -> Update {
    Update {
        r#type: update::Type::Insert as i32,
        entity: Some(Entity { entity: Some(e) }),
    }
}

fn ip(a: Ipv4Addr) -> u128 {
    u128::from(u32::from(a))
}

fn mac(m: [u8; 6]) -> u128 {
    m.iter().fold(0u128, |acc, b| acc << 8 | u128::from(*b))
}

/// Every update upstream's manager writes for `scenario`, as INSERTs, in
/// dependency order (see the module documentation for ids and order).
pub fn build(scenario: &Scenario, info: &Info) -> Result<Vec<Update>, BuildError> {
    let mut out = Vec::new();
    for p in &scenario.pods {
        out.push(info.insert_entry(
            "arpt_to_port_table",
            &[Key::Exact(ip(p.ip))],
            Act::Direct("set_dest_vport", &[("p", u128::from(p.port))]),
        )?);
        out.push(info.insert_entry(
            "ipv4_to_port_table",
            &[Key::Exact(ip(p.ip))],
            Act::Direct(
                "set_dest_mac_vport",
                &[("p", u128::from(p.port)), ("new_dmac", mac(p.mac))],
            ),
        )?);
    }

    let mut pointer: u64 = 0;
    for (s, svc) in scenario.services.iter().enumerate() {
        let group = u32::try_from(s + 1)
            .ok()
            .filter(|g| u64::from(*g) <= MAX_POINTER)
            .ok_or_else(|| BuildError::TooMany("more services than 24-bit group ids".into()))?;
        let proto = svc.proto.suffix();
        let profile_name = format!("as_sl3_{proto}");
        let profile_id = id(&info.profile(&profile_name)?.preamble);
        let mut members = Vec::new();
        for ep in &svc.endpoints {
            pointer += 1;
            if pointer > MAX_POINTER {
                return Err(BuildError::TooMany(
                    "more endpoints than 24-bit pointers".into(),
                ));
            }
            let ptr = u128::from(pointer);
            out.push(info.insert_entry(
                "write_dest_ip_table",
                &[Key::Exact(ptr)],
                Act::Direct(
                    "update_dst_ip",
                    &[
                        ("new_ip", ip(*ep.ip())),
                        ("new_port", u128::from(ep.port())),
                    ],
                ),
            )?);
            let member_id = u32::try_from(pointer).unwrap_or(u32::MAX);
            out.push(insert(entity::Entity::ActionProfileMember(
                ActionProfileMember {
                    action_profile_id: profile_id,
                    member_id,
                    action: Some(info.direct_action("set_default_lb_dest", &[("ptr", ptr)])?),
                },
            )));
            members.push(member_id);
        }
        out.push(insert(entity::Entity::ActionProfileGroup(
            ActionProfileGroup {
                action_profile_id: profile_id,
                group_id: group,
                members: members
                    .iter()
                    .map(
                        |m| p4k8s_p4runtime::proto::p4::v1::action_profile_group::Member {
                            member_id: *m,
                            weight: 1,
                            watch_kind: None,
                        },
                    )
                    .collect(),
                max_size: 0,
            },
        )));
        for ep in &svc.endpoints {
            out.push(info.insert_entry(
                &format!("set_meta_{proto}"),
                &[Key::Exact(ip(*ep.ip())), Key::Exact(u128::from(ep.port()))],
                Act::Direct("set_key_for_reverse_ct", &[("ptr", u128::from(group))]),
            )?);
        }
        out.push(info.insert_entry(
            &format!("tx_balance_{proto}"),
            &[Key::Exact(ip(svc.vip)), Key::Exact(u128::from(svc.port))],
            Act::Group(group),
        )?);
        out.push(info.insert_entry(
            "write_source_ip_table",
            &[Key::Exact(u128::from(group))],
            Act::Direct(
                "update_src_ip",
                &[("new_ip", ip(svc.vip)), ("new_port", u128::from(svc.port))],
            ),
        )?);
    }

    if scenario.policies.len() > MAX_POLICY_ID {
        return Err(BuildError::TooMany(format!(
            "{} policies; upstream's policy ids hold at most {MAX_POLICY_ID}",
            scenario.policies.len()
        )));
    }
    for (i, pol) in scenario.policies.iter().enumerate() {
        let pol_id = u128::try_from(i + 1).unwrap_or(u128::MAX);
        let dir = pol.direction.suffix();
        let proto_key = if pol.proto == PolicyProto::Any {
            Key::Lpm(0, 0)
        } else {
            Key::Lpm(u128::from(pol.proto.number()), 8)
        };
        let pod_table = format!("acl_pod_ip_proto_table_{dir}");
        let pod_key = [Key::Exact(ip(pol.pod)), proto_key];
        if pol.peers.is_empty() {
            out.push(info.insert_entry(
                &pod_table,
                &pod_key,
                Act::Direct("set_status_deny_all", &[]),
            )?);
            continue;
        }
        // Rule r allows the peers on range r; with no ranges, one rule.
        let rules = pol.ports.len().clamp(1, MAX_RANGES);
        let mask = (1u128 << rules) - 1;
        let range_check = pol.proto.range_check().filter(|_| !pol.ports.is_empty());
        if let Some((_, table, action_name)) = range_check {
            let names: Vec<String> = (0..MAX_RANGES)
                .flat_map(|r| [format!("min{r}"), format!("max{r}")])
                .collect();
            let params: Vec<(&str, u128)> = (0..MAX_RANGES)
                .flat_map(|r| {
                    let (lo, hi) = pol.ports.get(r).copied().unwrap_or((0, 0));
                    [
                        (names[2 * r].as_str(), u128::from(lo)),
                        (names[2 * r + 1].as_str(), u128::from(hi)),
                    ]
                })
                .collect();
            out.push(info.insert_entry(
                table,
                &[Key::Exact(pol_id)],
                Act::Direct(action_name, &params),
            )?);
        }
        for (addr, len) in &pol.peers {
            out.push(info.insert_entry(
                &format!("acl_ipset_match_table_{dir}"),
                &[Key::Exact(pol_id), Key::Lpm(ip(*addr), u32::from(*len))],
                Act::Direct("set_ipset_match_result", &[("ipset_matched_mask", mask)]),
            )?);
        }
        let pod_action = match range_check {
            Some((reference, _, _)) => Act::Direct(
                "set_range_check_ref",
                &[
                    ("pol_id", pol_id),
                    ("range_check_ref", u128::from(reference)),
                ],
            ),
            None => Act::Direct("set_status_match_ipset_only", &[("pol_id", pol_id)]),
        };
        // `Act` borrows its parameters: build the entry while they live.
        out.push(info.insert_entry(&pod_table, &pod_key, pod_action)?);
    }
    Ok(out)
}

/// The DELETEs undoing `inserts` (as [`build`] makes them): reverse order,
/// keys and ids only (P4Runtime ignores the rest of a deleted entity).
pub fn deletes(inserts: Vec<Update>) -> Vec<Update> {
    inserts
        .into_iter()
        .rev()
        .map(|mut u| {
            u.r#type = update::Type::Delete as i32;
            match u.entity.as_mut().and_then(|e| e.entity.as_mut()) {
                Some(entity::Entity::TableEntry(t)) => t.action = None,
                Some(entity::Entity::ActionProfileMember(m)) => m.action = None,
                Some(entity::Entity::ActionProfileGroup(g)) => g.members.clear(),
                _ => {}
            }
            u
        })
        .collect()
}

fn decode(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .skip_while(|b| **b == 0)
        .fold(0u128, |acc, b| acc.wrapping_shl(8) | u128::from(*b))
}

/// A value for people: dotted quad for 32-bit addresses, colon-separated
/// for 48-bit MACs, decimal otherwise.
fn show(field: &str, width: i32, bytes: &[u8]) -> String {
    let v = decode(bytes);
    let is_addr = field.contains("addr") || field.ends_with("_ip") || field.ends_with("tpa");
    match width {
        32 if is_addr => Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX)).to_string(),
        48 => {
            let b = v.to_be_bytes();
            b[10..]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        }
        _ => v.to_string(),
    }
}

impl Info {
    /// A one-line description of an action: `name(param=value, ...)`.
    pub fn describe_action(&self, a: &Action) -> String {
        let Some(info) = self.action_by_id(a.action_id) else {
            return format!("action#{}", a.action_id);
        };
        let params: Vec<String> = a
            .params
            .iter()
            .map(|p| match info.params.iter().find(|i| i.id == p.param_id) {
                Some(i) => format!("{}={}", i.name, show(&i.name, i.bitwidth, &p.value)),
                None => format!("#{}={}", p.param_id, decode(&p.value)),
            })
            .collect();
        format!("{}({})", alias(&info.preamble), params.join(", "))
    }

    /// A one-line description of a table entry: `table key=value ... -> action`.
    pub fn describe_entry(&self, t: &TableEntry) -> String {
        let table = self.table_by_id(t.table_id);
        let mut s = table.map_or_else(
            || format!("table#{}", t.table_id),
            |t| alias(&t.preamble).to_owned(),
        );
        for m in &t.r#match {
            let f = table.and_then(|t| t.match_fields.iter().find(|f| f.id == m.field_id));
            let (fname, width) = f.map_or(("?", 0), |f| (f.name.as_str(), f.bitwidth));
            let value = match &m.field_match_type {
                Some(field_match::FieldMatchType::Exact(e)) => show(fname, width, &e.value),
                Some(field_match::FieldMatchType::Lpm(l)) => {
                    format!("{}/{}", show(fname, width, &l.value), l.prefix_len)
                }
                Some(field_match::FieldMatchType::Ternary(tm)) => {
                    format!("{:#x}&&&{:#x}", decode(&tm.value), decode(&tm.mask))
                }
                Some(field_match::FieldMatchType::Range(r)) => {
                    format!("{}..{}", decode(&r.low), decode(&r.high))
                }
                Some(field_match::FieldMatchType::Optional(o)) => show(fname, width, &o.value),
                other => format!("{other:?}"),
            };
            let _ = write!(s, " {fname}={value}");
        }
        match t.action.as_ref().and_then(|a| a.r#type.as_ref()) {
            Some(table_action::Type::Action(a)) => {
                let _ = write!(s, " -> {}", self.describe_action(a));
            }
            Some(table_action::Type::ActionProfileGroupId(g)) => {
                let _ = write!(s, " -> group {g}");
            }
            Some(table_action::Type::ActionProfileMemberId(m)) => {
                let _ = write!(s, " -> member {m}");
            }
            Some(other) => {
                let _ = write!(s, " -> {other:?}");
            }
            None => {}
        }
        if t.priority != 0 {
            let _ = write!(s, " priority={}", t.priority);
        }
        s
    }

    /// A one-line description of an entity, for listings and errors.
    pub fn describe(&self, e: &Entity) -> String {
        match &e.entity {
            Some(entity::Entity::TableEntry(t)) => self.describe_entry(t),
            Some(entity::Entity::ActionProfileMember(m)) => {
                let profile = self
                    .profile_by_id(m.action_profile_id)
                    .map_or("?", |p| alias(&p.preamble));
                let action = m
                    .action
                    .as_ref()
                    .map_or_else(String::new, |a| self.describe_action(a));
                format!("{profile} member {} -> {action}", m.member_id)
            }
            Some(entity::Entity::ActionProfileGroup(g)) => {
                let profile = self
                    .profile_by_id(g.action_profile_id)
                    .map_or("?", |p| alias(&p.preamble));
                let members: Vec<String> = g
                    .members
                    .iter()
                    .map(|m| format!("{}x{}", m.member_id, m.weight))
                    .collect();
                format!(
                    "{profile} group {} members [{}]",
                    g.group_id,
                    members.join(", ")
                )
            }
            other => format!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::scenario::Scenario;
    use crate::ctl::UPSTREAM_P4INFO;

    fn upstream() -> Info {
        Info::new(p4k8s_p4runtime::p4info::parse_text(UPSTREAM_P4INFO).unwrap())
    }

    const SCENARIO: &str = r#"
        [[pod]]
        ip = "10.1.0.2"
        port = 2
        mac = "02:00:00:00:00:02"
        [[service]]
        vip = "10.96.0.10"
        port = 80
        proto = "tcp"
        endpoints = ["10.1.0.3:8080", "10.1.0.4:8080"]
        [[service]]
        vip = "10.96.0.11"
        port = 53
        proto = "udp"
        endpoints = ["10.1.0.4:5353"]
        [[policy]]
        pod = "10.1.0.5"
        direction = "ingress"
        proto = "tcp"
        peers = ["10.1.0.0/16"]
        ports = [[8080, 8080], [9100, 9200]]
        [[policy]]
        pod = "10.1.0.5"
        direction = "egress"
        proto = "any"
        peers = ["0.0.0.0/0"]
        [[policy]]
        pod = "10.1.0.6"
        direction = "egress"
        proto = "udp"
    "#;

    fn lines() -> Vec<String> {
        let info = upstream();
        let s = Scenario::parse(SCENARIO, "t").unwrap();
        build(&s, &info)
            .unwrap()
            .iter()
            .map(|u| {
                assert_eq!(u.r#type, update::Type::Insert as i32);
                info.describe(u.entity.as_ref().unwrap())
            })
            .collect()
    }

    #[test]
    fn the_manager_entries_in_order() {
        let want = [
            "arpt_to_port_table hdr.arp.tpa=10.1.0.2 -> set_dest_vport(p=2)",
            "ipv4_to_port_table hdr.ipv4.dst_addr=10.1.0.2 -> set_dest_mac_vport(p=2, new_dmac=02:00:00:00:00:02)",
            // TCP service: pointers 1, 2; group 1.
            "write_dest_ip_table meta.mod_blob_ptr_dnat=1 -> update_dst_ip(new_ip=10.1.0.3, new_port=8080)",
            "as_sl3_tcp member 1 -> set_default_lb_dest(ptr=1)",
            "write_dest_ip_table meta.mod_blob_ptr_dnat=2 -> update_dst_ip(new_ip=10.1.0.4, new_port=8080)",
            "as_sl3_tcp member 2 -> set_default_lb_dest(ptr=2)",
            "as_sl3_tcp group 1 members [1x1, 2x1]",
            "set_meta_tcp hdr.ipv4.dst_addr=10.1.0.3 hdr.tcp.dst_port=8080 -> set_key_for_reverse_ct(ptr=1)",
            "set_meta_tcp hdr.ipv4.dst_addr=10.1.0.4 hdr.tcp.dst_port=8080 -> set_key_for_reverse_ct(ptr=1)",
            "tx_balance_tcp hdr.ipv4.dst_addr=10.96.0.10 hdr.tcp.dst_port=80 -> group 1",
            "write_source_ip_table meta.mod_blob_ptr_snat=1 -> update_src_ip(new_ip=10.96.0.10, new_port=80)",
            // UDP service: pointer 3 (shared numbering), group 2.
            "write_dest_ip_table meta.mod_blob_ptr_dnat=3 -> update_dst_ip(new_ip=10.1.0.4, new_port=5353)",
            "as_sl3_udp member 3 -> set_default_lb_dest(ptr=3)",
            "as_sl3_udp group 2 members [3x1]",
            "set_meta_udp hdr.ipv4.dst_addr=10.1.0.4 hdr.udp.dst_port=5353 -> set_key_for_reverse_ct(ptr=2)",
            "tx_balance_udp hdr.ipv4.dst_addr=10.96.0.11 hdr.udp.dst_port=53 -> group 2",
            "write_source_ip_table meta.mod_blob_ptr_snat=2 -> update_src_ip(new_ip=10.96.0.11, new_port=53)",
            // Policy 1: two TCP ranges, so mask 0b11.
            "tcp_dport_rc_table meta.acl_pol_id=1 -> do_range_check_tcp(min0=8080, max0=8080, min1=9100, max1=9200, min2=0, max2=0, min3=0, max3=0, min4=0, max4=0, min5=0, max5=0, min6=0, max6=0, min7=0, max7=0)",
            "acl_ipset_match_table_ingress meta.acl_pol_id=1 hdr.ipv4.src_addr=10.1.0.0/16 -> set_ipset_match_result(ipset_matched_mask=3)",
            "acl_pod_ip_proto_table_ingress hdr.ipv4.dst_addr=10.1.0.5 hdr.ipv4.protocol=6/8 -> set_range_check_ref(pol_id=1, range_check_ref=1)",
            // Policy 2: any protocol to anywhere: ipset only, protocol field omitted (/0).
            "acl_ipset_match_table_egress meta.acl_pol_id=2 -> set_ipset_match_result(ipset_matched_mask=1)",
            "acl_pod_ip_proto_table_egress hdr.ipv4.src_addr=10.1.0.5 -> set_status_match_ipset_only(pol_id=2)",
            // Policy 3: no peers: deny all UDP.
            "acl_pod_ip_proto_table_egress hdr.ipv4.src_addr=10.1.0.6 hdr.ipv4.protocol=17/8 -> set_status_deny_all()",
        ];
        let got = lines();
        for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert_eq!(g, w, "update {i}");
        }
        assert_eq!(got.len(), want.len());
    }

    #[test]
    fn values_are_canonical_byte_strings() {
        let info = upstream();
        let s = Scenario::parse(SCENARIO, "t").unwrap();
        let updates = build(&s, &info).unwrap();
        let Some(entity::Entity::TableEntry(t)) =
            updates[0].entity.as_ref().unwrap().entity.clone()
        else {
            panic!("not a table entry")
        };
        let Some(table_action::Type::Action(a)) = t.action.unwrap().r#type else {
            panic!("not direct")
        };
        assert_eq!(a.params[0].value, vec![2]);
        // An LPM /0 is omitted; a /16 keeps its network address.
        let Some(entity::Entity::TableEntry(t)) =
            updates[18].entity.as_ref().unwrap().entity.clone()
        else {
            panic!("not a table entry")
        };
        assert_eq!(t.r#match.len(), 2);
        match &t.r#match[1].field_match_type {
            Some(field_match::FieldMatchType::Lpm(l)) => {
                assert_eq!(
                    (l.value.as_slice(), l.prefix_len),
                    (&[10u8, 1, 0, 0][..], 16)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deletes_undo_in_reverse_with_keys_only() {
        let info = upstream();
        let s = Scenario::parse(SCENARIO, "t").unwrap();
        let inserts = build(&s, &info).unwrap();
        let n = inserts.len();
        let first = inserts[0].clone();
        let d = deletes(inserts);
        assert_eq!(d.len(), n);
        assert!(d.iter().all(|u| u.r#type == update::Type::Delete as i32));
        let Some(entity::Entity::TableEntry(last)) =
            d[n - 1].entity.as_ref().unwrap().entity.clone()
        else {
            panic!("not a table entry")
        };
        let Some(entity::Entity::TableEntry(orig)) = first.entity.unwrap().entity else {
            panic!("not a table entry")
        };
        assert_eq!(last.r#match, orig.r#match);
        assert!(last.action.is_none());
        assert_eq!(
            info.describe(d[n - 1].entity.as_ref().unwrap()),
            "arpt_to_port_table hdr.arp.tpa=10.1.0.2"
        );
    }

    #[test]
    fn a_p4info_without_the_tables_is_refused() {
        let mut p = p4k8s_p4runtime::p4info::parse_text(UPSTREAM_P4INFO).unwrap();
        p.tables.retain(|t| alias(&t.preamble) != "set_meta_udp");
        let s = Scenario::parse(SCENARIO, "t").unwrap();
        let err = build(&s, &Info::new(p)).unwrap_err().to_string();
        assert_eq!(err, "the P4Info has no table set_meta_udp");
    }
}
