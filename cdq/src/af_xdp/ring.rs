//! The four single-producer, single-consumer rings of an AF_XDP socket,
//! shared with the kernel through `mmap`.
//!
//! Each ring is a `producer` and a `consumer` index (free-running `u32`s,
//! masked by `size - 1`), a `flags` word (`XDP_RING_NEED_WAKEUP`) and an
//! array of `size` entries: frame addresses (`u64`) in the fill and
//! completion rings, [`XdpDesc`]s in the RX and TX rings. We produce into
//! fill and TX and consume from RX and completion.
//!
//! Ordering mirrors the kernel's (`net/xdp/xsk_queue.h`): a producer writes
//! entries, then publishes the producer index with release; a consumer
//! reads the producer index with acquire, reads entries, then publishes the
//! consumer index with release. Each side keeps a cached copy of the other
//! side's index and reloads it only when the cached one shows too little,
//! so a burst touches the shared cache line at most once each way.
//!
//! Indices from the kernel are trusted for nothing but counting: free and
//! available counts are clamped to the ring size, so a bad index can never
//! make us read or write outside the array.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::mapping::Mapping;

/// An RX or TX descriptor (`struct xdp_desc`): a frame address in the
/// UMEM, a length, and option bits (0 here).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct XdpDesc {
    /// Address of the frame's first byte, as an offset into the UMEM.
    pub addr: u64,
    /// Frame length.
    pub len: u32,
    /// `XDP_PKT_CONTD` etc.; 0 for single-buffer frames.
    pub options: u32,
}

/// Where a ring's parts lie in its mapping (`struct xdp_ring_offset`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingOffsets {
    /// Offset of the producer index.
    pub producer: usize,
    /// Offset of the consumer index.
    pub consumer: usize,
    /// Offset of the entry array.
    pub desc: usize,
    /// Offset of the flags word.
    pub flags: usize,
}

impl RingOffsets {
    /// Converts the kernel's offsets.
    pub(crate) fn from_kernel(o: &libc::xdp_ring_offset) -> Self {
        let c = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        RingOffsets {
            producer: c(o.producer),
            consumer: c(o.consumer),
            desc: c(o.desc),
            flags: c(o.flags),
        }
    }

    /// Bytes to map for a ring of `size` entries of `T`.
    pub(crate) fn map_len<T>(&self, size: u32) -> usize {
        self.desc
            .saturating_add((size as usize).saturating_mul(std::mem::size_of::<T>()))
    }
}

/// One ring of `T` entries over its mapping.
#[derive(Debug)]
pub(crate) struct Ring<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    mask: u32,
    /// Our copy of the producer index (ours for fill/TX, the kernel's
    /// last seen value for RX/completion).
    cached_prod: u32,
    /// Our copy of the consumer index (the kernel's last seen value for
    /// fill/TX, ours for RX/completion).
    cached_cons: u32,
    /// Keeps the pointers valid.
    _map: Mapping,
    _entries: PhantomData<T>,
}

// SAFETY: the ring's pointers all point into `map`, which the ring owns;
// one thread at a time uses the ring (`&mut self` for every change), and
// the kernel side is synchronised through the atomics.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// A ring of `size` entries (a power of two) laid out in `map` as
    /// `off` says. Fails when a part would lie outside the mapping or be
    /// misaligned.
    pub(crate) fn new(map: Mapping, off: RingOffsets, size: u32) -> io::Result<Self> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        if !size.is_power_of_two() {
            return Err(bad("ring size is not a power of two"));
        }
        for at in [off.producer, off.consumer, off.flags] {
            if !at.is_multiple_of(4) || at.checked_add(4).is_none_or(|end| end > map.len()) {
                return Err(bad("ring index outside the mapping"));
            }
        }
        if !off.desc.is_multiple_of(std::mem::align_of::<T>()) || off.map_len::<T>(size) > map.len()
        {
            return Err(bad("ring entries outside the mapping"));
        }
        let base = map.ptr();
        // SAFETY: (the four `add`s) every offset was checked above to
        // lie, with its whole object, inside the mapping.
        let (producer, consumer, flags, entries) = unsafe {
            (
                base.add(off.producer).cast::<AtomicU32>(),
                base.add(off.consumer).cast::<AtomicU32>(),
                base.add(off.flags).cast::<AtomicU32>(),
                base.add(off.desc).cast::<T>(),
            )
        };
        let mut ring = Ring {
            producer,
            consumer,
            flags,
            entries,
            mask: size - 1,
            cached_prod: 0,
            cached_cons: 0,
            _map: map,
            _entries: PhantomData,
        };
        ring.cached_prod = ring.producer().load(Ordering::Acquire);
        ring.cached_cons = ring.consumer().load(Ordering::Acquire);
        Ok(ring)
    }

    /// Number of entries.
    #[inline]
    pub(crate) fn size(&self) -> u32 {
        self.mask + 1
    }

    #[inline]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: 4-aligned and inside `self.map` (checked in `new`), which
        // lives as long as `self`; shared with the kernel, so only accessed
        // atomically.
        unsafe { &*self.producer }
    }

    #[inline]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    /// True when the kernel asks to be woken (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        let flags = unsafe { &*self.flags };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    #[inline]
    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask` < size, and `new` checked that `size`
        // entries fit in the mapping.
        unsafe { self.entries.add((idx & self.mask) as usize) }
    }

    // Producer side (fill, TX).

    /// Free entries, at most `want`; reloads the consumer index only when
    /// the cached one shows fewer than `want`.
    #[inline]
    pub(crate) fn prod_free(&mut self, want: u32) -> u32 {
        let size = self.size();
        let mut free = size.saturating_sub(self.cached_prod.wrapping_sub(self.cached_cons));
        if free < want {
            self.cached_cons = self.consumer().load(Ordering::Acquire);
            free = size.saturating_sub(self.cached_prod.wrapping_sub(self.cached_cons));
        }
        free.min(want)
    }

    /// Writes entry `i` past the producer index; `i` must be below what
    /// [`Ring::prod_free`] returned (else the entry may still be the
    /// kernel's: a logic error, but memory-safe).
    #[inline]
    pub(crate) fn prod_write(&mut self, i: u32, v: T) {
        let p = self.slot(self.cached_prod.wrapping_add(i));
        // SAFETY: `p` is inside the entry array (see `slot`); the entry is
        // free (not yet published), so the kernel does not read it now.
        unsafe { p.write(v) }
    }

    /// Publishes `n` written entries.
    #[inline]
    pub(crate) fn prod_submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Published entries the kernel has not consumed yet (reloads the
    /// consumer index).
    #[inline]
    pub(crate) fn prod_pending(&mut self) -> u32 {
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.cached_prod
            .wrapping_sub(self.cached_cons)
            .min(self.size())
    }

    // Consumer side (RX, completion).

    /// Entries ready to read, at most `want`; reloads the producer index
    /// only when the cached one shows none.
    #[inline]
    pub(crate) fn cons_avail(&mut self, want: u32) -> u32 {
        let size = self.size();
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons).min(size);
        if avail == 0 {
            self.cached_prod = self.producer().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons).min(size);
        }
        avail.min(want)
    }

    /// Reads entry `i` past the consumer index; `i` must be below what
    /// [`Ring::cons_avail`] returned.
    #[inline]
    pub(crate) fn cons_read(&self, i: u32) -> T {
        let p = self.slot(self.cached_cons.wrapping_add(i));
        // SAFETY: `p` is inside the entry array; the kernel published the
        // entry (acquire on the producer index) and does not touch it until
        // we release it.
        unsafe { p.read() }
    }

    /// Gives `n` read entries back to the kernel.
    #[inline]
    pub(crate) fn cons_release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.consumer().store(self.cached_cons, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Populate;
    use std::mem::{offset_of, size_of};

    #[test]
    fn desc_matches_the_kernel_struct() {
        assert_eq!(size_of::<XdpDesc>(), size_of::<libc::xdp_desc>());
        assert_eq!(offset_of!(XdpDesc, len), offset_of!(libc::xdp_desc, len));
        assert_eq!(
            offset_of!(XdpDesc, options),
            offset_of!(libc::xdp_desc, options)
        );
    }

    /// A ring in anonymous memory, laid out as the kernel does (indices on
    /// their own cache lines, then the entries); `start` presets both
    /// indices, to test wrap-around.
    fn test_ring<T: Copy>(size: u32, start: u32) -> Ring<T> {
        let off = RingOffsets {
            producer: 0,
            consumer: 64,
            flags: 128,
            desc: 192,
        };
        let map = Mapping::anonymous(off.map_len::<T>(size), Populate::Yes).unwrap();
        // SAFETY: the mapping is at least 192 bytes and page-aligned.
        unsafe {
            map.ptr().cast::<u32>().write(start);
            map.ptr().add(64).cast::<u32>().write(start);
        }
        Ring::new(map, off, size).unwrap()
    }

    /// The kernel's side of a test ring: its index as it would store it.
    fn kernel_index(r: &Ring<u64>, producer: bool) -> &AtomicU32 {
        if producer {
            r.producer()
        } else {
            r.consumer()
        }
    }

    #[test]
    fn producer_fills_up_and_wraps_around_u32() {
        for start in [0, u32::MAX - 5] {
            let mut r = test_ring::<u64>(8, start);
            assert_eq!(r.prod_free(100), 8);
            for i in 0..8 {
                r.prod_write(i, u64::from(i));
            }
            r.prod_submit(8);
            assert_eq!(r.prod_free(1), 0, "full");
            assert_eq!(r.prod_pending(), 8);
            // The kernel consumes 3.
            kernel_index(&r, false).store(start.wrapping_add(3), Ordering::Release);
            assert_eq!(r.prod_free(8), 3);
            assert_eq!(r.prod_pending(), 5);
            r.prod_write(0, 99);
            r.prod_submit(1);
            // Entry 8 lands where entry 0 was.
            assert_eq!(
                kernel_index(&r, true).load(Ordering::Acquire),
                start.wrapping_add(9)
            );
            // SAFETY: slot() points inside the test ring's entry array.
            assert_eq!(unsafe { *r.slot(start.wrapping_add(8)) }, 99);
        }
    }

    #[test]
    fn consumer_sees_only_published_entries() {
        for start in [0, u32::MAX - 2] {
            let mut r = test_ring::<u64>(4, start);
            assert_eq!(r.cons_avail(64), 0);
            for i in 0..3u32 {
                // SAFETY: slot() points inside the test ring's entry array.
                unsafe { r.slot(start.wrapping_add(i)).write(10 + u64::from(i)) };
            }
            kernel_index(&r, true).store(start.wrapping_add(3), Ordering::Release);
            assert_eq!(r.cons_avail(2), 2);
            assert_eq!((r.cons_read(0), r.cons_read(1)), (10, 11));
            r.cons_release(2);
            assert_eq!(r.cons_avail(64), 1);
            assert_eq!(r.cons_read(0), 12);
            r.cons_release(1);
            assert_eq!(
                kernel_index(&r, false).load(Ordering::Acquire),
                start.wrapping_add(3)
            );
            assert_eq!(r.cons_avail(64), 0);
        }
    }

    #[test]
    fn corrupt_kernel_indices_are_clamped() {
        let mut r = test_ring::<u64>(4, 0);
        // A producer index far ahead: at most a ring's worth is readable.
        kernel_index(&r, true).store(1000, Ordering::Release);
        assert_eq!(r.cons_avail(64), 4);
        // A consumer index past ours: no free slots invented.
        let mut p = test_ring::<u64>(4, 0);
        kernel_index(&p, false).store(1000, Ordering::Release);
        assert!(p.prod_free(64) <= 4);
        assert!(p.prod_pending() <= 4);
    }

    #[test]
    fn offsets_outside_the_mapping_are_refused() {
        let map = Mapping::anonymous(4096, Populate::Yes).unwrap();
        let off = RingOffsets {
            producer: 0,
            consumer: 64,
            flags: 128,
            desc: 192,
        };
        assert!(Ring::<u64>::new(map, off, 1024).is_err());
        let map = Mapping::anonymous(4096, Populate::Yes).unwrap();
        assert!(Ring::<u64>::new(map, off, 6).is_err());
        let map = Mapping::anonymous(4096, Populate::Yes).unwrap();
        let off = RingOffsets {
            producer: 4094,
            ..off
        };
        assert!(Ring::<u64>::new(map, off, 4).is_err());
    }
}
