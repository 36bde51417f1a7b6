//! P4Runtime write and read rates, single-write latency, and dataplane
//! throughput during a write storm.
//!
//! `cargo run --release -p p4k8s-benches --example p4rt_write`
//!
//! The process hosts the target (the dataplane's control API, the
//! P4Runtime server on 127.0.0.1 on one current-thread runtime pinned to
//! core 0 as `p4k8s run` pins its control plane, and a traffic thread
//! running the pipeline on core 1) and starts itself again as the client,
//! a separate process on core 0. The client reports each phase on stdout
//! and marks idle and storm periods; the target samples its packet
//! counter every 100 ms and compares the medians of the two.

mod unary;

use unary::UnaryClient;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use p4k8s_benches::p4rt::{canonical, id_of, NatTable, UPSTREAM_P4INFO};
use p4k8s_benches::{frame, Harness, CLIENT, POD_BASE};
use p4k8s_dataplane::{Control, DataplaneConfig};
use p4k8s_p4runtime::p4info::parse_text;
use p4k8s_p4runtime::proto::p4::config::v1::P4Info;
use p4k8s_p4runtime::proto::p4::v1::p4_runtime_client::P4RuntimeClient;
use p4k8s_p4runtime::proto::p4::v1::*;
use tokio_stream::wrappers::ReceiverStream;

// The allocator `p4k8s run` uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The methods the h2 client calls.
const WRITE: &str = "/p4.v1.P4Runtime/Write";
const CAPABILITIES: &str = "/p4.v1.P4Runtime/Capabilities";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("client") {
        let addr = args.get(2).cloned().unwrap_or_default();
        // Beside the server: on this VM a wake-up on the other core costs
        // more than sharing one (a batch-1 write takes twice as long).
        pin(0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(client(addr));
        return;
    }
    target();
}

fn pin(core: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
}

/// The target: server + traffic thread; runs the client and reports.
fn target() {
    let control = Arc::new(Control::new(DataplaneConfig::default()));
    // Traffic: pod-to-pod frames through the pipeline, on core 1.
    let packets = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (packets, stop, control) = (
            Arc::clone(&packets),
            Arc::clone(&stop),
            Arc::clone(&control),
        );
        std::thread::spawn(move || {
            pin(1);
            let frames = (0..1024u32)
                .map(|i| frame(Some(0x10), CLIENT, POD_BASE + i, 40000, 80))
                .collect();
            let mut h = Harness::with_control(&control, frames);
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    h.burst_pipeline_only();
                }
                packets.fetch_add(64 * 64, Ordering::Relaxed);
            }
        })
    };
    // The server's threads on core 0, as `p4k8s run` pins its control
    // plane off the workers' cores.
    pin(0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let server_control = Arc::clone(&control);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .on_thread_start(|| pin(0))
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = p4k8s_p4runtime::serve_with_listener(
                listener,
                1,
                server_control,
                std::future::pending(),
            )
            .await;
        });
    });

    // The traffic thread's packet count, sampled every 100 ms.
    let samples = {
        let (packets, stop) = (Arc::clone(&packets), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push((Instant::now(), packets.load(Ordering::Relaxed)));
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };

    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .arg("client")
        .arg(format!("http://{addr}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    // (marker, when): the client announces its idle and storm periods.
    let mut marks: Vec<(String, Instant)> = Vec::new();
    for line in out.lines().map_while(Result::ok) {
        if line.starts_with("IDLE_") || line.starts_with("STORM_") {
            marks.push((line, Instant::now()));
        } else {
            println!("{line}");
        }
    }
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.join();
    let samples = samples.join().expect("sampler");
    let rates = |name: &str| -> Vec<f64> {
        let spans: Vec<(Instant, Instant)> = marks
            .iter()
            .filter(|(m, _)| *m == format!("{name}_START"))
            .filter_map(|(_, t0)| {
                marks
                    .iter()
                    .find(|(m, t)| *m == format!("{name}_END") && t > t0)
                    .map(|(_, t1)| (*t0, *t1))
            })
            .collect();
        samples
            .windows(2)
            .filter(|w| spans.iter().any(|(a, b)| w[0].0 >= *a && w[1].0 <= *b))
            .map(|w| (w[1].1 - w[0].1) as f64 / (w[1].0 - w[0].0).as_secs_f64() / 1e6)
            .collect()
    };
    let (idle, storm) = (median(rates("IDLE")), median(rates("STORM")));
    println!(
        "dataplane: idle {idle:.2} Mpps, during the write storm {storm:.2} Mpps ({:.0}% of idle; medians of 100 ms windows)",
        100.0 * storm / idle
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn eid() -> Option<Uint128> {
    Some(Uint128 { high: 0, low: 1 })
}

fn update(kind: update::Type, entity: Entity) -> Update {
    Update {
        r#type: kind as i32,
        entity: Some(entity),
    }
}

/// A Write of `updates` from the primary controller.
fn write_request(updates: Vec<Update>) -> WriteRequest {
    WriteRequest {
        device_id: 1,
        election_id: eid(),
        updates,
        ..Default::default()
    }
}

/// One Write RPC through the h2 client (see `unary`); exits on failure.
async fn write(c: &UnaryClient, updates: Vec<Update>) {
    write_framed(c, unary::frame(&write_request(updates))).await;
}

/// One Write RPC of a request already framed; exits on failure.
async fn write_framed(c: &UnaryClient, framed: Bytes) {
    if let Err(e) = c.call_framed::<WriteResponse>(WRITE, framed).await {
        println!("write failed: {e}");
        std::process::exit(1);
    }
}

/// When the client encodes a Write request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Inside the measured time, as a controller would.
    InClock,
    /// Before the clock starts: the figure is the target's own ingest rate
    /// (send, decode, apply, answer), the client only a load generator.
    Before,
}

/// Inserts `n` entries in batches of `batch`, with up to `in_flight`
/// Write RPCs outstanding on the one connection; returns entries per
/// second. The updates are built before the clock starts; `encoding` says
/// whether their encoding is timed.
async fn insert_rate(
    c: &UnaryClient,
    info: &P4Info,
    base: u32,
    n: u32,
    (batch, in_flight, encoding): (u32, usize, Encoding),
) -> f64 {
    let nat = NatTable::new(info);
    let requests: Vec<WriteRequest> = (base..base + n)
        .collect::<Vec<_>>()
        .chunks(batch as usize)
        .map(|chunk| {
            write_request(
                chunk
                    .iter()
                    .map(|p| nat.update(update::Type::Insert, *p, POD_BASE + *p))
                    .collect(),
            )
        })
        .collect();
    let framed: Vec<Bytes> = match encoding {
        Encoding::Before => requests.iter().map(unary::frame).collect(),
        Encoding::InClock => Vec::new(),
    };
    let start = Instant::now();
    let mut requests = requests.into_iter();
    let mut framed = framed.into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.len() < in_flight {
            let body = match encoding {
                Encoding::Before => framed.next(),
                Encoding::InClock => requests.next().map(|r| unary::frame(&r)),
            };
            let Some(body) = body else { break };
            let c = c.clone();
            tasks.spawn(async move { write_framed(&c, body).await });
        }
        if tasks.join_next().await.is_none() {
            break;
        }
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

async fn delete_all(c: &UnaryClient, info: &P4Info, base: u32, n: u32) {
    let nat = NatTable::new(info);
    for chunk in (base..base + n).collect::<Vec<_>>().chunks(10_000) {
        let ups = chunk
            .iter()
            .map(|p| nat.update(update::Type::Delete, *p, 0))
            .collect();
        write(c, ups).await;
    }
}

async fn client(addr: String) {
    let info = parse_text(UPSTREAM_P4INFO).expect("upstream P4Info");
    let nat = NatTable::new(&info);
    let channel = tonic::transport::Endpoint::from_shared(addr.clone())
        .expect("address")
        .tcp_nodelay(true)
        .initial_stream_window_size(16 << 20)
        .initial_connection_window_size(16 << 20)
        .connect()
        .await
        .expect("connect");
    let u = UnaryClient::connect(addr.trim_start_matches("http://"))
        .await
        .expect("connect h2");
    let mut c = P4RuntimeClient::new(channel)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut stream = c
        .stream_channel(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    tx.send(StreamMessageRequest {
        update: Some(stream_message_request::Update::Arbitration(
            MasterArbitrationUpdate {
                device_id: 1,
                election_id: eid(),
                ..Default::default()
            },
        )),
    })
    .await
    .expect("arbitrate");
    let _ = stream.message().await;
    c.set_forwarding_pipeline_config(SetForwardingPipelineConfigRequest {
        device_id: 1,
        election_id: eid(),
        action: set_forwarding_pipeline_config_request::Action::VerifyAndCommit as i32,
        config: Some(ForwardingPipelineConfig {
            p4info: Some(info.clone()),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("pipeline");

    println!("| write batch | entries | entries/s, one Write at a time | 4 Writes in flight | one at a time, requests encoded before the clock |");
    println!("| --- | --- | --- | --- | --- |");
    for (batch, n) in [(1u32, 2_000u32), (100, 100_000), (10_000, 200_000)] {
        let mut rates = Vec::new();
        for shape in [
            (batch, 1, Encoding::InClock),
            (batch, 4, Encoding::InClock),
            (batch, 1, Encoding::Before),
        ] {
            rates.push(insert_rate(&u, &info, 1, n, shape).await);
            delete_all(&u, &info, 1, n).await;
        }
        println!(
            "| {batch} | {n} | {:.0} | {:.0} | {:.0} |",
            rates[0], rates[1], rates[2]
        );
    }

    // Selector members and groups: 20,000 members, 2,000 groups of 10.
    let profile = id_of(&info, "as_sl3_tcp");
    let lb = id_of(&info, "set_default_lb_dest");
    let start = Instant::now();
    for chunk in (1..=20_000u32).collect::<Vec<_>>().chunks(1000) {
        let ups = chunk
            .iter()
            .map(|m| {
                update(
                    update::Type::Insert,
                    Entity {
                        entity: Some(entity::Entity::ActionProfileMember(ActionProfileMember {
                            action_profile_id: profile,
                            member_id: *m,
                            action: Some(Action {
                                action_id: lb,
                                params: vec![action::Param {
                                    param_id: 1,
                                    value: canonical(u64::from(*m)),
                                }],
                            }),
                        })),
                    },
                )
            })
            .collect();
        write(&u, ups).await;
    }
    for chunk in (1..=2_000u32).collect::<Vec<_>>().chunks(100) {
        let ups = chunk
            .iter()
            .map(|g| {
                let members = (0..10)
                    .map(|k| action_profile_group::Member {
                        member_id: (g - 1) * 10 + k + 1,
                        weight: 1,
                        ..Default::default()
                    })
                    .collect();
                update(
                    update::Type::Insert,
                    Entity {
                        entity: Some(entity::Entity::ActionProfileGroup(ActionProfileGroup {
                            action_profile_id: profile,
                            group_id: *g,
                            members,
                            max_size: 0,
                        })),
                    },
                )
            })
            .collect();
        write(&u, ups).await;
    }
    println!(
        "selector: 20,000 members + 2,000 groups of 10 in {:.0} ms ({:.0} objects/s)",
        start.elapsed().as_secs_f64() * 1e3,
        22_000.0 / start.elapsed().as_secs_f64()
    );

    // Full-table read.
    insert_rate(&u, &info, 1, 100_000, (10_000, 1, Encoding::InClock)).await;
    let start = Instant::now();
    let mut read = 0usize;
    let mut s = c
        .read(ReadRequest {
            device_id: 1,
            entities: vec![Entity {
                entity: Some(entity::Entity::TableEntry(Box::new(TableEntry {
                    table_id: id_of(&info, "write_dest_ip_table"),
                    ..Default::default()
                }))),
            }],
            ..Default::default()
        })
        .await
        .expect("read")
        .into_inner();
    while let Ok(Some(m)) = s.message().await {
        read += m.entities.len();
    }
    println!(
        "full-table read: {read} entries in {:.0} ms ({:.0} entries/s)",
        start.elapsed().as_secs_f64() * 1e3,
        read as f64 / start.elapsed().as_secs_f64()
    );
    delete_all(&u, &info, 1, 100_000).await;

    // The storm: 4 s of back-to-back writes of 100 inserts then 100
    // deletes, between two idle periods of 2 s.
    println!("IDLE_START");
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("IDLE_END");
    let storm: Vec<(Vec<Update>, Vec<Update>)> = (0..100u32)
        .map(|b| {
            let ptrs = 1 + b * 100..1 + (b + 1) * 100;
            (
                ptrs.clone()
                    .map(|p| nat.update(update::Type::Insert, p, POD_BASE + p))
                    .collect(),
                ptrs.map(|p| nat.update(update::Type::Delete, p, 0))
                    .collect(),
            )
        })
        .collect();
    println!("STORM_START");
    let start = Instant::now();
    let mut written = 0u64;
    while start.elapsed() < Duration::from_secs(4) {
        for (ins, del) in &storm {
            write(&u, ins.clone()).await;
            write(&u, del.clone()).await;
            written += 200;
        }
    }
    println!("STORM_END");
    println!(
        "write storm: {:.0} updates/s (batches of 100)",
        written as f64 / start.elapsed().as_secs_f64()
    );
    println!("IDLE_START");
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("IDLE_END");

    // Single-entry write latency (modify of an existing entry), through
    // each client, and the transport's own round trip for comparison
    // (Capabilities does no work in the server). The rounds alternate
    // between the clients so load from elsewhere spreads over both.
    insert_rate(&u, &info, 1, 1000, (1000, 1, Encoding::InClock)).await;
    let modify = |i: u32| vec![nat.update(update::Type::Modify, 1 + i % 1000, POD_BASE + i)];
    let mut lat: [Vec<f64>; 4] = Default::default();
    for round in 0..10u32 {
        for k in 0..500u32 {
            let i = round * 500 + k;
            let t = Instant::now();
            write(&u, modify(i)).await;
            lat[0].push(t.elapsed().as_secs_f64() * 1e6);
        }
        for k in 0..500u32 {
            let req = write_request(modify(round * 500 + k));
            let t = Instant::now();
            c.write(req).await.expect("write");
            lat[1].push(t.elapsed().as_secs_f64() * 1e6);
        }
        for _ in 0..500 {
            let t = Instant::now();
            u.call::<_, CapabilitiesResponse>(CAPABILITIES, &CapabilitiesRequest::default())
                .await
                .expect("capabilities");
            lat[2].push(t.elapsed().as_secs_f64() * 1e6);
        }
        for _ in 0..500 {
            let t = Instant::now();
            c.capabilities(CapabilitiesRequest::default())
                .await
                .expect("capabilities");
            lat[3].push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let names = [
        "single write latency",
        "single write latency, tonic client",
        "Capabilities round trip (no server work)",
        "Capabilities round trip, tonic client",
    ];
    for (name, mut v) in names.into_iter().zip(lat) {
        v.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{name}: p50 {:.0} us, p99 {:.0} us",
            v[v.len() / 2],
            v[v.len() * 99 / 100]
        );
    }
}
