//! Runs one pipeline scenario for a fixed number of bursts, for profilers
//! (`valgrind --tool=callgrind`, `perf record`), without criterion's
//! set-up of every other scenario.
//!
//! `cargo run --release -p p4k8s-benches --example profile -- <a|b|c|d|u> [bursts]`
//!
//! `u` is one UDP flow from one pod to another, the traffic of the memif
//! benchmark (`scripts/bench/memif_pipeline.sh`): every table it reads
//! stays in cache, so what is left is the pipeline's instructions.

use p4k8s_benches::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "a".into());
    let bursts: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let s = Scenario::new(1 << 12);
    s.pods(1000);
    let frames: Vec<Vec<u8>> = match which.as_str() {
        "a" => (0..1000u32)
            .map(|i| frame(Some(0x10), CLIENT, POD_BASE + (i * 7919) % 1000, 40000, 80))
            .collect(),
        "b" | "c" => {
            s.services(1000);
            let flags = if which == "b" { 0x10 } else { 0x02 };
            (0..1000u32)
                .map(|i| frame(Some(flags), CLIENT, VIP_BASE + i, 10_000 + i as u16, 80))
                .collect()
        }
        "d" => {
            s.policies(100);
            (0..1000u32)
                .map(|i| frame(Some(0x10), CLIENT, POD_BASE + i % 100, 40000, 80))
                .collect()
        }
        "u" => vec![frame(None, CLIENT, POD_BASE, 9, 9)],
        other => {
            eprintln!("unknown scenario {other:?}: use a, b, c, d or u");
            std::process::exit(2);
        }
    };
    let mut h = Harness::new(&s, frames);
    if which == "b" {
        // Learn the flows first with their SYNs.
        let syns: Vec<Vec<u8>> = (0..1000u32)
            .map(|i| frame(Some(0x02), CLIENT, VIP_BASE + i, 10_000 + i as u16, 80))
            .collect();
        let mut learner = Harness::new(&s, syns);
        for _ in 0..16 {
            learner.burst_pipeline_only();
        }
    }
    if which == "c" {
        h.tick_every = 1;
    }
    let start = std::time::Instant::now();
    for _ in 0..bursts {
        h.burst_pipeline_only();
    }
    let ns = start.elapsed().as_nanos() as f64 / (bursts as f64 * 64.0);
    println!(
        "scenario {which}: {bursts} bursts, {ns:.1} ns/packet, {:.2} Mpps, forwarded {} dropped {}",
        1e3 / ns,
        h.forwarded,
        h.dropped
    );
}
