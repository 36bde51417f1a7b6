//! §13 Read: wildcards, default entries, members, groups, one-shot
//! entries as written, counters and learned flows.

mod common;

use common::*;
use p4k8s_p4runtime::proto::p4::v1::{
    entity, table_action, ActionProfileAction, ActionProfileActionSet, ActionProfileGroup,
    ActionProfileMember, CounterEntry, Entity, Index, TableAction, TableEntry,
};
use tonic::Code;

fn tx(a: Option<TableAction>) -> Entity {
    entry(
        "tx_balance_tcp",
        vec![exact(1, &[10, 96, 0, 10]), exact(2, &[0, 80])],
        a,
    )
}

fn one_shot(ptrs: &[(u8, i32)]) -> Option<TableAction> {
    Some(TableAction {
        r#type: Some(table_action::Type::ActionProfileActionSet(
            ActionProfileActionSet {
                action_profile_actions: ptrs
                    .iter()
                    .map(|(p, w)| ActionProfileAction {
                        action: Some(action("set_default_lb_dest", &[&[*p]])),
                        weight: *w,
                        watch_kind: None,
                    })
                    .collect(),
                ..Default::default()
            },
        )),
    })
}

fn table_entries(es: Vec<Entity>) -> Vec<TableEntry> {
    es.into_iter()
        .filter_map(|e| match e.entity {
            Some(entity::Entity::TableEntry(t)) => Some(*t),
            _ => None,
        })
        .collect()
}

fn all_members() -> Entity {
    Entity {
        entity: Some(entity::Entity::ActionProfileMember(
            ActionProfileMember::default(),
        )),
    }
}

fn all_groups() -> Entity {
    Entity {
        entity: Some(entity::Entity::ActionProfileGroup(
            ActionProfileGroup::default(),
        )),
    }
}

#[tokio::test]
async fn wildcard_reads_over_one_table_and_all_tables() {
    let (mut h, _s) = ready().await;
    write(
        &mut h.client,
        vec![
            ins(entry(
                "arpt_to_port_table",
                vec![exact(1, &[10, 0, 0, 2])],
                direct(action("set_dest_vport", &[&[2]])),
            )),
            ins(entry(
                "arpt_to_port_table",
                vec![exact(1, &[10, 0, 0, 3])],
                direct(action("set_dest_vport", &[&[3]])),
            )),
            ins(entry(
                "ipv4_to_port_table",
                vec![exact(1, &[10, 0, 0, 2])],
                direct(action("set_dest_mac_vport", &[&[2], &[2, 0, 0, 0, 0, 2]])),
            )),
            ins(entry(
                "tcp_dport_rc_table",
                vec![exact(1, &[4])],
                direct(action(
                    "do_range_check_tcp",
                    &[
                        &[0, 80],
                        &[0, 80],
                        &[1, 0],
                        &[1, 255],
                        &[0],
                        &[0],
                        &[0],
                        &[0],
                        &[0],
                        &[0],
                        &[0],
                        &[0],
                        &[0],
                        &[0],
                        &[0],
                        &[0],
                    ],
                )),
            )),
            ins(entry(
                "udp_dport_rc_table",
                vec![exact(1, &[4])],
                direct(action("udp_acl_deny", &[])),
            )),
        ],
    )
    .await
    .expect("write");
    assert_eq!(
        read_table(&mut h.client, "arpt_to_port_table").await.len(),
        2
    );
    let all = table_entries(
        read(
            &mut h.client,
            vec![Entity {
                entity: Some(entity::Entity::TableEntry(Box::default())),
            }],
        )
        .await
        .expect("read all"),
    );
    assert_eq!(all.len(), 5);
    let rc = all
        .iter()
        .find(|t| t.table_id == tid("tcp_dport_rc_table"))
        .expect("rc entry");
    assert_eq!(
        rc.action,
        direct(action(
            "do_range_check_tcp",
            &[
                &[80],
                &[80],
                &[1, 0],
                &[1, 255],
                &[0],
                &[0],
                &[0],
                &[0],
                &[0],
                &[0],
                &[0],
                &[0],
                &[0],
                &[0],
                &[0],
                &[0]
            ],
        ))
    );
    let udp = all
        .iter()
        .find(|t| t.table_id == tid("udp_dport_rc_table"))
        .expect("udp entry");
    assert_eq!(udp.action, direct(action("udp_acl_deny", &[])));
    // A match filter picks one entry.
    let one =
        read_table_filtered(&mut h, "arpt_to_port_table", vec![exact(1, &[10, 0, 0, 3])]).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].action, direct(action("set_dest_vport", &[&[3]])));
    // Unknown table id.
    let e = read(
        &mut h.client,
        vec![Entity {
            entity: Some(entity::Entity::TableEntry(Box::new(TableEntry {
                table_id: 12345,
                ..Default::default()
            }))),
        }],
    )
    .await
    .expect_err("unknown table");
    assert_eq!(e.code(), Code::NotFound);
    h.stop().await;
}

async fn read_table_filtered(
    h: &mut Harness,
    table: &str,
    m: Vec<p4k8s_p4runtime::proto::p4::v1::FieldMatch>,
) -> Vec<TableEntry> {
    table_entries(
        read(&mut h.client, vec![entry(table, m, None)])
            .await
            .expect("read"),
    )
}

#[tokio::test]
async fn default_entries_of_every_table() {
    let (mut h, _s) = ready().await;
    let all = table_entries(
        read(
            &mut h.client,
            vec![Entity {
                entity: Some(entity::Entity::TableEntry(Box::new(TableEntry {
                    is_default_action: true,
                    ..Default::default()
                }))),
            }],
        )
        .await
        .expect("read defaults"),
    );
    assert_eq!(all.len(), upstream().tables.len());
    assert!(all
        .iter()
        .all(|t| t.is_default_action && t.r#match.is_empty()));
    let arp = all
        .iter()
        .find(|t| t.table_id == tid("arpt_to_port_table"))
        .expect("arp");
    assert_eq!(arp.action, direct(action("set_dest_vport", &[&[1]])));
    let v4 = all
        .iter()
        .find(|t| t.table_id == tid("ipv4_to_port_table"))
        .expect("ipv4");
    assert_eq!(
        v4.action,
        direct(action("set_dest_mac_vport", &[&[1], &[0]]))
    );
    let pf = all
        .iter()
        .find(|t| t.table_id == tid("pinned_flows"))
        .expect("pinned_flows");
    assert_eq!(pf.action, direct(action("pinned_flows_miss", &[])));
    let ipset = all
        .iter()
        .find(|t| t.table_id == tid("acl_ipset_match_table_ingress"))
        .expect("ipset");
    assert_eq!(ipset.action, direct(action("acl_deny", &[])));
    let udp = all
        .iter()
        .find(|t| t.table_id == tid("udp_dport_rc_table"))
        .expect("udp rc");
    assert_eq!(udp.action, direct(action("udp_acl_deny", &[])));
    let tx = all
        .iter()
        .find(|t| t.table_id == tid("tx_balance_tcp"))
        .expect("tx");
    assert_eq!(tx.action, direct(action("NoAction", &[])));
    h.stop().await;
}

#[tokio::test]
async fn members_groups_and_one_shots_read_back_as_written() {
    let (mut h, _s) = ready().await;
    write(
        &mut h.client,
        vec![
            ins(member("as_sl3_tcp", 1, &[1])),
            ins(member("as_sl3_tcp", 2, &[2])),
            ins(member("as_sl3_udp", 7, &[7])),
            ins(group("as_sl3_tcp", 10, &[(1, 1), (2, 3)], 4)),
            ins(tx(one_shot(&[(5, 1), (6, 2)]))),
        ],
    )
    .await
    .expect("write");
    // The one-shot reads back exactly as written.
    let t = read_table(&mut h.client, "tx_balance_tcp").await;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].action, one_shot(&[(5, 1), (6, 2)]));
    // Its hidden members and group are not visible.
    let members = read(&mut h.client, vec![all_members()])
        .await
        .expect("members");
    assert_eq!(members.len(), 3);
    let tcp_members = read(
        &mut h.client,
        vec![Entity {
            entity: Some(entity::Entity::ActionProfileMember(ActionProfileMember {
                action_profile_id: pid("as_sl3_tcp"),
                ..Default::default()
            })),
        }],
    )
    .await
    .expect("tcp members");
    assert_eq!(
        tcp_members,
        vec![member("as_sl3_tcp", 1, &[1]), member("as_sl3_tcp", 2, &[2])]
    );
    let one = read(
        &mut h.client,
        vec![Entity {
            entity: Some(entity::Entity::ActionProfileMember(ActionProfileMember {
                action_profile_id: pid("as_sl3_tcp"),
                member_id: 2,
                action: None,
            })),
        }],
    )
    .await
    .expect("one member");
    assert_eq!(one, vec![member("as_sl3_tcp", 2, &[2])]);
    let groups = read(&mut h.client, vec![all_groups()])
        .await
        .expect("groups");
    assert_eq!(groups, vec![group("as_sl3_tcp", 10, &[(1, 1), (2, 3)], 4)]);
    {
        let set = h.control.tables();
        let sel = set.selector(dataplane::control::ServiceProto::Tcp);
        assert_eq!((sel.members().count(), sel.groups().count()), (4, 2));
    }

    // Modify the one-shot into another one-shot, then into a group: the
    // hidden objects follow, the entry reads back as last written.
    write(&mut h.client, vec![modify(tx(one_shot(&[(9, 1)])))])
        .await
        .expect("modify one-shot");
    assert_eq!(
        read_table(&mut h.client, "tx_balance_tcp").await[0].action,
        one_shot(&[(9, 1)])
    );
    {
        let set = h.control.tables();
        let sel = set.selector(dataplane::control::ServiceProto::Tcp);
        assert_eq!((sel.members().count(), sel.groups().count()), (3, 2));
    }
    let to_group = Some(TableAction {
        r#type: Some(table_action::Type::ActionProfileGroupId(10)),
    });
    write(&mut h.client, vec![modify(tx(to_group.clone()))])
        .await
        .expect("modify to group");
    assert_eq!(
        read_table(&mut h.client, "tx_balance_tcp").await[0].action,
        to_group
    );
    {
        let set = h.control.tables();
        let sel = set.selector(dataplane::control::ServiceProto::Tcp);
        assert_eq!((sel.members().count(), sel.groups().count()), (2, 1));
    }
    // Back to a one-shot, then delete: nothing hidden is left behind.
    write(&mut h.client, vec![modify(tx(one_shot(&[(3, 1), (4, 1)])))])
        .await
        .expect("modify");
    write(&mut h.client, vec![del(tx(None))])
        .await
        .expect("delete");
    assert!(read_table(&mut h.client, "tx_balance_tcp").await.is_empty());
    {
        let set = h.control.tables();
        let sel = set.selector(dataplane::control::ServiceProto::Tcp);
        assert_eq!((sel.members().count(), sel.groups().count()), (2, 1));
    }
    // A one-shot insert that fails leaves nothing behind either.
    write(&mut h.client, vec![ins(tx(to_group))])
        .await
        .expect("insert");
    let e = write(&mut h.client, vec![ins(tx(one_shot(&[(3, 1)])))])
        .await
        .expect_err("duplicate");
    assert_eq!(codes(&e), vec![Code::AlreadyExists]);
    {
        let set = h.control.tables();
        let sel = set.selector(dataplane::control::ServiceProto::Tcp);
        assert_eq!((sel.members().count(), sel.groups().count()), (2, 1));
    }
    h.stop().await;
}

#[tokio::test]
async fn one_shots_in_atomic_batches() {
    let (mut h, _s) = ready().await;
    let e = write_as(
        &mut h.client,
        1,
        p4k8s_p4runtime::proto::p4::v1::write_request::Atomicity::RollbackOnError,
        vec![
            ins(tx(one_shot(&[(1, 1)]))),
            ins(member("as_sl3_tcp", 1, &[1])),
            ins(member("as_sl3_tcp", 1, &[1])),
        ],
    )
    .await
    .expect_err("rolled back");
    assert_eq!(
        codes(&e),
        vec![Code::Aborted, Code::Aborted, Code::AlreadyExists]
    );
    assert!(read_table(&mut h.client, "tx_balance_tcp").await.is_empty());
    assert_eq!(
        h.control
            .tables()
            .selector(dataplane::control::ServiceProto::Tcp)
            .members()
            .count(),
        0
    );
    write_as(
        &mut h.client,
        1,
        p4k8s_p4runtime::proto::p4::v1::write_request::Atomicity::DataplaneAtomic,
        vec![
            ins(tx(one_shot(&[(1, 1)]))),
            modify(tx(one_shot(&[(2, 1)]))),
        ],
    )
    .await
    .expect("atomic one-shots");
    assert_eq!(
        read_table(&mut h.client, "tx_balance_tcp").await[0].action,
        one_shot(&[(2, 1)])
    );
    assert_eq!(
        h.control
            .tables()
            .selector(dataplane::control::ServiceProto::Tcp)
            .members()
            .count(),
        1
    );
    h.stop().await;
}

#[tokio::test]
async fn counters_one_index_or_all() {
    let (mut h, _s) = ready().await;
    h.control.set_counter(3, 11, 1100);
    let read_counter = |id: u32, index: Option<i64>| Entity {
        entity: Some(entity::Entity::CounterEntry(CounterEntry {
            counter_id: id,
            index: index.map(|index| Index { index }),
            data: None,
        })),
    };
    let one = read(&mut h.client, vec![read_counter(cid("pkt_cntr"), Some(3))])
        .await
        .expect("one");
    match &one[..] {
        [Entity {
            entity: Some(entity::Entity::CounterEntry(c)),
        }] => {
            assert_eq!(c.index, Some(Index { index: 3 }));
            assert_eq!(c.data.map(|d| d.packet_count), Some(11));
        }
        other => panic!("{other:?}"),
    }
    let bytes = read(&mut h.client, vec![read_counter(cid("byte_cntr"), Some(3))])
        .await
        .expect("bytes");
    match &bytes[0].entity {
        Some(entity::Entity::CounterEntry(c)) => {
            assert_eq!(c.data.map(|d| d.byte_count), Some(1100))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        read(&mut h.client, vec![read_counter(cid("pkt_cntr"), None)])
            .await
            .expect("all")
            .len(),
        1024
    );
    assert_eq!(
        read(&mut h.client, vec![read_counter(0, None)])
            .await
            .expect("every counter")
            .len(),
        2048
    );
    let e = read(
        &mut h.client,
        vec![read_counter(cid("pkt_cntr"), Some(1024))],
    )
    .await
    .expect_err("range");
    assert_eq!(e.code(), Code::OutOfRange);
    h.stop().await;
}

#[tokio::test]
async fn learned_flows_can_be_read_inserted_and_deleted() {
    let (mut h, _s) = ready().await;
    let flow = |src: [u8; 4], sport: u16, ptr: Option<u8>| {
        entry(
            "pinned_flows",
            vec![
                exact(1, &src),
                exact(2, &[10, 96, 0, 10]),
                exact(3, &[6]),
                exact(4, &sport.to_be_bytes()),
                exact(5, &[80]),
            ],
            ptr.and_then(|p| direct(action("pinned_flows_hit", &[&[p]]))),
        )
    };
    // A flow the dataplane learned by itself.
    h.control.commit(
        vec![dataplane::TableOp::Flow(
            dataplane::control::FlowDir::Forward,
            dataplane::control::Op::Insert(
                dataplane::tables::FlowKey {
                    src_ip: 0x0a00_0002,
                    dst_ip: 0x0a60_000a,
                    proto: 6,
                    src_port: 40000,
                    dst_port: 80,
                },
                dataplane::control::FlowAction { ptr: 1, class: 2 },
            ),
        )],
        dataplane::control::CommitMode::ContinueOnError,
    );
    write(
        &mut h.client,
        vec![ins(flow([10, 0, 0, 3], 40001, Some(2)))],
    )
    .await
    .expect("insert flow");
    let mut flows = read_table(&mut h.client, "pinned_flows").await;
    flows.sort_by_key(|f| format!("{:?}", f.r#match));
    let want = |e: Entity| match e.entity {
        Some(entity::Entity::TableEntry(t)) => *t,
        _ => unreachable!(),
    };
    assert_eq!(
        flows,
        vec![
            want(flow([10, 0, 0, 2], 40000, Some(1))),
            want(flow([10, 0, 0, 3], 40001, Some(2)))
        ]
    );
    write(&mut h.client, vec![del(flow([10, 0, 0, 2], 40000, None))])
        .await
        .expect("delete learned flow");
    assert_eq!(read_table(&mut h.client, "pinned_flows").await.len(), 1);
    let e = write(
        &mut h.client,
        vec![
            ins(flow([10, 0, 0, 3], 40001, Some(2))),
            ins(flow([10, 0, 0, 4], 1, None)),
        ],
    )
    .await
    .expect_err("errors");
    assert_eq!(codes(&e), vec![Code::AlreadyExists, Code::InvalidArgument]);
    assert!(read_table(&mut h.client, "pinned_flows_reverse")
        .await
        .is_empty());
    h.stop().await;
}

#[tokio::test]
#[allow(deprecated)] // controller_metadata: deprecated, still honoured
async fn entry_metadata_is_kept_as_written() {
    let (mut h, _s) = ready().await;
    let with_meta = |port: u8, cm: u64, md: &[u8]| {
        let mut e = entry(
            "arpt_to_port_table",
            vec![exact(1, &[10, 0, 0, 2])],
            direct(action("set_dest_vport", &[&[port]])),
        );
        if let Some(entity::Entity::TableEntry(t)) = e.entity.as_mut() {
            t.controller_metadata = cm;
            t.metadata = md.to_vec();
        }
        e
    };
    write(&mut h.client, vec![ins(with_meta(2, 0xfeed, b"pod-a"))])
        .await
        .expect("insert");
    let t = read_table(&mut h.client, "arpt_to_port_table").await;
    assert_eq!(
        (t[0].controller_metadata, t[0].metadata.as_slice()),
        (0xfeed, &b"pod-a"[..])
    );
    // A failed update leaves it alone; a modify replaces it.
    let e = write(&mut h.client, vec![ins(with_meta(3, 1, b"dup"))])
        .await
        .expect_err("duplicate");
    assert_eq!(codes(&e), vec![Code::AlreadyExists]);
    assert_eq!(
        read_table(&mut h.client, "arpt_to_port_table").await[0].controller_metadata,
        0xfeed
    );
    write(&mut h.client, vec![modify(with_meta(3, 0, b""))])
        .await
        .expect("modify");
    let t = read_table(&mut h.client, "arpt_to_port_table").await;
    assert_eq!(
        (t[0].controller_metadata, t[0].metadata.is_empty()),
        (0, true)
    );
    write(
        &mut h.client,
        vec![modify(with_meta(3, 9, b"again")), del(with_meta(3, 0, b""))],
    )
    .await
    .expect("modify, delete");
    write(&mut h.client, vec![ins(with_meta(4, 0, b""))])
        .await
        .expect("insert again");
    let t = read_table(&mut h.client, "arpt_to_port_table").await;
    assert_eq!(
        (t[0].controller_metadata, t[0].metadata.is_empty()),
        (0, true)
    );
    h.stop().await;
}
