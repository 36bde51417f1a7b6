//! Shared memory: the mapped regions of one connection and typed views of
//! the rings inside them.
//!
//! The peer is another process that writes the same memory concurrently, and
//! (on a CDQ) an untrusted pod. So: no Rust reference ever points at shared
//! bytes except the ring's `head`/`tail`/`flags` words, which are accessed
//! as atomics; descriptors are read and written with volatile accesses, one
//! field at a time, and every region/offset/length read from a descriptor is
//! bounds-checked against the mapping before a byte is copied. A lying peer
//! can make us copy garbage or drop packets, never touch memory outside its
//! regions.

use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU16;
use std::sync::Arc;

use super::guard::Guard;
use super::wire::{self, ring_bytes};
use crate::mapping::Mapping;

/// The regions of one connection, index = region index.
#[derive(Debug)]
pub(crate) struct SharedMem {
    regions: Vec<Mapping>,
    /// `SIGBUS` guards of the regions that are not sealed against
    /// shrinking (see [`super::guard`]); dropped before the regions.
    guards: Vec<Guard>,
}

impl SharedMem {
    pub(crate) fn new(regions: Vec<Mapping>) -> SharedMem {
        SharedMem::guarded(regions, Vec::new())
    }

    /// Regions some of which are guarded.
    pub(crate) fn guarded(regions: Vec<Mapping>, guards: Vec<Guard>) -> SharedMem {
        SharedMem { regions, guards }
    }

    /// True when an unsealed region shrank under us (its mapping is now
    /// private zeroed memory).
    pub(crate) fn poisoned(&self) -> bool {
        self.guards.iter().any(Guard::poisoned)
    }

    /// A pointer to `len` bytes at `offset` of `region`, if they lie inside
    /// the region.
    #[inline]
    pub(crate) fn bytes(&self, region: u16, offset: u32, len: u32) -> Option<*mut u8> {
        let r = self.regions.get(region as usize)?;
        let end = (offset as usize).checked_add(len as usize)?;
        if end > r.len() {
            return None;
        }
        // SAFETY: offset + len <= r.len(), so the result stays inside the
        // mapping (or one past its end when len == 0).
        Some(unsafe { r.ptr().add(offset as usize) })
    }
}

/// Asks the CPU to fetch the cache line at `p` for reading.
///
/// A hint: it never faults and changes no memory, so any address, even one
/// outside every mapping, is harmless.
#[inline(always)]
pub(crate) fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; a
    // prefetch does not access memory architecturally.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the CPU to fetch the cache line at `p` in exclusive state, ready
/// to be written (`prefetchw`): the line leaves the other core before the
/// store instead of when the store reaches the head of the store buffer.
///
/// Written as `asm!`: `_mm_prefetch::<_MM_HINT_ET0>` compiles to a plain
/// read prefetch unless the crate is built for `prfchw`, and a line fetched
/// for reading must then be upgraded, a second round trip.
#[inline(always)]
pub(crate) fn prefetch_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHW is a hint: it never faults, not even on an unmapped
    // address, and changes no architectural state (registers, flags,
    // memory). CPUs without it (Intel before Broadwell) execute its opcode,
    // 0F 0D, as a NOP.
    unsafe {
        std::arch::asm!("prefetchw [{}]", in(reg) p, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // Unregister before the mappings go: the address range may be
        // reused by the next mapping.
        self.guards.clear();
    }
}

/// One descriptor, as read from the ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Desc {
    pub flags: u16,
    pub region: u16,
    pub length: u32,
    pub offset: u32,
}

/// A view of one ring in a connection's shared memory.
///
/// Holds the [`SharedMem`] alive, so the pointer stays valid for the view's
/// whole life.
#[derive(Debug)]
pub(crate) struct RingView {
    mem: Arc<SharedMem>,
    base: *mut u8,
    log2: u8,
    /// Buffers this side owns (client role): slot `s` uses
    /// `own_base + (s & mask) * buffer_size` in region 0. `None` on the
    /// server, which takes every buffer address from the descriptors.
    own_base: Option<u32>,
    buffer_size: u32,
    /// The ring's interrupt eventfd, signalled after a transmit burst when
    /// the receiver has not masked interrupts.
    pub(crate) eventfd: Option<Arc<OwnedFd>>,
}

// SAFETY: `base` points into `mem`, which the view owns through an Arc; the
// ring words it exposes are atomics and descriptors are accessed with
// volatile reads/writes, so moving the view to the worker thread that owns
// the queue pair is sound.
unsafe impl Send for RingView {}
// SAFETY: shared references expose only atomics and copies of descriptors.
unsafe impl Sync for RingView {}

/// Why a ring could not be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingViewError {
    /// Region index unknown, or the ring does not fit in the region.
    OutOfBounds,
    /// Offset not 8-byte aligned.
    Misaligned,
    /// log2 ring size above 14.
    TooLarge,
    /// Buffers for the own-buffer layout do not fit.
    BuffersOutOfBounds,
}

impl RingView {
    /// A view of the ring at `offset` of `region`; checks that the whole ring
    /// (and, with `own_base`, all its buffers) lies inside the region.
    pub(crate) fn new(
        mem: &Arc<SharedMem>,
        region: u16,
        offset: u32,
        log2: u8,
        own_base: Option<u32>,
        buffer_size: u32,
        eventfd: Option<Arc<OwnedFd>>,
    ) -> Result<RingView, RingViewError> {
        if log2 > wire::MAX_LOG2_RING_SIZE {
            return Err(RingViewError::TooLarge);
        }
        if !offset.is_multiple_of(8) {
            return Err(RingViewError::Misaligned);
        }
        let base = mem
            .bytes(region, offset, ring_bytes(log2) as u32)
            .ok_or(RingViewError::OutOfBounds)?;
        if !(base as usize).is_multiple_of(8) {
            return Err(RingViewError::Misaligned);
        }
        if let Some(b) = own_base {
            let total = (buffer_size as u64) << log2;
            if total > u32::MAX as u64 || mem.bytes(0, b, total as u32).is_none() {
                return Err(RingViewError::BuffersOutOfBounds);
            }
        }
        Ok(RingView {
            mem: mem.clone(),
            base,
            log2,
            own_base,
            buffer_size,
            eventfd,
        })
    }

    /// Number of descriptors.
    #[inline]
    pub(crate) fn size(&self) -> u16 {
        1u16 << self.log2
    }

    #[inline]
    fn mask(&self) -> u16 {
        self.size() - 1
    }

    #[inline]
    fn word(&self, off: usize) -> &AtomicU16 {
        // SAFETY: off is RING_FLAGS, RING_HEAD or RING_TAIL, all within the
        // checked ring header and 2-aligned (base is 8-aligned). The memory
        // stays mapped while self (and its Arc<SharedMem>) lives, and is only
        // ever accessed atomically by both peers.
        unsafe { AtomicU16::from_ptr(self.base.add(off).cast::<u16>()) }
    }

    /// The ring's head index.
    #[inline]
    pub(crate) fn head(&self) -> &AtomicU16 {
        self.word(wire::RING_HEAD)
    }

    /// The ring's tail index.
    #[inline]
    pub(crate) fn tail(&self) -> &AtomicU16 {
        self.word(wire::RING_TAIL)
    }

    /// The ring's flags ([`wire::RING_FLAG_MASK_INT`]).
    #[inline]
    pub(crate) fn flags(&self) -> &AtomicU16 {
        self.word(wire::RING_FLAGS)
    }

    /// The ring's cookie.
    pub(crate) fn cookie(&self) -> u32 {
        // SAFETY: the cookie is the first 4 bytes of the checked header,
        // 4-aligned; a volatile read of shared memory.
        unsafe { std::ptr::read_volatile(self.base.add(wire::RING_COOKIE).cast::<u32>()) }
    }

    /// Writes the cookie (the side that owns the memory does this).
    pub(crate) fn set_cookie(&self) {
        // SAFETY: as in `cookie`; a volatile write.
        unsafe {
            std::ptr::write_volatile(self.base.add(wire::RING_COOKIE).cast::<u32>(), wire::COOKIE)
        }
    }

    #[inline]
    fn desc_ptr(&self, slot: u16) -> *mut u8 {
        let i = (slot & self.mask()) as usize;
        // SAFETY: i < size, and the ring (header + size descriptors) was
        // checked to lie inside the mapping.
        unsafe { self.base.add(wire::RING_HEADER_SIZE + i * wire::DESC_SIZE) }
    }

    /// Fetches the lines holding the descriptors of `n` slots from `first`
    /// on (for writing when `write`), so that their misses overlap instead
    /// of each descriptor read waiting for its line in turn.
    #[inline(always)]
    pub(crate) fn prefetch_descs(&self, first: u16, n: usize, write: bool) {
        if n == 0 {
            return;
        }
        const PER_LINE: usize = 64 / wire::DESC_SIZE;
        // A step of one line's worth of slots visits every line once; the
        // last slot covers the line a misaligned start leaves over.
        for k in (0..n).step_by(PER_LINE).chain([n - 1]) {
            let p = self.desc_ptr(first.wrapping_add(k as u16));
            if write {
                prefetch_write(p);
            } else {
                prefetch_read(p);
            }
        }
    }

    /// Reads the descriptor of `slot` (taken modulo the ring size).
    #[inline]
    pub(crate) fn desc(&self, slot: u16) -> Desc {
        let p = self.desc_ptr(slot);
        // SAFETY: p points at a whole 16-byte descriptor inside the mapping,
        // 8-aligned; each field is read once with a volatile, naturally
        // aligned load.
        unsafe {
            Desc {
                flags: std::ptr::read_volatile(p.add(wire::DESC_FLAGS).cast::<u16>()),
                region: std::ptr::read_volatile(p.add(wire::DESC_REGION).cast::<u16>()),
                length: std::ptr::read_volatile(p.add(wire::DESC_LENGTH).cast::<u32>()),
                offset: std::ptr::read_volatile(p.add(wire::DESC_OFFSET).cast::<u32>()),
            }
        }
    }

    /// Writes the flags and length of `slot`'s descriptor.
    #[inline]
    pub(crate) fn set_len_flags(&self, slot: u16, length: u32, flags: u16) {
        let p = self.desc_ptr(slot);
        // SAFETY: as in `desc`; volatile, naturally aligned stores.
        unsafe {
            std::ptr::write_volatile(p.add(wire::DESC_FLAGS).cast::<u16>(), flags);
            std::ptr::write_volatile(p.add(wire::DESC_LENGTH).cast::<u32>(), length);
        }
    }

    /// Writes a whole descriptor (owner of the memory only).
    #[inline]
    pub(crate) fn set_desc(&self, slot: u16, d: Desc) {
        let p = self.desc_ptr(slot);
        // SAFETY: as in `desc`; volatile, naturally aligned stores.
        unsafe {
            std::ptr::write_volatile(p.add(wire::DESC_FLAGS).cast::<u16>(), d.flags);
            std::ptr::write_volatile(p.add(wire::DESC_REGION).cast::<u16>(), d.region);
            std::ptr::write_volatile(p.add(wire::DESC_LENGTH).cast::<u32>(), d.length);
            std::ptr::write_volatile(p.add(wire::DESC_OFFSET).cast::<u32>(), d.offset);
            std::ptr::write_volatile(p.add(12).cast::<u32>(), 0);
        }
    }

    /// The descriptor this side would write for `slot` when it owns the
    /// buffers, with `length`.
    #[inline]
    pub(crate) fn own_desc(&self, slot: u16, length: u32, flags: u16) -> Option<Desc> {
        let base = self.own_base?;
        Some(Desc {
            flags,
            region: 0,
            length,
            offset: base + (slot & self.mask()) as u32 * self.buffer_size,
        })
    }

    /// The buffer behind `slot`: `(pointer, usable bytes)`.
    ///
    /// With own buffers the address is computed (never read back from shared
    /// memory) and the usable length is `min(desc.length, buffer_size)`.
    /// Otherwise region, offset and length come from the descriptor and are
    /// checked against the mapping; `None` when they point outside it.
    #[inline]
    pub(crate) fn buffer(&self, slot: u16, d: &Desc) -> Option<(*mut u8, u32)> {
        match self.own_base {
            Some(base) => {
                let off = base + (slot & self.mask()) as u32 * self.buffer_size;
                let p = self.mem.bytes(0, off, self.buffer_size)?;
                Some((p, d.length.min(self.buffer_size)))
            }
            None => Some((self.mem.bytes(d.region, d.offset, d.length)?, d.length)),
        }
    }

    /// The buffer a transmit into `slot` fills: `(pointer, capacity)`.
    ///
    /// With own buffers: this side's buffer for the slot, `buffer_size`
    /// bytes. Otherwise the buffer the receiver posted in the descriptor
    /// (checked against the mapping); `None` when it points outside it.
    #[inline]
    pub(crate) fn tx_buffer(&self, slot: u16) -> Option<(*mut u8, u32)> {
        match self.own_base {
            Some(base) => {
                let off = base + (slot & self.mask()) as u32 * self.buffer_size;
                Some((self.mem.bytes(0, off, self.buffer_size)?, self.buffer_size))
            }
            None => {
                let d = self.desc(slot);
                Some((self.mem.bytes(d.region, d.offset, d.length)?, d.length))
            }
        }
    }

    /// True when this side owns the buffers (client role).
    #[inline]
    pub(crate) fn owns_buffers(&self) -> bool {
        self.own_base.is_some()
    }

    /// Size of this side's own buffers (client role).
    pub(crate) fn buffer_size(&self) -> u32 {
        self.buffer_size
    }
}
