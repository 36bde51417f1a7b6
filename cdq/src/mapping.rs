//! Memory mapped with `mmap`: shared mappings of a file or socket (memif
//! regions, AF_PACKET and AF_XDP rings) and private anonymous memory (the
//! AF_XDP UMEM), unmapped on drop.
//!
//! What differs between users is spelled out by the caller: whether the
//! pages are faulted in at once ([`Populate`]) and whether the mapping
//! keeps the descriptor it maps open ([`Mapping::shared_owning`]) or the
//! caller keeps it ([`Mapping::shared`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;

/// Whether `mmap` faults every page in at once (`MAP_POPULATE`) or leaves
/// them to be faulted in on first touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Populate {
    /// `MAP_POPULATE`: no page faults on the data path later.
    Yes,
    /// Pages are faulted in on first access.
    No,
}

impl Populate {
    fn flag(self) -> libc::c_int {
        match self {
            Populate::Yes => libc::MAP_POPULATE,
            Populate::No => 0,
        }
    }
}

/// A read-write `mmap`ed region, unmapped on drop.
///
/// Only raw pointers into the region are handed out; every access through
/// them is the user's business (and follows the sharing rules of the
/// memif, AF_PACKET or AF_XDP code that owns the mapping).
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// The mapped descriptor, when the mapping owns it (closed after the
    /// unmap, as the field is dropped after `Drop::drop` runs).
    _fd: Option<OwnedFd>,
}

// SAFETY: the region belongs to this value alone (no Rust reference into
// it exists outside borrows of `self`); moving it to another thread moves
// that ownership. Concurrent accesses by the kernel or a peer process are
// synchronised by the protocols of the code using the pointers, not by the
// thread that holds the value.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` gives no safe access to the bytes, only raw pointers
// and the length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// A `MAP_SHARED` mapping of `len` bytes of `fd` at byte `offset` (a
    /// multiple of the page size). The caller keeps `fd` open as long as it
    /// needs it; the mapping stays valid after `fd` is closed.
    pub(crate) fn shared(
        fd: BorrowedFd<'_>,
        len: usize,
        offset: libc::off_t,
        populate: Populate,
    ) -> io::Result<Mapping> {
        Self::map(
            fd.as_raw_fd(),
            len,
            offset,
            libc::MAP_SHARED | populate.flag(),
        )
    }

    /// Like [`Mapping::shared`], but the mapping takes `fd` and closes it
    /// when dropped.
    pub(crate) fn shared_owning(
        fd: OwnedFd,
        len: usize,
        offset: libc::off_t,
        populate: Populate,
    ) -> io::Result<Mapping> {
        let mut m = Self::shared(fd.as_fd(), len, offset, populate)?;
        m._fd = Some(fd);
        Ok(m)
    }

    /// Private, zeroed anonymous memory of `len` bytes (rounded up to whole
    /// pages by the kernel), page-aligned.
    pub(crate) fn anonymous(len: usize, populate: Populate) -> io::Result<Mapping> {
        Self::map(
            -1,
            len,
            0,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | populate.flag(),
        )
    }

    fn map(raw: RawFd, len: usize, offset: libc::off_t, flags: libc::c_int) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: a fresh mapping at an address the kernel chooses (no
        // MAP_FIXED), so no existing memory is affected and it aliases no
        // Rust object; `raw` is either -1 with MAP_ANONYMOUS or a descriptor
        // the caller keeps open for the call. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Mapping {
            ptr,
            len,
            _fd: None,
        })
    }

    /// Start of the region.
    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, the mapping
        // is unmapped once, here, and every pointer into it is held by code
        // that keeps this value alive while using it. (Memory the kernel
        // still uses, like a registered UMEM, stays valid for it: it pinned
        // the pages.)
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_memory_is_zeroed_and_writable() {
        let m = Mapping::anonymous(8192, Populate::Yes).unwrap();
        assert_eq!(m.len(), 8192);
        // SAFETY: both offsets lie inside the fresh 8 KiB mapping, which
        // nothing else references.
        unsafe {
            assert_eq!(m.ptr().add(8191).read(), 0);
            m.ptr().add(8191).write(7);
            assert_eq!(m.ptr().add(8191).read(), 7);
        }
    }

    #[test]
    fn empty_mappings_are_refused() {
        let e = Mapping::anonymous(0, Populate::No).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
