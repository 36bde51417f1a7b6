//! Workers on in-memory ring ports: traffic flows end to end, ports come
//! and go at run time, and a committed change is seen by the very next
//! packet without stopping the workers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use p4k8s_dataplane::control::*;
use p4k8s_dataplane::stats::DropReason;
use p4k8s_dataplane::tables::selector::SelectorRef;
use p4k8s_dataplane::worker::{WorkerConfig, Workers};
use p4k8s_dataplane::{DataplaneConfig, Verdict};
use p4k8s_packet::port::ring::RingPort;
use p4k8s_packet::{PacketBuf, QueuePair};

fn queues(port: &RingPort) -> Vec<Box<dyn QueuePair>> {
    (0..port.queues())
        .map(|q| Box::new(port.queue(q).expect("queue")) as Box<dyn QueuePair>)
        .collect()
}

/// Waits up to a second for `port` to transmit `n` frames.
fn collect(port: &RingPort, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut frames = Vec::new();
    while frames.len() < n && Instant::now() < deadline {
        frames.extend(port.take_frames());
        std::thread::yield_now();
    }
    frames
}

/// One worker with ring ports 2..2+n (ring depth `depth`, buffers of
/// `buf_size` bytes, 0 for the default).
fn world(n: u32, depth: usize, buf_size: usize) -> (Control, Workers, Vec<RingPort>) {
    let control = Control::new(DataplaneConfig::small());
    let workers = Workers::start(
        &control,
        &WorkerConfig {
            workers: 1,
            buf_size,
            ..WorkerConfig::default()
        },
    )
    .unwrap();
    let ports: Vec<RingPort> = (0..n).map(|_| RingPort::new(1, depth)).collect();
    for (i, p) in ports.iter().enumerate() {
        workers.add_port(2 + i as u32, queues(p)).unwrap();
    }
    (control, workers, ports)
}

/// `ipv4_to_port_table`: `dst` to `port`, no MAC rewrite.
fn route(
    control: &Control,
    op: fn(u32, SetDestMacVport) -> Op<u32, SetDestMacVport>,
    dst: u32,
    port: u32,
) {
    let r = control.commit(
        vec![TableOp::Ipv4ToPort(op(
            dst,
            SetDestMacVport { port, dmac: [0; 6] },
        ))],
        CommitMode::ContinueOnError,
    );
    assert_eq!(r, vec![Ok(())]);
}

#[test]
fn traffic_crosses_workers_and_ports_follow_commits_at_once() {
    let (control, workers, ports) = world(3, 256, 0);
    let (pa, pb, pc) = (&ports[0], &ports[1], &ports[2]);
    let dst = ip("10.1.0.3");
    route(&control, Op::Insert, dst, 3);

    let frame = udp(ip("10.1.0.2"), dst, 1, 2, b"one");
    for _ in 0..100 {
        assert!(pa.inject_frame(&frame));
    }
    assert_eq!(collect(pb, 100).len(), 100);

    // Re-route: the first packet sent after commit() returns takes the new path.
    for round in 0..50 {
        let (to, port) = if round % 2 == 0 { (4, pc) } else { (3, pb) };
        route(&control, Op::Modify, dst, to);
        assert!(pa.inject_frame(&frame));
        assert_eq!(
            collect(port, 1).len(),
            1,
            "round {round}: packet after the commit went to port {to}"
        );
    }

    // A removed port's traffic is dropped and counted, not sent.
    workers.remove_port(4).unwrap();
    route(&control, Op::Modify, dst, 4);
    let deadline = Instant::now() + Duration::from_secs(1);
    while control.drops(DropReason::NoSuchPort) == 0 && Instant::now() < deadline {
        pa.inject_frame(&frame);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(control.drops(DropReason::NoSuchPort) > 0);
    workers.stop();
}

#[test]
fn commits_are_visible_within_a_millisecond_under_load() {
    let (control, workers, ports) = world(2, 4096, 0);
    let (pa, pb) = (&ports[0], &ports[1]);
    let dst = ip("10.1.0.3");
    let frame = udp(ip("10.1.0.2"), dst, 1, 2, b"x");
    // The worker is busy forwarding to the host port (1, absent: dropped);
    // the route commit must take effect while it runs.
    for _ in 0..1000 {
        pa.inject_frame(&frame);
    }
    let start = Instant::now();
    route(&control, Op::Insert, dst, 3);
    let commit_time = start.elapsed();
    assert!(pa.inject_frame(&frame));
    assert!(!collect(pb, 1).is_empty());
    assert!(
        commit_time < Duration::from_millis(1),
        "commit took {commit_time:?}"
    );
    workers.stop();
}

#[test]
fn atomic_batches_apply_all_or_nothing() {
    let f = Fixture::new();
    let ops = vec![
        TableOp::Ipv4ToPort(Op::Insert(
            1,
            SetDestMacVport {
                port: 2,
                dmac: [0; 6],
            },
        )),
        TableOp::Ipv4ToPort(Op::Insert(
            1,
            SetDestMacVport {
                port: 3,
                dmac: [0; 6],
            },
        )),
    ];
    for mode in [CommitMode::RollbackOnError, CommitMode::DataplaneAtomic] {
        let r = f.control.commit(ops.clone(), mode);
        assert_eq!(r[0], Err(TableError::Aborted));
        assert!(matches!(r[1], Err(TableError::AlreadyExists { .. })));
        assert!(
            f.control.tables().ipv4_to_port.is_empty(),
            "{mode:?} left nothing behind"
        );
    }
    let r = f.control.commit(ops, CommitMode::ContinueOnError);
    assert_eq!(r[0], Ok(()));
    assert!(r[1].is_err());
    assert_eq!(f.control.tables().ipv4_to_port.len(), 1);
    // The spare copy caught up: a later commit sees the entry.
    let r = f.control.commit(
        vec![TableOp::Ipv4ToPort(Op::Delete(1))],
        CommitMode::ContinueOnError,
    );
    assert_eq!(r, vec![Ok(())]);
    assert!(f.control.tables().ipv4_to_port.is_empty());
    assert_eq!(
        f.run(&udp(1, 1, 1, 1, b""), 2).0,
        Verdict::Forward(HOST_PORT)
    );
}

#[test]
fn control_errors_name_table_and_key() {
    let f = Fixture::new();
    let cases: Vec<(TableOp, &str)> = vec![
        (
            TableOp::Ipv4ToPort(Op::Delete(7)),
            "ipv4_to_port_table: no entry 7",
        ),
        (
            TableOp::ArptToPort(Op::SetDefault(SetDestVport { port: 3 })),
            "arpt_to_port_table: the default action is constant",
        ),
        (
            TableOp::WriteDestIp(Op::Insert(1 << 24, NatAction::NoAction)),
            "write_dest_ip_table: invalid value: pointer 0x1000000 does not fit in 24 bits",
        ),
        (
            TableOp::Group(
                ServiceProto::Tcp,
                Op::Insert(
                    1,
                    GroupSpec {
                        members: vec![(5, 1)],
                        max_size: 0,
                    },
                ),
            ),
            "as_sl3_tcp: no entry member 5 (named by a group)",
        ),
        (
            TableOp::AclPodIpProto(
                PolicyDir::Egress,
                Op::Insert(
                    proto_key(1, None),
                    AclAction::RangeCheckRef {
                        pol_id: 1,
                        range_check_ref: 9,
                    },
                ),
            ),
            "acl_pod_ip_proto_table_egress: invalid value: range_check_ref 9 is not 1..=5",
        ),
    ];
    for (op, want) in cases {
        let r = f.control.commit(vec![op], CommitMode::ContinueOnError);
        assert_eq!(r[0].as_ref().unwrap_err().to_string(), want);
    }
    // Defaults of the NAT tables may change, and be reset to the program's.
    let nat_to = |ip| TableOp::WriteDestIp(Op::SetDefault(NatAction::Rewrite { ip, port: 1 }));
    assert_eq!(
        f.control
            .commit(vec![nat_to(9)], CommitMode::ContinueOnError),
        vec![Ok(())]
    );
    assert_eq!(
        f.control.tables().write_dest_ip.default_action(),
        NatAction::Rewrite { ip: 9, port: 1 }
    );
    let reset = TableOp::WriteDestIp(Op::ResetDefault);
    assert_eq!(
        f.control.commit(vec![reset], CommitMode::ContinueOnError),
        vec![Ok(())]
    );
    assert_eq!(
        f.control.tables().write_dest_ip.default_action(),
        NatAction::NoAction
    );
    let r = f.control.commit(
        vec![TableOp::Ipv4ToPort(Op::ResetDefault)],
        CommitMode::ContinueOnError,
    );
    assert!(matches!(
        r[0],
        Err(TableError::ConstDefault {
            table: TableId::Ipv4ToPort
        })
    ));
    let r = f.control.commit(
        vec![TableOp::WriteDestIp(Op::SetDefault(NatAction::NoAction))],
        CommitMode::ContinueOnError,
    );
    assert_eq!(r, vec![Ok(())]);
}

#[test]
fn large_segments_are_split_for_ports_that_cannot_take_them() {
    use p4k8s_packet::offload::VIRTIO_NET_HDR_GSO_TCPV4;
    let (control, workers, ports) = world(2, 256, 8192);
    let (pa, pb) = (&ports[0], &ports[1]);
    let dst = ip("10.1.0.3");
    route(&control, Op::Insert, dst, 3);

    // A 4000-byte TCP super-frame with a partial checksum, as a TAP hands it over.
    let payload: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
    let frame = tcp(ip("10.1.0.2"), dst, 40000, 80, ACK, &payload);
    let mut buf = with_partial_tcp_checksum(frame);
    buf.vnet.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    buf.vnet.hdr_len = 54;
    buf.vnet.gso_size = 1000;
    pa.inject(0, buf).unwrap();
    let segments = collect(pb, 4);
    assert_eq!(segments.len(), 4, "4000 bytes at MSS 1000");
    let mut got = Vec::new();
    for s in &segments {
        assert_checksums(s);
        got.extend_from_slice(&s[54..]);
    }
    assert_eq!(got, payload, "the payload arrives whole and in order");
    workers.stop();
}

#[test]
fn every_table_copy_converges_across_commits_and_resets() {
    let f = Fixture::new();
    let route = |ip: u32, port: u32| {
        TableOp::Ipv4ToPort(Op::Insert(ip, SetDestMacVport { port, dmac: [0; 6] }))
    };
    // Cycle through all three copies several times, with a reset in between;
    // each commit validates against the copy it lands on, so any copy that
    // missed an update would refuse an insert or a delete here.
    for round in 0..4u32 {
        for i in 0..5 {
            f.commit(vec![route(100 * round + i, 2 + i)]);
        }
        f.commit(vec![TableOp::Ipv4ToPort(Op::Delete(100 * round))]);
        assert_eq!(f.control.tables().ipv4_to_port.len(), 4);
        f.control.reset();
        assert!(f.control.tables().ipv4_to_port.is_empty());
        f.commit(vec![route(7, 9)]);
        f.commit(vec![TableOp::Ipv4ToPort(Op::Delete(7))]);
    }
    assert_eq!(
        f.run(&udp(1, 100, 1, 1, b""), 2).0,
        Verdict::Forward(HOST_PORT)
    );
}

#[test]
fn a_flows_two_directions_on_different_workers_share_its_state() {
    let control = Control::new(DataplaneConfig::small());
    let workers = Workers::start(
        &control,
        &WorkerConfig {
            workers: 2,
            ..WorkerConfig::default()
        },
    )
    .unwrap();
    // Two ports with a queue pair per worker: the client's traffic arrives
    // on worker 0's queue, the endpoint's replies on worker 1's.
    let (client_port, ep_port) = (RingPort::new(2, 64), RingPort::new(2, 64));
    workers.add_port(2, queues(&client_port)).unwrap();
    workers.add_port(3, queues(&ep_port)).unwrap();
    let (client, vip, ep) = (ip("10.1.0.2"), ip("10.96.0.10"), ip("10.1.0.3"));
    let ops = vec![
        TableOp::Ipv4ToPort(Op::Insert(
            client,
            SetDestMacVport {
                port: 2,
                dmac: [0; 6],
            },
        )),
        TableOp::Ipv4ToPort(Op::Insert(
            ep,
            SetDestMacVport {
                port: 3,
                dmac: [0; 6],
            },
        )),
        TableOp::WriteDestIp(Op::Insert(1, NatAction::Rewrite { ip: ep, port: 8080 })),
        TableOp::Member(
            ServiceProto::Tcp,
            Op::Insert(1, MemberAction::SetDefaultLbDest { ptr: 1 }),
        ),
        TableOp::Group(
            ServiceProto::Tcp,
            Op::Insert(
                7,
                GroupSpec {
                    members: vec![(1, 1)],
                    max_size: 0,
                },
            ),
        ),
        TableOp::SetMeta(
            ServiceProto::Tcp,
            Op::Insert(
                VipKey { ip: ep, port: 8080 },
                SetMetaAction::SetKeyForReverseCt { ptr: 7 },
            ),
        ),
        TableOp::TxBalance(
            ServiceProto::Tcp,
            Op::Insert(
                VipKey { ip: vip, port: 80 },
                LbAction::Select(SelectorRef::Group(7)),
            ),
        ),
        TableOp::WriteSourceIp(Op::Insert(7, NatAction::Rewrite { ip: vip, port: 80 })),
    ];
    assert!(control
        .commit(ops, CommitMode::RollbackOnError)
        .iter()
        .all(Result::is_ok));

    client_port
        .inject(
            0,
            PacketBuf::from_frame(&tcp(client, vip, 40000, 80, SYN, b"")),
        )
        .unwrap();
    let syn = collect(&ep_port, 1);
    assert_eq!(
        endpoints(&syn[0]),
        (client, 40000, ep, 8080),
        "worker 0 DNATed the SYN"
    );
    ep_port
        .inject(
            1,
            PacketBuf::from_frame(&tcp(ep, client, 8080, 40000, SYN_ACK, b"")),
        )
        .unwrap();
    let reply = collect(&client_port, 1);
    assert_eq!(
        endpoints(&reply[0]),
        (vip, 80, client, 40000),
        "worker 1 found the flow worker 0 learned"
    );
    assert_checksums(&reply[0]);
    workers.stop();
}

/// A burst whose packets all leave by one port is handed to that port as
/// it is; a burst with several destinations is split. Both keep every
/// packet's order, and count drops (full ring, unknown port) the same.
#[test]
fn bursts_to_one_or_several_ports_keep_order_and_counts() {
    let control = Control::new(DataplaneConfig::small());
    let workers = Workers::start(
        &control,
        &WorkerConfig {
            workers: 1,
            ..WorkerConfig::default()
        },
    )
    .unwrap();
    let (pa, pb, pc) = (
        RingPort::new(1, 256),
        RingPort::new(1, 256),
        RingPort::new(1, 16),
    );
    let (to_b, to_c, nowhere) = (ip("10.1.0.3"), ip("10.1.0.4"), ip("10.1.0.5"));
    route(&control, Op::Insert, to_b, 3);
    route(&control, Op::Insert, to_c, 4);
    route(&control, Op::Insert, nowhere, 9);
    let src = ip("10.1.0.2");
    let seq = |f: &[u8]| u16::from_be_bytes([f[f.len() - 2], f[f.len() - 1]]);
    let frame = |dst: u32, i: u16| udp(src, dst, 1, 2, &i.to_be_bytes());
    workers.add_port(3, queues(&pb)).unwrap();
    workers.add_port(4, queues(&pc)).unwrap();

    // 1. One full burst, one destination: queued before port 2 exists, so
    //    the worker's first poll of port 2 takes all 64 at once.
    for i in 0..64 {
        assert!(pa.inject_frame(&frame(to_b, i)));
    }
    workers.add_port(2, queues(&pa)).unwrap();
    let got = collect(&pb, 64);
    assert_eq!(
        got.iter().map(|f| seq(f)).collect::<Vec<_>>(),
        (0..64).collect::<Vec<_>>()
    );

    // 2. Mixed: B, C and an unknown port in turn.
    workers.remove_port(2).unwrap();
    let dsts = [to_b, to_c, nowhere];
    for i in 0..48u16 {
        assert!(pa.inject_frame(&frame(dsts[i as usize % 3], i)));
    }
    workers.add_port(2, queues(&pa)).unwrap();
    let got_b = collect(&pb, 16);
    let got_c = collect(&pc, 16);
    assert_eq!(
        got_b.iter().map(|f| seq(f)).collect::<Vec<_>>(),
        (0..48).step_by(3).collect::<Vec<_>>()
    );
    assert_eq!(
        got_c.iter().map(|f| seq(f)).collect::<Vec<_>>(),
        (1..48).step_by(3).collect::<Vec<_>>()
    );
    let deadline = Instant::now() + Duration::from_secs(1);
    while control.drops(DropReason::NoSuchPort) < 16 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(control.drops(DropReason::NoSuchPort), 16);

    // 3. One destination whose ring holds 16: the first 16 go, 48 are
    //    dropped as TxFull.
    workers.remove_port(2).unwrap();
    for i in 0..64 {
        assert!(pa.inject_frame(&frame(to_c, i)));
    }
    workers.add_port(2, queues(&pa)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while control.drops(DropReason::TxFull) < 48 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(control.drops(DropReason::TxFull), 48);
    assert_eq!(
        pc.take_frames().iter().map(|f| seq(f)).collect::<Vec<_>>(),
        (0..16).collect::<Vec<_>>()
    );
    workers.stop();
}
