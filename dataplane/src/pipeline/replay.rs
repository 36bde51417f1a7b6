//! Same-path replay within a burst.
//!
//! Bursts from a pod are mostly one flow (a bulk TCP transfer, a UDP
//! stream): consecutive packets with the same headers take the same path
//! through the program and come out with the same verdict, the same
//! rewrites and the same counts. When a packet's [`ReplayKey`] equals the
//! previous packet's, and that packet's run changed no state, the pipeline
//! repeats the previous packet's [`Effects`] and counts instead of running
//! the tables again (OVS's exact-match cache, limited to one burst).
//!
//! Exact by construction:
//! - the key holds every packet field a decision reads (addresses,
//!   protocol, ports, TCP flags, multicast destination, partial checksum);
//!   everything else the program reads is the same for the whole burst
//!   (ingress port, table snapshot, clock, configuration);
//! - a run that changed learner state (a learn, a closing flow moved to
//!   the closing class, a superseded flow removed) is never repeated, so
//!   the next packet runs the program and sees the new state;
//! - the rewrites are applied to each packet with its own offsets, and the
//!   incremental checksum updates are the same because the rewritten
//!   fields hold the same values;
//! - every counter the first run counted is counted again.
//!
//! Refreshing a learned flow's expiry is left out of a repeat: within one
//! burst the clock does not move, so a second refresh would change nothing.
//! A flow another worker learns or a controller deletes while a burst runs
//! is seen from the next burst on: a burst takes microseconds, and updates
//! from other threads already race with packets at that scale.

use p4k8s_packet::PacketMeta;

use super::nat::{self, Side};
use super::Verdict;
use crate::tables::FlowKey;

/// The packet fields the program's decisions depend on, for IPv4 TCP and
/// UDP packets (other packets are not repeated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReplayKey {
    pub(super) flow: FlowKey,
    tcp_flags: u8,
    dst_multicast: bool,
    partial_csum: bool,
}

impl ReplayKey {
    /// The key of a parsed packet whose flow key is `flow`.
    #[inline]
    pub(super) fn new(m: &PacketMeta, flow: &FlowKey, partial_csum: bool) -> Self {
        ReplayKey {
            flow: *flow,
            tcp_flags: m.tcp_flags,
            dst_multicast: m.dst_multicast,
            partial_csum,
        }
    }
}

/// Most header rewrites one path makes: the hairpin reply's destination,
/// DNAT or SNAT, and the hairpin forward source.
const MAX_REWRITES: usize = 3;

/// How a run rewrites headers: it always makes the rewrite; [`Effects`]
/// also notes it so that it can be repeated, [`Direct`] notes nothing.
pub(super) trait Rewrites {
    /// Notes a rewrite of one side (address and port).
    fn note(&mut self, side: Side, ip: u32, port: u16);
    /// Notes a rewrite of the destination MAC.
    fn note_dmac(&mut self, dmac: [u8; 6]);
    /// The run changed learner state: it must not be repeated.
    fn not_repeatable(&mut self);

    /// Rewrites one side of the packet (see [`nat::rewrite`]), and notes it.
    #[inline]
    fn rewrite(
        &mut self,
        frame: &mut [u8],
        m: &mut PacketMeta,
        side: Side,
        ip: u32,
        port: u16,
        partial_csum: bool,
    ) {
        nat::rewrite(frame, m, side, ip, port, partial_csum);
        self.note(side, ip, port);
    }

    /// Rewrites the destination MAC (see [`nat::rewrite_dmac`]), and notes it.
    #[inline]
    fn rewrite_dmac(&mut self, frame: &mut [u8], dmac: [u8; 6]) {
        nat::rewrite_dmac(frame, dmac);
        self.note_dmac(dmac);
    }
}

/// Rewrites made and forgotten, for a run nothing will repeat.
pub(super) struct Direct;

impl Rewrites for Direct {
    #[inline]
    fn note(&mut self, _: Side, _: u32, _: u16) {}

    #[inline]
    fn note_dmac(&mut self, _: [u8; 6]) {}

    #[inline]
    fn not_repeatable(&mut self) {}
}

/// What a packet's run did to the frame, and whether it may be repeated.
#[derive(Debug, Clone, Copy)]
pub(super) struct Effects {
    rewrites: [(Side, u32, u16); MAX_REWRITES],
    n_rewrites: usize,
    dmac: Option<[u8; 6]>,
    /// False once the run changed learner state (or did something that is
    /// not recorded here).
    pub(super) repeatable: bool,
}

impl Default for Effects {
    fn default() -> Self {
        Effects {
            rewrites: [(Side::Source, 0, 0); MAX_REWRITES],
            n_rewrites: 0,
            dmac: None,
            repeatable: true,
        }
    }
}

impl Rewrites for Effects {
    #[inline]
    fn note(&mut self, side: Side, ip: u32, port: u16) {
        if self.n_rewrites < MAX_REWRITES {
            self.rewrites[self.n_rewrites] = (side, ip, port);
            self.n_rewrites += 1;
        } else {
            self.repeatable = false;
        }
    }

    #[inline]
    fn note_dmac(&mut self, dmac: [u8; 6]) {
        self.dmac = Some(dmac);
    }

    #[inline]
    fn not_repeatable(&mut self) {
        self.repeatable = false;
    }
}

impl Effects {
    /// Does to `frame` (parsed as `m`) what the recorded run did.
    #[inline]
    pub(super) fn apply(&self, frame: &mut [u8], m: &PacketMeta, partial_csum: bool) {
        if self.n_rewrites > 0 {
            let mut m = *m;
            for &(side, ip, port) in &self.rewrites[..self.n_rewrites] {
                nat::rewrite(frame, &mut m, side, ip, port, partial_csum);
            }
        }
        if let Some(dmac) = self.dmac {
            nat::rewrite_dmac(frame, dmac);
        }
    }
}

/// The previous packet of a burst, when it may be repeated.
#[derive(Debug, Clone, Copy)]
pub(super) struct Previous {
    pub(super) key: ReplayKey,
    pub(super) verdict: Verdict,
    pub(super) effects: Effects,
}
