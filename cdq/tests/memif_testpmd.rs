//! memif CDQ against real peers: DPDK 22.11's `dpdk-testpmd` with a
//! `net_memif` client vdev, and our own client role.
//!
//! Tests that need `dpdk-testpmd` print a line and return when it is not
//! installed (`apt-get install dpdk-dev`); they must run as root (testpmd
//! with `--no-huge`). Every testpmd process, DPDK runtime directory and
//! socket file a test creates is removed by a guard, also when the test
//! fails.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use p4k8s_cdq::memif::{wire, MemifConfig, MemifPort, MemifPortThread, MemifQueuePair, SocketName};
use p4k8s_packet::{Batch, BufPool, PacketBuf, QueuePair};

// ---------------------------------------------------------------- guards

/// Removes a socket file on drop.
struct SockFile(PathBuf);

impl Drop for SockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn sock_path(tag: &str) -> SockFile {
    let p = std::env::temp_dir().join(format!("p4k8s-memif-{}-{tag}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    SockFile(p)
}

/// A running testpmd; SIGTERM (then SIGKILL) on drop, runtime dir removed.
struct Testpmd {
    child: Child,
    prefix: String,
    log: PathBuf,
}

fn testpmd_installed() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v dpdk-testpmd"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        println!("SKIPPED: dpdk-testpmd is not installed (apt-get install dpdk-dev)");
    }
    found
}

impl Testpmd {
    /// Starts testpmd on `cores` ("0,1") with the given vdevs and
    /// forwarding mode; stdin stays open (a pipe) so it keeps running.
    fn spawn(tag: &str, cores: &str, vdevs: &[String], fwd: &str, queues: u16) -> Testpmd {
        Testpmd::spawn_eal(tag, cores, &[], vdevs, fwd, queues)
    }

    /// [`Testpmd::spawn`] with extra EAL options.
    fn spawn_eal(
        tag: &str,
        cores: &str,
        eal: &[&str],
        vdevs: &[String],
        fwd: &str,
        queues: u16,
    ) -> Testpmd {
        let prefix = format!("p4k8s-{}-{tag}", std::process::id());
        let log = std::env::temp_dir().join(format!("{prefix}.log"));
        let logf = std::fs::File::create(&log).expect("testpmd log file");
        let mut cmd = Command::new("dpdk-testpmd");
        cmd.args(["-l", cores, "--no-huge", "-m", "1024", "--no-pci"]);
        cmd.arg(format!("--file-prefix={prefix}"));
        cmd.args(eal);
        for v in vdevs {
            cmd.arg(format!("--vdev={v}"));
        }
        cmd.args([
            "--",
            "--total-num-mbufs=16384",
            "--auto-start",
            "--stats-period=1",
        ]);
        cmd.arg(format!("--forward-mode={fwd}"));
        cmd.arg(format!("--rxq={queues}"));
        cmd.arg(format!("--txq={queues}"));
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls prctl, which is async-signal-safe: testpmd gets SIGKILL
        // if this test process dies without running the guard's Drop.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .expect("spawn dpdk-testpmd");
        Testpmd { child, prefix, log }
    }

    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits until testpmd forwards: its first periodic statistics are
    /// printed after forwarding started (testpmd drains and discards its
    /// receive queues just before it starts, so frames sent earlier vanish).
    fn wait_forwarding(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log().contains("Port statistics") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signals our own child, by its pid, which it keeps until we
        // reap it below.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        if std::thread::panicking() {
            eprintln!("--- testpmd log ---\n{}", self.log());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

// ---------------------------------------------------------------- frames

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// An Ethernet/IPv4/UDP frame of `len` bytes (>= 60) carrying `seq` and a
/// pattern derived from it.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&DST_MAC);
    f[6..12].copy_from_slice(&SRC_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[34..36].copy_from_slice(&1234u16.to_be_bytes());
    f[36..38].copy_from_slice(&5678u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[46..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    f
}

fn seq_of(f: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(f.get(42..46)?.try_into().ok()?))
}

fn swap_macs(f: &mut [u8]) {
    let (a, b) = f.split_at_mut(6);
    a.swap_with_slice(&mut b[..6]);
}

/// Sends `n` frames through `tx` and expects every one back on `rx`
/// (through `echo`, which forwards whatever arrives), unchanged except for
/// swapped MACs when `macswap`. Frame sizes cycle through `sizes`; at most
/// `window` frames are in flight, so the echoing side never finds its
/// transmit ring full (a full ring drops, by design).
#[allow(clippy::too_many_arguments)]
fn echo_test(
    qp: &mut MemifQueuePair,
    mut echo: impl FnMut(),
    n: u32,
    window: u32,
    sizes: &[usize],
    macswap: bool,
    deadline: Duration,
) -> Result<(), String> {
    let mut pool = BufPool::new(1024, 2048);
    let mut batch = Batch::new();
    let mut rx = Batch::new();
    let mut got = vec![false; n as usize];
    let (mut next, mut received) = (0u32, 0u32);
    let end = Instant::now() + deadline;
    while received < n {
        if Instant::now() >= end {
            return Err(format!(
                "timed out: sent {next}, received {received} of {n}"
            ));
        }
        while next < n && next - received < window && batch.remaining() > 0 {
            let len = sizes[next as usize % sizes.len()];
            let mut b = pool.get();
            b.copy_from(&frame(next, len)).expect("frame fits");
            let _ = batch.push(b);
            next += 1;
        }
        if !batch.is_empty() {
            let first = next - batch.len() as u32;
            let out = qp.tx_burst(&mut batch, &mut pool);
            // A full ring refuses a suffix of the burst: send it again.
            next = first + out.sent as u32;
        }
        echo();
        qp.rx_burst(&mut pool, &mut rx);
        for pkt in rx.drain() {
            let seq = seq_of(pkt.data()).expect("frame carries a sequence number");
            assert!(seq < n, "unknown sequence {seq}");
            let mut want = frame(seq, sizes[seq as usize % sizes.len()]);
            if macswap {
                swap_macs(&mut want);
            }
            assert_eq!(pkt.data(), &want[..], "frame {seq} changed");
            assert!(!got[seq as usize], "frame {seq} received twice");
            got[seq as usize] = true;
            received += 1;
            pool.put(pkt);
        }
    }
    Ok(())
}

/// Waits until testpmd (macswap) is connected and forwarding, echoes 10,000
/// frames of 60..1514 bytes through it, and checks the port counted each
/// once each way.
fn macswap_echo(ctl: &MemifPortThread, qp: &mut MemifQueuePair, tp: &Testpmd) {
    assert!(
        ctl.wait_connected(Duration::from_secs(45)),
        "testpmd did not connect ({:?}):\n{}",
        ctl.status().last_disconnect(),
        tp.log()
    );
    assert!(
        tp.wait_forwarding(Duration::from_secs(10)),
        "testpmd not forwarding:\n{}",
        tp.log()
    );
    let r = echo_test(
        qp,
        || {},
        10_000,
        256,
        &[60, 64, 128, 333, 1000, 1514],
        true,
        Duration::from_secs(10),
    );
    assert!(
        r.is_ok(),
        "{r:?}: port {:?}\n{}",
        ctl.counters().snapshot(),
        tp.log()
    );
    let stats = ctl.counters().snapshot();
    assert_eq!(stats.rx_packets, 10_000);
    assert_eq!(stats.tx_packets, 10_000);
    assert_eq!(stats.drops, 0);
}

// ---------------------------------------------------------------- tests

/// (1) Our server, testpmd as the CDQ client in macswap mode: 10,000 UDP
/// frames of 60..1514 bytes go out and come back with swapped MACs.
#[test]
fn testpmd_client_macswap_filesystem_socket() {
    if !testpmd_installed() {
        return;
    }
    let sock = sock_path("fs");
    let mut port = MemifPort::new(MemifConfig::server(SocketName::Path(sock.0.clone()), 1))
        .expect("server port");
    let mut qps = port.take_queue_pairs();
    let ctl = port.spawn().expect("control thread");
    let vdev = format!(
        "net_memif0,role=client,socket={},socket-abstract=no",
        sock.0.display()
    );
    let tp = Testpmd::spawn("fs", "0,1", &[vdev], "macswap", 1);
    macswap_echo(&ctl, &mut qps[0], &tp);
    drop(tp);
    // testpmd leaving is seen as a disconnect.
    let end = Instant::now() + Duration::from_secs(5);
    while ctl.status().is_connected() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!ctl.status().is_connected());
}

/// (1b) testpmd as a zero-copy client (`zero-copy=yes`): it exports its
/// mempool memory as regions, posts its mbufs' data room as receive
/// buffers and transmits straight from its mbufs, so descriptors point at
/// arbitrary offsets of several regions, not at a buffer layout we know.
#[test]
fn testpmd_zero_copy_client_macswap() {
    if !testpmd_installed() {
        return;
    }
    let sock = sock_path("zc");
    let mut port = MemifPort::new(MemifConfig::server(SocketName::Path(sock.0.clone()), 1))
        .expect("server port");
    let mut qps = port.take_queue_pairs();
    let ctl = port.spawn().expect("control thread");
    let vdev = format!(
        "net_memif0,role=client,socket={},socket-abstract=no,zero-copy=yes",
        sock.0.display()
    );
    // Zero-copy needs one file (and so one region) per memory segment
    // list: net_memif refuses "multi-file segments".
    let tp = Testpmd::spawn_eal(
        "zc",
        "0,1",
        &["--single-file-segments"],
        &[vdev],
        "macswap",
        1,
    );
    macswap_echo(&ctl, &mut qps[0], &tp);

    // The pod shrinks its (unsealed) mempool memory under the dataplane:
    // the next transmit into its posted buffers faults, the SIGBUS guard
    // repairs the mapping, this process lives on, and the connection ends.
    // testpmd is stopped meanwhile so that it does not fault first.
    let pid = tp.child.id() as i32;
    // SAFETY: signals our own child, by its pid, which it keeps until the
    // guard reaps it.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // Our copy of its memory file descriptor: the EAL's --no-huge memfd.
    let mut shrunk = 0;
    for e in std::fs::read_dir("/proc/self/fd")
        .expect("fd list")
        .flatten()
    {
        let link = std::fs::read_link(e.path()).unwrap_or_default();
        if link.to_string_lossy().starts_with("/memfd:nohuge") {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(e.path())
                .expect("reopen the memfd");
            f.set_len(0).expect("shrink the memfd");
            shrunk += 1;
        }
    }
    assert!(shrunk > 0, "no --no-huge memfd received from testpmd");
    let mut pool = BufPool::new(64, 2048);
    let mut batch = Batch::new();
    for i in 0..32 {
        let mut b = pool.get();
        b.copy_from(&frame(i, 60)).expect("frame fits");
        let _ = batch.push(b);
    }
    qps[0].tx_burst(&mut batch, &mut pool);
    let end = Instant::now() + Duration::from_secs(5);
    while ctl.status().is_connected() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = ctl.status().last_disconnect().expect("disconnected");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(!last.by_peer, "{last:?}");
    assert_eq!(last.reason, "a region shrank while mapped");
}

/// (2) Over an abstract socket name (DPDK 22.11's default when
/// `socket-abstract` is not given), with two queue pairs on each side in io
/// mode.
#[test]
fn testpmd_client_io_abstract_socket() {
    if !testpmd_installed() {
        return;
    }
    let name = format!("p4k8s-memif-test-{}", std::process::id());
    let mut port = MemifPort::new(MemifConfig::server(SocketName::Abstract(name.clone()), 2))
        .expect("server port");
    let mut qps = port.take_queue_pairs();
    let ctl = port.spawn().expect("control thread");
    let tp = Testpmd::spawn(
        "abs",
        "0,1",
        &[format!("net_memif0,role=client,socket={name}")],
        "io",
        2,
    );
    assert!(
        ctl.wait_connected(Duration::from_secs(45)),
        "testpmd did not connect:\n{}",
        tp.log()
    );
    assert!(
        tp.wait_forwarding(Duration::from_secs(10)),
        "testpmd not forwarding:\n{}",
        tp.log()
    );
    for qp in qps.iter_mut() {
        let r = echo_test(
            qp,
            || {},
            3_000,
            256,
            &[60, 1514],
            false,
            Duration::from_secs(10),
        );
        assert!(
            r.is_ok(),
            "qp {}: {r:?}: port {:?}\n{}",
            qp.index(),
            ctl.counters().snapshot(),
            tp.log()
        );
    }
    assert_eq!(ctl.counters().snapshot().rx_packets, 6_000);
}

/// Drives a server's queue pairs: everything received goes straight back.
fn echo_all(qps: &mut [MemifQueuePair], pool: &mut BufPool, batch: &mut Batch) {
    for qp in qps {
        qp.rx_burst(pool, batch);
        if !batch.is_empty() {
            qp.tx_burst(batch, pool);
        }
    }
}

/// (3) Our client role against our server role, multi-queue, with 256-byte
/// shared buffers so every frame above that is chained over several
/// descriptors; then the client leaves and a new one reconnects.
#[test]
fn our_client_and_server_multiqueue_chained_and_reconnect() {
    let sock = sock_path("ours");
    let mut cfg = MemifConfig::server(SocketName::Path(sock.0.clone()), 2);
    cfg.socket_mode = Some(0o666);
    let mut server = MemifPort::new(cfg).expect("server");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sock.0)
            .expect("socket file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o666);
    }
    let mut sqps = server.take_queue_pairs();
    let sctl = server.spawn().expect("control thread");
    let mut spool = BufPool::new(512, 2048);
    let mut sbatch = Batch::new();

    for round in 0..2 {
        let mut cfg = MemifConfig::client(SocketName::Path(sock.0.clone()), 2);
        cfg.buffer_size = 256;
        cfg.log2_ring_size = 9;
        let mut client = MemifPort::new(cfg).expect("client");
        let mut cqps = client.take_queue_pairs();
        let cctl = client.spawn().expect("control thread");
        assert!(
            cctl.wait_connected(Duration::from_secs(5)),
            "round {round}: client not connected"
        );
        assert!(sctl.wait_connected(Duration::from_secs(5)));
        for qp in cqps.iter_mut() {
            let r = echo_test(
                qp,
                || echo_all(&mut sqps, &mut spool, &mut sbatch),
                5_000,
                64,
                &[60, 255, 256, 257, 700, 1514],
                false,
                Duration::from_secs(10),
            );
            assert!(
                r.is_ok(),
                "round {round} qp {}: {r:?}: server {:?} client {:?}",
                qp.index(),
                sctl.counters().snapshot(),
                cctl.counters().snapshot()
            );
        }
        assert_eq!(cctl.counters().snapshot().rx_packets, 10_000);
        assert_eq!(cctl.counters().snapshot().drops, 0);
        drop(cctl);
        let end = Instant::now() + Duration::from_secs(5);
        while sctl.status().is_connected() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let last = sctl
            .status()
            .last_disconnect()
            .expect("disconnect recorded");
        assert!(last.by_peer, "{last:?}");
        assert_eq!(last.reason, "port closed");
    }
    assert_eq!(sctl.status().connects(), 2);
    assert_eq!(sctl.counters().snapshot().rx_packets, 20_000);
}

// A raw SOCK_SEQPACKET peer for the malformed-message test.
fn raw_connect(path: &Path) -> OwnedFd {
    // SAFETY: plain socket(2); the result is checked and owned once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fd is a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain old data.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as _;
    for (i, b) in path.as_os_str().as_encoded_bytes().iter().enumerate() {
        sun.sun_path[i] = *b as _;
    }
    // SAFETY: sun is a valid address of the given size.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as _,
        )
    };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: sets a receive timeout from a live timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as _,
        );
    }
    fd
}

fn raw_send(fd: &OwnedFd, bytes: &[u8]) {
    // SAFETY: sends from a live buffer.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    assert_eq!(n as usize, bytes.len());
}

/// Sends one message with `pass` attached by SCM_RIGHTS.
fn raw_send_fd(fd: &OwnedFd, bytes: &[u8], pass: &OwnedFd) {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut ctl = [0u64; 4];
    // SAFETY: msghdr is plain old data.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_mut_ptr().cast();
    // SAFETY: pure size computations; the header and one int fit in `ctl`,
    // which is aligned for cmsghdr; sendmsg reads live buffers only.
    unsafe {
        mh.msg_controllen = libc::CMSG_SPACE(4) as _;
        let c = libc::CMSG_FIRSTHDR(&mh);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), pass.as_raw_fd());
        assert_eq!(
            libc::sendmsg(fd.as_raw_fd(), &mh, libc::MSG_NOSIGNAL),
            bytes.len() as isize
        );
    }
}

/// A memfd of `size` bytes, sealed against shrinking or not.
fn memfd(size: u64, seal: bool) -> OwnedFd {
    // SAFETY: memfd_create/ftruncate/fcntl on a descriptor we own.
    unsafe {
        let fd = libc::memfd_create(c"test-region".as_ptr(), libc::MFD_ALLOW_SEALING);
        assert!(fd >= 0);
        let fd = OwnedFd::from_raw_fd(fd);
        assert_eq!(libc::ftruncate(fd.as_raw_fd(), size as i64), 0);
        if seal {
            assert_eq!(
                libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK),
                0
            );
        }
        fd
    }
}

/// Receives one message; `None` at end of stream.
fn raw_recv(fd: &OwnedFd) -> Option<wire::Msg> {
    let mut buf = [0u8; 256];
    // SAFETY: receives into a live buffer of the given size.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert!(n >= 0, "recv: {}", std::io::Error::last_os_error());
    if n == 0 {
        return None;
    }
    Some(wire::Msg::parse(&buf[..n as usize]).expect("server sends valid messages"))
}

fn expect_disconnect(fd: &OwnedFd, want: &str) {
    match raw_recv(fd) {
        Some(wire::Msg::Disconnect { reason, .. }) => assert_eq!(reason, want),
        m => panic!("expected DISCONNECT {want:?}, got {m:?}"),
    }
    assert!(raw_recv(fd).is_none(), "socket not closed after DISCONNECT");
}

/// (4) Peers that send an unknown message type, a short message, a message
/// out of order, a wrong interface id, ADD_REGION without its memfd or with
/// an unsealed one, or ADD_RING with something other than an eventfd are
/// disconnected with a reason; a peer arriving while another is connected is turned away; and
/// the port keeps serving: a real client connects and passes traffic.
#[test]
fn malformed_peers_are_disconnected_and_port_keeps_serving() {
    let sock = sock_path("bad");
    let mut server =
        MemifPort::new(MemifConfig::server(SocketName::Path(sock.0.clone()), 1)).expect("server");
    let mut sqps = server.take_queue_pairs();
    let sctl = server.spawn().expect("control thread");

    let hello = |fd: &OwnedFd| match raw_recv(fd) {
        Some(wire::Msg::Hello(h)) => {
            assert_eq!(
                (h.min_version, h.max_version),
                (wire::VERSION, wire::VERSION)
            );
            assert_eq!(h.max_c2s_ring, 0);
        }
        m => panic!("expected HELLO, got {m:?}"),
    };
    let init = wire::Msg::Init(wire::Init {
        version: wire::VERSION,
        id: 0,
        mode: 0,
        secret: [0; wire::SECRET_LEN],
        name: wire::Name::new("bad-peer"),
    });

    // Unknown type.
    let fd = raw_connect(&sock.0);
    hello(&fd);
    let mut m = [0u8; 128];
    m[0] = 0x42;
    raw_send(&fd, &m);
    expect_disconnect(&fd, "bad control message: unknown control message type 66");

    // Short message.
    let fd = raw_connect(&sock.0);
    hello(&fd);
    raw_send(&fd, &[3, 0, 0, 2]);
    expect_disconnect(
        &fd,
        "bad control message: control message of 4 bytes (expected 128)",
    );

    // CONNECT before INIT.
    let fd = raw_connect(&sock.0);
    hello(&fd);
    raw_send(&fd, &wire::Msg::Connect(wire::Name::new("x")).emit());
    expect_disconnect(&fd, "unexpected CONNECT message");

    // Wrong interface id.
    let fd = raw_connect(&sock.0);
    hello(&fd);
    let mut bad_id = init.clone();
    if let wire::Msg::Init(i) = &mut bad_id {
        i.id = 9;
    }
    raw_send(&fd, &bad_id.emit());
    expect_disconnect(&fd, "interface id 9 not found");

    // ADD_REGION without the memfd.
    let fd = raw_connect(&sock.0);
    hello(&fd);
    raw_send(&fd, &init.emit());
    assert_eq!(raw_recv(&fd), Some(wire::Msg::Ack));
    raw_send(
        &fd,
        &wire::Msg::AddRegion(wire::AddRegion {
            index: 0,
            size: 1 << 20,
        })
        .emit(),
    );
    expect_disconnect(&fd, "ADD_REGION without a file descriptor");

    // A region that is not a memory file (here an eventfd) is refused. (An
    // unsealed memfd is accepted, under a SIGBUS guard: see
    // testpmd_zero_copy_client_macswap.)
    let fd = raw_connect(&sock.0);
    hello(&fd);
    raw_send(&fd, &init.emit());
    assert_eq!(raw_recv(&fd), Some(wire::Msg::Ack));
    let region = wire::Msg::AddRegion(wire::AddRegion {
        index: 0,
        size: 1 << 16,
    });
    let efd = {
        // SAFETY: creates a new eventfd, owned below.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: raw is a new descriptor nobody else owns.
        unsafe { OwnedFd::from_raw_fd(raw) }
    };
    raw_send_fd(&fd, &region.emit(), &efd);
    expect_disconnect(&fd, "invalid region 0: not a memory file");

    // A ring whose interrupt fd is not an eventfd (a write to it could
    // block a worker) is refused.
    let fd = raw_connect(&sock.0);
    hello(&fd);
    raw_send(&fd, &init.emit());
    assert_eq!(raw_recv(&fd), Some(wire::Msg::Ack));
    raw_send_fd(&fd, &region.emit(), &memfd(1 << 16, true));
    assert_eq!(raw_recv(&fd), Some(wire::Msg::Ack));
    let ring = wire::Msg::AddRing(wire::AddRing {
        flags: wire::ADD_RING_FLAG_C2S,
        index: 0,
        region: 0,
        offset: 0,
        log2_ring_size: 10,
        private_hdr_size: 0,
    });
    let not_an_eventfd = memfd(4096, true);
    raw_send_fd(&fd, &ring.emit(), &not_an_eventfd);
    expect_disconnect(&fd, "invalid ring 0: interrupt fd is not an eventfd");

    let end = Instant::now() + Duration::from_secs(2);
    while sctl.status().disconnects() < 7 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = sctl.status().last_disconnect().expect("recorded");
    assert!(!last.by_peer);
    assert_eq!(
        last.reason,
        "invalid ring 0: interrupt fd is not an eventfd"
    );
    assert_eq!(sctl.status().connects(), 0);

    // Still serving: a real client connects and traffic flows.
    let mut client =
        MemifPort::new(MemifConfig::client(SocketName::Path(sock.0.clone()), 1)).expect("client");
    let mut cqps = client.take_queue_pairs();
    let cctl = client.spawn().expect("control thread");
    assert!(cctl.wait_connected(Duration::from_secs(5)));

    // A second peer while connected is turned away.
    let fd = raw_connect(&sock.0);
    expect_disconnect(&fd, "already connected");
    assert_eq!(sctl.status().rejected(), 1);

    let mut spool = BufPool::new(256, 2048);
    let mut sbatch = Batch::new();
    let r = echo_test(
        &mut cqps[0],
        || echo_all(&mut sqps, &mut spool, &mut sbatch),
        1_000,
        64,
        &[60, 1514],
        false,
        Duration::from_secs(10),
    );
    assert!(r.is_ok(), "{r:?}");
    assert!(sctl.status().is_connected());
    drop(cctl);
}

/// Frames too big for a PacketBuf are dropped and counted, not truncated.
#[test]
fn oversized_chained_frame_is_dropped_and_counted() {
    let sock = sock_path("big");
    let mut server =
        MemifPort::new(MemifConfig::server(SocketName::Path(sock.0.clone()), 1)).expect("server");
    let mut sqps = server.take_queue_pairs();
    let sctl = server.spawn().expect("control thread");
    let mut cfg = MemifConfig::client(SocketName::Path(sock.0.clone()), 1);
    cfg.buffer_size = 1024;
    let mut client = MemifPort::new(cfg).expect("client");
    let mut cqps = client.take_queue_pairs();
    let cctl = client.spawn().expect("control thread");
    assert!(cctl.wait_connected(Duration::from_secs(5)));
    assert!(sctl.wait_connected(Duration::from_secs(5)));

    // The client's PacketBufs are bigger than the server's.
    let mut cpool = BufPool::new(8, 9000);
    let mut batch = Batch::new();
    let mut big = PacketBuf::with_capacity(9000);
    big.copy_from(&frame(1, 4000)).expect("fits 9000");
    let _ = batch.push(big);
    let mut small = cpool.get();
    small.copy_from(&frame(2, 100)).expect("fits");
    let _ = batch.push(small);
    let out = cqps[0].tx_burst(&mut batch, &mut cpool);
    assert_eq!(out.sent, 2);

    let mut spool = BufPool::new(8, 2048);
    let mut rx = Batch::new();
    let end = Instant::now() + Duration::from_secs(5);
    while rx.is_empty() && Instant::now() < end {
        sqps[0].rx_burst(&mut spool, &mut rx);
    }
    assert_eq!(rx.len(), 1);
    assert_eq!(seq_of(rx.as_slice()[0].data()), Some(2));
    assert_eq!(sctl.counters().snapshot().drops, 1);
}

/// (5) Our client role against testpmd serving the socket (p4k8s
/// attaching to a DPDK application), with two queue pairs: testpmd in io
/// mode returns every frame on the queue it came in on.
#[test]
fn our_client_against_testpmd_server_two_queues() {
    if !testpmd_installed() {
        return;
    }
    let sock = sock_path("srv");
    let vdev = format!(
        "net_memif0,role=server,socket={},socket-abstract=no",
        sock.0.display()
    );
    let tp = Testpmd::spawn("srv", "0,1", &[vdev], "io", 2);
    assert!(
        tp.wait_forwarding(Duration::from_secs(15)),
        "testpmd not forwarding:\n{}",
        tp.log()
    );
    let mut client = MemifPort::new(MemifConfig::client(SocketName::Path(sock.0.clone()), 2))
        .expect("client port");
    let mut qps = client.take_queue_pairs();
    let ctl = client.spawn().expect("control thread");
    assert!(
        ctl.wait_connected(Duration::from_secs(10)),
        "not connected to testpmd: {:?}\n{}",
        ctl.status().last_disconnect(),
        tp.log()
    );
    for qp in qps.iter_mut() {
        let r = echo_test(
            qp,
            || {},
            5_000,
            256,
            &[60, 64, 700, 1514],
            false,
            Duration::from_secs(10),
        );
        assert!(
            r.is_ok(),
            "qp {}: {r:?}: {:?}\n{}",
            qp.index(),
            ctl.counters().snapshot(),
            tp.log()
        );
    }
    assert_eq!(ctl.counters().snapshot().rx_packets, 10_000);
    drop(ctl);
    drop(tp);
}

/// A server with a secret turns away a client without it; the client sees
/// the server's reason.
#[test]
fn wrong_secret_is_refused() {
    let sock = sock_path("secret");
    let mut cfg = MemifConfig::server(SocketName::Path(sock.0.clone()), 1);
    cfg.secret = Some("s3cret".into());
    let server = MemifPort::new(cfg).expect("server");
    let sctl = server.spawn().expect("control thread");
    let client =
        MemifPort::new(MemifConfig::client(SocketName::Path(sock.0.clone()), 1)).expect("client");
    let cctl = client.spawn().expect("control thread");
    let end = Instant::now() + Duration::from_secs(5);
    while cctl.status().last_disconnect().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let d = cctl
        .status()
        .last_disconnect()
        .expect("client was disconnected");
    assert!(d.by_peer);
    assert_eq!(d.reason, "incorrect secret");
    assert_eq!(sctl.status().connects(), 0);
}
