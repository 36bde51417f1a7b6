//! AF_PACKET ports for the node's own interfaces: the host port (one end
//! of a veth pair whose other end stays in the host stack) and uplinks.
//!
//! Each queue is one `AF_PACKET` socket with `TPACKET_V3` rings in one
//! shared mapping: a block-based RX ring (the kernel fills blocks of
//! frames and hands a whole block over; we copy frames out and give the
//! block back) and a TX ring of fixed-size frames (we fill frames, mark
//! them `TP_STATUS_SEND_REQUEST`, and one `sendto` per burst kicks them
//! all). So rx costs no system call and tx one per burst.
//!
//! Sockets are non-blocking, use `PACKET_QDISC_BYPASS` where the kernel
//! allows it, ignore the frames we sent ourselves (`PACKET_IGNORE_OUTGOING`
//! and a `PACKET_OUTGOING` check), and join one `PACKET_FANOUT_HASH` group
//! when there are several queues, so a flow always lands on one queue and
//! each frame on exactly one.
//!
//! With [`AfPacketConfig::vnet_hdr`] (`PACKET_VNET_HDR`), every frame
//! carries a virtio-net header both ways, as on a TAP: the host stack's
//! TSO super-frames and partial checksums arrive as they are (rx puts the
//! header in each packet's [`p4k8s_packet::PacketBuf::vnet`]) and can be
//! passed to a TAP unchanged, and tx hands large frames, with the header
//! from their `vnet`, to the kernel to segment. Without it, rx completes partial checksums itself
//! and super-frames larger than the pool's buffers are dropped (turn TSO
//! and GSO off on the peer then: `ethtool -K <peer> tso off gso off`).
//!
//! TPACKET_V3 retires a partly filled block only after
//! [`AfPacketConfig::block_timeout_ms`]: at low rates a frame may wait up
//! to that long before rx sees it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use p4k8s_packet::{Batch, BufPool, PortCounters, PortId, QueuePair, TxOutcome};
use thiserror::Error;

use crate::mapping::{Mapping, Populate};
use crate::netns::{self, NetNs, NetnsError};
use crate::sockopt;
use crate::tap::{
    complete_l4_checksum, complete_partial_checksum, VnetHeader, VNET_HDR_BASE_LEN, VNET_HDR_LEN,
};

// linux/if_packet.h, linux/if_ether.h
const SOL_PACKET: libc::c_int = 263;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_LOSS: libc::c_int = 14;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const TPACKET_V3: libc::c_int = 2;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
const PACKET_OUTGOING: u8 = 4;
const ETH_P_ALL: u16 = 0x0003;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

// Offsets into the ring structures (struct tpacket_block_desc with
// tpacket_hdr_v1; struct tpacket3_hdr followed by struct sockaddr_ll at
// TPACKET_ALIGN(sizeof(tpacket3_hdr)) = 48). Checked against libc's
// definitions in the tests below.
const BD_BLOCK_STATUS: usize = 8;
const BD_NUM_PKTS: usize = 12;
const BD_OFFSET_TO_FIRST_PKT: usize = 16;
const H3_NEXT_OFFSET: usize = 0;
const H3_SNAPLEN: usize = 12;
const H3_LEN: usize = 16;
const H3_STATUS: usize = 20;
const H3_MAC: usize = 24;
const H3_SLL_PKTTYPE: usize = 48 + 10;
/// Where a TX frame's data starts in its slot: `TPACKET3_HDRLEN -
/// sizeof(struct sockaddr_ll)`.
const TX_DATA_OFFSET: usize = 48;
/// `sizeof(struct sockaddr_ll)`, which follows the frame header on rx.
const SOCKADDR_LL_LEN: usize = 20;

/// How to open an AF_PACKET port.
#[derive(Debug, Clone)]
pub struct AfPacketConfig {
    /// The interface.
    pub ifname: String,
    /// The namespace the interface is in; `None` for the caller's.
    pub netns: Option<String>,
    /// Queues (sockets in one fanout group): one per worker, at least 1.
    pub queues: usize,
    /// RX ring block size in bytes: a multiple of the page size, larger
    /// than the largest frame (default 64 KiB, ~450 minimum-size frames).
    pub block_size: usize,
    /// RX ring blocks per queue (default 64). The kernel retires a block
    /// at the latest every `block_timeout_ms`, so a queue that is not
    /// polled for `block_count * block_timeout_ms` drops even at low rates.
    pub block_count: usize,
    /// How long the kernel may keep a partly filled RX block, in ms
    /// (default 1).
    pub block_timeout_ms: u32,
    /// TX slot size in bytes, a multiple of 16; frames up to
    /// `tx_frame_size - 48` bytes can be sent (default 2048).
    pub tx_frame_size: usize,
    /// TX slots per queue (default 512).
    pub tx_frames: usize,
    /// Ask for `PACKET_QDISC_BYPASS` (default true).
    pub qdisc_bypass: bool,
    /// Stored in [`p4k8s_packet::PacketBuf::port`] of every received frame.
    pub port_id: PortId,
    /// Carry a virtio-net header on every frame (`PACKET_VNET_HDR`), for
    /// TSO super-frames and partial checksums both ways (default false).
    /// Needs `block_size` of at least 128 KiB, pools of
    /// [`crate::tap::MAX_GSO_FRAME`]-sized buffers, and a `tx_frame_size`
    /// large enough for the frames to be sent.
    pub vnet_hdr: bool,
}

impl AfPacketConfig {
    /// Defaults for `ifname` in the caller's namespace, one queue.
    pub fn new(ifname: &str) -> Self {
        AfPacketConfig {
            ifname: ifname.to_owned(),
            netns: None,
            queues: 1,
            block_size: 64 << 10,
            block_count: 64,
            block_timeout_ms: 1,
            tx_frame_size: 2048,
            tx_frames: 512,
            qdisc_bypass: true,
            port_id: 0,
            vnet_hdr: false,
        }
    }
}

/// An AF_PACKET port operation that failed.
#[derive(Debug, Error)]
pub enum AfPacketError {
    /// The configuration cannot be applied.
    #[error("bad AF_PACKET config for {ifname:?}: {what}")]
    BadConfig {
        /// Interface name.
        ifname: String,
        /// What is wrong.
        what: &'static str,
    },
    /// A system call failed.
    #[error("{op} on AF_PACKET socket for {ifname:?} (queue {queue}): {source}")]
    Os {
        /// The call, e.g. `setsockopt(PACKET_RX_RING)`.
        op: &'static str,
        /// Interface name.
        ifname: String,
        /// Queue number.
        queue: usize,
        /// The OS error.
        source: io::Error,
    },
    /// The namespace or the interface could not be found.
    #[error("AF_PACKET port on {ifname:?}: {source}")]
    Netns {
        /// Interface name.
        ifname: String,
        /// What failed.
        source: NetnsError,
    },
}

/// An AF_PACKET port: one [`AfPacketQueue`] per worker.
#[derive(Debug)]
pub struct AfPacketPort {
    ifname: String,
    ifindex: u32,
    queues: Vec<Option<AfPacketQueue>>,
    counters: Arc<PortCounters>,
    qdisc_bypass: bool,
}

/// One queue of an [`AfPacketPort`]: a socket and its mapped rings, owned
/// by one worker. Dropping it unmaps the rings and closes the socket.
#[derive(Debug)]
pub struct AfPacketQueue {
    ring: Mapping,
    fd: OwnedFd,
    queue: usize,
    port_id: PortId,
    counters: Arc<PortCounters>,
    // RX: blocks at the start of the mapping.
    block_size: usize,
    block_count: usize,
    block: usize,
    /// Inside an opened block: packets left and the next one's offset.
    in_block: bool,
    pkts_left: u32,
    pkt_off: usize,
    // TX: slots after the RX blocks.
    tx_base: usize,
    tx_frame_size: usize,
    tx_frames: usize,
    /// Slots are laid out block by block: `tx_per_block` slots at the start
    /// of each `tx_block_size`-byte block (the rest of a block is unused).
    tx_block_size: usize,
    tx_per_block: usize,
    tx_next: usize,
    /// Frames whose partial L4 checksum rx completed.
    csum_completed: u64,
    /// Frames carry a virtio-net header (`PACKET_VNET_HDR`).
    vnet_hdr: bool,
}

// SAFETY: the mapping and the socket are owned by one queue, which one
// worker uses at a time (`&mut self` for rx and tx); the kernel side of the
// rings is synchronised through the status words with acquire/release.
unsafe impl Send for AfPacketQueue {}

/// The system page size.
fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

impl AfPacketPort {
    /// Opens `config.queues` sockets on `config.ifname` with their rings.
    pub fn create(config: &AfPacketConfig) -> Result<Self, AfPacketError> {
        let bad = |what| AfPacketError::BadConfig {
            ifname: config.ifname.clone(),
            what,
        };
        let page = page_size();
        if config.queues == 0 || config.queues > 64 {
            return Err(bad("queues must be 1 to 64"));
        }
        if config.block_size == 0
            || !config.block_size.is_multiple_of(page)
            || config.block_count == 0
        {
            return Err(bad(
                "block_size must be a multiple of the page size, block_count > 0",
            ));
        }
        if config.tx_frame_size < TX_DATA_OFFSET + 64
            || !config.tx_frame_size.is_multiple_of(16)
            || config.tx_frames == 0
        {
            return Err(bad(
                "tx_frame_size must be a multiple of 16 of at least 112, tx_frames > 0",
            ));
        }
        if config.vnet_hdr && config.block_size < 128 << 10 {
            return Err(bad("vnet_hdr needs block_size of at least 128 KiB"));
        }
        let ns_err = |source| AfPacketError::Netns {
            ifname: config.ifname.clone(),
            source,
        };
        // Sockets are made in the interface's namespace and keep it.
        let (ifindex, socks) = match &config.netns {
            Some(ns) => {
                let ns = NetNs::open(ns).map_err(ns_err)?;
                ns.run(|| open_sockets(config)).map_err(ns_err)??
            }
            None => open_sockets(config)?,
        };
        let counters = Arc::new(PortCounters::default());
        let mut queues = Vec::with_capacity(socks.len());
        let mut qdisc_bypass = config.qdisc_bypass;
        for (queue, (fd, geo, bypass)) in socks.into_iter().enumerate() {
            qdisc_bypass &= bypass;
            let len = geo.rx_len + geo.tx_len;
            // The rings' total size is `len`, as configured with
            // PACKET_RX/TX_RING; the queue keeps the socket.
            let ring = Mapping::shared(fd.as_fd(), len, 0, Populate::Yes).map_err(|source| {
                AfPacketError::Os {
                    op: "mmap(rings)",
                    ifname: config.ifname.clone(),
                    queue,
                    source,
                }
            })?;
            queues.push(Some(AfPacketQueue {
                ring,
                fd,
                queue,
                port_id: config.port_id,
                counters: Arc::clone(&counters),
                block_size: config.block_size,
                block_count: config.block_count,
                block: 0,
                in_block: false,
                pkts_left: 0,
                pkt_off: 0,
                tx_base: geo.rx_len,
                tx_frame_size: config.tx_frame_size,
                tx_frames: geo.tx_frames,
                tx_block_size: geo.tx_block_size,
                tx_per_block: geo.tx_per_block,
                tx_next: 0,
                csum_completed: 0,
                vnet_hdr: config.vnet_hdr,
            }));
        }
        Ok(AfPacketPort {
            ifname: config.ifname.clone(),
            ifindex,
            queues,
            counters,
            qdisc_bypass,
        })
    }

    /// Number of queues.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Takes queue `q` for a worker; `None` when there is no such queue or
    /// it was taken already.
    pub fn take_queue(&mut self, q: usize) -> Option<AfPacketQueue> {
        self.queues.get_mut(q).and_then(Option::take)
    }

    /// The port's counters, shared by all its queues.
    pub fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index (in its namespace).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// True when every socket bypasses the qdisc layer on tx.
    pub fn qdisc_bypass(&self) -> bool {
        self.qdisc_bypass
    }
}

/// Ring sizes of one socket.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    rx_len: usize,
    tx_len: usize,
    tx_frames: usize,
    tx_block_size: usize,
    tx_per_block: usize,
}

type Sockets = (u32, Vec<(OwnedFd, Geometry, bool)>);

/// Opens and binds every queue's socket (in the calling thread's namespace).
fn open_sockets(config: &AfPacketConfig) -> Result<Sockets, AfPacketError> {
    let ifindex = netns::ifindex(&config.ifname).map_err(|source| AfPacketError::Netns {
        ifname: config.ifname.clone(),
        source,
    })?;
    let mut socks = Vec::with_capacity(config.queues);
    let mut fanout_id = None;
    for queue in 0..config.queues {
        let os = |op, source| AfPacketError::Os {
            op,
            ifname: config.ifname.clone(),
            queue,
            source,
        };
        // Protocol 0: nothing is queued until bind, after the rings exist.
        // SAFETY: plain socket(2) call with constant arguments.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(os("socket(AF_PACKET)", io::Error::last_os_error()));
        }
        // SAFETY: `raw` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let fdr = fd.as_fd();
        setsockopt_int(fdr, PACKET_VERSION, TPACKET_V3)
            .map_err(|e| os("setsockopt(PACKET_VERSION=TPACKET_V3)", e))?;
        // Discard malformed TX frames instead of stalling the ring.
        setsockopt_int(fdr, PACKET_LOSS, 1).map_err(|e| os("setsockopt(PACKET_LOSS)", e))?;
        let bypass = config.qdisc_bypass && setsockopt_int(fdr, PACKET_QDISC_BYPASS, 1).is_ok();
        // Kernels before 4.20 lack it; rx also checks PACKET_OUTGOING.
        let _ = setsockopt_int(fdr, PACKET_IGNORE_OUTGOING, 1);
        if config.vnet_hdr {
            // Must precede the rings.
            setsockopt_int(fdr, PACKET_VNET_HDR, 1)
                .map_err(|e| os("setsockopt(PACKET_VNET_HDR)", e))?;
        }

        let rx = libc::tpacket_req3 {
            tp_block_size: config.block_size as u32,
            tp_block_nr: config.block_count as u32,
            tp_frame_size: 2048,
            tp_frame_nr: (config.block_size / 2048 * config.block_count) as u32,
            tp_retire_blk_tov: config.block_timeout_ms.max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt_struct(fdr, PACKET_RX_RING, &rx)
            .map_err(|e| os("setsockopt(PACKET_RX_RING)", e))?;
        // TX: blocks of whole pages holding an integral number of slots.
        let page = page_size();
        let tx_block = config.tx_frame_size.div_ceil(page) * page;
        let per_block = tx_block / config.tx_frame_size;
        let tx_blocks = config.tx_frames.div_ceil(per_block);
        let tx = libc::tpacket_req3 {
            tp_block_size: tx_block as u32,
            tp_block_nr: tx_blocks as u32,
            tp_frame_size: config.tx_frame_size as u32,
            tp_frame_nr: (tx_blocks * per_block) as u32,
            tp_retire_blk_tov: 0,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt_struct(fdr, PACKET_TX_RING, &tx)
            .map_err(|e| os("setsockopt(PACKET_TX_RING)", e))?;

        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is an initialised sockaddr_ll and its size is passed.
        let rc = unsafe {
            libc::bind(
                fdr.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(os("bind", io::Error::last_os_error()));
        }
        if config.queues > 1 {
            let arg = match fanout_id {
                None => (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16,
                Some(id) => (PACKET_FANOUT_HASH << 16) | id,
            };
            setsockopt_int(fdr, PACKET_FANOUT, arg as libc::c_int)
                .map_err(|e| os("setsockopt(PACKET_FANOUT)", e))?;
            if fanout_id.is_none() {
                let v = getsockopt_int(fdr, PACKET_FANOUT)
                    .map_err(|e| os("getsockopt(PACKET_FANOUT)", e))?;
                fanout_id = Some(v as u32 & 0xffff);
            }
        }
        let geo = Geometry {
            rx_len: config.block_size * config.block_count,
            tx_len: tx_block * tx_blocks,
            tx_frames: tx_blocks * per_block,
            tx_block_size: tx_block,
            tx_per_block: per_block,
        };
        socks.push((fd, geo, bypass));
    }
    Ok((ifindex, socks))
}

fn setsockopt_int(fd: BorrowedFd<'_>, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    sockopt::set(fd, SOL_PACKET, opt, &val)
}

fn setsockopt_struct<T>(fd: BorrowedFd<'_>, opt: libc::c_int, val: &T) -> io::Result<()> {
    sockopt::set(fd, SOL_PACKET, opt, val)
}

/// An int option; a shorter answer leaves the rest zero, as before.
fn getsockopt_int(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<libc::c_int> {
    sockopt::get_with_len(fd, SOL_PACKET, opt).map(|(val, _)| val)
}

impl AfPacketQueue {
    /// This queue's number within its port.
    pub fn queue(&self) -> usize {
        self.queue
    }

    /// The kernel's counters for this socket since the last call: frames
    /// it queued to the RX ring and frames it dropped because the ring was
    /// full (`PACKET_STATISTICS`, which resets them). A system call: for
    /// the control path.
    pub fn kernel_stats(&self) -> io::Result<(u32, u32)> {
        // struct tpacket_stats_v3; a shorter answer leaves the rest zero.
        let (st, _): ([u32; 3], _) =
            sockopt::get_with_len(self.fd.as_fd(), SOL_PACKET, PACKET_STATISTICS)?;
        Ok((st[0], st[1]))
    }

    /// Frames whose partial TCP/UDP checksum (`TP_STATUS_CSUMNOTREADY`)
    /// this queue's rx has completed.
    pub fn csum_completed(&self) -> u64 {
        self.csum_completed
    }

    /// Byte offset in the mapping of TX slot `i`: the kernel places
    /// `tx_per_block` slots at the start of each block.
    #[inline]
    fn tx_slot(&self, i: usize) -> usize {
        self.tx_base
            + (i / self.tx_per_block) * self.tx_block_size
            + (i % self.tx_per_block) * self.tx_frame_size
    }

    /// The status word at byte `off` of the mapping.
    #[inline]
    fn status(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.ring.len());
        // SAFETY: `off` is 4-aligned (block, slot and header offsets are)
        // and inside the mapping, which lives as long as `self`; the kernel
        // accesses this word concurrently, so it is only used atomically.
        unsafe { AtomicU32::from_ptr(self.ring.ptr().add(off).cast()) }
    }

    /// A plain u32 of a ring structure the kernel handed to us.
    #[inline]
    fn read_u32(&self, off: usize) -> u32 {
        debug_assert!(off + 4 <= self.ring.len());
        // SAFETY: inside the mapping; the kernel does not write this block
        // or slot while its status gives it to user space.
        unsafe { std::ptr::read_unaligned(self.ring.ptr().add(off).cast::<u32>()) }
    }

    /// Bytes `[off, off + len)` of the mapping.
    #[inline]
    fn bytes(&self, off: usize, len: usize) -> &[u8] {
        debug_assert!(off + len <= self.ring.len());
        // SAFETY: bounds checked by the callers against the block or slot;
        // the kernel does not write the block while user space owns it.
        unsafe { std::slice::from_raw_parts(self.ring.ptr().add(off), len) }
    }

    /// Returns the current RX block to the kernel and moves to the next.
    #[inline]
    fn release_block(&mut self) {
        let bd = self.block * self.block_size;
        self.status(bd + BD_BLOCK_STATUS)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.in_block = false;
        self.block = (self.block + 1) % self.block_count;
    }
}

impl QueuePair for AfPacketQueue {
    /// Copies frames out of ready RX blocks (no system call). Frames that
    /// we sent, and frames larger than the pool's buffers, are skipped; the
    /// latter are counted as drops. Frames whose TCP/UDP checksum the
    /// kernel left partial (`TP_STATUS_CSUMNOTREADY`) get it completed.
    fn rx_burst(&mut self, pool: &mut BufPool, batch: &mut Batch) -> usize {
        let mut n = 0;
        let mut bytes = 0;
        let mut drops = 0u64;
        let mut csum_completed = 0u64;
        while batch.remaining() > 0 {
            let bd = self.block * self.block_size;
            if !self.in_block {
                if self.status(bd + BD_BLOCK_STATUS).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                    break;
                }
                self.in_block = true;
                self.pkts_left = self.read_u32(bd + BD_NUM_PKTS);
                self.pkt_off = self.read_u32(bd + BD_OFFSET_TO_FIRST_PKT) as usize;
                if self.pkts_left == 0 {
                    self.release_block();
                    continue;
                }
            }
            let h = bd + self.pkt_off;
            let next = self.read_u32(h + H3_NEXT_OFFSET) as usize;
            let snap = self.read_u32(h + H3_SNAPLEN) as usize;
            let wire_len = self.read_u32(h + H3_LEN) as usize;
            let mac = usize::from(u16::from_ne_bytes([
                self.bytes(h + H3_MAC, 2)[0],
                self.bytes(h + H3_MAC, 2)[1],
            ]));
            let pkttype = self.bytes(h + H3_SLL_PKTTYPE, 1)[0];
            let in_block = self.pkt_off + mac + snap <= self.block_size
                && (!self.vnet_hdr || mac >= TX_DATA_OFFSET + SOCKADDR_LL_LEN + VNET_HDR_BASE_LEN);
            if pkttype != PACKET_OUTGOING {
                let mut buf = pool.get();
                if !in_block || snap != wire_len || snap > buf.room() {
                    drops += 1;
                    pool.put(buf);
                } else {
                    buf.receive_area()[..snap].copy_from_slice(self.bytes(h + mac, snap));
                    buf.set_len(snap);
                    if self.vnet_hdr {
                        // The kernel puts the header just before the frame.
                        let hdr = self.bytes(h + mac - VNET_HDR_BASE_LEN, VNET_HDR_BASE_LEN);
                        // `parse` cannot fail on a base-length slice.
                        buf.vnet = VnetHeader::parse(hdr).unwrap_or_default();
                    } else if self.read_u32(h + H3_STATUS) & TP_STATUS_CSUMNOTREADY != 0 {
                        // The host stack left the L4 checksum to "hardware"
                        // (veth, tx offload on): complete it here. A frame
                        // that cannot be completed is still delivered.
                        if complete_l4_checksum(buf.data_mut()).is_ok() {
                            csum_completed += 1;
                        }
                    }
                    buf.port = self.port_id;
                    bytes += snap;
                    n += 1;
                    if let Err(buf) = batch.push(buf) {
                        pool.put(buf); // unreachable: remaining() > 0 was checked
                    }
                }
            }
            self.pkts_left -= 1;
            self.pkt_off += next;
            if self.pkts_left == 0 || next == 0 {
                self.release_block();
            }
        }
        if n > 0 {
            self.counters.count_rx(n, bytes);
        }
        if drops > 0 {
            self.counters.drops.fetch_add(drops, Ordering::Relaxed);
        }
        self.csum_completed += csum_completed;
        n
    }

    /// Copies frames into free TX slots and kicks them with one `sendto`,
    /// each with its own virtio-net header ([`p4k8s_packet::PacketBuf::vnet`]). With [`AfPacketConfig::vnet_hdr`] the
    /// header goes to the kernel, which segments GSO frames and completes
    /// partial checksums; without it, partial checksums are completed here
    /// and GSO frames are dropped. Frames that find the ring full, or are
    /// larger than a slot, are dropped. A frame counts as sent once it is in
    /// the ring: the kernel may still drop it (a full device queue), which
    /// shows in the interface's own counters.
    fn tx_burst(&mut self, batch: &mut Batch, pool: &mut BufPool) -> TxOutcome {
        let mut out = TxOutcome::default();
        let mut bytes = 0;
        let hdr_len = if self.vnet_hdr { VNET_HDR_BASE_LEN } else { 0 };
        let room = self.tx_frame_size - TX_DATA_OFFSET - hdr_len;
        for pkt in batch.drain() {
            let mut hdr = pkt.vnet;
            let slot = self.tx_slot(self.tx_next);
            let status = self.status(slot + H3_STATUS).load(Ordering::Acquire);
            let len = pkt.len();
            // Without a header on the wire a super-frame cannot be sent.
            if status != TP_STATUS_AVAILABLE || len > room || (!self.vnet_hdr && hdr.is_gso()) {
                out.dropped += 1;
                pool.put(pkt);
                continue;
            }
            let mut hdr_bytes = [0u8; VNET_HDR_LEN];
            hdr.emit(&mut hdr_bytes);
            let data = TX_DATA_OFFSET + hdr_len;
            // SAFETY: the slot is ours while its status is AVAILABLE; the
            // area `[slot + 48, slot + 48 + hdr_len + len)` lies inside the
            // slot (len <= room) and so inside the mapping; the returned
            // slice is the only reference to it and is last used before the
            // status store hands the slot to the kernel.
            let frame = unsafe {
                let base = self.ring.ptr().add(slot);
                std::ptr::copy_nonoverlapping(
                    hdr_bytes.as_ptr(),
                    base.add(TX_DATA_OFFSET),
                    hdr_len,
                );
                std::ptr::copy_nonoverlapping(pkt.data().as_ptr(), base.add(data), len);
                std::ptr::write_unaligned(base.add(H3_NEXT_OFFSET).cast::<u32>(), 0);
                std::ptr::write_unaligned(
                    base.add(H3_SNAPLEN).cast::<u32>(),
                    (hdr_len + len) as u32,
                );
                std::ptr::write_unaligned(base.add(H3_LEN).cast::<u32>(), (hdr_len + len) as u32);
                std::slice::from_raw_parts_mut(base.add(data), len)
            };
            if !self.vnet_hdr && hdr.needs_csum() {
                // Complete it in the slot; a bad position leaves it as is.
                let _ = complete_partial_checksum(frame, &mut hdr);
            }
            self.status(slot + H3_STATUS)
                .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
            self.tx_next = (self.tx_next + 1) % self.tx_frames;
            out.sent += 1;
            bytes += len;
            pool.put(pkt);
        }
        // Kick also when the ring was full: a kick that failed part-way
        // (ENOBUFS from a full device queue) leaves slots pending that only
        // another kick sends.
        if out.sent > 0 || out.dropped > 0 {
            // SAFETY: a zero-length send with no buffer and no address: it
            // only asks the kernel to transmit the ring's pending slots.
            let _ = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
        }
        self.counters.count_tx(out.sent, bytes, out.dropped);
        out
    }

    /// With `PACKET_VNET_HDR` the kernel takes large segments and partial
    /// checksums; without it, frames must be complete.
    fn accepts_offloads(&self) -> bool {
        self.vnet_hdr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn ring_offsets_match_the_kernel_structs() {
        assert_eq!(
            offset_of!(libc::tpacket3_hdr, tp_next_offset),
            H3_NEXT_OFFSET
        );
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_snaplen), H3_SNAPLEN);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_len), H3_LEN);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_status), H3_STATUS);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_mac), H3_MAC);
        assert_eq!(
            size_of::<libc::tpacket3_hdr>().next_multiple_of(16),
            TX_DATA_OFFSET
        );
        assert_eq!(
            TX_DATA_OFFSET + offset_of!(libc::sockaddr_ll, sll_pkttype),
            H3_SLL_PKTTYPE
        );
        assert_eq!(offset_of!(libc::tpacket_block_desc, hdr), 8);
        assert_eq!(
            offset_of!(libc::tpacket_hdr_v1, block_status),
            BD_BLOCK_STATUS - 8
        );
        assert_eq!(offset_of!(libc::tpacket_hdr_v1, num_pkts), BD_NUM_PKTS - 8);
        assert_eq!(
            offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt),
            BD_OFFSET_TO_FIRST_PKT - 8
        );
    }
}
