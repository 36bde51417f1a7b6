//! What the P4Runtime benchmarks write: the upstream P4Info and
//! `write_dest_ip_table` entries as the upstream manager writes them.

use p4k8s_p4runtime::proto::p4::config::v1::P4Info;
use p4k8s_p4runtime::proto::p4::v1::{
    action, entity, field_match, table_action, update, Action, Entity, FieldMatch, TableAction,
    TableEntry, Update,
};

/// The upstream `k8s_dp` P4Info (text format).
pub const UPSTREAM_P4INFO: &str = include_str!("../../p4/upstream/k8s_dp.p4info.txt");

/// The id of the table, action or action profile named `alias` (0: none).
pub fn id_of(info: &P4Info, alias: &str) -> u32 {
    let tables = info.tables.iter().filter_map(|t| t.preamble.as_ref());
    let actions = info.actions.iter().filter_map(|a| a.preamble.as_ref());
    let profiles = info
        .action_profiles
        .iter()
        .filter_map(|p| p.preamble.as_ref());
    tables
        .chain(actions)
        .chain(profiles)
        .find(|p| p.alias == alias)
        .map_or(0, |p| p.id)
}

/// `v` as a canonical P4Runtime byte string (shortest big-endian).
pub fn canonical(v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let first = b.iter().position(|x| *x != 0).unwrap_or(7);
    b[first..].to_vec()
}

/// The ids a `write_dest_ip_table` entry needs, looked up once.
#[derive(Debug, Clone, Copy)]
pub struct NatTable {
    table_id: u32,
    action_id: u32,
}

impl NatTable {
    /// `write_dest_ip_table` and its `update_dst_ip` action in `info`.
    pub fn new(info: &P4Info) -> Self {
        NatTable {
            table_id: id_of(info, "write_dest_ip_table"),
            action_id: id_of(info, "update_dst_ip"),
        }
    }

    /// The entry of DNAT pointer `ptr`: rewrite to `ip`, port 8080.
    pub fn entry(&self, ptr: u32, ip: u32) -> Entity {
        Entity {
            entity: Some(entity::Entity::TableEntry(Box::new(TableEntry {
                table_id: self.table_id,
                r#match: vec![FieldMatch {
                    field_id: 1,
                    field_match_type: Some(field_match::FieldMatchType::Exact(
                        field_match::Exact {
                            value: canonical(u64::from(ptr)),
                        },
                    )),
                }],
                action: Some(TableAction {
                    r#type: Some(table_action::Type::Action(Action {
                        action_id: self.action_id,
                        params: vec![
                            action::Param {
                                param_id: 1,
                                value: canonical(u64::from(ip)),
                            },
                            action::Param {
                                param_id: 2,
                                value: canonical(8080),
                            },
                        ],
                    })),
                }),
                ..Default::default()
            }))),
        }
    }

    /// An update of `kind` for the entry of `ptr` (see [`NatTable::entry`]).
    pub fn update(&self, kind: update::Type, ptr: u32, ip: u32) -> Update {
        Update {
            r#type: kind as i32,
            entity: Some(self.entry(ptr, ip)),
        }
    }
}
