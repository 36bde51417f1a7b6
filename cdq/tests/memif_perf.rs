//! Throughput of a memif CDQ with `dpdk-testpmd` as the peer: a
//! measurement, not a test (ignored by default). Run as root:
//!
//! ```text
//! MEMIF_PERF_MODE=io MEMIF_PERF_SECS=5 \
//!   cargo test --release -p p4k8s-cdq --test memif_perf -- --ignored --nocapture
//! ```
//!
//! Our server port's one queue pair runs on CPU 0 (one thread doing both
//! transmit and receive), testpmd forwards on CPU 1 (`-l 0,1`, its main
//! lcore idles on CPU 0). We keep up to `MEMIF_PERF_WINDOW` (default 1024)
//! 64-byte frames in flight and count what comes back; the printed Mpps is
//! per direction.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use p4k8s_cdq::memif::{MemifConfig, MemifPort, SocketName};
use p4k8s_packet::{Batch, BufPool, QueuePair};

struct Guard {
    child: Child,
    prefix: String,
    sock: PathBuf,
    log: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: signals our own child by the pid we have not reaped yet.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(5);
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(PathBuf::from("/var/run/dpdk").join(&self.prefix));
        let _ = std::fs::remove_file(&self.sock);
        let _ = std::fs::remove_file(&self.log);
    }
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain old data; CPU_SET writes within it and
    // sched_setaffinity(0, ...) only affects the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[test]
#[ignore = "measurement: run explicitly with --ignored --nocapture"]
fn memif_mpps_with_testpmd_peer() {
    let mode: String = env_or("MEMIF_PERF_MODE", "io".to_string());
    let secs: u64 = env_or("MEMIF_PERF_SECS", 5);
    let window: usize = env_or("MEMIF_PERF_WINDOW", 1024);
    let len: usize = env_or("MEMIF_PERF_LEN", 64);

    let pid = std::process::id();
    let sock = std::env::temp_dir().join(format!("p4k8s-memif-perf-{pid}.sock"));
    let prefix = format!("p4k8s-perf-{pid}");
    let log = std::env::temp_dir().join(format!("{prefix}.log"));
    let mut port = MemifPort::new(MemifConfig::server(SocketName::Path(sock.clone()), 1))
        .expect("server port");
    let mut qp = port.take_queue_pairs().remove(0);
    let ctl = port.spawn().expect("control thread");

    let logf = std::fs::File::create(&log).expect("log");
    let mut cmd = Command::new("dpdk-testpmd");
    cmd.args(["-l", "0,1", "--no-huge", "-m", "1024", "--no-pci"])
        .arg(format!("--file-prefix={prefix}"))
        .arg(format!(
            "--vdev=net_memif0,role=client,socket={},socket-abstract=no",
            sock.display()
        ))
        .args([
            "--",
            "--total-num-mbufs=16384",
            "--auto-start",
            "--stats-period=1",
        ])
        .arg(format!("--forward-mode={mode}"));
    // SAFETY: only prctl between fork and exec (async-signal-safe).
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = match cmd
        .stdin(Stdio::piped())
        .stdout(logf.try_clone().expect("dup"))
        .stderr(logf)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!("SKIPPED: cannot run dpdk-testpmd: {e}");
            return;
        }
    };
    let _guard = Guard {
        child,
        prefix,
        sock,
        log: log.clone(),
    };
    let read_log = || {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    };
    assert!(
        ctl.wait_connected(Duration::from_secs(15)),
        "{}",
        read_log()
    );
    let end = Instant::now() + Duration::from_secs(15);
    while !read_log().contains("Port statistics") {
        assert!(Instant::now() < end, "testpmd not forwarding");
        std::thread::sleep(Duration::from_millis(50));
    }

    pin_to_cpu(0);
    let mut frame = vec![0u8; len];
    frame[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    let mut pool = BufPool::new(4096, 2048);
    let mut tx = Batch::new();
    let mut rx = Batch::new();
    let mut inflight = 0usize;
    let warmup = Duration::from_secs(1);
    let start = Instant::now();
    let (mut t0, mut rx0, mut tx0) = (None, 0u64, 0u64);
    let (mut rx_total, mut tx_total) = (0u64, 0u64);
    // ns per packet moved (sent + received) of the bursts that moved at
    // least 32: their median is what our code costs per packet, cache
    // misses across the cores included, even on a machine busy enough to
    // preempt us (a preempted burst is an outlier).
    let mut per_packet: Vec<f64> = Vec::with_capacity(1 << 20);
    loop {
        while inflight + tx.len() < window && tx.remaining() > 0 {
            let mut b = pool.get();
            let _ = b.copy_from(&frame);
            let _ = tx.push(b);
        }
        let t = Instant::now();
        let mut moved = 0;
        if !tx.is_empty() {
            let out = qp.tx_burst(&mut tx, &mut pool);
            inflight += out.sent;
            tx_total += out.sent as u64;
            moved += out.sent;
        }
        let n = qp.rx_burst(&mut pool, &mut rx);
        moved += n;
        if moved >= 32 && t0.is_some() && per_packet.len() < per_packet.capacity() {
            per_packet.push(t.elapsed().as_nanos() as f64 / moved as f64);
        }
        inflight = inflight.saturating_sub(n);
        rx_total += n as u64;
        rx.recycle(&mut pool);
        let el = start.elapsed();
        if t0.is_none() && el >= warmup {
            t0 = Some(Instant::now());
            rx0 = rx_total;
            tx0 = tx_total;
        }
        if el >= warmup + Duration::from_secs(secs) {
            break;
        }
    }
    let dt = t0.map(|t| t.elapsed().as_secs_f64()).unwrap_or(1.0);
    let rx_mpps = (rx_total - rx0) as f64 / dt / 1e6;
    let tx_mpps = (tx_total - tx0) as f64 / dt / 1e6;
    let stats = ctl.counters().snapshot();
    // testpmd's own view, for a cross-check: its last per-second rates.
    let tp_log = read_log();
    let tp_rates: Vec<&str> = tp_log
        .lines()
        .filter(|l| l.contains("Rx-pps") || l.contains("Tx-pps"))
        .collect();
    if let Some(r) = tp_rates.len().checked_sub(2).map(|i| &tp_rates[i..]) {
        println!(
            "testpmd: {}",
            r.join(" | ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    per_packet.sort_by(f64::total_cmp);
    let median = per_packet.get(per_packet.len() / 2).copied().unwrap_or(0.0);
    println!(
        "memif CDQ, testpmd {mode}, {len}-byte frames, window {window}: \
         rx {rx_mpps:.2} Mpps, tx {tx_mpps:.2} Mpps (port drops {}); \
         median {median:.1} ns per packet sent or received over {} bursts",
        stats.drops,
        per_packet.len()
    );
}

/// Cost of our own code, without a peer process: our client and our server
/// in one process, one thread driving client tx -> server rx -> server tx
/// -> client rx with bursts of 32 frames of `MEMIF_PERF_LEN` bytes.
#[test]
#[ignore = "measurement: run explicitly with --ignored --nocapture"]
fn memif_loopback_ns_per_packet() {
    let len: usize = env_or("MEMIF_PERF_LEN", 64);
    let secs: u64 = env_or("MEMIF_PERF_SECS", 3);
    let sock = std::env::temp_dir().join(format!("p4k8s-memif-loop-{}.sock", std::process::id()));
    let mut server =
        MemifPort::new(MemifConfig::server(SocketName::Path(sock.clone()), 1)).expect("server");
    let mut sqp = server.take_queue_pairs().remove(0);
    let sctl = server.spawn().expect("control thread");
    let mut client =
        MemifPort::new(MemifConfig::client(SocketName::Path(sock.clone()), 1)).expect("client");
    let mut cqp = client.take_queue_pairs().remove(0);
    let cctl = client.spawn().expect("control thread");
    assert!(cctl.wait_connected(Duration::from_secs(5)));
    assert!(sctl.wait_connected(Duration::from_secs(5)));
    pin_to_cpu(0);
    let frame = vec![0x5au8; len];
    let mut pool = BufPool::new(4096, 2048);
    let (mut a, mut b) = (Batch::new(), Batch::new());
    let mut round_trips = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        for _ in 0..1000 {
            for _ in 0..32 {
                let mut p = pool.get();
                let _ = p.copy_from(&frame);
                let _ = a.push(p);
            }
            cqp.tx_burst(&mut a, &mut pool);
            sqp.rx_burst(&mut pool, &mut b);
            sqp.tx_burst(&mut b, &mut pool);
            round_trips += cqp.rx_burst(&mut pool, &mut a) as u64;
            a.recycle(&mut pool);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / round_trips as f64;
    println!(
        "memif loopback, {len}-byte frames, bursts of 32: {ns:.1} ns per frame for \
         client tx + server rx + server tx + client rx ({:.2} M round trips/s)",
        1e3 / ns
    );
    drop(cctl);
    drop(sctl);
    let _ = std::fs::remove_file(&sock);
}
