//! Shared test fixture: a dataplane, one pipeline, and helpers that build
//! frames with etherparse and program pods and services the way the
//! upstream manager does.
#![allow(dead_code, missing_docs)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etherparse::{PacketBuilder, PacketHeaders, TransportHeader};
use p4k8s_dataplane::control::*;
use p4k8s_dataplane::tables::prefix::PrefixKey;
use p4k8s_dataplane::tables::selector::SelectorRef;
use p4k8s_dataplane::{DataplaneConfig, Pipeline, Verdict};
use p4k8s_packet::{Batch, PacketBuf, MAX_BURST};

pub const HOST_PORT: u32 = 1;
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

pub fn ip(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().expect("test address"))
}

pub fn mac_of(port: u32) -> [u8; 6] {
    [0x02, 0, 0, 0, 1, port as u8]
}

pub struct Fixture {
    pub control: Control,
    pub pipeline: Pipeline,
    pub clock: Arc<AtomicU64>,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_config(DataplaneConfig::small())
    }

    pub fn with_config(cfg: DataplaneConfig) -> Self {
        let clock = Arc::new(AtomicU64::new(1_000));
        let control = Control::with_clock(cfg, Clock::Manual(Arc::clone(&clock)));
        let pipeline = Pipeline::new(&control);
        Fixture {
            control,
            pipeline,
            clock,
        }
    }

    pub fn advance_ms(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn commit(&self, ops: Vec<TableOp>) {
        for (i, r) in self
            .control
            .commit(ops, CommitMode::ContinueOnError)
            .into_iter()
            .enumerate()
        {
            r.unwrap_or_else(|e| panic!("update {i}: {e}"));
        }
    }

    /// Runs one frame; returns its verdict and the frame as it left.
    pub fn run(&self, frame: &[u8], in_port: u32) -> (Verdict, Vec<u8>) {
        let (v, buf) = self.run_buf(PacketBuf::from_frame(frame), in_port);
        (v, buf.data().to_vec())
    }

    /// Runs one packet buffer (with its offload state); returns its verdict
    /// and the buffer as it left.
    pub fn run_buf(&self, buf: PacketBuf, in_port: u32) -> (Verdict, PacketBuf) {
        let mut batch = Batch::new();
        batch.push(buf).unwrap();
        let verdicts = self.run_batch(&mut batch, in_port);
        (verdicts[0], batch.pop().expect("the packet"))
    }

    /// Runs `batch` at the fixture's clock; returns the verdicts.
    fn run_batch(&self, batch: &mut Batch, in_port: u32) -> [Verdict; MAX_BURST] {
        let mut verdicts = [Verdict::Forward(0); MAX_BURST];
        self.pipeline.run(
            batch,
            in_port,
            self.clock.load(Ordering::Relaxed),
            &mut verdicts,
        );
        verdicts
    }

    /// Runs `frames` as one burst; returns each verdict and frame as it left.
    pub fn run_burst(&self, frames: &[Vec<u8>], in_port: u32) -> Vec<(Verdict, Vec<u8>)> {
        let mut batch = Batch::new();
        for f in frames {
            batch.push(PacketBuf::from_frame(f)).unwrap();
        }
        let verdicts = self.run_batch(&mut batch, in_port);
        batch
            .drain()
            .zip(verdicts)
            .map(|(p, v)| (v, p.data().to_vec()))
            .collect()
    }

    /// A pod: ARP and IPv4 entries towards its port, with MAC rewrite.
    pub fn add_pod(&self, addr: u32, port: u32) {
        self.commit(vec![
            TableOp::ArptToPort(Op::Insert(addr, SetDestVport { port })),
            TableOp::Ipv4ToPort(Op::Insert(
                addr,
                SetDestMacVport {
                    port,
                    dmac: mac_of(port),
                },
            )),
        ]);
    }

    /// A service as the upstream manager writes it: per endpoint a DNAT
    /// entry, a selector member and a set_meta entry; one group, one
    /// tx_balance entry and one SNAT entry. Pointers: endpoints `base+i`,
    /// SNAT pointer = group id.
    pub fn add_service(
        &self,
        proto: ServiceProto,
        vip: u32,
        port: u16,
        endpoints: &[(u32, u16)],
        group: u32,
        base: u32,
    ) {
        let mut ops = Vec::new();
        let mut members = Vec::new();
        for (i, (ep_ip, ep_port)) in endpoints.iter().enumerate() {
            let ptr = base + i as u32;
            ops.push(TableOp::WriteDestIp(Op::Insert(
                ptr,
                NatAction::Rewrite {
                    ip: *ep_ip,
                    port: *ep_port,
                },
            )));
            ops.push(TableOp::Member(
                proto,
                Op::Insert(ptr, MemberAction::SetDefaultLbDest { ptr }),
            ));
            ops.push(TableOp::SetMeta(
                proto,
                Op::Insert(
                    VipKey {
                        ip: *ep_ip,
                        port: *ep_port,
                    },
                    SetMetaAction::SetKeyForReverseCt { ptr: group },
                ),
            ));
            members.push((ptr, 1));
        }
        ops.push(TableOp::Group(
            proto,
            Op::Insert(
                group,
                GroupSpec {
                    members,
                    max_size: 0,
                },
            ),
        ));
        ops.push(TableOp::TxBalance(
            proto,
            Op::Insert(
                VipKey { ip: vip, port },
                LbAction::Select(SelectorRef::Group(group)),
            ),
        ));
        ops.push(TableOp::WriteSourceIp(Op::Insert(
            group,
            NatAction::Rewrite { ip: vip, port },
        )));
        self.commit(ops);
    }
}

pub fn prefix32(exact: u8, addr: u32, len: u8) -> PrefixKey<u8> {
    let prefix = if len == 0 {
        0
    } else {
        u128::from(addr & (u32::MAX << (32 - u32::from(len))))
    };
    PrefixKey { exact, prefix, len }
}

pub fn proto_key(pod: u32, proto: Option<u8>) -> PrefixKey<u32> {
    match proto {
        Some(p) => PrefixKey {
            exact: pod,
            prefix: u128::from(p),
            len: 8,
        },
        None => PrefixKey {
            exact: pod,
            prefix: 0,
            len: 0,
        },
    }
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const SYN_ACK: u8 = 0x12;

pub fn tcp(src: u32, dst: u32, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, GW_MAC)
        .ipv4(src.to_be_bytes(), dst.to_be_bytes(), 64)
        .tcp(sport, dport, 1000, 65535);
    if flags & 0x02 != 0 {
        b = b.syn();
    }
    if flags & 0x10 != 0 {
        b = b.ack(2000);
    }
    if flags & 0x01 != 0 {
        b = b.fin();
    }
    if flags & 0x04 != 0 {
        b = b.rst();
    }
    if flags & 0x08 != 0 {
        b = b.psh();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build tcp");
    out
}

pub fn udp(src: u32, dst: u32, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, GW_MAC)
        .ipv4(src.to_be_bytes(), dst.to_be_bytes(), 64)
        .udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build udp");
    out
}

pub fn icmp_echo(src: u32, dst: u32) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, GW_MAC)
        .ipv4(src.to_be_bytes(), dst.to_be_bytes(), 64)
        .icmpv4_echo_request(1, 1);
    let mut out = Vec::new();
    b.write(&mut out, b"ping").expect("build icmp");
    out
}

pub fn arp_request(sender: u32, target: u32) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&sender.to_be_bytes());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.to_be_bytes());
    f
}

/// The frame's addresses and ports: (src, sport, dst, dport).
pub fn endpoints(frame: &[u8]) -> (u32, u16, u32, u16) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("frame parses");
    let ip = match h.net {
        Some(etherparse::NetHeaders::Ipv4(ip, _)) => ip,
        other => panic!("not ipv4: {other:?}"),
    };
    let (sport, dport) = match h.transport {
        Some(TransportHeader::Tcp(t)) => (t.source_port, t.destination_port),
        Some(TransportHeader::Udp(u)) => (u.source_port, u.destination_port),
        _ => (0, 0),
    };
    (
        u32::from_be_bytes(ip.source),
        sport,
        u32::from_be_bytes(ip.destination),
        dport,
    )
}

/// `frame` (Ethernet, IPv4 without options, TCP) as a pod's kernel hands
/// it over with checksum offload: the TCP checksum field holds the folded,
/// uncomplemented pseudo-header sum, and the virtio-net header says where
/// to complete it.
pub fn with_partial_tcp_checksum(mut frame: Vec<u8>) -> PacketBuf {
    use p4k8s_packet::checksum::{fold, sum_words};
    use p4k8s_packet::offload::VIRTIO_NET_HDR_F_NEEDS_CSUM;
    use p4k8s_packet::VnetHeader;
    let l4 = 14 + 20;
    let pseudo = sum_words(0, &frame[26..34]) + 6 + (frame.len() - l4) as u32;
    frame[l4 + 16..l4 + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
    let mut buf = PacketBuf::from_frame(&frame);
    buf.vnet = VnetHeader {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        csum_start: l4 as u16,
        csum_offset: 16,
        ..VnetHeader::NONE
    };
    buf
}

/// Asserts that the IPv4 header checksum and the TCP/UDP checksum of
/// `frame` are right (recomputed by etherparse).
pub fn assert_checksums(frame: &[u8]) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("frame parses");
    let Some(etherparse::NetHeaders::Ipv4(ip, _)) = h.net else {
        panic!("not ipv4")
    };
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "ipv4 header checksum"
    );
    let payload = h.payload.slice();
    match h.transport {
        Some(TransportHeader::Tcp(t)) => {
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv4(&ip, payload).expect("tcp checksum"),
                "tcp checksum"
            );
        }
        // A zero UDP checksum means "none" and is left alone.
        Some(TransportHeader::Udp(u)) if u.checksum != 0 => {
            assert_eq!(
                u.checksum,
                u.calc_checksum_ipv4(&ip, payload).expect("udp checksum"),
                "udp checksum"
            );
        }
        _ => {}
    }
}
