//! §12 Write: error codes, per-update details in order, atomicity,
//! canonical byte strings, priorities and LPM rules.

mod common;

use common::*;
use p4k8s_p4runtime::proto::p4::v1::write_request::Atomicity;
use p4k8s_p4runtime::proto::p4::v1::{
    entity, field_match, table_action, CounterData, CounterEntry, Entity, Index, TableAction,
};
use tonic::Code;

fn arp(ip: &[u8], port: &[u8]) -> Entity {
    entry(
        "arpt_to_port_table",
        vec![exact(1, ip)],
        direct(action("set_dest_vport", &[port])),
    )
}

fn with_priority(mut e: Entity, p: i32) -> Entity {
    if let Some(entity::Entity::TableEntry(t)) = e.entity.as_mut() {
        t.priority = p;
    }
    e
}

fn default_of(table: &str, a: Option<TableAction>) -> Entity {
    let mut e = entry(table, vec![], a);
    if let Some(entity::Entity::TableEntry(t)) = e.entity.as_mut() {
        t.is_default_action = true;
    }
    e
}

#[tokio::test]
async fn failed_updates_are_reported_one_per_update_in_order() {
    let (mut h, _s) = ready().await;
    write(&mut h.client, vec![ins(arp(&[10, 0, 0, 9], &[9]))])
        .await
        .expect("setup");
    let e = write(
        &mut h.client,
        vec![
            ins(arp(&[10, 0, 0, 2], &[2])),
            ins(arp(&[10, 0, 0, 9], &[9])),
            modify(arp(&[10, 0, 0, 77], &[7])),
            ins(arp(&[10, 0, 0, 3], &[1, 0, 0, 0, 0])),
            ins(with_priority(arp(&[10, 0, 0, 4], &[4]), 10)),
            del(arp(&[10, 0, 0, 5], &[0])),
            ins(arp(&[10, 0, 0, 6], &[6])),
        ],
    )
    .await
    .expect_err("some updates fail");
    assert_eq!(e.code(), Code::Unknown);
    assert_eq!(
        codes(&e),
        vec![
            Code::Ok,
            Code::AlreadyExists,
            Code::NotFound,
            Code::OutOfRange,
            Code::InvalidArgument,
            Code::NotFound,
            Code::Ok,
        ]
    );
    let d = details(&e);
    assert_eq!(
        (d[0].space.as_str(), d[0].message.as_str()),
        ("", ""),
        "OK updates are bare"
    );
    assert_eq!(d[1].space, p4k8s_p4runtime::ERROR_SPACE);
    assert!(
        d[1].message
            .contains("k8s_dp_control.arpt_to_port_table [hdr.arp.tpa=0x0a000009]"),
        "{}",
        d[1].message
    );
    assert!(d[1].message.contains("already exists"), "{}", d[1].message);
    assert!(
        d[3].message.contains("set_dest_vport") && d[3].message.contains("parameter p"),
        "{}",
        d[3].message
    );
    assert!(d[4].message.contains("priority"), "{}", d[4].message);
    // CONTINUE_ON_ERROR: the good ones were applied.
    assert_eq!(
        read_table(&mut h.client, "arpt_to_port_table").await.len(),
        3
    );
    h.stop().await;
}

#[tokio::test]
async fn a_big_failed_batch_still_reaches_the_client_as_a_write_failure() {
    let (mut h, _s) = ready().await;
    // 2,000 deletes of missing entries: one p4.v1.Error each would be a
    // ~100 KB trailer, past what the client accepts.
    let template = del(arp(&[10, 0, 0, 0], &[0]));
    let missing: Vec<_> = (0..2000u32)
        .map(|i| {
            let mut u = template.clone();
            if let Some(entity::Entity::TableEntry(t)) =
                u.entity.as_mut().and_then(|e| e.entity.as_mut())
            {
                t.r#match[0].field_match_type =
                    Some(field_match::FieldMatchType::Exact(field_match::Exact {
                        value: (0x0a00_0000 + i).to_be_bytes().to_vec(),
                    }));
            }
            u
        })
        .collect();
    let e = write(&mut h.client, missing)
        .await
        .expect_err("every delete fails");
    assert_eq!(e.code(), Code::Unknown, "{}", e.message());
    assert!(
        e.message()
            .starts_with("Write failed: 2000 of 2000 updates failed (first: #0: "),
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("per-update details omitted"),
        "{}",
        e.message()
    );
    // The connection is fine afterwards.
    write(&mut h.client, vec![ins(arp(&[10, 0, 0, 2], &[2]))])
        .await
        .expect("a write after the failure");
}

#[tokio::test]
async fn rollback_and_dataplane_atomic_apply_nothing_on_failure() {
    let (mut h, _s) = ready().await;
    write(&mut h.client, vec![ins(arp(&[10, 0, 0, 9], &[9]))])
        .await
        .expect("setup");
    for mode in [Atomicity::RollbackOnError, Atomicity::DataplaneAtomic] {
        // A dataplane refusal (duplicate key) rolls back the rest.
        let e = write_as(
            &mut h.client,
            1,
            mode,
            vec![
                ins(arp(&[10, 0, 0, 2], &[2])),
                ins(arp(&[10, 0, 0, 9], &[9])),
                ins(arp(&[10, 0, 0, 3], &[3])),
            ],
        )
        .await
        .expect_err("batch fails");
        assert_eq!(
            codes(&e),
            vec![Code::Aborted, Code::AlreadyExists, Code::Aborted],
            "{mode:?}"
        );
        assert_eq!(
            read_table(&mut h.client, "arpt_to_port_table").await.len(),
            1
        );
        // So does a request error found before the dataplane.
        let e = write_as(
            &mut h.client,
            1,
            mode,
            vec![
                ins(arp(&[10, 0, 0, 2], &[2])),
                ins(arp(&[10, 0, 0, 3], &[])),
            ],
        )
        .await
        .expect_err("batch fails");
        assert_eq!(codes(&e), vec![Code::Aborted, Code::InvalidArgument]);
        assert_eq!(
            read_table(&mut h.client, "arpt_to_port_table").await.len(),
            1
        );
    }
    write_as(
        &mut h.client,
        1,
        Atomicity::DataplaneAtomic,
        vec![
            ins(arp(&[10, 0, 0, 2], &[2])),
            ins(arp(&[10, 0, 0, 3], &[3])),
        ],
    )
    .await
    .expect("atomic batch");
    assert_eq!(
        read_table(&mut h.client, "arpt_to_port_table").await.len(),
        3
    );
    h.stop().await;
}

#[tokio::test]
async fn byte_strings_are_accepted_padded_and_read_back_canonical() {
    let (mut h, _s) = ready().await;
    // 10.0.0.1 padded to 8 bytes; port 1 padded to 4 bytes.
    write(
        &mut h.client,
        vec![ins(arp(&[0, 0, 0, 0, 10, 0, 0, 1], &[0, 0, 0, 1]))],
    )
    .await
    .expect("padded values");
    // pol_id 0 reads back as one zero byte.
    write(
        &mut h.client,
        vec![ins(entry(
            "acl_pod_ip_proto_table_egress",
            vec![exact(1, &[10, 0, 0, 1]), lpm(2, &[0, 6], 8)],
            direct(action("set_status_match_ipset_only", &[&[0, 0]])),
        ))],
    )
    .await
    .expect("zero pol_id");
    let t = read_table(&mut h.client, "arpt_to_port_table").await;
    assert_eq!(t[0].r#match, vec![exact(1, &[10, 0, 0, 1])]);
    assert_eq!(t[0].action, direct(action("set_dest_vport", &[&[1]])));
    let t = read_table(&mut h.client, "acl_pod_ip_proto_table_egress").await;
    assert_eq!(
        t[0].r#match,
        vec![exact(1, &[10, 0, 0, 1]), lpm(2, &[6], 8)]
    );
    assert_eq!(
        t[0].action,
        direct(action("set_status_match_ipset_only", &[&[0]]))
    );
    // Too wide for the field, or empty.
    let e = write(
        &mut h.client,
        vec![
            ins(arp(&[1, 10, 0, 0, 1], &[1])),
            ins(entry(
                "write_dest_ip_table",
                vec![exact(1, &[1, 0, 0, 0])],
                direct(action("update_dst_ip", &[&[10, 0, 0, 1], &[80]])),
            )),
            ins(arp(&[], &[1])),
            ins(entry(
                "write_dest_ip_table",
                vec![exact(1, &[1])],
                direct(action("update_dst_ip", &[&[10, 0, 0, 1], &[1, 0, 0]])),
            )),
        ],
    )
    .await
    .expect_err("bad widths");
    assert_eq!(
        codes(&e),
        vec![
            Code::OutOfRange,
            Code::OutOfRange,
            Code::InvalidArgument,
            Code::OutOfRange
        ]
    );
    assert!(details(&e)[1].message.contains("meta.mod_blob_ptr_dnat"));
    assert!(details(&e)[3].message.contains("new_port"));
    h.stop().await;
}

#[tokio::test]
async fn lpm_rules_priorities_and_match_kinds() {
    let (mut h, _s) = ready().await;
    let ipset = |len: i32, ip: &[u8]| {
        entry(
            "acl_ipset_match_table_egress",
            vec![exact(1, &[3]), lpm(2, ip, len)],
            direct(action("set_ipset_match_result", &[&[1]])),
        )
    };
    let e = write(
        &mut h.client,
        vec![
            ins(ipset(24, &[10, 1, 2, 0])),
            ins(ipset(33, &[10, 1, 2, 0])),
            ins(ipset(16, &[10, 1, 2, 0])),
            ins(ipset(0, &[10, 0, 0, 0])),
            ins(with_priority(ipset(8, &[10, 0, 0, 0]), 1)),
            ins(entry(
                "acl_ipset_match_table_egress",
                vec![lpm(1, &[3], 8)],
                direct(action("set_ipset_match_result", &[&[1]])),
            )),
            ins(entry(
                "acl_ipset_match_table_egress",
                vec![lpm(2, &[10, 0, 0, 0], 8)],
                direct(action("set_ipset_match_result", &[&[1]])),
            )),
            // /0 with a zero value (as the upstream manager sends it): the wildcard.
            ins(ipset(0, &[0])),
            // No LPM field: the same wildcard.
            ins(entry(
                "acl_ipset_match_table_egress",
                vec![exact(1, &[3])],
                direct(action("acl_deny", &[])),
            )),
            ins(entry(
                "acl_ipset_match_table_egress",
                vec![exact(1, &[3]), exact(1, &[3])],
                direct(action("acl_deny", &[])),
            )),
            ins(entry(
                "acl_ipset_match_table_egress",
                vec![exact(1, &[4]), exact(9, &[3])],
                direct(action("acl_deny", &[])),
            )),
        ],
    )
    .await
    .expect_err("bad LPMs");
    assert_eq!(
        codes(&e),
        vec![
            Code::Ok,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::Ok,
            Code::AlreadyExists,
            Code::InvalidArgument,
            Code::InvalidArgument,
        ]
    );
    let d = details(&e);
    assert!(d[2].message.contains("past the /16"), "{}", d[2].message);
    assert!(d[3].message.contains("past the /0"), "{}", d[3].message);
    assert!(d[4].message.contains("priority"), "{}", d[4].message);
    assert!(
        d[6].message.contains("meta.acl_pol_id") && d[6].message.contains("missing"),
        "{}",
        d[6].message
    );
    let t = read_table(&mut h.client, "acl_ipset_match_table_egress").await;
    assert_eq!(t.len(), 2);
    assert!(
        t.iter().any(|e| e.r#match == vec![exact(1, &[3])]),
        "the /0 entry omits its LPM field"
    );
    h.stop().await;
}

#[tokio::test]
async fn default_actions_constant_or_modifiable() {
    let (mut h, _s) = ready().await;
    let e = write(
        &mut h.client,
        vec![
            modify(default_of(
                "arpt_to_port_table",
                direct(action("set_dest_vport", &[&[5]])),
            )),
            ins(default_of(
                "write_dest_ip_table",
                direct(action("NoAction", &[])),
            )),
            modify(default_of(
                "write_dest_ip_table",
                direct(action("update_dst_ip", &[&[10, 0, 0, 1], &[80]])),
            )),
            ins(entry(
                "write_dest_ip_table",
                vec![exact(1, &[1])],
                direct(action("NoAction", &[])),
            )),
            modify(default_of(
                "pinned_flows",
                direct(action("pinned_flows_miss", &[])),
            )),
        ],
    )
    .await
    .expect_err("constant defaults");
    assert_eq!(
        codes(&e),
        vec![
            Code::PermissionDenied,
            Code::InvalidArgument,
            Code::Ok,
            Code::InvalidArgument,
            Code::PermissionDenied,
        ]
    );
    assert!(details(&e)[3].message.contains("@defaultonly"));
    let d = read(&mut h.client, vec![default_of("write_dest_ip_table", None)])
        .await
        .expect("read");
    match &d[0].entity {
        Some(entity::Entity::TableEntry(t)) => {
            assert!(t.is_default_action);
            assert_eq!(
                t.action,
                direct(action("update_dst_ip", &[&[10, 0, 0, 1], &[80]]))
            );
        }
        other => panic!("{other:?}"),
    }
    // MODIFY with no action resets the default.
    write(
        &mut h.client,
        vec![modify(default_of("write_dest_ip_table", None))],
    )
    .await
    .expect("reset");
    let d = read(&mut h.client, vec![default_of("write_dest_ip_table", None)])
        .await
        .expect("read");
    match &d[0].entity {
        Some(entity::Entity::TableEntry(t)) => {
            assert_eq!(t.action, direct(action("NoAction", &[])))
        }
        other => panic!("{other:?}"),
    }
    h.stop().await;
}

#[tokio::test]
async fn selector_errors_resource_exhaustion_and_reserved_ids() {
    let (mut h, _s) = ready().await;
    let vip = |a: Option<TableAction>| {
        entry(
            "tx_balance_tcp",
            vec![exact(1, &[10, 96, 0, 10]), exact(2, &[0, 80])],
            a,
        )
    };
    let grp = |g: u32| {
        Some(TableAction {
            r#type: Some(table_action::Type::ActionProfileGroupId(g)),
        })
    };
    let e = write(
        &mut h.client,
        vec![
            ins(member("as_sl3_tcp", 1, &[1])),
            ins(member("as_sl3_tcp", 2, &[2])),
            ins(member("as_sl3_tcp", 1, &[1])),
            ins(group("as_sl3_tcp", 10, &[(1, 1), (2, 1)], 1)),
            ins(group("as_sl3_tcp", 11, &[(1, 1), (3, 1)], 0)),
            ins(group("as_sl3_tcp", 12, &[(1, -1)], 0)),
            ins(member("as_sl3_tcp", 0x8000_0001, &[1])),
            ins(group("as_sl3_tcp", 10, &[(1, 1), (2, 1)], 0)),
            ins(vip(grp(99))),
            ins(vip(direct(action("set_default_lb_dest", &[&[1]])))),
            ins(vip(grp(10))),
            del(member("as_sl3_tcp", 1, &[1])),
            ins(member("as_sl3_tcp", 5, &[1, 0, 0, 0])),
        ],
    )
    .await
    .expect_err("selector errors");
    assert_eq!(
        codes(&e),
        vec![
            Code::Ok,
            Code::Ok,
            Code::AlreadyExists,
            Code::ResourceExhausted,
            Code::NotFound,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::Ok,
            Code::NotFound,
            Code::InvalidArgument,
            Code::Ok,
            Code::FailedPrecondition,
            Code::OutOfRange,
        ]
    );
    let d = details(&e);
    assert!(d[6].message.contains("reserves"), "{}", d[6].message);
    assert!(d[9].message.contains("indirect"), "{}", d[9].message);
    h.stop().await;
}

#[tokio::test]
async fn counters_are_written_by_index() {
    let (mut h, _s) = ready().await;
    let counter = |name: &str, index: Option<i64>, p: i64, b: i64| Entity {
        entity: Some(entity::Entity::CounterEntry(CounterEntry {
            counter_id: cid(name),
            index: index.map(|index| Index { index }),
            data: Some(CounterData {
                packet_count: p,
                byte_count: b,
            }),
        })),
    };
    write(
        &mut h.client,
        vec![
            modify(counter("pkt_cntr", Some(5), 42, 0)),
            modify(counter("byte_cntr", Some(5), 0, 4200)),
        ],
    )
    .await
    .expect("write counters");
    assert_eq!(h.control.counter(5), Some((42, 4200)));
    let e = write(
        &mut h.client,
        vec![
            modify(counter("pkt_cntr", Some(1024), 1, 0)),
            ins(counter("pkt_cntr", Some(1), 1, 0)),
            modify(counter("pkt_cntr", None, 1, 0)),
        ],
    )
    .await
    .expect_err("bad counter writes");
    assert_eq!(
        codes(&e),
        vec![
            Code::OutOfRange,
            Code::InvalidArgument,
            Code::InvalidArgument
        ]
    );
    h.stop().await;
}

#[tokio::test]
async fn the_upstream_managers_encodings_are_accepted() {
    // p4runtime-go-client as upstream's manager uses it: 16-bit values for
    // 8-bit fields and parameters, and `/0` LPM matches for "any protocol".
    let (mut h, _s) = ready().await;
    let any_proto = || {
        entry(
            "acl_pod_ip_proto_table_ingress",
            vec![exact(1, &[10, 0, 0, 2]), lpm(2, &[0], 0)],
            direct(action("set_status_match_ipset_only", &[&[0, 5]])),
        )
    };
    write(
        &mut h.client,
        vec![
            ins(any_proto()),
            ins(entry(
                "acl_ipset_match_table_ingress",
                vec![exact(1, &[0, 5]), lpm(2, &[10, 1, 0, 0], 16)],
                direct(action("set_ipset_match_result", &[&[1]])),
            )),
        ],
    )
    .await
    .expect("upstream encodings");
    let t = read_table(&mut h.client, "acl_pod_ip_proto_table_ingress").await;
    assert_eq!(
        t[0].r#match,
        vec![exact(1, &[10, 0, 0, 2])],
        "the /0 field reads back omitted"
    );
    assert_eq!(
        t[0].action,
        direct(action("set_status_match_ipset_only", &[&[5]]))
    );
    let t = read_table(&mut h.client, "acl_ipset_match_table_ingress").await;
    assert_eq!(
        t[0].r#match,
        vec![exact(1, &[5]), lpm(2, &[10, 1, 0, 0], 16)]
    );
    write(&mut h.client, vec![del(any_proto())])
        .await
        .expect("delete with the same encoding");
    assert!(read_table(&mut h.client, "acl_pod_ip_proto_table_ingress")
        .await
        .is_empty());
    h.stop().await;
}

#[tokio::test]
async fn each_match_field_and_action_parameter_is_given_exactly_once() {
    let (mut h, _s) = ready().await;
    let mut twice_param = action("update_dst_ip", &[&[10, 0, 0, 1], &[0, 80]]);
    twice_param.params.push(twice_param.params[0].clone());
    let nat = |m: Vec<p4k8s_p4runtime::proto::p4::v1::FieldMatch>, a| {
        entry("write_dest_ip_table", m, direct(a))
    };
    let e = write(
        &mut h.client,
        vec![
            ins(nat(
                vec![exact(1, &[1]), exact(1, &[2])],
                action("update_dst_ip", &[&[10, 0, 0, 1], &[0, 80]]),
            )),
            ins(nat(
                vec![],
                action("update_dst_ip", &[&[10, 0, 0, 1], &[0, 80]]),
            )),
            ins(nat(vec![exact(1, &[3])], twice_param)),
            ins(nat(
                vec![exact(1, &[4])],
                action("update_dst_ip", &[&[10, 0, 0, 1]]),
            )),
            ins(nat(
                vec![exact(1, &[5])],
                action("update_dst_ip", &[&[10, 0, 0, 1], &[0, 80]]),
            )),
        ],
    )
    .await
    .expect_err("four updates fail");
    assert_eq!(
        codes(&e),
        vec![
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::Ok,
        ]
    );
    let d = details(&e);
    for (i, want) in [
        (0, "match field"),
        (0, "appears twice"),
        (1, "exact match field"),
        (1, "is missing"),
        (2, "parameter"),
        (2, "appears twice"),
        (3, "parameter"),
        (3, "is missing"),
    ] {
        assert!(d[i].message.contains(want), "#{i}: {}", d[i].message);
    }
    assert_eq!(
        read_table(&mut h.client, "write_dest_ip_table").await.len(),
        1
    );
    h.stop().await;
}
