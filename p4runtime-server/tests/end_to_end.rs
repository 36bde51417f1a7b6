//! End to end: the entries upstream's manager writes for 3 pods and a
//! 2-endpoint TCP service, written over P4Runtime, then packets through a
//! `dataplane::Pipeline`: a SYN to the VIP is DNATed to an endpoint and
//! forwarded to its pod's port, the reply is SNATed back to the VIP.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use dataplane::control::Clock;
use dataplane::{Control, DataplaneConfig, Pipeline, Verdict};
use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use p4k8s_p4runtime::proto::p4::v1::{table_action, TableAction, Update};
use p4k8s_packet::{Batch, PacketBuf, MAX_BURST};

const CLIENT: [u8; 4] = [10, 0, 0, 2];
const EP1: [u8; 4] = [10, 0, 0, 3];
const EP2: [u8; 4] = [10, 0, 0, 4];
const VIP: [u8; 4] = [10, 96, 0, 10];
const GROUP: u32 = 100;

fn mac(port: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 1, port]
}

/// Per pod: `arpt_to_port_table` + `ipv4_to_port_table`.
fn pod(ip: [u8; 4], port: u8) -> Vec<Update> {
    vec![
        ins(entry(
            "arpt_to_port_table",
            vec![exact(1, &ip)],
            direct(action("set_dest_vport", &[&[port]])),
        )),
        ins(entry(
            "ipv4_to_port_table",
            vec![exact(1, &ip)],
            direct(action("set_dest_mac_vport", &[&[port], &mac(port)])),
        )),
    ]
}

/// The service as upstream's manager writes it.
fn service() -> Vec<Update> {
    let mut u = Vec::new();
    for (i, ep) in [EP1, EP2].iter().enumerate() {
        let ptr = [i as u8 + 1];
        u.push(ins(entry(
            "write_dest_ip_table",
            vec![exact(1, &ptr)],
            direct(action("update_dst_ip", &[ep, &8080u16.to_be_bytes()])),
        )));
        u.push(ins(member("as_sl3_tcp", u32::from(ptr[0]), &ptr)));
    }
    // As upstream's manager writes it: weights unset (0), max_size 128.
    u.push(ins(group("as_sl3_tcp", GROUP, &[(1, 0), (2, 0)], 128)));
    for ep in [EP1, EP2] {
        u.push(ins(entry(
            "set_meta_tcp",
            vec![exact(1, &ep), exact(2, &8080u16.to_be_bytes())],
            direct(action("set_key_for_reverse_ct", &[&[GROUP as u8]])),
        )));
    }
    u.push(ins(entry(
        "tx_balance_tcp",
        vec![exact(1, &VIP), exact(2, &80u16.to_be_bytes())],
        Some(TableAction {
            r#type: Some(table_action::Type::ActionProfileGroupId(GROUP)),
        }),
    )));
    u.push(ins(entry(
        "write_source_ip_table",
        vec![exact(1, &[GROUP as u8])],
        direct(action("update_src_ip", &[&VIP, &80u16.to_be_bytes()])),
    )));
    u
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, syn: bool, ack: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([0x02, 0, 0, 0, 0, 0x10], [0x02, 0, 0, 0, 0, 0xfe])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 65535);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(2000);
    }
    let payload = b"hello";
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build frame");
    out
}

/// (dst MAC, src IP, src port, dst IP, dst port), checking checksums.
fn parse(frame: &[u8]) -> ([u8; 6], [u8; 4], u16, [u8; 4], u16) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("frame parses");
    let Some(etherparse::LinkHeader::Ethernet2(eth)) = h.link else {
        panic!("not ethernet")
    };
    let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
        panic!("not ipv4")
    };
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "ipv4 checksum"
    );
    let Some(TransportHeader::Tcp(t)) = h.transport else {
        panic!("not tcp")
    };
    assert_eq!(
        t.checksum,
        t.calc_checksum_ipv4(&ip, h.payload.slice())
            .expect("tcp checksum"),
        "tcp checksum"
    );
    (
        eth.destination,
        ip.source,
        t.source_port,
        ip.destination,
        t.destination_port,
    )
}

fn run(pipeline: &Pipeline, clock: &AtomicU64, frame: &[u8], in_port: u32) -> (Verdict, Vec<u8>) {
    let mut batch = Batch::new();
    batch
        .push(PacketBuf::from_frame(frame))
        .expect("room in batch");
    let mut verdicts = [Verdict::Forward(0); MAX_BURST];
    pipeline.run(
        &mut batch,
        in_port,
        clock.load(Ordering::Relaxed),
        &mut verdicts,
    );
    (verdicts[0], batch.as_slice()[0].data().to_vec())
}

#[tokio::test]
async fn upstream_manager_entries_drive_the_pipeline() {
    let clock = Arc::new(AtomicU64::new(1_000));
    let control = Arc::new(Control::with_clock(
        DataplaneConfig::small(),
        Clock::Manual(Arc::clone(&clock)),
    ));
    let pipeline = Pipeline::new(&control);
    let mut h = Harness::with_control(Arc::clone(&control)).await;
    let _s = primary(&mut h.client, 1).await;
    set_pipeline(
        &mut h.client,
        1,
        p4k8s_p4runtime::proto::p4::v1::set_forwarding_pipeline_config_request::Action::VerifyAndCommit,
        Some(upstream()),
        1,
    )
    .await
    .expect("upstream pipeline");
    let mut updates = Vec::new();
    for (ip, port) in [(CLIENT, 2), (EP1, 3), (EP2, 4)] {
        updates.extend(pod(ip, port));
    }
    updates.extend(service());
    write(&mut h.client, updates)
        .await
        .expect("manager's entries");

    // The client's SYN to the VIP goes to one endpoint, DNATed.
    let (v, out) = run(
        &pipeline,
        &clock,
        &tcp(CLIENT, VIP, 40000, 80, true, false),
        2,
    );
    let (dmac, src, sport, dst, dport) = parse(&out);
    assert_eq!((src, sport, dport), (CLIENT, 40000, 8080));
    let ep_port = if dst == EP1 {
        3
    } else {
        assert_eq!(dst, EP2);
        4
    };
    assert_eq!(v, Verdict::Forward(u32::from(ep_port)));
    assert_eq!(dmac, mac(ep_port));

    // The next packet of the connection sticks to it.
    let (v, out) = run(
        &pipeline,
        &clock,
        &tcp(CLIENT, VIP, 40000, 80, false, true),
        2,
    );
    assert_eq!(v, Verdict::Forward(u32::from(ep_port)));
    assert_eq!(parse(&out).3, dst);

    // The endpoint's reply leaves with the VIP as its source, to the client.
    let (v, out) = run(
        &pipeline,
        &clock,
        &tcp(dst, CLIENT, 8080, 40000, true, true),
        u32::from(ep_port),
    );
    assert_eq!(v, Verdict::Forward(2));
    let (dmac, src, sport, dst2, dport) = parse(&out);
    assert_eq!((src, sport, dst2, dport), (VIP, 80, CLIENT, 40000));
    assert_eq!(dmac, mac(2));

    // The learned flows are visible over P4Runtime.
    let fwd = read_table(&mut h.client, "pinned_flows").await;
    assert_eq!(fwd.len(), 1);
    assert_eq!(
        fwd[0].r#match,
        vec![
            exact(1, &CLIENT),
            exact(2, &VIP),
            exact(3, &[6]),
            exact(4, &40000u16.to_be_bytes()),
            exact(5, &[80])
        ]
    );
    // With time_since_last_hit asked for, the idle time comes back too.
    clock.fetch_add(1_500, Ordering::Relaxed);
    let mut ask = entry("pinned_flows", vec![], None);
    if let Some(p4k8s_p4runtime::proto::p4::v1::entity::Entity::TableEntry(t)) = ask.entity.as_mut()
    {
        t.time_since_last_hit = Some(Default::default());
    }
    let fwd = read(&mut h.client, vec![ask])
        .await
        .expect("read with idle time");
    match &fwd[0].entity {
        Some(p4k8s_p4runtime::proto::p4::v1::entity::Entity::TableEntry(t)) => {
            assert_eq!(
                t.time_since_last_hit.map(|i| i.elapsed_ns),
                Some(1_500_000_000)
            );
        }
        other => panic!("{other:?}"),
    }
    let rev = read_table(&mut h.client, "pinned_flows_reverse").await;
    assert_eq!(rev.len(), 1);
    assert_eq!(
        rev[0].action,
        direct(action("pinned_flows_reverse_hit", &[&[GROUP as u8]]))
    );
    h.stop().await;
}
