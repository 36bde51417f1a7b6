#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The k8s pipeline per core, in bursts of 64 through ring ports:
//! (a) pod-to-pod routed, (b) established service flows, (c) new service
//! flows, (d) policy-checked flows, (e) ring forwarding with no pipeline
//! (the ceiling). Throughput is in packets (elements) per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use p4k8s_benches::*;
use p4k8s_packet::MAX_BURST;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// Client source (IP, port) of flow `i`: 2^16 ports per client address.
fn client(i: u32) -> (u32, u16) {
    (CLIENT + (i >> 16), (i & 0xffff) as u16)
}

/// Benchmarks `h` twice: through ring ports as a worker runs it
/// (`<group>/<id>`), and the pipeline alone (`<group>_pipeline_only/<id>`).
/// The ceiling has no pipeline, so it runs once.
fn run(c: &mut Criterion, group: &str, id: BenchmarkId, h: &mut Harness, pipeline: bool) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(MAX_BURST as u64));
    g.bench_function(id.clone(), |b| b.iter(|| h.burst(pipeline)));
    g.finish();
    if pipeline {
        let mut g = c.benchmark_group(format!("{group}_pipeline_only"));
        g.throughput(Throughput::Elements(MAX_BURST as u64));
        g.bench_function(id, |b| b.iter(|| h.burst_pipeline_only()));
        g.finish();
    }
}

fn ceiling(c: &mut Criterion) {
    let s = Scenario::new(1024);
    let frames = (0..1024)
        .map(|i| frame(None, CLIENT, POD_BASE + i, 1000, 2000))
        .collect();
    let mut h = Harness::new(&s, frames);
    run(
        c,
        "e_ring_forward_ceiling",
        BenchmarkId::from_parameter("no_pipeline"),
        &mut h,
        false,
    );
}

fn pod_to_pod(c: &mut Criterion) {
    for policies in [0u32, 100] {
        let s = Scenario::new(1024);
        s.pods(1000);
        s.policies(policies);
        let frames = (0..1000u32)
            .map(|i| frame(Some(ACK), CLIENT, POD_BASE + (i * 7919) % 1000, 40000, 80))
            .collect();
        let mut h = Harness::new(&s, frames);
        run(
            c,
            "a_pod_to_pod",
            BenchmarkId::new("policies", policies),
            &mut h,
            true,
        );
        assert_eq!(h.dropped, 0, "pod-to-pod traffic is allowed");
    }
}

fn established(c: &mut Criterion) {
    for flows in [1_000u32, 100_000, 1_000_000] {
        let s = Scenario::new(flows as usize);
        s.pods(1000);
        s.services(1000);
        // Learn every flow with its SYN, then replay ACKs in a scrambled order.
        let syns: Vec<Vec<u8>> = (0..flows)
            .map(|i| {
                let (ip, p) = client(i);
                frame(Some(SYN), ip, VIP_BASE + i % 1000, p, 80)
            })
            .collect();
        let mut learner = Harness::new(&s, syns);
        for _ in 0..flows.div_ceil(MAX_BURST as u32) {
            learner.burst(true);
        }
        let learned = s
            .control
            .flows(p4k8s_dataplane::control::FlowDir::Forward)
            .len();
        assert!(
            learned as u32 >= flows * 99 / 100,
            "learned {learned} of {flows}"
        );
        let step = 2_654_435_761u64 % u64::from(flows);
        let acks = (0..flows.min(1 << 20))
            .map(|k| {
                let i = ((u64::from(k) * step) % u64::from(flows)) as u32;
                let (ip, p) = client(i);
                frame(Some(ACK), ip, VIP_BASE + i % 1000, p, 80)
            })
            .collect();
        let mut h = Harness::new(&s, acks);
        run(
            c,
            "b_established_service_flow",
            BenchmarkId::new("flows", flows),
            &mut h,
            true,
        );
    }
}

fn new_flows(c: &mut Criterion) {
    for services in [10u32, 1_000, 65_000] {
        let s = Scenario::new(1 << 20);
        s.pods(1000);
        s.services(services);
        // 2^20 distinct flows, replayed cyclically; the clock advances so a
        // flow has expired (class 2: 60 s) by the time its SYN comes again.
        let n = 1u32 << 20;
        let syns = (0..n)
            .map(|i| {
                let (ip, p) = client(i);
                frame(Some(SYN), ip, VIP_BASE + (i * 7919) % services, p, 80)
            })
            .collect();
        let mut h = Harness::new(&s, syns);
        h.tick_every = 16;
        run(
            c,
            "c_new_service_flows",
            BenchmarkId::new("services", services),
            &mut h,
            true,
        );
    }
}

fn policy_checked(c: &mut Criterion) {
    let s = Scenario::new(1024);
    s.pods(1000);
    s.policies(100);
    // Every packet hits a pod with an ingress policy, and the client's egress policy.
    let frames = (0..1000u32)
        .map(|i| {
            frame(
                Some(ACK),
                CLIENT,
                POD_BASE + i % 100,
                40000,
                if i % 2 == 0 { 80 } else { 443 },
            )
        })
        .collect();
    let mut h = Harness::new(&s, frames);
    run(
        c,
        "d_policy_checked",
        BenchmarkId::new("policies", 100),
        &mut h,
        true,
    );
    assert_eq!(h.dropped, 0, "the policy allows these ports");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = ceiling, pod_to_pod, established, new_flows, policy_checked
}
criterion_main!(benches);
