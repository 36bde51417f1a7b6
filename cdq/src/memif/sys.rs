//! The system calls memif needs: `SOCK_SEQPACKET` UNIX sockets (filesystem
//! or abstract names), `SCM_RIGHTS` file-descriptor passing, memfd regions
//! sealed against shrinking, eventfds and `poll` (`mmap` is
//! [`crate::mapping`]).
//!
//! Everything here is control path, except [`kick`] (one `write` per burst,
//! only when the peer asked for interrupts).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{wire::MSG_SIZE, SocketName};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn sockaddr(name: &SocketName) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let base = mem::size_of::<libc::sa_family_t>();
    let (bytes, skip): (&[u8], usize) = match name {
        SocketName::Path(p) => (p.as_os_str().as_encoded_bytes(), 0),
        // An abstract name is a NUL followed by the name; its length is
        // exactly that (no trailing NULs), as DPDK's net_memif binds it.
        SocketName::Abstract(n) => (n.as_bytes(), 1),
    };
    if bytes.is_empty() || bytes.len() + skip >= sun.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket name empty, too long (max 107 bytes) or containing NUL",
        ));
    }
    for (i, &b) in bytes.iter().enumerate() {
        sun.sun_path[i + skip] = b as libc::c_char;
    }
    let len = match name {
        SocketName::Path(_) => mem::size_of::<libc::sockaddr_un>(),
        SocketName::Abstract(_) => base + 1 + bytes.len(),
    };
    Ok((sun, len as libc::socklen_t))
}

fn seqpacket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked and
    // owned exactly once.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking listening socket bound to `name`.
pub fn listen(name: &SocketName) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    let (sun, len) = sockaddr(name)?;
    // SAFETY: `sun` is a valid sockaddr_un of `len` bytes; fd is open.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    // SAFETY: fd is an open, bound socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 4) })?;
    Ok(fd)
}

/// Accepts a pending connection; `None` when there is none.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    // SAFETY: accept4 with null address pointers is allowed; the result is
    // checked and owned exactly once.
    let ret = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: ret is a new descriptor owned by nobody else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret) }))
}

/// Connects to a server socket; the returned socket is non-blocking.
pub fn connect(name: &SocketName) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    let (sun, len) = sockaddr(name)?;
    // SAFETY: `sun` is a valid sockaddr_un of `len` bytes; fd is open.
    // A UNIX-domain connect completes at once or fails (EAGAIN when the
    // listener's backlog is full, reported as an error to retry later).
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    Ok(fd)
}

/// Sends one control message, with `pass` attached by `SCM_RIGHTS`.
pub fn send_msg(
    fd: BorrowedFd<'_>,
    msg: &[u8; MSG_SIZE],
    pass: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut libc::c_void,
        iov_len: MSG_SIZE,
    };
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut ctl = [0u64; 8];
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut mh: libc::msghdr = unsafe { mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if let Some(pass) = pass {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(mem::size_of::<RawFd>() as u32) } as usize;
        debug_assert!(space <= mem::size_of_val(&ctl));
        mh.msg_control = ctl.as_mut_ptr().cast();
        mh.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` writable, aligned bytes, so
        // CMSG_FIRSTHDR is non-null and the header plus one int fit in it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&mh);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), pass.as_raw_fd());
        }
    }
    // SAFETY: mh points at a live iovec and control buffer for the call;
    // MSG_NOSIGNAL turns a vanished peer into EPIPE instead of SIGPIPE.
    let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &mh, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != MSG_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short control message send",
        ));
    }
    Ok(())
}

/// What one `recvmsg` brought.
pub enum Received {
    /// Nothing to read now.
    Nothing,
    /// The peer closed the connection.
    Closed,
    /// A message of `len` bytes (more than the buffer when truncated) and
    /// the descriptors that came with it.
    Msg {
        /// Bytes of the message.
        len: usize,
        /// Descriptors passed along.
        fds: Vec<OwnedFd>,
    },
}

/// Receives one control message into `buf`.
pub fn recv_msg(fd: BorrowedFd<'_>, buf: &mut [u8; 2 * MSG_SIZE]) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut ctl = [0u64; 16];
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut mh: libc::msghdr = unsafe { mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_mut_ptr().cast();
    mh.msg_controllen = mem::size_of_val(&ctl) as _;
    // SAFETY: mh points at a live, writable buffer and control area;
    // MSG_CMSG_CLOEXEC keeps passed descriptors from leaking into children.
    let n = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut mh,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_TRUNC,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(Received::Nothing),
            _ => Err(e),
        };
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR and
    // CMSG_NXTHDR walk only within them. Each SCM_RIGHTS payload holds
    // (cmsg_len - CMSG_LEN(0)) / sizeof(int) new descriptors that this
    // process now owns; each is wrapped in an OwnedFd exactly once, so the
    // ones not used are closed.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&mh);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..payload / mem::size_of::<RawFd>() {
                    let raw = std::ptr::read_unaligned(data.add(i));
                    if raw >= 0 {
                        fds.push(OwnedFd::from_raw_fd(raw));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&mh, cmsg);
        }
    }
    if n == 0 {
        return Ok(Received::Closed);
    }
    Ok(Received::Msg {
        len: n as usize,
        fds,
    })
}

/// A new memfd of `size` bytes, sealed against shrinking so a mapping of
/// it can never fault with SIGBUS.
pub fn memfd(name: &str, size: u64) -> io::Result<OwnedFd> {
    let cname = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: cname is a valid C string; the result is checked and owned once.
    let fd = cvt(unsafe {
        libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: fd is a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fd is an open memfd; size fits off_t (checked by the caller's
    // region size limit).
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) })?;
    // SAFETY: fd is an open memfd created with MFD_ALLOW_SEALING.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) })?;
    Ok(fd)
}

/// The seals of a memfd (0 for a file that supports none).
pub fn seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: F_GET_SEALS only reads the descriptor's state.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
}

/// The size of the file behind `fd`.
pub fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(fstat(fd)?.st_size as u64)
}

/// True when `fd` is a regular file (a memfd, a hugetlbfs or tmpfs file),
/// not a device, pipe or socket.
pub fn is_regular_file(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(fstat(fd)?.st_mode & libc::S_IFMT == libc::S_IFREG)
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data and fstat fills it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a valid, writable stat buffer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// Checks that `fd` is an eventfd and makes it non-blocking, so a write to
/// it from a worker can never block (a peer could pass a pipe, or a
/// blocking eventfd with its counter near the maximum).
pub fn check_eventfd(fd: BorrowedFd<'_>) -> io::Result<()> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    if link.as_os_str() != "anon_inode:[eventfd]" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an eventfd",
        ));
    }
    // SAFETY: F_GETFL/F_SETFL only read and set the file status flags of
    // an open descriptor.
    unsafe {
        let fl = cvt(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        if fl & libc::O_NONBLOCK == 0 {
            cvt(libc::fcntl(
                fd.as_raw_fd(),
                libc::F_SETFL,
                fl | libc::O_NONBLOCK,
            ))?;
        }
    }
    Ok(())
}

/// A new non-blocking eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) with constant flags; the result is checked and
    // owned exactly once.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: fd is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Signals the peer's interrupt eventfd once; errors are ignored (a full
/// counter or a closed peer changes nothing for a polling sender).
#[inline]
pub fn kick(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an open descriptor.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Waits until one of `fds` is readable or `timeout_ms` passes.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<()> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 4];
    let n = fds.len().min(pfds.len());
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    // SAFETY: pfds holds n initialised pollfd entries.
    let ret = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
