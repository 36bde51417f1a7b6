#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The P4Runtime server's write path without the transport: decoding a
//! `WriteRequest` from its wire bytes, then planning and committing its
//! updates (`write::write`), for batches of `write_dest_ip_table` inserts
//! as the `p4rt_write` example sends them.
//!
//! - `decode/N`: decoding from a byte slice, the decoded request dropped
//!   inside the timing (the figure kept from the first measurements);
//! - `decode_bytesmut/N`: decoding from a `BytesMut`, as tonic hands the
//!   message to a decoder, without the drop;
//! - `decode_bytes/N`: decoding as the server's codec does
//!   (`p4k8s_p4runtime::codec::decode` of the message split off tonic's
//!   buffer as `Bytes`), without the drop;
//! - `insert_delete/N`: plan and commit, per insert+delete pair, each
//!   request dropped after its write;
//! - `write/N`: all of it, per insert+delete pair: decode as the codec
//!   does, write, drop the request, for the inserts then the deletes.
//!
//! `cargo bench -p p4k8s-benches --bench p4rt_write_path`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use p4k8s_benches::p4rt::{NatTable, UPSTREAM_P4INFO};
use p4k8s_dataplane::control::CommitMode;
use p4k8s_dataplane::{Control, DataplaneConfig};
use p4k8s_p4runtime::p4info::parse_text;
use p4k8s_p4runtime::proto::p4::config::v1::P4Info;
use p4k8s_p4runtime::proto::p4::v1::*;
use p4k8s_p4runtime::shadow::Shadow;
use p4k8s_p4runtime::{codec, Binding};
use prost::bytes::BytesMut;
use prost::Message;

// The allocator `p4k8s run` uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn updates(info: &P4Info, kind: update::Type, n: u32) -> Vec<Update> {
    let nat = NatTable::new(info);
    (1..=n)
        .map(|ptr| nat.update(kind, ptr, 0x0a01_0000 + ptr))
        .collect()
}

fn write_path(c: &mut Criterion) {
    let info = parse_text(UPSTREAM_P4INFO).expect("upstream P4Info");
    let cfg = DataplaneConfig::default();
    let binding = Binding::new(&info, &cfg).expect("binding");
    let control = Control::new(cfg);
    let mut shadow = Shadow::default();
    let mut g = c.benchmark_group("p4rt_write_path");
    for n in [100u32, 10_000] {
        let request = |kind| WriteRequest {
            device_id: 1,
            updates: updates(&info, kind, n),
            ..Default::default()
        };
        let inserts = request(update::Type::Insert).encode_to_vec();
        let deletes = request(update::Type::Delete).encode_to_vec();
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(format!("decode/{n}"), |b| {
            b.iter(|| WriteRequest::decode(inserts.as_slice()).expect("decode"))
        });
        g.bench_function(format!("decode_bytesmut/{n}"), |b| {
            b.iter_batched(
                || BytesMut::from(inserts.as_slice()),
                |mut buf| WriteRequest::decode(&mut buf).expect("decode"),
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("decode_bytes/{n}"), |b| {
            b.iter_batched(
                || BytesMut::from(inserts.as_slice()).freeze(),
                |message| codec::decode::<WriteRequest>(message).expect("decode"),
                BatchSize::LargeInput,
            )
        });
        let write = |req: WriteRequest, shadow: &mut Shadow| {
            let results = p4k8s_p4runtime::write::write(
                &binding,
                &control,
                shadow,
                &req.updates,
                CommitMode::ContinueOnError,
            );
            assert!(results.iter().all(Result::is_ok));
        };
        // Each iteration inserts the batch and deletes it again, so the
        // figure is per insert+delete pair.
        g.bench_function(format!("insert_delete/{n}"), |b| {
            b.iter_batched(
                || {
                    (
                        WriteRequest::decode(inserts.as_slice()).expect("decode"),
                        WriteRequest::decode(deletes.as_slice()).expect("decode"),
                    )
                },
                |(ins, del)| {
                    write(ins, &mut shadow);
                    write(del, &mut shadow);
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("write/{n}"), |b| {
            b.iter_batched(
                || {
                    (
                        BytesMut::from(inserts.as_slice()).freeze(),
                        BytesMut::from(deletes.as_slice()).freeze(),
                    )
                },
                |(ins, del)| {
                    for message in [ins, del] {
                        let req = codec::decode::<WriteRequest>(message).expect("decode");
                        write(req, &mut shadow);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, write_path);
criterion_main!(benches);
