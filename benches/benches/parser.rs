#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The parser per packet: p4k8s `parse` against
//! `etherparse::SlicedPacket::from_ethernet` on 64-byte IPv4/TCP and
//! IPv4/UDP frames. Throughput is one element per iteration, so criterion's
//! time is ns per packet.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etherparse::{PacketBuilder, SlicedPacket};
use p4k8s_packet::parse;

const FRAME_LEN: usize = 64;

/// A 64-byte Ethernet/IPv4/TCP frame (54 bytes of headers, 10 of payload).
fn tcp_frame() -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1, 65535)
        .syn();
    let payload = [0u8; FRAME_LEN - 54];
    let mut out = Vec::with_capacity(FRAME_LEN);
    builder.write(&mut out, &payload).expect("write frame");
    out
}

/// A 64-byte Ethernet/IPv4/UDP frame (42 bytes of headers, 22 of payload).
fn udp_frame() -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5353, 53);
    let payload = [0u8; FRAME_LEN - 42];
    let mut out = Vec::with_capacity(FRAME_LEN);
    builder.write(&mut out, &payload).expect("write frame");
    out
}

fn parser(c: &mut Criterion) {
    let frames = [("ipv4_tcp_64B", tcp_frame()), ("ipv4_udp_64B", udp_frame())];
    let mut g = c.benchmark_group("parser");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in &frames {
        assert_eq!(frame.len(), FRAME_LEN);
        assert!(parse(frame).is_ok());
        assert!(SlicedPacket::from_ethernet(frame).is_ok());
        g.bench_with_input(BenchmarkId::new("p4k8s_parse", name), frame, |b, f| {
            b.iter(|| parse(black_box(f.as_slice())))
        });
        g.bench_with_input(
            BenchmarkId::new("etherparse_sliced", name),
            frame,
            |b, f| b.iter(|| SlicedPacket::from_ethernet(black_box(f.as_slice()))),
        );
    }
    g.finish();
}

criterion_group!(benches, parser);
criterion_main!(benches);
