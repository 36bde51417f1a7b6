//! Same-path replay within a burst is exact: a burst run as one batch
//! (where packets with the same headers as the one before repeat its run)
//! leaves every frame, verdict, counter and learned flow as the same
//! packets run one per batch (where nothing is repeated).

mod common;

use common::*;
use p4k8s_dataplane::control::*;
use p4k8s_dataplane::stats::DropReason;

const POD_A: &str = "10.1.0.2";
const POD_B: &str = "10.1.0.3";
const POD_C: &str = "10.1.0.4";
const VIP: &str = "10.96.0.10";
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;
const PSH_ACK: u8 = 0x18;

/// Pods A, B, C; a TCP and a UDP service on B and C; ingress policy that
/// denies everything to C on UDP port 53.
fn world() -> Fixture {
    let f = Fixture::new();
    f.add_pod(ip(POD_A), 2);
    f.add_pod(ip(POD_B), 3);
    f.add_pod(ip(POD_C), 4);
    for (proto, group, base) in [(ServiceProto::Tcp, 1, 100), (ServiceProto::Udp, 2, 200)] {
        f.add_service(
            proto,
            ip(VIP),
            80,
            &[(ip(POD_B), 8080), (ip(POD_C), 8080)],
            group,
            base,
        );
    }
    f.commit(vec![TableOp::AclPodIpProto(
        PolicyDir::Ingress,
        Op::Insert(proto_key(ip(POD_C), Some(17)), AclAction::DenyAll),
    )]);
    f
}

/// Everything the two runs must agree on besides the frames.
fn state(f: &Fixture) -> impl PartialEq + std::fmt::Debug {
    let counters: Vec<_> = (0..1024).map(|i| f.control.counter(i)).collect();
    let tables: Vec<_> = TableId::ALL
        .iter()
        .map(|t| f.control.table_stats(*t))
        .collect();
    let drops: Vec<_> = DropReason::all().map(|d| f.control.drops(d)).collect();
    let mut flows: Vec<_> = [FlowDir::Forward, FlowDir::Reverse]
        .into_iter()
        .flat_map(|d| f.control.flows(d))
        .map(|e| format!("{e:?}"))
        .collect();
    flows.sort();
    (f.control.stats(), counters, tables, drops, flows)
}

#[test]
fn a_burst_leaves_what_the_same_packets_leave_one_by_one() {
    let a = ip(POD_A);
    let (vip, b) = (ip(VIP), ip(POD_B));
    let client_tcp = |flags, payload: &[u8]| tcp(a, vip, 40000, 80, flags, payload);
    // Bursts from pod A, each with runs of identical headers: connection
    // set-up (a learn ends every run), established data, a close, a UDP
    // service flow, traffic denied by policy, pod to pod.
    let bursts: Vec<Vec<Vec<u8>>> = vec![
        vec![
            client_tcp(SYN, b""),
            client_tcp(SYN, b""),
            client_tcp(ACK, b""),
            client_tcp(PSH_ACK, b"one"),
            client_tcp(PSH_ACK, b"two"),
            client_tcp(PSH_ACK, b"three"),
        ],
        [
            vec![client_tcp(PSH_ACK, b"data"); 20],
            vec![udp(a, vip, 5000, 80, b"q"); 10],
            vec![udp(a, ip(POD_C), 5000, 53, b"dns"); 5],
            vec![tcp(a, b, 1, 2, ACK, b"x"); 5],
            vec![client_tcp(FIN_ACK, b""); 3],
            vec![client_tcp(ACK, b""); 3],
        ]
        .concat(),
    ];
    let burst = world();
    let single = world();
    for frames in &bursts {
        let together = burst.run_burst(frames, 2);
        let alone: Vec<_> = frames.iter().map(|f| single.run(f, 2)).collect();
        assert_eq!(together, alone);
        burst.advance_ms(1);
        single.advance_ms(1);
    }
    // Replies from whichever endpoint took the connection, as one burst.
    let flows = single.control.flows(FlowDir::Reverse);
    let tcp_ep = flows
        .iter()
        .find(|e| e.key.proto == 6)
        .expect("a TCP reply flow");
    let replies = vec![tcp(tcp_ep.key.src_ip, a, 8080, 40000, PSH_ACK, b"resp"); 8];
    let port = if tcp_ep.key.src_ip == b { 3 } else { 4 };
    let together = burst.run_burst(&replies, port);
    let alone: Vec<_> = replies.iter().map(|f| single.run(f, port)).collect();
    assert_eq!(together, alone);
    assert!(
        together
            .iter()
            .all(|(v, _)| *v == p4k8s_dataplane::Verdict::Forward(2)),
        "replies go back to pod A"
    );
    assert_eq!(state(&burst), state(&single));
}
