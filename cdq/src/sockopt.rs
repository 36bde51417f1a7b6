//! Typed `setsockopt`/`getsockopt`, for the AF_PACKET (`SOL_PACKET`) and
//! AF_XDP (`SOL_XDP`) sockets.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Plain old data a `getsockopt` may fill: all-zero is a valid value, and
/// so is any byte pattern the kernel writes.
///
/// # Safety
///
/// Implement only for integer types and `#[repr(C)]` structs or arrays of
/// them (no references, no niches, no enums, no `bool`).
pub(crate) unsafe trait Pod: Copy {}

// SAFETY: an integer; every bit pattern is valid.
unsafe impl Pod for libc::c_int {}
// SAFETY: integers only; every bit pattern is valid.
unsafe impl Pod for [u32; 3] {}
// SAFETY: a repr(C) struct of u64 counters.
unsafe impl Pod for libc::xdp_statistics {}
// SAFETY: a repr(C) struct of repr(C) structs of u64 offsets.
unsafe impl Pod for libc::xdp_mmap_offsets {}

/// `setsockopt(fd, level, opt)` with the bytes of `val`.
pub(crate) fn set<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised T whose size is passed;
    // the kernel only reads it. `fd` is open for the call (borrowed).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `getsockopt(fd, level, opt)` into a zeroed `T`, with the number of
/// bytes the kernel wrote (the rest of `T` stays zero). Callers decide
/// whether a short answer is an error; see [`get`].
pub(crate) fn get_with_len<T: Pod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
) -> io::Result<(T, usize)> {
    // SAFETY: `T: Pod`, so all-zero is a valid value.
    let mut val: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` and `len` are live locals; the kernel writes at most
    // `len` bytes into `val` (any bytes are a valid `T: Pod`) and updates
    // `len`. `fd` is open for the call (borrowed).
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&mut val as *mut T).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((val, len as usize))
}

/// `getsockopt(fd, level, opt)` into a zeroed `T`; fails with
/// [`io::ErrorKind::Unsupported`] and `short` as the message when the
/// kernel returns fewer bytes than `T` has (an older kernel's struct).
pub(crate) fn get<T: Pod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    short: &'static str,
) -> io::Result<T> {
    let (val, len) = get_with_len(fd, level, opt)?;
    if len < std::mem::size_of::<T>() {
        return Err(io::Error::new(io::ErrorKind::Unsupported, short));
    }
    Ok(val)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn set_then_get_round_trips() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        set(
            s.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &1 as &libc::c_int,
        )
        .unwrap();
        let v: libc::c_int = get(s.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, "short").unwrap();
        assert_eq!(v, 1);
        let (v, len) =
            get_with_len::<libc::c_int>(s.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE).unwrap();
        assert_eq!((v, len), (libc::SOCK_DGRAM, 4));
    }

    #[test]
    fn errors_come_from_errno() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = set(s.as_fd(), libc::SOL_SOCKET, -1, &0 as &libc::c_int).unwrap_err();
        assert!(e.raw_os_error().is_some());
    }
}
