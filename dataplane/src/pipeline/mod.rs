//! The k8s program over a batch of packets.
//!
//! Stages, each over the whole batch (VPP/DPDK style):
//! 1. **parse**: every frame to a [`PacketMeta`]; malformed frames get
//!    `Drop(Malformed(..))`. For IPv4 TCP/UDP the flow key is hashed and the
//!    learner buckets it will need are fetched, so their cache misses
//!    overlap instead of stalling one packet at a time.
//! 2. **pass 0 + pass 1** per packet ([`Pipeline::run_one`]): service load
//!    balancing and connection tracking, DNAT, egress policy, SNAT, then
//!    ingress policy and forwarding, exactly as `PIPELINE.md` orders them.
//!    A software target runs pass 1 directly instead of recirculating.
//!    A packet whose headers equal the previous packet's repeats that
//!    packet's verdict, rewrites and counts instead (see [`replay`]).
//!
//! A packet's fate is a [`Verdict`]; nothing on this path allocates, locks,
//! logs or returns an error.
//!
//! ## Hairpin service traffic
//!
//! When a pod reaches a service and the selector picks that very pod, the
//! DNATed packet is `B:p -> B:port`: the pod's kernel drops it (its own
//! address as the source, arriving on `eth0`). With
//! [`DataplaneConfig::hairpin_snat`](crate::DataplaneConfig::hairpin_snat)
//! set (the default, `169.254.42.1`, see
//! [`DEFAULT_HAIRPIN_SNAT`](crate::config::DEFAULT_HAIRPIN_SNAT) for why),
//! p4k8s masquerades such flows as kube-proxy does:
//! - **forward** (`B:p -> VIP:vport`, first and later packets): when, after
//!   the DNAT, the destination address equals the source address and
//!   `ipv4_to_port_table` sends it back out of its ingress port, the
//!   source address becomes the hairpin address (port kept), so the pod
//!   sees `H:p -> B:port`. The reverse flow is learned with that address,
//!   `(B, H, proto, port, p)`, so the learned state records the hairpin.
//! - **reply** (`B:port -> H:p`): a `pinned_flows_reverse` hit whose
//!   destination is the hairpin address gets its destination set back to
//!   its own source address (a hairpin's client is its endpoint), port
//!   kept; the usual SNAT then makes it `VIP:vport -> B:p`, which
//!   `ipv4_to_port_table` delivers to B.
//!
//! Policy sees the flow as if there were no hairpin NAT: both policies
//! see `B:p -> B:port` one way and the reply as any service reply (egress
//! `B:port -> B:p`, ingress `VIP:vport -> B:p`); the forward source is
//! rewritten after ingress policy, the reply's destination before egress
//! policy. (Cilium found that policy checked against its loopback address
//! denied such flows.) Both directions refresh their learned flows and a
//! FIN or RST moves them to the closing class as for any service flow.
//! Cost for other packets: an address compare after a DNAT, one after a
//! reverse hit, and a flag test before forwarding. Upstream has no hairpin
//! NAT; `hairpin_snat: None` restores its behaviour.

pub mod arp;
pub mod nat;
pub mod policy;
mod replay;

use std::sync::Arc;

use p4k8s_packet::{parse, Batch, L3Kind, L4Kind, Malformed, PacketMeta, MAX_BURST};
use smallvec::SmallVec;

use crate::config::Gateway;
use crate::control::{
    Control, FlowDir, LbAction, MemberAction, NatAction, PolicyDir, PortDirection, ServiceProto,
    SetMetaAction, Shared, TableId, VipKey,
};
use crate::stats::{self, CountTrace, DropReason, Tally, WorkerStats};
use crate::tables::selector::selector_hash;
use crate::tables::{FlowKey, LearnOutcome, TableSet};
use nat::Side;
use replay::{Direct, Effects, Previous, ReplayKey, Rewrites};

const IP_PROTO_TCP: u8 = 6;
const IP_PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
/// FIN SYN RST PSH ACK URG: "only SYN set" ignores the ECN bits (ECE, CWR),
/// so a client that negotiates ECN is still load-balanced.
const TCP_CONTROL_FLAGS: u8 = 0x3f;

/// What happens to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send out of this port.
    Forward(u32),
    /// Drop, counted under this reason.
    Drop(DropReason),
}

/// The NAT decision of pass 0 (upstream's `mod_action` and pointers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModAction {
    None,
    WriteDestIp,
    WriteSourceIp,
}

/// One worker's instance of the program: reads the published tables and
/// the shared learner tables, counts into its own [`WorkerStats`].
#[derive(Debug)]
pub struct Pipeline {
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    learn_class: u8,
    closing_class: Option<u8>,
    gateway: Option<Gateway>,
    /// [`crate::DataplaneConfig::hairpin_snat`], as a `u32`.
    hairpin_snat: Option<u32>,
}

/// What every packet of a burst shares.
#[derive(Clone, Copy)]
struct Burst<'t> {
    tables: &'t TableSet,
    in_port: u32,
    dir: PortDirection,
    now: u64,
}

/// Per-packet scratch kept across the stages of a batch.
#[derive(Clone, Copy)]
struct Slot {
    meta: Result<PacketMeta, Malformed>,
    /// For IPv4 TCP and UDP packets: the flow key and the other fields a
    /// run depends on.
    key: Option<ReplayKey>,
    hash: u64,
    /// The frame's L4 checksum is left to the receiver.
    partial_csum: bool,
}

impl Pipeline {
    /// A pipeline for one worker of the dataplane `control` manages.
    pub fn new(control: &Control) -> Self {
        let shared = Arc::clone(control.shared());
        let stats = shared.register_worker();
        Pipeline {
            learn_class: shared.config.learn_class,
            closing_class: shared.config.closing_class,
            gateway: shared.config.gateway,
            hairpin_snat: shared.config.hairpin_snat.map(u32::from),
            shared,
            stats,
        }
    }

    /// This worker's counters.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// Now on the dataplane clock.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    /// Runs the program over `batch`, which arrived on `in_port`; writes
    /// packet i's verdict to `verdicts[i]`.
    pub fn run(
        &self,
        batch: &mut Batch,
        in_port: u32,
        now_ms: u64,
        verdicts: &mut [Verdict; MAX_BURST],
    ) {
        let tables = self.shared.tables.load();
        let (dir, _) = tables.ports.lookup(&in_port);
        let burst = Burst {
            tables: &tables,
            in_port,
            dir,
            now: now_ms,
        };
        // Only the batch's slots are written (an inline vector leaves the
        // rest uninitialised): filling all MAX_BURST of them cost an 8 KiB
        // memset per batch.
        let mut slots: SmallVec<[Slot; MAX_BURST]> = SmallVec::new();
        // Stage 1: parse, hash flow keys, fetch learner buckets (once for a
        // run of packets of one flow).
        let mut last_flow: Option<(FlowKey, u64)> = None;
        for pkt in batch.as_slice() {
            let mut slot = Slot {
                meta: parse(pkt.data()),
                key: None,
                hash: 0,
                partial_csum: pkt.vnet.needs_csum(),
            };
            if let Ok(m) = &slot.meta {
                if m.l3 == L3Kind::Ipv4 && matches!(m.l4, L4Kind::Tcp | L4Kind::Udp) {
                    let key = FlowKey {
                        src_ip: m.src_ip,
                        dst_ip: m.dst_ip,
                        proto: m.ip_proto,
                        src_port: m.src_port,
                        dst_port: m.dst_port,
                    };
                    slot.hash = match last_flow {
                        Some((k, h)) if k == key => h,
                        _ => {
                            let h = key.hash();
                            self.shared.pinned_flows_reverse.prefetch(h);
                            self.shared.pinned_flows.prefetch(h);
                            last_flow = Some((key, h));
                            h
                        }
                    };
                    slot.key = Some(ReplayKey::new(m, &key, slot.partial_csum));
                }
            }
            slots.push(slot);
        }
        // Stage 2: both passes, packet by packet; a packet with the same
        // headers as the one before repeats its run (see `replay`). A run
        // is recorded only when the next packet has the same headers, and
        // its counts are repeated in one go once the run of packets ends.
        let mut trace = CountTrace::new();
        let mut repeats = 0u64;
        let mut previous: Option<Previous> = None;
        let slots = slots.as_slice();
        for (i, (pkt, verdict)) in batch
            .as_mut_slice()
            .iter_mut()
            .zip(verdicts.iter_mut())
            .enumerate()
        {
            let slot = &slots[i];
            *verdict = match &slot.meta {
                Err(reason) => {
                    previous = None;
                    Verdict::Drop(DropReason::Malformed(*reason))
                }
                Ok(meta) => {
                    let partial_csum = slot.partial_csum;
                    match &previous {
                        Some(p) if slot.key == Some(p.key) => {
                            p.effects.apply(pkt.data_mut(), meta, partial_csum);
                            repeats += 1;
                            p.verdict
                        }
                        _ => {
                            stats::repeat(&trace, std::mem::take(&mut repeats));
                            let next_same = slot.key.is_some()
                                && slots.get(i + 1).is_some_and(|next| next.key == slot.key);
                            let frame = pkt.data_mut();
                            if next_same {
                                let mut tally = Tally::<true>::new(&self.stats, &mut trace);
                                let mut effects = Effects::default();
                                let v = self.run_one(
                                    &burst,
                                    slot,
                                    meta,
                                    frame,
                                    &mut tally,
                                    &mut effects,
                                );
                                previous = match slot.key {
                                    Some(key) if effects.repeatable && tally.complete() => {
                                        Some(Previous {
                                            key,
                                            verdict: v,
                                            effects,
                                        })
                                    }
                                    _ => None,
                                };
                                v
                            } else {
                                // Nothing will repeat this run: count without notes.
                                previous = None;
                                let mut tally = Tally::<false>::new(&self.stats, &mut trace);
                                self.run_one(&burst, slot, meta, frame, &mut tally, &mut Direct)
                            }
                        }
                    }
                }
            };
            if let Verdict::Drop(reason) = *verdict {
                self.stats.count_drop(reason);
            }
        }
        stats::repeat(&trace, repeats);
        self.stats.events.packets.add(batch.len() as u64);
    }

    /// Both passes over one parsed packet.
    #[inline]
    fn run_one<const RECORD: bool>(
        &self,
        burst: &Burst<'_>,
        slot: &Slot,
        m: &PacketMeta,
        frame: &mut [u8],
        s: &mut Tally<'_, '_, RECORD>,
        fx: &mut impl Rewrites,
    ) -> Verdict {
        let Burst {
            tables: t,
            in_port,
            dir,
            now,
        } = *burst;
        let mut m = *m;
        let partial_csum = slot.partial_csum;
        let hash = slot.hash;
        let flow = slot.key.map(|k| k.flow).unwrap_or_default();
        let key = &flow;
        s.pkt_count(10);
        // Pass 0, step 1: multicast and broadcast are dropped, except ARP.
        if m.dst_multicast && m.l3 != L3Kind::Arp {
            return Verdict::Drop(DropReason::Multicast);
        }
        match m.l3 {
            L3Kind::Ipv4 => {}
            L3Kind::Arp => {
                if let Some(gw) = self.gateway {
                    if m.arp_tpa == gw.ip && arp::answer(frame, &m, gw) {
                        s.event(|e| &e.arp_replies);
                        return Verdict::Forward(in_port);
                    }
                }
                let (a, hit) = t.arpt_to_port.lookup(&m.arp_tpa);
                s.lookup(TableId::ArptToPort, hit);
                return Verdict::Forward(a.port);
            }
            // Upstream has no IPv6: it goes to the host port, like anything else.
            L3Kind::Ipv6 | L3Kind::Other => return Verdict::Forward(crate::tables::set::HOST_PORT),
        }

        // Pass 0, steps 2-5: services and connection tracking.
        let mut mod_action = ModAction::None;
        let mut dnat_ptr = 0u32;
        let mut snat_ptr = 0u32;
        let mut nat_done = false;
        // Hairpin source address to write once ingress policy has passed.
        let mut hairpin_src: Option<u32> = None;
        let service = match m.l4 {
            L4Kind::Tcp if m.ip_proto == IP_PROTO_TCP => Some(ServiceProto::Tcp),
            L4Kind::Udp if m.ip_proto == IP_PROTO_UDP => Some(ServiceProto::Udp),
            _ => None,
        };
        if let Some(proto) = service {
            let closing = proto == ServiceProto::Tcp && m.tcp_flags & (TCP_FIN | TCP_RST) != 0;
            if closing {
                // A hit moves the flow to the closing class.
                fx.not_repeatable();
            }
            let balance = proto == ServiceProto::Udp || m.tcp_flags & TCP_CONTROL_FLAGS == TCP_SYN;
            let mut new_flow = false;
            if balance {
                let (lb, hit) = t.tx_balance[proto.index()].lookup(&VipKey {
                    ip: m.dst_ip,
                    port: m.dst_port,
                });
                s.lookup(
                    proto_table(proto, TableId::TxBalanceTcp, TableId::TxBalanceUdp),
                    hit,
                );
                if hit {
                    new_flow = true;
                    if let LbAction::Select(target) = lb {
                        let picked = t.selectors[proto.index()]
                            .select(target, selector_hash(m.src_ip, m.src_port));
                        if let Some(MemberAction::SetDefaultLbDest { ptr }) =
                            picked.map(MemberAction::decode)
                        {
                            mod_action = ModAction::WriteDestIp;
                            dnat_ptr = ptr;
                        }
                    }
                    // pinned_flows: a hit keeps the flow's endpoint; a miss learns it.
                    match self.flow_lookup(s, FlowDir::Forward, key, hash, now, closing) {
                        Some(ptr) => {
                            mod_action = ModAction::WriteDestIp;
                            dnat_ptr = ptr;
                        }
                        None => {
                            if dnat_ptr != 0 {
                                self.learn(s, fx, FlowDir::Forward, key, hash, dnat_ptr, now);
                            }
                        }
                    }
                }
            }
            // A SYN that no service claims looks nothing up (as upstream),
            // except for a closed service connection whose reply flow has
            // the same addresses and ports as this new connection's
            // replies: that flow is over (it is in the closing class), and
            // left alone it would SNAT the new SYN-ACK to the VIP.
            if !new_flow && balance && proto == ServiceProto::Tcp {
                if let Some(class) = self.closing_class {
                    fx.not_repeatable();
                    let reply = key.reversed();
                    if self.shared.pinned_flows_reverse.remove_in_class(
                        &reply,
                        reply.hash(),
                        class,
                        now,
                    ) {
                        s.event(|e| &e.superseded_flows);
                    }
                }
            }
            if !new_flow && (proto == ServiceProto::Udp || !balance) {
                // Reply traffic first, then later packets of a forward flow.
                if let Some(ptr) = self.flow_lookup(s, FlowDir::Reverse, key, hash, now, closing) {
                    mod_action = ModAction::WriteSourceIp;
                    snat_ptr = ptr;
                    // A hairpin reply: its client is itself.
                    if self.hairpin_snat == Some(m.dst_ip) {
                        let (client, port) = (m.src_ip, m.dst_port);
                        fx.rewrite(frame, &mut m, Side::Destination, client, port, partial_csum);
                        s.event(|e| &e.hairpin_rewrites);
                    }
                } else if proto == ServiceProto::Tcp {
                    if let Some(ptr) =
                        self.flow_lookup(s, FlowDir::Forward, key, hash, now, closing)
                    {
                        mod_action = ModAction::WriteDestIp;
                        dnat_ptr = ptr;
                    }
                }
            }
            if mod_action == ModAction::WriteDestIp {
                let (nat, hit) = t.write_dest_ip.lookup(&dnat_ptr);
                s.lookup(TableId::WriteDestIp, hit);
                if let NatAction::Rewrite { ip, port } = nat {
                    fx.rewrite(frame, &mut m, Side::Destination, ip, port, partial_csum);
                    s.event(|e| &e.nat_rewrites);
                    if m.dst_ip == m.src_ip {
                        hairpin_src = self.hairpin_source(t, in_port, m.dst_ip);
                    }
                }
                if new_flow {
                    // The reply's key: post-DNAT endpoint back to the client.
                    let (sm, hit) = t.set_meta[proto.index()].lookup(&VipKey {
                        ip: m.dst_ip,
                        port: m.dst_port,
                    });
                    s.lookup(
                        proto_table(proto, TableId::SetMetaTcp, TableId::SetMetaUdp),
                        hit,
                    );
                    let mut rkey = *key;
                    let mut rhash = hash;
                    if let SetMetaAction::SetKeyForReverseCt { ptr } = sm {
                        rkey = FlowKey {
                            src_ip: m.dst_ip,
                            dst_ip: hairpin_src.unwrap_or(m.src_ip),
                            proto: m.ip_proto,
                            src_port: m.dst_port,
                            dst_port: m.src_port,
                        };
                        rhash = rkey.hash();
                        snat_ptr = ptr;
                    }
                    match self.flow_lookup(s, FlowDir::Reverse, &rkey, rhash, now, false) {
                        Some(ptr) => {
                            mod_action = ModAction::WriteSourceIp;
                            snat_ptr = ptr;
                        }
                        None => {
                            if snat_ptr != 0 {
                                self.learn(s, fx, FlowDir::Reverse, &rkey, rhash, snat_ptr, now);
                            }
                        }
                    }
                }
                nat_done = true;
            }
        }

        // Pass 0, step 6: egress policy, then SNAT of replies.
        if dir == PortDirection::HostToNet {
            if !policy::allows(t, s, PolicyDir::Egress, &m) {
                return Verdict::Drop(DropReason::EgressPolicy);
            }
            s.pkt_count(199);
            if mod_action == ModAction::WriteSourceIp && !nat_done {
                let (nat, hit) = t.write_source_ip.lookup(&snat_ptr);
                s.lookup(TableId::WriteSourceIp, hit);
                if let NatAction::Rewrite { ip, port } = nat {
                    fx.rewrite(frame, &mut m, Side::Source, ip, port, partial_csum);
                    s.event(|e| &e.nat_rewrites);
                }
            }
        } else {
            s.pkt_count(199);
        }

        // Pass 1 (NET_TO_HOST): ingress policy, then forwarding.
        s.pkt_count(10);
        if !policy::allows(t, s, PolicyDir::Ingress, &m) {
            return Verdict::Drop(DropReason::IngressPolicy);
        }
        s.pkt_count(299);
        let (fwd, hit) = t.ipv4_to_port.lookup(&m.dst_ip);
        s.lookup(TableId::Ipv4ToPort, hit);
        fx.rewrite_dmac(frame, fwd.dmac);
        if let Some(src) = hairpin_src {
            let port = m.src_port;
            fx.rewrite(frame, &mut m, Side::Source, src, port, partial_csum);
            s.event(|e| &e.hairpin_rewrites);
        }
        Verdict::Forward(fwd.port)
    }

    /// The hairpin source address for a DNATed packet whose destination
    /// `addr` is also its source: `Some` when hairpin NAT is on and the
    /// packet goes back out of the port it came in on (a peek at
    /// `ipv4_to_port_table`, not counted: pass 1 looks the same key up
    /// and counts it).
    #[cold]
    #[inline(never)]
    fn hairpin_source(&self, t: &TableSet, in_port: u32, addr: u32) -> Option<u32> {
        let h = self.hairpin_snat?;
        (t.ipv4_to_port.lookup(&addr).0.port == in_port).then_some(h)
    }

    #[inline]
    fn flow_lookup<const RECORD: bool>(
        &self,
        s: &mut Tally<'_, '_, RECORD>,
        dir: FlowDir,
        key: &FlowKey,
        hash: u64,
        now: u64,
        closing: bool,
    ) -> Option<u32> {
        let (table, id) = match dir {
            FlowDir::Forward => (&self.shared.pinned_flows, TableId::PinnedFlows),
            FlowDir::Reverse => (
                &self.shared.pinned_flows_reverse,
                TableId::PinnedFlowsReverse,
            ),
        };
        let hit = table.lookup(key, hash, now, self.closing_class.filter(|_| closing));
        s.lookup(id, hit.is_some());
        hit
    }

    /// Learns a flow; the run that learns is never repeated (the next
    /// packet of the flow must find what was learned).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn learn<const RECORD: bool>(
        &self,
        s: &mut Tally<'_, '_, RECORD>,
        fx: &mut impl Rewrites,
        dir: FlowDir,
        key: &FlowKey,
        hash: u64,
        ptr: u32,
        now: u64,
    ) {
        fx.not_repeatable();
        match self
            .shared
            .flows(dir)
            .learn(key, hash, ptr, self.learn_class, now)
        {
            LearnOutcome::Added => s.event(|e| &e.learned),
            LearnOutcome::Exists(_) => {}
            LearnOutcome::Full => s.event(|e| &e.learn_failed),
        }
    }
}

#[inline]
fn proto_table(p: ServiceProto, tcp: TableId, udp: TableId) -> TableId {
    match p {
        ServiceProto::Tcp => tcp,
        ServiceProto::Udp => udp,
    }
}
