//! A small P4Runtime client: connect, become primary, push a pipeline,
//! write in batches, read.

use std::time::Duration;

use p4k8s_p4runtime::proto::google::rpc::Status as RpcStatus;
use p4k8s_p4runtime::proto::p4::config::v1::P4Info;
use p4k8s_p4runtime::proto::p4::v1::p4_runtime_client::P4RuntimeClient;
use p4k8s_p4runtime::proto::p4::v1::{
    forwarding_pipeline_config, get_forwarding_pipeline_config_request,
    set_forwarding_pipeline_config_request, stream_message_request, stream_message_response,
    write_request, Entity, Error as P4Error, ForwardingPipelineConfig,
    GetForwardingPipelineConfigRequest, MasterArbitrationUpdate, ReadRequest,
    SetForwardingPipelineConfigRequest, StreamMessageRequest, StreamMessageResponse, Uint128,
    Update, WriteRequest,
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::CtlError;

/// How long to wait for the connection and the arbitration answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One failed update of a Write: its index in the whole list and the
/// `p4.v1.Error` the server gave.
#[derive(Debug, Clone)]
pub struct UpdateFailure {
    /// Index of the update in the list given to [`Session::write`].
    pub index: usize,
    /// The server's canonical code.
    pub code: tonic::Code,
    /// The server's message.
    pub message: String,
}

/// A connection to a device.
pub struct Session {
    client: P4RuntimeClient<Channel>,
    device_id: u64,
    election_id: Option<Uint128>,
    /// Keeps the stream (and so primacy) open while the session lives.
    _stream: Option<(
        mpsc::Sender<StreamMessageRequest>,
        tonic::Streaming<StreamMessageResponse>,
    )>,
}

fn uint128(v: u128) -> Uint128 {
    Uint128 {
        high: (v >> 64) as u64,
        low: v as u64,
    }
}

impl Session {
    /// Connects to `addr` (`host:port`, plaintext).
    pub async fn connect(addr: &str, device_id: u64) -> Result<Session, CtlError> {
        let url = format!("http://{addr}");
        let endpoint = Channel::from_shared(url.clone())
            .map_err(|e| CtlError::Connect {
                addr: addr.to_owned(),
                message: e.to_string(),
            })?
            .connect_timeout(TIMEOUT);
        let channel = endpoint.connect().await.map_err(|e| CtlError::Connect {
            addr: addr.to_owned(),
            message: format!("{e} ({:?})", std::error::Error::source(&e)),
        })?;
        Ok(Session {
            client: P4RuntimeClient::new(channel)
                .max_decoding_message_size(p4k8s_p4runtime::MAX_MESSAGE_SIZE)
                .max_encoding_message_size(p4k8s_p4runtime::MAX_MESSAGE_SIZE),
            device_id,
            election_id: None,
            _stream: None,
        })
    }

    /// Opens the stream channel and becomes primary with `election_id`
    /// (default role); an error when another client holds a higher id.
    pub async fn become_primary(&mut self, election_id: u128) -> Result<(), CtlError> {
        let (tx, rx) = mpsc::channel(4);
        let mut responses = self
            .client
            .stream_channel(ReceiverStream::new(rx))
            .await
            .map_err(|s| CtlError::rpc("StreamChannel", &s))?
            .into_inner();
        let update = MasterArbitrationUpdate {
            device_id: self.device_id,
            role: None,
            election_id: Some(uint128(election_id)),
            status: None,
        };
        tx.send(StreamMessageRequest {
            update: Some(stream_message_request::Update::Arbitration(update)),
        })
        .await
        .map_err(|_| CtlError::Arbitration("the stream closed before arbitration".into()))?;
        loop {
            let next = tokio::time::timeout(TIMEOUT, responses.next())
                .await
                .map_err(|_| CtlError::Arbitration("no arbitration answer within 10 s".into()))?;
            let message = match next {
                Some(Ok(m)) => m,
                Some(Err(s)) => return Err(CtlError::rpc("StreamChannel", &s)),
                None => {
                    return Err(CtlError::Arbitration(
                        "the stream ended before arbitration".into(),
                    ))
                }
            };
            if let Some(stream_message_response::Update::Arbitration(a)) = message.update {
                let status = a.status.unwrap_or_default();
                if status.code != tonic::Code::Ok as i32 {
                    return Err(CtlError::Arbitration(format!(
                        "not primary with election id {election_id}: {:?}: {}",
                        tonic::Code::from_i32(status.code),
                        status.message
                    )));
                }
                break;
            }
        }
        self.election_id = Some(uint128(election_id));
        self._stream = Some((tx, responses));
        Ok(())
    }

    /// Pushes `p4info` with VERIFY_AND_COMMIT.
    pub async fn set_pipeline(&mut self, p4info: P4Info) -> Result<(), CtlError> {
        self.client
            .set_forwarding_pipeline_config(SetForwardingPipelineConfigRequest {
                device_id: self.device_id,
                election_id: self.election_id,
                action: set_forwarding_pipeline_config_request::Action::VerifyAndCommit as i32,
                config: Some(ForwardingPipelineConfig {
                    p4info: Some(p4info),
                    p4_device_config: Vec::new(),
                    cookie: Some(forwarding_pipeline_config::Cookie { cookie: 1 }),
                }),
                ..Default::default()
            })
            .await
            .map_err(|s| CtlError::rpc("SetForwardingPipelineConfig", &s))?;
        Ok(())
    }

    /// The device's P4Info, if it has a pipeline.
    pub async fn get_p4info(&mut self) -> Result<Option<P4Info>, CtlError> {
        let resp = self
            .client
            .get_forwarding_pipeline_config(GetForwardingPipelineConfigRequest {
                device_id: self.device_id,
                response_type: get_forwarding_pipeline_config_request::ResponseType::P4infoAndCookie
                    as i32,
            })
            .await
            .map_err(|s| CtlError::rpc("GetForwardingPipelineConfig", &s))?
            .into_inner();
        Ok(resp.config.and_then(|c| c.p4info))
    }

    /// Writes `updates` in order, `batch` per Write (CONTINUE_ON_ERROR),
    /// and stops after the first Write with failures, which it returns.
    pub async fn write(&mut self, updates: Vec<Update>, batch: usize) -> Result<(), CtlError> {
        let batch = batch.max(1);
        let mut base = 0;
        let mut updates = updates.into_iter().peekable();
        while updates.peek().is_some() {
            let chunk: Vec<Update> = updates.by_ref().take(batch).collect();
            let n = chunk.len();
            let result = self
                .client
                .write(WriteRequest {
                    device_id: self.device_id,
                    election_id: self.election_id,
                    updates: chunk,
                    atomicity: write_request::Atomicity::ContinueOnError as i32,
                    ..Default::default()
                })
                .await;
            if let Err(status) = result {
                let failures = per_update_errors(&status, base);
                if failures.is_empty() {
                    return Err(CtlError::rpc("Write", &status));
                }
                return Err(CtlError::Write {
                    failures: super::Failures(
                        failures.into_iter().map(|f| (f, String::new())).collect(),
                    ),
                    written_before: base,
                });
            }
            base += n;
        }
        Ok(())
    }

    /// Reads `entities` (wildcards allowed).
    pub async fn read(&mut self, entities: Vec<Entity>) -> Result<Vec<Entity>, CtlError> {
        let mut stream = self
            .client
            .read(ReadRequest {
                device_id: self.device_id,
                entities,
                ..Default::default()
            })
            .await
            .map_err(|s| CtlError::rpc("Read", &s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(r) = stream.next().await {
            out.extend(r.map_err(|s| CtlError::rpc("Read", &s))?.entities);
        }
        Ok(out)
    }
}

/// The failed updates of a Write's status (`google.rpc.Status` details
/// holding one `p4.v1.Error` per update), indices offset by `base`;
/// updates with code OK are left out.
pub fn per_update_errors(status: &tonic::Status, base: usize) -> Vec<UpdateFailure> {
    let Ok(rpc) = RpcStatus::decode(status.details()) else {
        return Vec::new();
    };
    rpc.details
        .iter()
        .enumerate()
        .filter_map(|(i, any)| {
            let e = P4Error::decode(any.value.as_slice()).ok()?;
            (e.canonical_code != tonic::Code::Ok as i32).then(|| UpdateFailure {
                index: base + i,
                code: tonic::Code::from_i32(e.canonical_code),
                message: e.message,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Any;

    #[test]
    fn per_update_errors_keep_only_failures_with_global_indices() {
        let errors = [
            P4Error {
                canonical_code: 0,
                ..Default::default()
            },
            P4Error {
                canonical_code: tonic::Code::AlreadyExists as i32,
                message: "entry exists".into(),
                ..Default::default()
            },
        ];
        let rpc = RpcStatus {
            code: tonic::Code::Unknown as i32,
            message: "1 of 2 failed".into(),
            details: errors
                .iter()
                .map(|e| Any {
                    type_url: "type.googleapis.com/p4.v1.Error".into(),
                    value: e.encode_to_vec(),
                })
                .collect(),
        };
        let status = tonic::Status::with_details(
            tonic::Code::Unknown,
            "1 of 2 failed",
            rpc.encode_to_vec().into(),
        );
        let f = per_update_errors(&status, 1000);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].index, 1001);
        assert_eq!(f[0].code, tonic::Code::AlreadyExists);
        assert_eq!(f[0].message, "entry exists");
    }
}
