//! Regions the peer can shrink: a `SIGBUS` guard.
//!
//! A memif region is a file the peer created and can `ftruncate`; once it
//! shrinks, every access to a mapped page past its new end raises `SIGBUS`
//! in whichever thread touches it (here: a dataplane worker), which would
//! end the whole process. Regions sealed with `F_SEAL_SHRINK` cannot shrink,
//! and every region a `net_memif` client allocates in copy mode is. A
//! zero-copy client (`zero-copy=yes`) instead exports its mempool memory,
//! which DPDK's EAL allocates in memfds (or hugetlbfs files) without
//! sealing, so it cannot be sealed afterwards either.
//!
//! Such regions are accepted under this guard, the technique Wayland
//! compositors use for client `wl_shm` pools: each unsealed mapping is
//! registered here; a process-wide `SIGBUS` handler that finds the faulting
//! address inside a registered mapping replaces the whole mapping with
//! private zeroed memory (`mmap(MAP_FIXED)`, async-signal-safe) and marks
//! it poisoned, so the faulting access is retried on that memory and the
//! worker carries on. The control thread sees the mark and ends the
//! connection. Any other `SIGBUS` goes to the handler that was installed
//! before (Rust's own, or the default action), so real faults still fail
//! loudly. A lying peer thus gets garbage frames and a disconnect, never a
//! crash of the dataplane.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Registered mappings at once, process-wide.
const SLOTS: usize = 256;

struct Slot {
    /// Start address; 0 while the slot is free or being filled.
    start: AtomicUsize,
    len: AtomicUsize,
    /// The slot is taken (by a live [`Guard`]).
    used: AtomicBool,
    /// The mapping faulted and was replaced.
    poisoned: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    used: AtomicBool::new(false),
    poisoned: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];

/// The `SIGBUS` action in place before ours (`Err` when installing failed).
static PREVIOUS: OnceLock<Result<libc::sigaction, i32>> = OnceLock::new();

/// A registered mapping; unregisters on drop (drop it before unmapping).
#[derive(Debug)]
pub(crate) struct Guard {
    slot: usize,
}

impl Guard {
    /// Guards the mapping `[start, start + len)`. `None` when the handler
    /// could not be installed or every slot is taken.
    pub(crate) fn register(start: *mut u8, len: usize) -> Option<Guard> {
        if start.is_null() || len == 0 || install().is_err() {
            return None;
        }
        for (i, s) in TABLE.iter().enumerate() {
            if s.used
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                s.poisoned.store(false, Ordering::Relaxed);
                s.len.store(len, Ordering::Relaxed);
                s.start.store(start as usize, Ordering::Release);
                return Some(Guard { slot: i });
            }
        }
        None
    }

    /// True once an access to the mapping faulted (the peer shrank its
    /// file); the mapping is then private zeroed memory.
    pub(crate) fn poisoned(&self) -> bool {
        TABLE[self.slot].poisoned.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let s = &TABLE[self.slot];
        s.start.store(0, Ordering::Release);
        s.len.store(0, Ordering::Relaxed);
        s.used.store(false, Ordering::Release);
    }
}

fn install() -> Result<(), i32> {
    let prev = PREVIOUS.get_or_init(|| {
        // SAFETY: sigaction is plain old data; all-zero is a valid value
        // (empty mask, no flags) that the fields below complete.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_sigbus as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: sigemptyset initialises the mask it is given.
        unsafe { libc::sigemptyset(&mut act.sa_mask) };
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: installs a handler that only does async-signal-safe work
        // (atomic loads and stores, mmap, sigaction, calling the previous
        // handler) and reads the previous action into `old`.
        let r = unsafe { libc::sigaction(libc::SIGBUS, &act, &mut old) };
        if r == 0 {
            Ok(old)
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
    });
    prev.as_ref().map(|_| ()).map_err(|e| *e)
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers;
    // si_addr is the faulting address for SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    for s in TABLE.iter() {
        let start = s.start.load(Ordering::Acquire);
        let len = s.len.load(Ordering::Relaxed);
        if start == 0 || addr < start || addr - start >= len {
            continue;
        }
        // SAFETY: replaces exactly a registered mapping, which the memif
        // code still holds (a Guard is dropped before its mapping is
        // unmapped) and only ever accesses through raw pointers, with
        // private zeroed memory of the same size and protection: pointers
        // into it stay valid and the faulting access is retried on it.
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            s.poisoned.store(true, Ordering::Release);
            return;
        }
        break;
    }
    // Not ours (or not repairable): whatever handled SIGBUS before.
    if let Some(Ok(prev)) = PREVIOUS.get() {
        let h = prev.sa_sigaction;
        if h == libc::SIG_DFL || h == libc::SIG_IGN {
            // SAFETY: restores the previous (default) action; returning
            // re-executes the faulting access, which then takes it.
            unsafe { libc::sigaction(libc::SIGBUS, prev, std::ptr::null_mut()) };
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the previous handler was installed as a three-argument
            // SA_SIGINFO handler; it gets exactly what we were given.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(h) };
            f(sig, info, ctx);
        } else {
            // SAFETY: a one-argument handler, called as installed.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
            f(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{Mapping, Populate};
    use std::os::fd::AsRawFd;

    /// A peer shrinking an unsealed region under a worker: the read that
    /// faults returns zeros instead of killing the process, and the guard
    /// reports it.
    #[test]
    fn shrunk_region_reads_zeros_and_is_poisoned() {
        // SAFETY: a fresh memfd, unsealed (no MFD_ALLOW_SEALING).
        let raw = unsafe { libc::memfd_create(c"guard-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: raw is a new descriptor we own.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let len = 4 * 4096;
        // SAFETY: fd is open.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), len as i64) }, 0);
        let dup = fd.try_clone().unwrap();
        let m = Mapping::shared_owning(fd, len, 0, Populate::No).unwrap();
        // SAFETY: inside the mapping.
        unsafe { m.ptr().add(3 * 4096).write_volatile(7) };
        let g = Guard::register(m.ptr(), m.len()).expect("guard");
        assert!(!g.poisoned());
        // The peer shrinks its file to one page.
        // SAFETY: dup is open.
        assert_eq!(unsafe { libc::ftruncate(dup.as_raw_fd(), 4096) }, 0);
        // SAFETY: inside the mapping; faults (SIGBUS) and is repaired.
        let v = unsafe { m.ptr().add(3 * 4096).read_volatile() };
        assert_eq!(v, 0);
        assert!(g.poisoned());
        drop(g);
        drop(m);
    }
}
