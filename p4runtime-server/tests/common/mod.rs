//! A server on 127.0.0.1:0 and a tonic client, with helpers for requests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use dataplane::{Control, DataplaneConfig};
use p4k8s_p4runtime::p4info::parse_text;
use p4k8s_p4runtime::proto::google::rpc::Status as RpcStatus;
use p4k8s_p4runtime::proto::p4::config::v1::P4Info;
use p4k8s_p4runtime::proto::p4::v1::p4_runtime_client::P4RuntimeClient;
use p4k8s_p4runtime::proto::p4::v1::*;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// The device id the test servers use.
pub const DEVICE: u64 = 1;

/// A running server and a client connected to it.
pub struct Harness {
    pub client: P4RuntimeClient<Channel>,
    pub control: Arc<Control>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    /// A server over a small dataplane.
    pub async fn start() -> Harness {
        Self::with_control(Arc::new(Control::new(DataplaneConfig::small()))).await
    }

    /// A server over `control`.
    pub async fn with_control(control: Arc<Control>) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let c = Arc::clone(&control);
        let task = tokio::spawn(async move {
            p4k8s_p4runtime::serve_with_listener(listener, DEVICE, c, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        let client = P4RuntimeClient::connect(format!("http://{addr}"))
            .await
            .expect("connect")
            .max_decoding_message_size(256 << 20);
        Harness {
            client,
            control,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server; true when it stopped within 2 s (open streams
    /// are ended by the server itself).
    pub async fn stop(mut self) -> bool {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(t) => {
                let abort = t.abort_handle();
                let done = tokio::time::timeout(Duration::from_secs(2), t)
                    .await
                    .is_ok();
                if !done {
                    abort.abort();
                }
                done
            }
            None => true,
        }
    }

    /// A new client (connection) to the same server.
    pub fn client(&self) -> P4RuntimeClient<Channel> {
        self.client.clone()
    }
}

pub fn upstream() -> P4Info {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../p4/upstream/k8s_dp.p4info.txt"
    ))
    .expect("read");
    parse_text(&text).expect("parse")
}

pub fn ours() -> P4Info {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../p4/k8s.p4info.txt"))
            .expect("read");
    parse_text(&text).expect("parse")
}

pub fn eid(v: u128) -> Option<Uint128> {
    Some(Uint128 {
        high: (v >> 64) as u64,
        low: v as u64,
    })
}

/// A client's StreamChannel.
pub struct Stream {
    pub tx: mpsc::Sender<StreamMessageRequest>,
    pub rx: tonic::Streaming<StreamMessageResponse>,
}

impl Stream {
    /// Opens a stream (no message sent yet).
    pub async fn open(client: &mut P4RuntimeClient<Channel>) -> Stream {
        let (tx, rx) = mpsc::channel(16);
        let resp = client
            .stream_channel(ReceiverStream::new(rx))
            .await
            .expect("stream");
        Stream {
            tx,
            rx: resp.into_inner(),
        }
    }

    /// Sends an arbitration update.
    pub async fn arbitrate(&self, device: u64, election: Option<u128>, role: &str) {
        let u = MasterArbitrationUpdate {
            device_id: device,
            role: (!role.is_empty()).then(|| Role {
                name: role.into(),
                ..Default::default()
            }),
            election_id: election.and_then(eid),
            status: None,
        };
        self.send(stream_message_request::Update::Arbitration(u))
            .await;
    }

    pub async fn send(&self, u: stream_message_request::Update) {
        self.tx
            .send(StreamMessageRequest { update: Some(u) })
            .await
            .expect("send");
    }

    /// The next message, or the stream's error status.
    pub async fn next(&mut self) -> Result<StreamMessageResponse, tonic::Status> {
        match tokio::time::timeout(Duration::from_secs(5), self.rx.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => Err(tonic::Status::cancelled("stream ended")),
            Err(_) => panic!("no stream message within 5 s"),
        }
    }

    /// The next message, which must be an arbitration update: (code, election id).
    pub async fn arbitration(&mut self) -> (i32, u128) {
        match self.next().await.expect("stream message").update {
            Some(stream_message_response::Update::Arbitration(a)) => {
                let e = a
                    .election_id
                    .map_or(0, |e| u128::from(e.high) << 64 | u128::from(e.low));
                (a.status.map_or(-1, |s| s.code), e)
            }
            other => panic!("expected arbitration, got {other:?}"),
        }
    }

    /// True when no message arrives within 200 ms.
    pub async fn quiet(&mut self) -> bool {
        tokio::time::timeout(Duration::from_millis(200), self.rx.next())
            .await
            .is_err()
    }
}

/// Opens a stream and becomes primary with `election`.
pub async fn primary(client: &mut P4RuntimeClient<Channel>, election: u128) -> Stream {
    let mut s = Stream::open(client).await;
    s.arbitrate(DEVICE, Some(election), "").await;
    let (code, _) = s.arbitration().await;
    assert_eq!(code, 0, "expected to be primary");
    s
}

pub async fn set_pipeline(
    client: &mut P4RuntimeClient<Channel>,
    election: u128,
    action: set_forwarding_pipeline_config_request::Action,
    info: Option<P4Info>,
    cookie: u64,
) -> Result<(), tonic::Status> {
    client
        .set_forwarding_pipeline_config(SetForwardingPipelineConfigRequest {
            device_id: DEVICE,
            election_id: eid(election),
            action: action as i32,
            config: info.map(|p4info| ForwardingPipelineConfig {
                p4info: Some(p4info),
                p4_device_config: b"opaque device config".to_vec(),
                cookie: Some(forwarding_pipeline_config::Cookie { cookie }),
            }),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// A harness with a primary (election id 1) and the upstream pipeline committed.
pub async fn ready() -> (Harness, Stream) {
    let mut h = Harness::start().await;
    let s = primary(&mut h.client, 1).await;
    set_pipeline(
        &mut h.client,
        1,
        set_forwarding_pipeline_config_request::Action::VerifyAndCommit,
        Some(upstream()),
        7,
    )
    .await
    .expect("pipeline");
    (h, s)
}

fn alias_of(p: &Option<p4k8s_p4runtime::proto::p4::config::v1::Preamble>) -> &str {
    p.as_ref().map_or("", |p| p.alias.as_str())
}

/// Id of the upstream table with alias `alias`.
pub fn tid(alias: &str) -> u32 {
    upstream()
        .tables
        .iter()
        .find(|t| alias_of(&t.preamble) == alias)
        .and_then(|t| t.preamble.as_ref().map(|p| p.id))
        .unwrap_or_else(|| panic!("no table {alias}"))
}

/// Id of the upstream action with alias `alias`.
pub fn aid(alias: &str) -> u32 {
    upstream()
        .actions
        .iter()
        .find(|a| alias_of(&a.preamble) == alias)
        .and_then(|a| a.preamble.as_ref().map(|p| p.id))
        .unwrap_or_else(|| panic!("no action {alias}"))
}

/// Id of the upstream action profile with alias `alias`.
pub fn pid(alias: &str) -> u32 {
    upstream()
        .action_profiles
        .iter()
        .find(|a| alias_of(&a.preamble) == alias)
        .and_then(|a| a.preamble.as_ref().map(|p| p.id))
        .unwrap_or_else(|| panic!("no profile {alias}"))
}

/// Id of the upstream counter with alias `alias`.
pub fn cid(alias: &str) -> u32 {
    upstream()
        .counters
        .iter()
        .find(|a| alias_of(&a.preamble) == alias)
        .and_then(|a| a.preamble.as_ref().map(|p| p.id))
        .unwrap_or_else(|| panic!("no counter {alias}"))
}

pub fn exact(id: u32, value: &[u8]) -> FieldMatch {
    FieldMatch {
        field_id: id,
        field_match_type: Some(field_match::FieldMatchType::Exact(field_match::Exact {
            value: value.to_vec(),
        })),
    }
}

pub fn lpm(id: u32, value: &[u8], len: i32) -> FieldMatch {
    FieldMatch {
        field_id: id,
        field_match_type: Some(field_match::FieldMatchType::Lpm(field_match::Lpm {
            value: value.to_vec(),
            prefix_len: len,
        })),
    }
}

pub fn action(alias: &str, params: &[&[u8]]) -> Action {
    Action {
        action_id: aid(alias),
        params: params
            .iter()
            .enumerate()
            .map(|(i, v)| action::Param {
                param_id: i as u32 + 1,
                value: v.to_vec(),
            })
            .collect(),
    }
}

pub fn direct(a: Action) -> Option<TableAction> {
    Some(TableAction {
        r#type: Some(table_action::Type::Action(a)),
    })
}

pub fn entry(table: &str, m: Vec<FieldMatch>, a: Option<TableAction>) -> Entity {
    Entity {
        entity: Some(entity::Entity::TableEntry(Box::new(TableEntry {
            table_id: tid(table),
            r#match: m,
            action: a,
            ..Default::default()
        }))),
    }
}

pub fn member(profile: &str, id: u32, ptr: &[u8]) -> Entity {
    Entity {
        entity: Some(entity::Entity::ActionProfileMember(ActionProfileMember {
            action_profile_id: pid(profile),
            member_id: id,
            action: Some(action("set_default_lb_dest", &[ptr])),
        })),
    }
}

pub fn group(profile: &str, id: u32, members: &[(u32, i32)], max_size: i32) -> Entity {
    Entity {
        entity: Some(entity::Entity::ActionProfileGroup(ActionProfileGroup {
            action_profile_id: pid(profile),
            group_id: id,
            members: members
                .iter()
                .map(|(m, w)| action_profile_group::Member {
                    member_id: *m,
                    weight: *w,
                    watch_kind: None,
                })
                .collect(),
            max_size,
        })),
    }
}

pub fn update(t: update::Type, e: Entity) -> Update {
    Update {
        r#type: t as i32,
        entity: Some(e),
    }
}

pub fn ins(e: Entity) -> Update {
    update(update::Type::Insert, e)
}

pub fn modify(e: Entity) -> Update {
    update(update::Type::Modify, e)
}

pub fn del(e: Entity) -> Update {
    update(update::Type::Delete, e)
}

pub async fn write_as(
    client: &mut P4RuntimeClient<Channel>,
    election: u128,
    atomicity: write_request::Atomicity,
    updates: Vec<Update>,
) -> Result<(), tonic::Status> {
    client
        .write(WriteRequest {
            device_id: DEVICE,
            election_id: eid(election),
            updates,
            atomicity: atomicity as i32,
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// Writes as the primary with election id 1, CONTINUE_ON_ERROR.
pub async fn write(
    client: &mut P4RuntimeClient<Channel>,
    updates: Vec<Update>,
) -> Result<(), tonic::Status> {
    write_as(
        client,
        1,
        write_request::Atomicity::ContinueOnError,
        updates,
    )
    .await
}

/// The per-update errors of a failed Write, from its `google.rpc.Status` details.
pub fn details(status: &tonic::Status) -> Vec<Error> {
    let s = RpcStatus::decode(status.details()).expect("google.rpc.Status in details");
    assert_eq!(s.code, tonic::Code::Unknown as i32);
    s.details
        .iter()
        .map(|a| {
            assert_eq!(a.type_url, "type.googleapis.com/p4.v1.Error");
            Error::decode(a.value.as_slice()).expect("p4.v1.Error")
        })
        .collect()
}

/// The canonical codes of a failed Write, per update.
pub fn codes(status: &tonic::Status) -> Vec<tonic::Code> {
    details(status)
        .iter()
        .map(|e| tonic::Code::from_i32(e.canonical_code))
        .collect()
}

pub async fn read(
    client: &mut P4RuntimeClient<Channel>,
    entities: Vec<Entity>,
) -> Result<Vec<Entity>, tonic::Status> {
    let mut stream = client
        .read(ReadRequest {
            device_id: DEVICE,
            entities,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.next().await {
        out.extend(r?.entities);
    }
    Ok(out)
}

/// Every table entry of `table` (by alias).
pub async fn read_table(client: &mut P4RuntimeClient<Channel>, table: &str) -> Vec<TableEntry> {
    read(client, vec![entry(table, vec![], None)])
        .await
        .expect("read")
        .into_iter()
        .filter_map(|e| match e.entity {
            Some(entity::Entity::TableEntry(t)) => Some(*t),
            _ => None,
        })
        .collect()
}
