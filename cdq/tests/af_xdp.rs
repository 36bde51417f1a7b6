//! AF_XDP ports on a veth pair (needs root, `ip`, `python3`; skipped with a
//! printed "SKIPPED" otherwise).
//!
//! Each test makes a namespace `p4k8s-x-<pid>-<n>` holding one end of a
//! veth pair (as `eth0`, 10.79.0.2/24, MAC 02:00:00:00:79:02); our port sits
//! on the other end in the test's namespace. A drop guard deletes both,
//! even on failure; deleting the veth also removes any XDP program left.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use p4k8s_cdq::af_packet::{AfPacketConfig, AfPacketPort};
use p4k8s_cdq::af_xdp::{
    xdp_map_exists, xdp_prog_exists, AfXdpConfig, AfXdpError, AfXdpPort, HostPort, XdpMode,
};
use p4k8s_cdq::netns::{self, OwnedNetns};
use p4k8s_packet::checksum::checksum;
use p4k8s_packet::{Batch, BufPool, QueuePair};

static NEXT: AtomicUsize = AtomicUsize::new(0);

const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x79, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x79, 0x02];
const OUR_IP: [u8; 4] = [10, 79, 0, 1];
const PEER_IP: [u8; 4] = [10, 79, 0, 2];
const MARK: &[u8; 6] = b"P4XDP!";

/// True when running as root; otherwise prints why the test is skipped.
fn root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if uid != "0" {
        println!("SKIPPED: AF_XDP tests need root (effective uid {uid:?})");
        return false;
    }
    true
}

/// A veth pair: `host` here, `eth0` in `ns`. Deleted on drop.
struct Veth {
    host: String,
    ns: OwnedNetns,
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = netns::ip(&["link", "del", "dev", &self.host]);
    }
}

/// A veth pair with `queues` RX and TX queues on each end.
fn veth(queues: usize) -> Veth {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ns = OwnedNetns::create(&format!("p4k8s-x-{}-{n}", std::process::id())).unwrap();
    let tag = format!("{:x}y{n}", std::process::id() & 0xffffff);
    let host = format!("p4xh{tag}");
    let peer = format!("p4xp{tag}");
    let q = queues.to_string();
    netns::ip(&[
        "link",
        "add",
        &host,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ])
    .unwrap();
    let v = Veth { host, ns };
    let ns = v.ns.name();
    netns::ip(&["link", "set", "dev", &peer, "netns", ns]).unwrap();
    netns::ip_in(ns, &["link", "set", "dev", &peer, "name", "eth0"]).unwrap();
    netns::ip_in(
        ns,
        &["link", "set", "dev", "eth0", "address", "02:00:00:00:79:02"],
    )
    .unwrap();
    // Keep IPv6 chatter (router solicitations, MLD) off the link.
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", v.host),
        "1",
    );
    in_ns(ns, &["sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"]);
    netns::ip_in(ns, &["addr", "add", "10.79.0.2/24", "dev", "eth0"]).unwrap();
    // Our side answers no ARP: a static neighbour for us.
    netns::ip_in(
        ns,
        &[
            "neigh",
            "add",
            "10.79.0.1",
            "lladdr",
            "02:00:00:00:79:01",
            "dev",
            "eth0",
        ],
    )
    .unwrap();
    netns::ip_in(ns, &["link", "set", "dev", "eth0", "up"]).unwrap();
    netns::ip(&["link", "set", "dev", &v.host, "up"]).unwrap();
    v
}

/// Runs a command in the namespace, returning its stdout.
fn in_ns(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 60-byte IPv4/UDP frame carrying `MARK` and `seq`, to the peer.
fn marked(seq: u32) -> Vec<u8> {
    let mut f = udp_frame(&[0; 0], 10000, 9);
    f.resize(60, 0);
    f[42..48].copy_from_slice(MARK);
    f[48..52].copy_from_slice(&seq.to_be_bytes());
    // Experimental ethertype: no L3 handler on the peer, only its sockets.
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

fn seq_of(frame: &[u8]) -> Option<u32> {
    (frame.len() >= 52 && &frame[42..48] == MARK)
        .then(|| u32::from_be_bytes([frame[48], frame[49], frame[50], frame[51]]))
}

/// A complete IPv4/UDP frame from us to the peer, checksums filled in.
fn udp_frame(payload: &[u8], sport: u16, dport: u16) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut f = vec![0u8; 14 + 20 + udp_len];
    f[0..6].copy_from_slice(&PEER_MAC);
    f[6..12].copy_from_slice(&OUR_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let tot = (20 + udp_len) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&tot.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&OUR_IP);
    ip[16..20].copy_from_slice(&PEER_IP);
    let c = checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&(udp_len as u16).to_be_bytes());
    f[42..].copy_from_slice(payload);
    // UDP checksum over the pseudo-header and the datagram.
    let mut pseudo = Vec::with_capacity(12 + udp_len);
    pseudo.extend_from_slice(&OUR_IP);
    pseudo.extend_from_slice(&PEER_IP);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&f[34..]);
    let c = checksum(&pseudo);
    f[40..42].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    f
}

/// Sends `count` marked frames on `tx` in bursts of 32 (resending those
/// the ring had no room for) while polling `rx`; returns how often each
/// sequence number arrived and the number of tx bursts.
fn send_marked(
    tx: &mut dyn QueuePair,
    rx: &mut dyn QueuePair,
    pool: &mut BufPool,
    count: u32,
) -> (HashMap<u32, u32>, u32) {
    let mut seen = HashMap::new();
    let mut seq = 0;
    let mut bursts = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seq < count {
        assert!(Instant::now() < deadline, "tx ring stuck at {seq}");
        let mut b = Batch::new();
        for s in seq..(seq + 32).min(count) {
            let mut buf = pool.get();
            buf.copy_from(&marked(s)).unwrap();
            b.push(buf).unwrap();
        }
        let out = tx.tx_burst(&mut b, pool);
        bursts += 1;
        seq += out.sent as u32; // dropped frames are the last ones: resend
        poll(rx, pool, &mut seen);
    }
    // Keep polling until all arrived, then a little longer for duplicates.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut linger: Option<Instant> = None;
    loop {
        // An empty tx burst lets the sender kick what is still queued.
        tx.tx_burst(&mut Batch::new(), pool);
        poll(rx, pool, &mut seen);
        if seen.values().sum::<u32>() >= count && linger.is_none() {
            linger = Some(Instant::now() + Duration::from_millis(50));
        }
        if linger.is_some_and(|t| Instant::now() > t) || Instant::now() > deadline {
            return (seen, bursts);
        }
    }
}

fn poll(q: &mut dyn QueuePair, pool: &mut BufPool, seen: &mut HashMap<u32, u32>) {
    let mut batch = Batch::new();
    q.rx_burst(pool, &mut batch);
    for pkt in batch.drain() {
        if let Some(s) = seq_of(pkt.data()) {
            *seen.entry(s).or_insert(0) += 1;
        }
        pool.put(pkt);
    }
}

fn exactly_once(seen: &HashMap<u32, u32>, count: u32) {
    assert_eq!(seen.len(), count as usize, "distinct frames");
    assert!(seen.values().all(|&n| n == 1), "a frame arrived twice");
    assert!((0..count).all(|s| seen.contains_key(&s)));
}

fn peer_packet_port(v: &Veth) -> AfPacketPort {
    let mut cfg = AfPacketConfig::new("eth0");
    cfg.netns = Some(v.ns.name().to_owned());
    AfPacketPort::create(&cfg).unwrap()
}

/// `ip link show dev <ifname>` in the test's namespace.
fn link_show(ifname: &str) -> String {
    let out = Command::new("ip")
        .args(["link", "show", "dev", ifname])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn veth_frames_both_ways_are_counted_exactly() {
    if !root() {
        return;
    }
    let v = veth(1);
    let mut ours = AfXdpPort::open(&AfXdpConfig::new(&v.host)).unwrap();
    assert_eq!(ours.mode(), XdpMode::Native, "veth has driver-mode XDP");
    let mut peer = peer_packet_port(&v);
    let mut q = ours.take_queue(0).unwrap();
    let mut pq = peer.take_queue(0).unwrap();
    let mut pool = BufPool::new(256, 2048);

    let (seen, bursts) = send_marked(&mut q, &mut pq, &mut pool, 1000);
    exactly_once(&seen, 1000);
    let st = q.stats();
    // One kick per burst at most (copy mode always asks for TX kicks).
    assert!(
        st.kicks <= u64::from(bursts) * 2 + 600,
        "{st:?} for {bursts} bursts"
    );
    let (seen, _) = send_marked(&mut pq, &mut q, &mut pool, 1000);
    exactly_once(&seen, 1000);

    let s = ours.counters().snapshot();
    assert_eq!(s.tx_packets, 1000, "{s:?}");
    assert_eq!(s.tx_bytes, 60_000, "{s:?}");
    assert!(s.rx_packets >= 1000 && s.drops == 0, "{s:?}");
    let st = q.stats();
    assert_eq!(
        (
            st.rx_bad_desc,
            st.rx_too_large,
            st.tx_ring_full,
            st.kick_errors
        ),
        (0, 0, 0, 0),
        "{st:?}"
    );
    let k = q.kernel_stats().unwrap();
    assert_eq!(
        (k.rx_dropped, k.rx_ring_full, k.rx_invalid_descs),
        (0, 0, 0),
        "{k:?}"
    );
}

#[test]
fn udp_from_a_peer_socket_arrives_and_ours_reaches_a_peer_socket() {
    if !root() {
        return;
    }
    let v = veth(1);
    // The peer's stack would leave UDP checksums partial (veth tx offload).
    in_ns(v.ns.name(), &["ethtool", "-K", "eth0", "tx", "off"]);
    let mut ours = AfXdpPort::open(&AfXdpConfig::new(&v.host)).unwrap();
    let mut q = ours.take_queue(0).unwrap();
    let mut pool = BufPool::new(256, 2048);

    // Peer socket -> us.
    let out = common::python_in(
        v.ns.name(),
        "import socket
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5):
    s.sendto(b'hello af_xdp %d' % i, ('10.79.0.1', 9999))",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got = Vec::new();
    let mut batch = Batch::new();
    let t0 = Instant::now();
    while got.len() < 5 && t0.elapsed() < Duration::from_secs(3) {
        q.rx_burst(&mut pool, &mut batch);
        for pkt in batch.drain() {
            let f = pkt.data();
            if f.len() >= 42
                && f[12..14] == [8, 0]
                && f[23] == 17
                && f[36..38] == 9999u16.to_be_bytes()
            {
                assert_eq!(&f[0..6], &OUR_MAC);
                assert_eq!(&f[6..12], &PEER_MAC);
                assert_eq!(&f[26..30], &PEER_IP);
                // Recompute the UDP checksum: complete frames only.
                let udp_len = usize::from(u16::from_be_bytes([f[38], f[39]]));
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&f[26..34]);
                pseudo.extend_from_slice(&[0, 17]);
                pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
                pseudo.extend_from_slice(&f[34..34 + udp_len]);
                assert_eq!(checksum(&pseudo), 0, "UDP checksum");
                got.push(f[42..34 + udp_len].to_vec());
            }
            pool.put(pkt);
        }
    }
    let want: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("hello af_xdp {i}").into_bytes())
        .collect();
    assert_eq!(got, want);

    // Us -> peer socket.
    let mut srv = Command::new("ip")
        .args([
            "netns",
            "exec",
            v.ns.name(),
            "timeout",
            "10",
            "python3",
            "-c",
        ])
        .arg(
            "import socket
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('10.79.0.2', 9998)); print('ready', flush=True)
for i in range(3):
    d,a=s.recvfrom(2048); print(a[0], a[1], d.decode(), flush=True)",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(srv.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let mut b = Batch::new();
    for i in 0..3 {
        let mut buf = pool.get();
        buf.copy_from(&udp_frame(
            format!("from af_xdp {i}").as_bytes(),
            4242,
            9998,
        ))
        .unwrap();
        b.push(buf).unwrap();
    }
    assert_eq!(q.tx_burst(&mut b, &mut pool).sent, 3);
    let lines: Vec<String> = lines.map_while(Result::ok).collect();
    let _ = srv.wait();
    assert_eq!(
        lines,
        (0..3)
            .map(|i| format!("10.79.0.1 4242 from af_xdp {i}"))
            .collect::<Vec<_>>()
    );
    let s = ours.counters().snapshot();
    assert!(s.tx_packets == 3 && s.rx_packets >= 5, "{s:?}");
}

#[test]
fn closing_the_port_detaches_the_program_and_frees_everything() {
    if !root() {
        return;
    }
    let v = veth(1);
    let mut port = AfXdpPort::open(&AfXdpConfig::new(&v.host)).unwrap();
    let (id, map) = (port.prog_id(), port.map_id());
    let shown = link_show(&v.host);
    assert!(
        shown.contains("xdp") && shown.contains(&format!("id {id}")),
        "{shown}"
    );
    assert!(xdp_prog_exists(id) && xdp_map_exists(map));
    // A taken queue keeps the program attached until it goes too.
    let q = port.take_queue(0).unwrap();
    drop(port);
    assert!(link_show(&v.host).contains("xdp"));
    drop(q);
    let shown = link_show(&v.host);
    assert!(!shown.contains("xdp"), "{shown}");
    // The program and the map are freed after an RCU grace period.
    let t0 = Instant::now();
    while xdp_prog_exists(id) || xdp_map_exists(map) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "program {id} or map {map} lingers"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The socket is gone too: a new one binds the same queue (a bound
    // socket would make that fail with EBUSY).
    let again = AfXdpPort::open(&AfXdpConfig::new(&v.host)).unwrap();
    assert_ne!(again.prog_id(), id);
}

#[test]
fn host_port_is_af_xdp_when_it_can_be() {
    if !root() {
        return;
    }
    let v = veth(1);
    let mut port =
        HostPort::open(&AfXdpConfig::new(&v.host), &AfPacketConfig::new(&v.host)).unwrap();
    assert_eq!(port.backend(), "af_xdp");
    assert!(port.fallback_reason().is_none());
    let mut q = port.take_queue(0).unwrap();
    let mut peer = peer_packet_port(&v);
    let mut pq = peer.take_queue(0).unwrap();
    let mut pool = BufPool::new(256, 2048);
    let (seen, _) = send_marked(&mut pq, &mut q, &mut pool, 200);
    exactly_once(&seen, 200);
    assert!(port.counters().snapshot().rx_packets >= 200);
}

#[test]
fn host_port_falls_back_to_af_packet_when_xdp_is_taken() {
    if !root() {
        return;
    }
    let v = veth(1);
    let first = AfXdpPort::open(&AfXdpConfig::new(&v.host)).unwrap();
    let port = HostPort::open(&AfXdpConfig::new(&v.host), &AfPacketConfig::new(&v.host)).unwrap();
    assert_eq!(port.backend(), "af_packet");
    let why = port.fallback_reason().unwrap();
    // The queue's socket slot is taken (bind: EBUSY); were it not, the
    // attachment would be (BPF_LINK_CREATE: EBUSY/EEXIST).
    assert!(
        matches!(
            why,
            AfXdpError::Os {
                op: "bind(AF_XDP)",
                ..
            } | AfXdpError::Bpf { .. }
        ),
        "{why}"
    );
    assert!(why.to_string().contains(&v.host), "{why}");
    // The first port's program is still the one attached.
    assert!(link_show(&v.host).contains(&format!("id {}", first.prog_id())));
    drop(first);
}

#[test]
fn host_port_falls_back_to_af_packet_when_the_device_has_too_few_queues() {
    if !root() {
        return;
    }
    let v = veth(1);
    let mut xc = AfXdpConfig::new(&v.host);
    xc.queues = 2;
    let mut pc = AfPacketConfig::new(&v.host);
    pc.queues = 2;
    let mut port = HostPort::open(&xc, &pc).unwrap();
    assert_eq!(port.backend(), "af_packet");
    let why = port.fallback_reason().unwrap().to_string();
    assert!(
        why.contains("bind(AF_XDP)") && why.contains("queue 1"),
        "{why}"
    );
    // Nothing of the failed attempt is left attached.
    assert!(!link_show(&v.host).contains("xdp"));
    // The AF_PACKET queues carry traffic.
    let mut qs = [port.take_queue(0).unwrap(), port.take_queue(1).unwrap()];
    let mut peer = peer_packet_port(&v);
    let mut pq = peer.take_queue(0).unwrap();
    let mut pool = BufPool::new(256, 2048);
    let mut seen = HashMap::new();
    let mut b = Batch::new();
    for s in 0..50 {
        let mut buf = pool.get();
        buf.copy_from(&marked(s)).unwrap();
        b.push(buf).unwrap();
    }
    assert_eq!(pq.tx_burst(&mut b, &mut pool).sent, 50);
    let t0 = Instant::now();
    while seen.len() < 50 && t0.elapsed() < Duration::from_secs(3) {
        for q in qs.iter_mut() {
            poll(q, &mut pool, &mut seen);
        }
    }
    exactly_once(&seen, 50);
}

#[test]
fn two_queues_on_a_two_queue_veth_deliver_each_frame_once() {
    if !root() {
        return;
    }
    let v = veth(2);
    let mut cfg = AfXdpConfig::new(&v.host);
    cfg.queues = 2;
    let mut ours = AfXdpPort::open(&cfg).unwrap();
    let mut qs = [ours.take_queue(0).unwrap(), ours.take_queue(1).unwrap()];
    let mut pool = BufPool::new(256, 2048);
    // Many flows from the peer's stack, spread over its two tx queues.
    let out = common::python_in(
        v.ns.name(),
        "import socket
for i in range(64):
    s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'flow %d' % i, ('10.79.0.1', 9999))",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut per_queue = [0usize; 2];
    let mut flows = HashMap::new();
    let t0 = Instant::now();
    while flows.len() < 64 && t0.elapsed() < Duration::from_secs(3) {
        for (i, q) in qs.iter_mut().enumerate() {
            let mut batch = Batch::new();
            q.rx_burst(&mut pool, &mut batch);
            for pkt in batch.drain() {
                let f = pkt.data();
                if f.len() > 42 && f[12..14] == [8, 0] && f[23] == 17 {
                    per_queue[i] += 1;
                    *flows.entry(f[42..].to_vec()).or_insert(0) += 1;
                }
                pool.put(pkt);
            }
        }
    }
    assert_eq!(flows.len(), 64, "{per_queue:?}");
    assert!(flows.values().all(|&n| n == 1));
    // Queue choice is the peer's (XPS/hash): both should be used.
    assert!(per_queue[0] > 0 && per_queue[1] > 0, "{per_queue:?}");
}

#[test]
fn oversized_frames_are_counted_and_dropped() {
    if !root() {
        return;
    }
    let v = veth(1);
    let mut ours = AfXdpPort::open(&AfXdpConfig::new(&v.host)).unwrap();
    let mut q = ours.take_queue(0).unwrap();
    let mut peer = peer_packet_port(&v);
    let mut pq = peer.take_queue(0).unwrap();

    // TX: larger than a UMEM frame.
    let mut big = BufPool::new(8, 8192);
    let mut b = Batch::new();
    let mut buf = big.get();
    buf.copy_from(&vec![0u8; 3000]).unwrap();
    b.push(buf).unwrap();
    let out = q.tx_burst(&mut b, &mut big);
    assert_eq!((out.sent, out.dropped), (0, 1));
    assert_eq!(q.stats().tx_too_large, 1);

    // RX: larger than the pool's buffers.
    let mut pool = BufPool::new(64, 2048);
    let mut b = Batch::new();
    for _ in 0..3 {
        let mut buf = pool.get();
        let mut f = marked(7);
        f.resize(1000, 0);
        buf.copy_from(&f).unwrap();
        b.push(buf).unwrap();
    }
    assert_eq!(pq.tx_burst(&mut b, &mut pool).sent, 3);
    let mut small = BufPool::new(64, 512);
    let mut batch = Batch::new();
    let t0 = Instant::now();
    while q.stats().rx_too_large < 3 && t0.elapsed() < Duration::from_secs(3) {
        q.rx_burst(&mut small, &mut batch);
        batch.recycle(&mut small);
    }
    assert_eq!(q.stats().rx_too_large, 3);
    let s = ours.counters().snapshot();
    assert_eq!(s.drops, 4, "{s:?}");
    // The frames went back to the fill ring: traffic still flows.
    let (seen, _) = send_marked(&mut pq, &mut q, &mut pool, 100);
    exactly_once(&seen, 100);
}

#[test]
fn missing_interface_is_named_in_the_error() {
    if !root() {
        return;
    }
    let err = AfXdpPort::open(&AfXdpConfig::new("p4k8s-nope1")).unwrap_err();
    assert!(err.to_string().contains("p4k8s-nope1"), "{err}");
}

/// Measurement, not a test: 60-byte frames/s over a veth pair, each way,
/// AF_XDP on both ends and then AF_PACKET on both ends, in one run:
/// `cargo test -p p4k8s-cdq --release --test af_xdp -- --ignored
/// --nocapture measure`.
#[test]
#[ignore]
fn measure_veth_rate_af_xdp_vs_af_packet() {
    if !root() {
        return;
    }
    let secs = 3.0;
    {
        let v = veth(1);
        let mut ours = AfXdpPort::open(&AfXdpConfig::new(&v.host)).unwrap();
        let mut pc = AfXdpConfig::new("eth0");
        pc.netns = Some(v.ns.name().to_owned());
        let mut peer = AfXdpPort::open(&pc).unwrap();
        let (mut q, mut pq) = (ours.take_queue(0).unwrap(), peer.take_queue(0).unwrap());
        println!("AF_XDP ({:?} mode, copy):", ours.mode());
        rate("  us -> peer", &mut q, &mut pq, secs);
        rate("  peer -> us", &mut pq, &mut q, secs);
        println!(
            "  kicks: ours {}, peer {}; copy-mode tx budget raised to 128: {}",
            q.stats().kicks,
            pq.stats().kicks,
            q.tx_budget_raised()
        );
        println!(
            "  socket drops: ours {:?}, peer {:?}",
            q.kernel_stats().unwrap(),
            pq.kernel_stats().unwrap()
        );
        println!("  {}", link_stats(&v.host).replace('\n', "\n  "));
    }
    {
        let v = veth(1);
        let mut ours = AfPacketPort::create(&AfPacketConfig::new(&v.host)).unwrap();
        let mut peer = peer_packet_port(&v);
        let (mut q, mut pq) = (ours.take_queue(0).unwrap(), peer.take_queue(0).unwrap());
        println!("AF_PACKET (TPACKET_V3):");
        rate("  us -> peer", &mut q, &mut pq, secs);
        rate("  peer -> us", &mut pq, &mut q, secs);
    }
}

/// `ip -s link show dev <ifname>`: the interface's own drop counters.
fn link_stats(ifname: &str) -> String {
    let out = Command::new("ip")
        .args(["-s", "link", "show", "dev", ifname])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Sends 60-byte frames from `tx` while `rx` receives, for `secs`
/// seconds; prints both rates in Mpps.
fn rate<T: QueuePair, R: QueuePair>(dir: &str, tx: &mut T, rx: &mut R, secs: f64) {
    let r = common::blast(tx, rx, &marked(0), secs);
    println!(
        "{dir}: sent {:.3} Mpps, received {:.3} Mpps (tx ring full {})",
        r.sent as f64 / secs / 1e6,
        r.received as f64 / secs / 1e6,
        r.tx_full,
    );
}
