//! The P4Runtime gRPC service: checks the device id and the caller's
//! arbitration, runs the request on the device state, and maps
//! [`P4rtError`]s to `tonic::Status` (Write failures carry one
//! `p4.v1.Error` per update in a `google.rpc.Status`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dataplane::Control;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};

use crate::arbitration::{election_id, Arbiter, StreamTx};
use crate::error::P4rtError;
use crate::pipeline_config::DeviceState;
use crate::proto::google::rpc::Status as RpcStatus;
use crate::proto::p4::v1::p4_runtime_server::{P4Runtime, P4RuntimeServer};
use crate::proto::p4::v1::{
    stream_error, stream_message_request, stream_message_response, CapabilitiesRequest,
    CapabilitiesResponse, DigestListAckError, Error as P4Error, GetForwardingPipelineConfigRequest,
    GetForwardingPipelineConfigResponse, PacketOutError, ReadRequest, ReadResponse,
    SetForwardingPipelineConfigRequest, SetForwardingPipelineConfigResponse, StreamError,
    StreamMessageRequest, StreamMessageResponse, StreamOtherError, WriteRequest, WriteResponse,
};
use crate::tls::TlsConfig;

/// The P4Runtime API version this server implements.
pub const API_VERSION: &str = "1.5.0";

/// Largest message accepted or sent (256 MB), for big P4Infos and reads.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;

/// The error space of `p4.v1.Error`s and `StreamError`s this server sends
/// (the spec's `<target>-<arch>-<vendor>` triplet; PI uses "ALL-sswitch-p4org").
pub const ERROR_SPACE: &str = "p4k8s-pna-p4k8s";

/// Largest `grpc-status-details-bin` trailer sent (base64 bytes): under
/// the 16 KiB header-list limit of hyper and gRPC C-core clients, with
/// room for the other headers.
const MAX_DETAILS_BYTES: usize = 12 * 1024;

/// Writes of at most this many updates run on the request's own task.
const INLINE_WRITE_UPDATES: usize = 256;

/// Entities per ReadResponse message.
const READ_CHUNK: usize = 4096;

/// The P4Runtime service of one device.
#[derive(Debug, Clone)]
pub struct P4RuntimeService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    device_id: u64,
    control: Arc<Control>,
    state: Mutex<DeviceState>,
    arbiter: Arbiter,
    next_stream: AtomicU64,
    /// Set when the server shuts down: every StreamChannel ends.
    closing: watch::Sender<bool>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, DeviceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_device(&self, device_id: u64, what: &str) -> Result<(), P4rtError> {
        if device_id != self.device_id {
            return Err(P4rtError::NotFound(format!(
                "{what}: device_id {device_id} is not this device ({})",
                self.device_id
            )));
        }
        Ok(())
    }

    fn check_primary(
        &self,
        role: &str,
        eid: &Option<crate::proto::p4::v1::Uint128>,
        what: &str,
    ) -> Result<(), P4rtError> {
        let e = election_id(eid);
        if !self.arbiter.is_primary(role, e) {
            return Err(P4rtError::PermissionDenied(format!(
                "{what}: election id {} is not the primary of role '{role}' (arbitrate on StreamChannel first)",
                e.map_or("(none)".to_owned(), |e| e.to_string())
            )));
        }
        Ok(())
    }
}

impl P4RuntimeService {
    /// A service for device `device_id` over `control`; no pipeline is set.
    pub fn new(device_id: u64, control: Arc<Control>) -> Self {
        P4RuntimeService {
            inner: Arc::new(Inner {
                device_id,
                control,
                state: Mutex::new(DeviceState::default()),
                arbiter: Arbiter::new(device_id),
                next_stream: AtomicU64::new(1),
                closing: watch::channel(false).0,
            }),
        }
    }

    /// Ends every open StreamChannel (they would otherwise hold a graceful
    /// shutdown back until their clients hang up).
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    /// The tonic server for this service, accepting 256 MB messages both ways.
    pub fn into_server(self) -> P4RuntimeServer<Self> {
        P4RuntimeServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    fn handle_stream_message(
        &self,
        stream: u64,
        tx: &StreamTx,
        joined: &mut Option<String>,
        msg: StreamMessageRequest,
    ) -> Result<(), P4rtError> {
        let inner = &self.inner;
        let error = |code: tonic::Code, message: String, details: Option<stream_error::Details>| {
            let _ = tx.send(Ok(StreamMessageResponse {
                update: Some(stream_message_response::Update::Error(StreamError {
                    canonical_code: code as i32,
                    message,
                    space: ERROR_SPACE.into(),
                    code: 0,
                    details,
                })),
            }));
        };
        match msg.update {
            Some(stream_message_request::Update::Arbitration(u)) => {
                inner.arbiter.arbitrate(stream, tx, &u, joined)?;
            }
            Some(stream_message_request::Update::Packet(p)) => {
                let details = Some(stream_error::Details::PacketOut(PacketOutError {
                    packet_out: Some(p),
                }));
                match joined {
                    None => error(
                        tonic::Code::PermissionDenied,
                        "packet_out: the stream has not arbitrated (send a MasterArbitrationUpdate first)".into(),
                        details,
                    ),
                    Some(role) if !inner.arbiter.stream_is_primary(stream, role) => error(
                        tonic::Code::PermissionDenied,
                        format!("packet_out: the stream is not the primary of role '{role}'"),
                        details,
                    ),
                    Some(_) => error(
                        tonic::Code::Unimplemented,
                        "packet_out: the program has no controller port (no packet_out header in the P4Info)".into(),
                        details,
                    ),
                }
            }
            Some(stream_message_request::Update::DigestAck(a)) => error(
                tonic::Code::InvalidArgument,
                format!(
                    "digest_ack: digest id {} is not in the P4Info (the program has no digests)",
                    a.digest_id
                ),
                Some(stream_error::Details::DigestListAck(DigestListAckError {
                    digest_list_ack: Some(a),
                })),
            ),
            Some(stream_message_request::Update::Other(o)) => error(
                tonic::Code::InvalidArgument,
                format!("stream message of type {} is not supported", o.type_url),
                Some(stream_error::Details::Other(StreamOtherError {
                    other: Some(o),
                })),
            ),
            None => error(
                tonic::Code::InvalidArgument,
                "empty stream message (no update)".into(),
                None,
            ),
        }
        Ok(())
    }
}

/// The `google.rpc.Status` of a failed Write: `UNKNOWN`, one `p4.v1.Error`
/// per update in request order (`OK` for those that were applied).
fn write_failure(results: &[Result<(), P4rtError>]) -> Status {
    let failed = results.iter().filter(|r| r.is_err()).count();
    let message = format!("Write failed: {failed} of {} updates failed", results.len());
    let details = results
        .iter()
        .map(|r| {
            let e = match r {
                Ok(()) => P4Error {
                    canonical_code: tonic::Code::Ok as i32,
                    ..Default::default()
                },
                Err(e) => P4Error {
                    canonical_code: e.code() as i32,
                    message: e.message().to_owned(),
                    space: ERROR_SPACE.into(),
                    ..Default::default()
                },
            };
            prost_types::Any {
                type_url: "type.googleapis.com/p4.v1.Error".into(),
                value: e.encode_to_vec(),
            }
        })
        .collect();
    let status = RpcStatus {
        code: tonic::Code::Unknown as i32,
        message: message.clone(),
        details,
    };
    let encoded = status.encode_to_vec();
    // The details travel base64-encoded in a trailer; past the header-list
    // limit that gRPC clients announce (16 KiB in hyper, 8 KiB soft in
    // gRPC C-core) the client resets the stream and sees an HTTP/2 protocol
    // error instead of the failure. Then the message names the first
    // failures instead.
    if encoded.len() * 4 / 3 > MAX_DETAILS_BYTES {
        let first: Vec<String> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("#{i}: {}", e.message())))
            .take(3)
            .collect();
        return Status::unknown(format!(
            "{message} (first: {}); per-update details omitted: {} bytes exceed the {MAX_DETAILS_BYTES}-byte trailer budget",
            first.join("; "),
            encoded.len() * 4 / 3
        ));
    }
    Status::with_details(
        tonic::Code::Unknown,
        message,
        tonic::codegen::Bytes::from(encoded),
    )
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("request task failed: {e}")))
}

#[tonic::async_trait]
impl P4Runtime for P4RuntimeService {
    async fn write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let req = request.into_inner();
        let small = req.updates.len() <= INLINE_WRITE_UPDATES;
        let inner = Arc::clone(&self.inner);
        let apply = move || -> Result<Vec<Result<(), P4rtError>>, P4rtError> {
            inner.check_device(req.device_id, "Write")?;
            inner.check_primary(&req.role, &req.election_id, "Write")?;
            let mode = crate::write::commit_mode(req.atomicity)?;
            let mut state = inner.state();
            let binding = Arc::clone(&state.current()?.binding);
            Ok(crate::write::write(
                &binding,
                &inner.control,
                &mut state.shadow,
                &req.updates,
                mode,
            ))
        };
        // A small write takes microseconds: run it here rather than pay two
        // thread hand-offs. A big one goes to the blocking pool so it does
        // not hold up other connections.
        let results = if small {
            apply()?
        } else {
            blocking(apply).await??
        };
        if results.iter().any(|r| r.is_err()) {
            return Err(write_failure(&results));
        }
        Ok(Response::new(WriteResponse {}))
    }

    type ReadStream = BoxStream<ReadResponse>;

    async fn read(
        &self,
        request: Request<ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let req = request.into_inner();
        let inner = Arc::clone(&self.inner);
        let entities = blocking(move || -> Result<Vec<_>, P4rtError> {
            inner.check_device(req.device_id, "Read")?;
            let state = inner.state();
            let binding = Arc::clone(&state.current()?.binding);
            let mut out = Vec::new();
            for e in &req.entities {
                out.extend(crate::read::read(
                    &binding,
                    &inner.control,
                    &state.shadow,
                    e,
                )?);
            }
            Ok(out)
        })
        .await??;
        let mut responses: Vec<Result<ReadResponse, Status>> = entities
            .chunks(READ_CHUNK)
            .map(|c| {
                Ok(ReadResponse {
                    entities: c.to_vec(),
                })
            })
            .collect();
        if responses.is_empty() {
            responses.push(Ok(ReadResponse { entities: vec![] }));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(responses))))
    }

    async fn set_forwarding_pipeline_config(
        &self,
        request: Request<SetForwardingPipelineConfigRequest>,
    ) -> Result<Response<SetForwardingPipelineConfigResponse>, Status> {
        let req = request.into_inner();
        let inner = Arc::clone(&self.inner);
        blocking(move || -> Result<(), P4rtError> {
            inner.check_device(req.device_id, "SetForwardingPipelineConfig")?;
            inner.check_primary(&req.role, &req.election_id, "SetForwardingPipelineConfig")?;
            inner.state().set(&inner.control, req.action, req.config)
        })
        .await??;
        Ok(Response::new(SetForwardingPipelineConfigResponse {}))
    }

    async fn get_forwarding_pipeline_config(
        &self,
        request: Request<GetForwardingPipelineConfigRequest>,
    ) -> Result<Response<GetForwardingPipelineConfigResponse>, Status> {
        let req = request.into_inner();
        self.inner
            .check_device(req.device_id, "GetForwardingPipelineConfig")?;
        let config = self.inner.state().get(req.response_type)?;
        Ok(Response::new(GetForwardingPipelineConfigResponse {
            config: Some(config),
        }))
    }

    type StreamChannelStream = BoxStream<StreamMessageResponse>;

    async fn stream_channel(
        &self,
        request: Request<Streaming<StreamMessageRequest>>,
    ) -> Result<Response<Self::StreamChannelStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = self.inner.next_stream.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let mut closing = self.inner.closing.subscribe();
        tokio::spawn(async move {
            let mut joined: Option<String> = None;
            loop {
                let msg = tokio::select! {
                    msg = inbound.next() => msg,
                    _ = closing.wait_for(|c| *c) => break,
                };
                let Some(Ok(msg)) = msg else { break };
                if let Err(e) = this.handle_stream_message(stream, &tx, &mut joined, msg) {
                    // Arbitration errors end the stream with their status.
                    let _ = tx.send(Err(e.to_status()));
                    break;
                }
            }
            if let Some(role) = joined {
                this.inner.arbiter.leave(stream, &role);
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn capabilities(
        &self,
        _request: Request<CapabilitiesRequest>,
    ) -> Result<Response<CapabilitiesResponse>, Status> {
        Ok(Response::new(CapabilitiesResponse {
            p4runtime_api_version: API_VERSION.into(),
            experimental: None,
        }))
    }
}

/// HTTP/2 flow-control window of each stream and of each connection: a
/// 10,000-entry Write is ~400 KB, which the default 64 KiB window would
/// split into round trips.
const HTTP2_WINDOW: u32 = 16 << 20;

/// A tonic server builder, with TLS when `tls` is given. Responses are
/// small and latency matters, so Nagle's algorithm is off.
fn builder(tls: Option<&TlsConfig>) -> Result<Server, tonic::transport::Error> {
    let server = Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(HTTP2_WINDOW)
        .initial_connection_window_size(HTTP2_WINDOW);
    match tls {
        Some(tls) => server.tls_config(tls.server_config()),
        None => Ok(server),
    }
}

/// Serves P4Runtime for device `device_id` on `addr` (plaintext) until
/// `shutdown` completes; open StreamChannels are then ended so the server
/// stops.
pub async fn serve(
    addr: SocketAddr,
    device_id: u64,
    control: Arc<Control>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_tls(addr, device_id, control, None, shutdown).await
}

/// [`serve`] with optional TLS (mutual TLS when the config has a client CA).
pub async fn serve_tls(
    addr: SocketAddr,
    device_id: u64,
    control: Arc<Control>,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = P4RuntimeService::new(device_id, control);
    let closer = service.clone();
    builder(tls.as_ref())?
        .add_service(service.into_server())
        .serve_with_shutdown(addr, async move {
            shutdown.await;
            closer.close_streams();
        })
        .await
}

/// Serves P4Runtime on an already bound `listener` (e.g. `127.0.0.1:0` in
/// tests) until `shutdown` completes.
pub async fn serve_with_listener(
    listener: TcpListener,
    device_id: u64,
    control: Arc<Control>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_with_listener_tls(listener, device_id, control, None, shutdown).await
}

/// [`serve_with_listener`] with optional TLS.
pub async fn serve_with_listener_tls(
    listener: TcpListener,
    device_id: u64,
    control: Arc<Control>,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = P4RuntimeService::new(device_id, control);
    let closer = service.clone();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    builder(tls.as_ref())?
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            closer.close_streams();
        })
        .await
}
