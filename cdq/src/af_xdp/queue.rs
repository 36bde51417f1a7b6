//! One queue of an AF_XDP port: the socket's rings driven as a
//! [`QueuePair`], copying frames between the UMEM and [`PacketBuf`]s.
//!
//! - rx: read up to a burst of RX descriptors, copy each frame into a pool
//!   buffer, give its UMEM frame straight back through the fill ring (RX
//!   frames never leave the queue, so the fill ring always has room).
//! - tx: first take finished frames back from the completion ring, then
//!   copy each packet into a free TX frame and publish the burst on the TX
//!   ring.
//!
//! System calls: none per packet. The kernel is kicked (`sendto` for TX,
//! `recvfrom` for RX) only when a ring's `XDP_RING_NEED_WAKEUP` flag asks,
//! and at most once per burst. In copy mode the kernel always asks for TX,
//! so tx costs one `sendto` per burst, as AF_PACKET's ring does. The kernel
//! sends at most 32 frames per kick in copy mode unless the socket raised
//! that (`XDP_MAX_TX_SKB_BUDGET`, Linux 6.17+; we ask for 128); frames left
//! on the TX ring are kicked again by the next rx or tx burst.
//!
//! Zero-copy would go here: rx would hand the UMEM frame itself to the
//! pipeline (a [`PacketBuf`] backed by the frame, given back to the fill
//! ring when freed) and tx would publish such frames without a copy. That
//! needs buffers that can own external memory, and a driver with
//! `XDP_ZEROCOPY`; veth has neither.
//!
//! [`PacketBuf`]: p4k8s_packet::PacketBuf

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use p4k8s_packet::{Batch, BufPool, PortCounters, PortId, QueuePair, TxOutcome};

use super::ring::{Ring, XdpDesc};
use super::socket::{self, XskParts};
use super::umem::Umem;
use super::xdp_prog::XdpAttachment;

/// Named per-queue counters of conditions that [`PortCounters`] sums up as
/// drops, and of kicks. Owned by the queue's worker, read with
/// [`AfXdpQueue::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AfXdpQueueStats {
    /// Received frames larger than the pool's buffers (dropped).
    pub rx_too_large: u64,
    /// RX descriptors that point outside the RX frames or cross a frame
    /// boundary (dropped; a kernel bug if ever seen).
    pub rx_bad_desc: u64,
    /// Frames to send that are empty or larger than a UMEM frame (dropped).
    pub tx_too_large: u64,
    /// Frames to send that found no free TX frame (dropped).
    pub tx_ring_full: u64,
    /// Completion entries that are not TX frames (ignored; a kernel bug if
    /// ever seen).
    pub tx_bad_completion: u64,
    /// Wake-up system calls made because the kernel asked.
    pub kicks: u64,
    /// Kicks that failed with something other than `EAGAIN`/`EBUSY`/`ENOBUFS`.
    pub kick_errors: u64,
}

/// The kernel's counters of one AF_XDP socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpKernelStats {
    /// Frames dropped for other reasons than a full ring.
    pub rx_dropped: u64,
    /// Invalid descriptors in the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors in the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty when kicked.
    pub tx_ring_empty_descs: u64,
}

/// One queue of an [`super::AfXdpPort`]: an AF_XDP socket bound to one
/// device queue, its UMEM and rings, owned by one worker. Dropping it
/// closes the socket (which leaves the port's `XSKMAP`); the last queue or
/// port handle to go detaches the XDP program.
#[derive(Debug)]
pub struct AfXdpQueue {
    // Rings first: unmapped before the socket closes.
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<XdpDesc>,
    tx: Ring<XdpDesc>,
    fd: OwnedFd,
    umem: Umem,
    /// Free TX frames (addresses), used as a stack.
    tx_free: Vec<u64>,
    /// TX descriptors were published and may still need a kick.
    tx_pending: bool,
    queue: usize,
    port_id: PortId,
    counters: Arc<PortCounters>,
    stats: AfXdpQueueStats,
    tx_budget_raised: bool,
    _attachment: Arc<XdpAttachment>,
}

impl AfXdpQueue {
    pub(crate) fn new(
        parts: XskParts,
        queue: usize,
        port_id: PortId,
        counters: Arc<PortCounters>,
        attachment: Arc<XdpAttachment>,
    ) -> Self {
        let XskParts {
            fd,
            umem,
            fill,
            comp,
            rx,
            tx,
            tx_budget_raised,
        } = parts;
        let tx_free = (umem.rx_frames()..umem.frames())
            .rev()
            .map(|i| umem.frame_addr(i))
            .collect();
        AfXdpQueue {
            fill,
            comp,
            rx,
            tx,
            fd,
            umem,
            tx_free,
            tx_pending: false,
            queue,
            port_id,
            counters,
            stats: AfXdpQueueStats::default(),
            tx_budget_raised,
            _attachment: attachment,
        }
    }

    /// This queue's number within its port (and the device queue it is
    /// bound to).
    pub fn queue(&self) -> usize {
        self.queue
    }

    /// True when the kernel took a copy-mode TX budget of 128 frames per
    /// kick (`XDP_MAX_TX_SKB_BUDGET`, Linux 6.17+); else it sends 32.
    pub fn tx_budget_raised(&self) -> bool {
        self.tx_budget_raised
    }

    /// This queue's named counters.
    pub fn stats(&self) -> AfXdpQueueStats {
        self.stats
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`). A system
    /// call: for the control path.
    pub fn kernel_stats(&self) -> io::Result<XdpKernelStats> {
        let s: libc::xdp_statistics = socket::getsockopt(&self.fd, libc::XDP_STATISTICS)?;
        Ok(XdpKernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }

    /// Takes finished TX frames back from the completion ring.
    #[inline]
    fn reclaim(&mut self) {
        let n = self.comp.cons_avail(u32::MAX);
        let tx_start = self.umem.frame_addr(self.umem.rx_frames());
        let end = self.umem.frame_addr(self.umem.frames());
        for i in 0..n {
            let addr = self.comp.cons_read(i) & !(self.umem.frame_size() as u64 - 1);
            // Never more than the TX frames: a duplicate would be a kernel
            // bug, and must not let us hand one frame out twice.
            let tx_frames = self.umem.frames() - self.umem.rx_frames();
            if addr < tx_start || addr >= end || self.tx_free.len() >= tx_frames {
                self.stats.tx_bad_completion += 1;
            } else {
                self.tx_free.push(addr);
            }
        }
        if n > 0 {
            self.comp.cons_release(n);
        }
    }

    /// Kicks TX when descriptors wait and the kernel asks for it; clears
    /// `tx_pending` when the kernel has taken them all.
    #[inline]
    fn kick_tx(&mut self) {
        if self.tx.prod_pending() == 0 {
            self.tx_pending = false;
            return;
        }
        if !self.tx.needs_wakeup() {
            return;
        }
        self.stats.kicks += 1;
        // SAFETY: a zero-length send with no buffer and no address: it only
        // asks the kernel to transmit the TX ring's pending descriptors.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc < 0 {
            self.count_kick_error();
        }
    }

    /// Kicks RX (for drivers that sleep until asked).
    #[inline]
    fn kick_rx(&mut self) {
        self.stats.kicks += 1;
        // SAFETY: a zero-length receive with no buffer and no address: it
        // only asks the kernel to process the RX side.
        let rc = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            self.count_kick_error();
        }
    }

    #[cold]
    fn count_kick_error(&mut self) {
        let e = io::Error::last_os_error().raw_os_error();
        if !matches!(
            e,
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR)
        ) {
            self.stats.kick_errors += 1;
        }
    }
}

impl QueuePair for AfXdpQueue {
    /// Copies frames out of the RX ring and gives their UMEM frames back
    /// through the fill ring (no system call unless the kernel asks for a
    /// wake-up). Frames larger than the pool's buffers and bad descriptors
    /// are counted and dropped.
    fn rx_burst(&mut self, pool: &mut BufPool, batch: &mut Batch) -> usize {
        if self.tx_pending {
            self.kick_tx();
        }
        let avail = self.rx.cons_avail(batch.remaining() as u32);
        if avail == 0 {
            if self.fill.needs_wakeup() {
                self.kick_rx();
            }
            return 0;
        }
        // The fill ring has a slot for every RX frame, so this is `avail`.
        let room = self.fill.prod_free(avail);
        let (mut n, mut bytes, mut drops, mut refill) = (0usize, 0usize, 0u64, 0u32);
        for i in 0..avail {
            let d = self.rx.cons_read(i);
            let len = d.len as usize;
            match self.umem.frame(d.addr, len) {
                Some(frame) if self.umem.rx_frame_of(d.addr).is_some() => {
                    let mut buf = pool.get();
                    if len > buf.room() {
                        self.stats.rx_too_large += 1;
                        drops += 1;
                        pool.put(buf);
                    } else {
                        buf.receive_area()[..len].copy_from_slice(frame);
                        buf.set_len(len);
                        buf.port = self.port_id;
                        bytes += len;
                        n += 1;
                        if let Err(buf) = batch.push(buf) {
                            pool.put(buf); // unreachable: avail <= remaining()
                        }
                    }
                }
                _ => {
                    self.stats.rx_bad_desc += 1;
                    drops += 1;
                }
            }
            // Give the frame back (unless the address is not an RX frame).
            if let Some(base) = self.umem.rx_frame_of(d.addr) {
                if refill < room {
                    self.fill.prod_write(refill, base);
                    refill += 1;
                }
            }
        }
        self.rx.cons_release(avail);
        if refill > 0 {
            self.fill.prod_submit(refill);
        }
        if n > 0 {
            self.counters.count_rx(n, bytes);
        }
        if drops > 0 {
            self.counters.drops.fetch_add(drops, Ordering::Relaxed);
        }
        n
    }

    /// Copies packets into free TX frames, publishes them, and kicks the
    /// kernel once if it asks. Packets that are empty or larger than a UMEM
    /// frame, or find no free frame, are dropped. A frame counts as sent
    /// once it is on the TX ring; the device may still drop it (its own
    /// counters show that).
    fn tx_burst(&mut self, batch: &mut Batch, pool: &mut BufPool) -> TxOutcome {
        self.reclaim();
        let mut out = TxOutcome::default();
        let mut bytes = 0;
        let free = self
            .tx
            .prod_free(batch.len() as u32)
            .min(self.tx_free.len() as u32);
        let mut i = 0u32;
        for pkt in batch.drain() {
            let len = pkt.len();
            if len == 0 || len > self.umem.frame_size() {
                self.stats.tx_too_large += 1;
                out.dropped += 1;
            } else if i >= free {
                self.stats.tx_ring_full += 1;
                out.dropped += 1;
            } else if let Some(addr) = self.tx_free.pop() {
                match self.umem.frame_mut(addr, len) {
                    Some(frame) => {
                        frame.copy_from_slice(pkt.data());
                        self.tx.prod_write(
                            i,
                            XdpDesc {
                                addr,
                                len: len as u32,
                                options: 0,
                            },
                        );
                        i += 1;
                        out.sent += 1;
                        bytes += len;
                    }
                    None => {
                        // Unreachable: TX frames are whole frames.
                        self.tx_free.push(addr);
                        self.stats.tx_too_large += 1;
                        out.dropped += 1;
                    }
                }
            } else {
                self.stats.tx_ring_full += 1;
                out.dropped += 1;
            }
            pool.put(pkt);
        }
        if i > 0 {
            self.tx.prod_submit(i);
            self.tx_pending = true;
        }
        if self.tx_pending {
            self.kick_tx();
        }
        self.counters.count_tx(out.sent, bytes, out.dropped);
        out
    }
}
