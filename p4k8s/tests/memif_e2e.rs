//! Two DPDK "pods" on memif CDQs exchange traffic through the p4k8s
//! pipeline (needs root and `dpdk-testpmd`; skipped, with a printed
//! reason, when `dpdk-testpmd` is not installed).
//!
//! `p4k8s run --config` serves two memif sockets in a temporary directory:
//! port 2 for pod A, port 3 for pod B (`[dataplane] workers = 1`, the
//! worker pinned to core 0). `p4k8s ctl apply` programs the two pods with
//! the addresses testpmd's txonly engine uses (198.18.0.1 -> 198.18.0.2):
//! `ipv4_to_port_table` sends 198.18.0.2 to port 3 and rewrites the
//! destination MAC to B's (`02:00:00:00:00:0b`, also B's vdev `mac=`).
//!
//! - Pod B: `dpdk-testpmd --forward-mode=rxonly` (its forwarding lcore
//!   alone on core 1, so it always keeps up with the pipeline).
//! - Pod A: interactive `dpdk-testpmd`; `start tx_first 20` sends exactly
//!   20 bursts of 32 frames of 64 bytes with testpmd's txonly engine, then
//!   A only receives. 640 frames fit A's 1024-slot memif ring, so A
//!   counts all 640 as sent.
//!
//! Checks, from testpmd's final forward statistics and the target's
//! `pkt_cntr` (read over P4Runtime; index 299 counts the packets that
//! passed ingress policy and were routed by `ipv4_to_port_table`):
//! A's TX-packets == 640 == B's RX-packets == pkt_cntr[299] delta.
//!
//! Then a sustained phase: A in `--forward-mode=txonly` for 2 s (as fast
//! as the pipeline drains A's ring: what the ring refuses is testpmd's
//! TX-dropped, never counted as sent). There every frame A counted as sent
//! must have crossed the pipeline (A's TX == pkt_cntr[299] delta) and B
//! must not receive more than crossed; the difference (frames the target
//! dropped at B's full ring, which it counts internally as TxFull but does
//! not export) is printed.
//!
//! Every process (target, both testpmds), the temporary directory with
//! the sockets, config files and logs, and DPDK's runtime directories are
//! removed by guards, also when a check fails.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use p4k8s_p4runtime::proto::p4::v1::p4_runtime_client::P4RuntimeClient;
use p4k8s_p4runtime::proto::p4::v1::{entity, CounterEntry, Entity, Index, ReadRequest};

/// `k8s_dp_control.pkt_cntr` in upstream's P4Info.
const PKT_CNTR_ID: u32 = 317_030_940;
/// Counted for every packet `ipv4_to_port_table` routes.
const ROUTED: i64 = 299;

const MAC_A: &str = "02:00:00:00:00:0a";
const MAC_B: &str = "02:00:00:00:00:0b";
const BURSTS: u64 = 20;
/// testpmd's default burst.
const BURST: u64 = 32;

fn testpmd_installed() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v dpdk-testpmd"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        println!("SKIPPED: dpdk-testpmd is not installed (apt-get install dpdk)");
    }
    found
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Waits up to `timeout` for `child` to exit; SIGKILL after that.
fn reap(child: &mut Child, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------- guards

/// The temporary directory (sockets, configs, logs); removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `p4k8s run`; SIGTERM (then SIGKILL) on drop.
struct Target {
    child: Child,
    log: PathBuf,
}

impl Target {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        signal(self.child.id(), "-TERM");
        reap(&mut self.child, Duration::from_secs(10));
        if std::thread::panicking() {
            eprintln!("--- target log ---\n{}", self.log());
        }
    }
}

/// A running testpmd; SIGTERM (then SIGKILL) on drop, DPDK runtime
/// directory removed.
struct Testpmd {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    prefix: String,
    log: PathBuf,
}

impl Testpmd {
    /// Starts testpmd on `cores` (the first is the main lcore, the second
    /// forwards) with one memif client vdev on `socket`.
    fn spawn(
        name: &'static str,
        dir: &Path,
        cores: &str,
        socket: &Path,
        mac: &str,
        app_args: &[&str],
    ) -> Testpmd {
        let prefix = format!("p4k8s-memif-e2e-{}-{name}", std::process::id());
        let log = dir.join(format!("testpmd-{name}.log"));
        let logf = std::fs::File::create(&log).expect("testpmd log file");
        // Unbuffered, so what interactive commands print reaches the log
        // at once (testpmd only flushes its periodic statistics).
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-o0", "-e0", "dpdk-testpmd"]);
        cmd.args(["-l", cores, "--no-huge", "-m", "1024", "--no-pci"]);
        cmd.arg(format!("--file-prefix={prefix}"));
        cmd.arg(format!(
            "--vdev=net_memif0,role=client,socket={},socket-abstract=no,mac={mac}",
            socket.display()
        ));
        cmd.args(["--", "--total-num-mbufs=16384", "--txpkts=64"]);
        cmd.args(app_args);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .expect("spawn dpdk-testpmd");
        let stdin = child.stdin.take();
        Testpmd {
            name,
            child,
            stdin,
            prefix,
            log,
        }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Sends interactive commands.
    fn command(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("testpmd stdin");
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| {
                panic!(
                    "testpmd {}: writing {text:?}: {e}\n{}",
                    self.name,
                    self.log()
                )
            });
    }

    /// Waits for the process to exit by itself.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits until `pred` holds for the log.
    fn wait_log(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let end = Instant::now() + timeout;
        loop {
            let log = self.log();
            if pred(&log) {
                return;
            }
            assert!(
                !self.exited(),
                "testpmd {} exited while waiting for {what}:\n{log}",
                self.name
            );
            assert!(
                Instant::now() < end,
                "testpmd {}: no {what} within {timeout:?}:\n{log}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        drop(self.stdin.take());
        signal(self.child.id(), "-TERM");
        reap(&mut self.child, Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        if std::thread::panicking() {
            eprintln!("--- testpmd {} log ---\n{}", self.name, self.log());
        }
    }
}

// ---------------------------------------------------------------- parsing

/// Forward statistics blocks testpmd prints on `stop` and on exit:
/// `(RX-packets, TX-packets, TX-dropped)` of each "Forward statistics for
/// port 0" block, in order.
fn forward_stats(log: &str) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut lines = log.lines();
    while let Some(line) = lines.next() {
        if !line.contains("Forward statistics for port 0") {
            continue;
        }
        let (Some(rx), Some(tx)) = (lines.next(), lines.next()) else {
            break;
        };
        let field = |line: &str, name: &str| -> Option<u64> {
            let rest = &line[line.find(name)? + name.len()..];
            rest.split_whitespace().next()?.parse().ok()
        };
        if let (Some(r), Some(t), Some(d)) = (
            field(rx, "RX-packets:"),
            field(tx, "TX-packets:"),
            field(tx, "TX-dropped:"),
        ) {
            out.push((r, t, d));
        }
    }
    out
}

/// The last `RX-packets` of testpmd's periodic NIC statistics.
fn last_nic_rx(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .filter(|l| l.contains("RX-packets:") && l.contains("RX-missed:"))
        .find_map(|l| {
            let rest = &l[l.find("RX-packets:")? + "RX-packets:".len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
}

// ---------------------------------------------------------------- P4Runtime

/// `pkt_cntr[index]`, read over P4Runtime.
fn read_pkt_cntr(rt: &tokio::runtime::Runtime, addr: SocketAddr, index: i64) -> u64 {
    rt.block_on(async {
        let mut client = P4RuntimeClient::connect(format!("http://{addr}"))
            .await
            .expect("connect to the P4Runtime server");
        let mut stream = client
            .read(ReadRequest {
                device_id: 1,
                entities: vec![Entity {
                    entity: Some(entity::Entity::CounterEntry(CounterEntry {
                        counter_id: PKT_CNTR_ID,
                        index: Some(Index { index }),
                        data: None,
                    })),
                }],
                ..Default::default()
            })
            .await
            .expect("Read pkt_cntr")
            .into_inner();
        let mut total = None;
        while let Some(r) = stream.message().await.expect("Read stream") {
            for e in r.entities {
                if let Some(entity::Entity::CounterEntry(c)) = e.entity {
                    total = c.data.map(|d| d.packet_count as u64);
                }
            }
        }
        total.expect("pkt_cntr entry in the Read answer")
    })
}

// ---------------------------------------------------------------- the test

#[test]
fn two_testpmd_pods_through_the_pipeline() {
    if !testpmd_installed() {
        return;
    }
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("p4k8s-memif-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir = TempDir(dir);
    let sock_a = dir.0.join("pod-a.sock");
    let sock_b = dir.0.join("pod-b.sock");
    let p4rt = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let bin = env!("CARGO_BIN_EXE_p4k8s");

    // The target: two memif CDQs, one worker on core 0.
    let config = format!(
        "[dataplane]\nworkers = 1\ncores = [0]\n\n[p4runtime]\naddr = \"{p4rt}\"\n\n\
         [[port]]\nid = 2\nkind = \"memif\"\nsocket = \"{}\"\n\n\
         [[port]]\nid = 3\nkind = \"memif\"\nsocket = \"{}\"\n",
        sock_a.display(),
        sock_b.display()
    );
    let config_path = dir.0.join("config.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log = dir.0.join("target.log");
    let logf = std::fs::File::create(&log).expect("target log");
    let child = Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("dup log"))
        .stderr(logf)
        .spawn()
        .expect("start p4k8s run");
    let mut target = Target { child, log };
    let end = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&p4rt, Duration::from_millis(100)).is_err() {
        if let Ok(Some(status)) = target.child.try_wait() {
            panic!("p4k8s run exited with {status}:\n{}", target.log());
        }
        assert!(
            Instant::now() < end,
            "p4k8s run not listening on {p4rt}:\n{}",
            target.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The two pods, at the addresses testpmd's txonly engine uses.
    let scenario = format!(
        "[[pod]]\nip = \"198.18.0.1\"\nport = 2\nmac = \"{MAC_A}\"\n\n\
         [[pod]]\nip = \"198.18.0.2\"\nport = 3\nmac = \"{MAC_B}\"\n"
    );
    let scenario_path = dir.0.join("scenario.toml");
    std::fs::write(&scenario_path, scenario).expect("write scenario");
    let out = Command::new(bin)
        .args([
            "ctl",
            "apply",
            "--addr",
            &p4rt.to_string(),
            "--device-id",
            "1",
        ])
        .arg(&scenario_path)
        .output()
        .expect("run p4k8s ctl apply");
    assert!(
        out.status.success(),
        "ctl apply failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let routed0 = read_pkt_cntr(&rt, p4rt, ROUTED);

    // Pod B: receives only; periodic statistics say when it forwards
    // (testpmd flushes its receive queues just before).
    let mut pod_b = Testpmd::spawn(
        "b",
        &dir.0,
        "0,1",
        &sock_b,
        MAC_B,
        &["--auto-start", "--stats-period=1", "--forward-mode=rxonly"],
    );
    pod_b.wait_log("forwarding", Duration::from_secs(15), |l| {
        l.contains("Port statistics")
    });

    // Pod A: interactive; its forwarding lcore shares core 0 with the
    // target's worker. Commands wait in the pipe until its prompt runs
    // (after its port is up).
    let mut pod_a = Testpmd::spawn(
        "a",
        &dir.0,
        "1,0",
        &sock_a,
        MAC_A,
        &[
            "-i",
            "--forward-mode=rxonly",
            &format!("--eth-peer=0,{MAC_B}"),
        ],
    );
    let sent = BURSTS * BURST;
    pod_a.command(&format!("start tx_first {BURSTS}\n"));
    pod_b.wait_log("the frames", Duration::from_secs(15), |l| {
        last_nic_rx(l) >= Some(sent)
    });
    pod_a.command("stop\n");
    pod_a.wait_log("forward statistics", Duration::from_secs(10), |l| {
        !forward_stats(l).is_empty()
    });
    let (_, a_tx1, a_drop1) = forward_stats(&pod_a.log())[0];
    let routed1 = read_pkt_cntr(&rt, p4rt, ROUTED);
    // B's next periodic statistics (one per second) hold its final count.
    let printed = pod_b.log().matches("Port statistics").count();
    pod_b.wait_log("statistics", Duration::from_secs(5), |l| {
        l.matches("Port statistics").count() >= printed + 2
    });
    let b_rx1 = last_nic_rx(&pod_b.log()).expect("B's statistics");

    // Sustained: A in txonly mode for 2 s.
    pod_a.command("set fwd txonly\nstart\n");
    std::thread::sleep(Duration::from_secs(2));
    pod_a.command("stop\n");
    pod_a.wait_log("forward statistics", Duration::from_secs(10), |l| {
        forward_stats(l).len() >= 2
    });
    let (_, a_tx2, a_drop2) = forward_stats(&pod_a.log())[1];
    // What A's ring still held crosses the pipeline shortly after.
    let end = Instant::now() + Duration::from_secs(5);
    let mut routed2 = read_pkt_cntr(&rt, p4rt, ROUTED);
    while routed2 - routed1 < a_tx2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        routed2 = read_pkt_cntr(&rt, p4rt, ROUTED);
    }
    std::thread::sleep(Duration::from_millis(200));
    pod_a.command("quit\n");
    assert!(
        pod_a.wait_exit(Duration::from_secs(10)),
        "testpmd a did not quit:\n{}",
        pod_a.log()
    );
    signal(pod_b.child.id(), "-INT");
    assert!(
        pod_b.wait_exit(Duration::from_secs(10)),
        "testpmd b did not stop on SIGINT:\n{}",
        pod_b.log()
    );
    let b_stats = forward_stats(&pod_b.log());
    let (b_rx, _, _) = *b_stats
        .last()
        .unwrap_or_else(|| panic!("no forward statistics from testpmd b:\n{}", pod_b.log()));

    let routed_1 = routed1 - routed0;
    let routed_2 = routed2 - routed1;
    println!(
        "exact phase: A TX {a_tx1} (TX-dropped {a_drop1}), pipeline routed {routed_1}, B RX {b_rx1}"
    );
    println!(
        "sustained txonly 2 s: A TX {a_tx2} (refused by A's full ring: {a_drop2}), \
         pipeline routed {routed_2}, B RX {}, dropped at B's ring {}; total {:.2?}",
        b_rx.saturating_sub(b_rx1),
        routed_2.saturating_sub(b_rx.saturating_sub(b_rx1)),
        started.elapsed()
    );

    // Exact phase.
    assert_eq!(a_tx1, sent, "A did not send all {sent} frames");
    assert_eq!(a_drop1, 0);
    assert_eq!(routed_1, sent, "frames that crossed the pipeline");
    assert_eq!(b_rx1, sent, "frames B received");
    // Sustained phase.
    assert!(a_tx2 > 0, "A sent nothing in txonly mode");
    assert_eq!(routed_2, a_tx2, "every frame A sent crossed the pipeline");
    assert!(
        b_rx >= b_rx1 && b_rx - b_rx1 <= routed_2,
        "B received {b_rx} in all: more than crossed the pipeline ({b_rx1} + {routed_2})"
    );
    drop(pod_a);
    drop(pod_b);
    drop(target);
}
