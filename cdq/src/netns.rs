//! Named network namespaces: run code in one, move interfaces into one.
//!
//! A named namespace is a bind mount at `/run/netns/<name>`, as
//! `ip netns add` makes and container runtimes hand to CNI plugins.
//!
//! Choices, all on the control path:
//! - code runs in a namespace on a dedicated, short-lived thread that calls
//!   `setns(2)`; the calling thread (and so the dataplane's workers) never
//!   changes namespace;
//! - a link is moved by ifindex with one rtnetlink request (`RTM_NEWLINK`
//!   with `IFLA_NET_NS_FD`), so a name clash in the host namespace cannot
//!   move the wrong device;
//! - everything else (renames, addresses, routes) shells out to `ip` from
//!   iproute2 (`ip -n <name> ...`), which reports readable errors and needs
//!   no netlink attribute encoder here.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use thiserror::Error;

/// Where `ip netns add` puts named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A namespace operation that failed, naming the namespace, interface or
/// command involved.
#[derive(Debug, Error)]
pub enum NetnsError {
    /// `/run/netns/<name>` could not be opened.
    #[error("opening network namespace {name:?} ({path}): {source}")]
    Open {
        /// Namespace name.
        name: String,
        /// Path that was opened.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// `setns(2)` into the namespace failed.
    #[error("setns into network namespace {name:?}: {source}")]
    Setns {
        /// Namespace name.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// The thread running code in the namespace panicked.
    #[error("thread running in network namespace {name:?} panicked")]
    ThreadPanicked {
        /// Namespace name.
        name: String,
    },
    /// An rtnetlink request failed.
    #[error("netlink {op} of ifindex {ifindex} (to namespace {name:?}): {source}")]
    Netlink {
        /// What was asked (e.g. "RTM_NEWLINK IFLA_NET_NS_FD").
        op: &'static str,
        /// The link.
        ifindex: u32,
        /// Namespace name.
        name: String,
        /// The OS or netlink error.
        source: io::Error,
    },
    /// An interface name was not found.
    #[error("interface {ifname:?} not found: {source}")]
    NoSuchInterface {
        /// Interface name.
        ifname: String,
        /// The OS error.
        source: io::Error,
    },
    /// A command could not be started.
    #[error("running `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        source: io::Error,
    },
    /// A command exited with an error.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// An open handle on a named network namespace.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    file: File,
}

impl NetNs {
    /// Opens `/run/netns/<name>`.
    pub fn open(name: &str) -> Result<Self, NetnsError> {
        let path = PathBuf::from(NETNS_RUN_DIR).join(name);
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            name: name.to_owned(),
            path: path.display().to_string(),
            source,
        })?;
        Ok(NetNs {
            name: name.to_owned(),
            file,
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file descriptor (valid while `self` lives).
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` on a dedicated thread that has entered this namespace, and
    /// returns its result. The calling thread's namespace is not touched.
    ///
    /// File descriptors that `f` opens (sockets, `/dev/net/tun`) belong to
    /// this namespace and keep it after the thread ends.
    pub fn run<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let fd = self.raw_fd();
        let name = &self.name;
        std::thread::scope(|s| {
            let handle = s.spawn(move || {
                // SAFETY: `fd` is an open namespace fd owned by `self`, which
                // outlives this scoped thread; setns only changes the calling
                // (dedicated) thread's network namespace.
                let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(NetnsError::Setns {
                        name: name.clone(),
                        source: io::Error::last_os_error(),
                    });
                }
                Ok(f())
            });
            handle
                .join()
                .map_err(|_| NetnsError::ThreadPanicked { name: name.clone() })?
        })
    }

    /// Moves the link with index `ifindex` (in the caller's namespace) into
    /// this namespace, with one rtnetlink `RTM_NEWLINK` request carrying
    /// `IFLA_NET_NS_FD`. The link keeps its name and its ifindex where free.
    pub fn move_link(&self, ifindex: u32) -> Result<(), NetnsError> {
        const OP: &str = "RTM_NEWLINK IFLA_NET_NS_FD";
        let err = |source: io::Error| NetnsError::Netlink {
            op: OP,
            ifindex,
            name: self.name.clone(),
            source,
        };
        let req = newlink_netns_request(ifindex, self.raw_fd() as u32, 1);
        let sock = netlink_socket().map_err(err)?;
        netlink_transact(&sock, &req).map_err(err)
    }
}

/// A namespace this process created with `ip netns add`; deleted on drop
/// (tests, scratch namespaces). The drop also runs when a test panics.
#[derive(Debug)]
pub struct OwnedNetns {
    name: String,
}

impl OwnedNetns {
    /// Creates the namespace `name` (`ip netns add <name>`), deleting a
    /// stale one of that name first, and brings its loopback up.
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        let _ = ip(&["netns", "del", name]);
        ip(&["netns", "add", name])?;
        let ns = OwnedNetns {
            name: name.to_owned(),
        };
        ip_in(name, &["link", "set", "dev", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens the namespace.
    pub fn open(&self) -> Result<NetNs, NetnsError> {
        NetNs::open(&self.name)
    }
}

impl Drop for OwnedNetns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Runs `f` in the named namespace on a dedicated thread (see [`NetNs::run`]).
pub fn run_in<T, F>(name: &str, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    NetNs::open(name)?.run(f)
}

/// The ifindex of `ifname` in the calling thread's namespace.
pub fn ifindex(ifname: &str) -> Result<u32, NetnsError> {
    let not_found = |source| NetnsError::NoSuchInterface {
        ifname: ifname.to_owned(),
        source,
    };
    let c = CString::new(ifname)
        .map_err(|_| not_found(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: `c` is a valid NUL-terminated string that lives across the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(not_found(io::Error::last_os_error()));
    }
    Ok(idx)
}

/// Runs `ip <args>` and fails with its stderr when it exits non-zero.
pub fn ip(args: &[&str]) -> Result<(), NetnsError> {
    run_command("ip", args)
}

/// Runs `ip -n <ns> <args>`: `ip` acting inside the named namespace.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<(), NetnsError> {
    let mut all = Vec::with_capacity(args.len() + 2);
    all.push("-n");
    all.push(ns);
    all.extend_from_slice(args);
    run_command("ip", &all)
}

/// Writes `value` to each of `files` as seen from inside the named
/// namespace (`ip netns exec <ns> tee <files>`): sysfs shows a network
/// namespace's devices only to a sysfs mounted there, which `ip netns exec`
/// does in a private mount namespace.
pub fn write_files_in(ns: &str, files: &[String], value: &str) -> Result<(), NetnsError> {
    let mut args = vec!["netns", "exec", ns, "tee"];
    args.extend(files.iter().map(String::as_str));
    let cmd = format!("ip {}", args.join(" "));
    let spawn_err = |source| NetnsError::Spawn {
        cmd: cmd.clone(),
        source,
    };
    let mut child = Command::new("ip")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write shows as tee's exit status below.
        let _ = stdin.write_all(value.as_bytes());
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    exit_status(cmd, &out)
}

/// Runs `program <args>`, failing with its stderr when it exits non-zero.
fn run_command(program: &str, args: &[&str]) -> Result<(), NetnsError> {
    let cmd = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    exit_status(cmd, &out)
}

/// `Ok` when `cmd` exited zero, else its exit status and stderr.
fn exit_status(cmd: String, out: &Output) -> Result<(), NetnsError> {
    if out.status.success() {
        return Ok(());
    }
    Err(NetnsError::Command {
        cmd,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

// rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h).
const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 0x2;
const IFLA_NET_NS_FD: u16 = 28;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;

/// The bytes of an `RTM_NEWLINK` request that moves `ifindex` to the
/// namespace behind `ns_fd`: `nlmsghdr`, `ifinfomsg`, one `rtattr` with a
/// u32 payload, all in native byte order as netlink wants.
fn newlink_netns_request(ifindex: u32, ns_fd: u32, seq: u32) -> [u8; 40] {
    let mut m = [0u8; 40];
    m[0..4].copy_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    m[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0; ifinfomsg: family AF_UNSPEC, type 0, index, flags/change 0.
    let ifi = NLMSG_HDRLEN;
    m[ifi + 4..ifi + 8].copy_from_slice(&ifindex.to_ne_bytes());
    let rta = NLMSG_HDRLEN + IFINFOMSG_LEN;
    m[rta..rta + 2].copy_from_slice(&8u16.to_ne_bytes()); // rta_len
    m[rta + 2..rta + 4].copy_from_slice(&IFLA_NET_NS_FD.to_ne_bytes());
    m[rta + 4..rta + 8].copy_from_slice(&ns_fd.to_ne_bytes());
    m
}

/// A `NETLINK_ROUTE` socket.
fn netlink_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one request to the kernel and waits for its acknowledgement.
fn netlink_transact(sock: &OwnedFd, req: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `req` is valid for `req.len()` bytes and `addr` is a properly
    // initialised sockaddr_nl whose size is passed alongside.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n < NLMSG_HDRLEN + 4 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "short netlink reply",
            ));
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        if ty != NLMSG_ERROR {
            continue;
        }
        let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        return if code == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(-code))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlink_request_layout() {
        let m = newlink_netns_request(7, 3, 1);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWLINK);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert_eq!(u16::from_ne_bytes([m[34], m[35]]), IFLA_NET_NS_FD);
        assert_eq!(u32::from_ne_bytes(m[36..40].try_into().unwrap()), 3);
    }
}
