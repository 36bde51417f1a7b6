//! The server's CPU time per written update, on a machine others share.
//!
//! The criterion bench (`benches/p4rt_write_path.rs`) measures wall
//! time, which on a loaded 2-core machine includes the time this thread
//! waited for a core. This measures the thread's own CPU time instead
//! (`/proc/thread-self/schedstat`, which the kernel brings up to date at
//! least every tick, so each round runs for a second or more), for the
//! same 10,000-update batches of `write_dest_ip_table` inserts and deletes:
//!
//! - `decode`: decoding the WriteRequest as the server's codec does (from
//!   the message split off tonic's receive buffer as `Bytes`, see
//!   `p4runtime-server/src/codec.rs`) and dropping it;
//! - `write`: decode, `write::write`, drop;
//! - their difference is the plan and commit.
//!
//! `cargo run --release -p p4k8s-benches --example write_cost [rounds]`

use std::time::{Duration, Instant};

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

const BATCH: u32 = 10_000;

/// The least CPU time a round runs for.
const ROUND: Duration = Duration::from_millis(1500);

fn request(info: &P4Info, kind: update::Type) -> Vec<u8> {
    let nat = NatTable::new(info);
    let updates = (1..=BATCH)
        .map(|ptr| nat.update(kind, ptr, 0x0a01_0000 + ptr))
        .collect();
    WriteRequest {
        device_id: 1,
        updates,
        ..Default::default()
    }
    .encode_to_vec()
}

/// This thread's CPU time so far.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// Runs `step` (one insert batch and one delete batch) until a round's CPU
/// time passes; (CPU ns, wall ns) per update.
fn round(mut step: impl FnMut()) -> (f64, f64) {
    let (c0, t0) = (cpu(), Instant::now());
    let mut updates = 0u64;
    while cpu() - c0 < ROUND {
        step();
        updates += 2 * u64::from(BATCH);
    }
    let per = |d: Duration| d.as_nanos() as f64 / updates as f64;
    (per(cpu() - c0), per(t0.elapsed()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let info = parse_text(UPSTREAM_P4INFO).expect("upstream P4Info");
    let cfg = DataplaneConfig::default();
    let binding = Binding::new(&info, &cfg).expect("binding");
    let control = Control::new(cfg);
    let mut shadow = Shadow::default();
    let inserts = request(&info, update::Type::Insert);
    let deletes = request(&info, update::Type::Delete);
    let decode = |wire: &[u8]| {
        let message = BytesMut::from(wire).freeze();
        codec::decode::<WriteRequest>(message).expect("decode")
    };
    let (mut dec, mut all, mut wall) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        dec.push(
            round(|| {
                for wire in [&inserts, &deletes] {
                    drop(std::hint::black_box(decode(wire)));
                }
            })
            .0,
        );
        let (c, w) = round(|| {
            for wire in [&inserts, &deletes] {
                let req = decode(wire);
                let results = p4k8s_p4runtime::write::write(
                    &binding,
                    &control,
                    &mut shadow,
                    &req.updates,
                    CommitMode::ContinueOnError,
                );
                assert!(results.iter().all(Result::is_ok));
            }
        });
        all.push(c);
        wall.push(w);
    }
    let (d, a) = (median(dec), median(all));
    println!(
        "CPU ns per update, median of {rounds} rounds: decode+drop {d:.0}, plan+commit {:.0}, all {a:.0} (wall {:.0})",
        a - d,
        median(wall)
    );
}
