//! Unary gRPC calls over a bare HTTP/2 connection (the `h2` crate).
//!
//! The request's HEADERS and DATA frames leave in one write, as gRPC's
//! C-core and grpc-go clients send them. tonic's client flushes HEADERS on
//! their own first; with client and server sharing a core, that wakes the
//! server twice per call, which is what the comparison in the benchmark
//! shows.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

/// A unary call failed.
#[derive(Debug)]
pub enum CallError {
    /// The connection or stream failed.
    Transport(String),
    /// The server answered with a gRPC status other than OK.
    Status(String),
    /// The response message did not decode.
    Decode(prost::DecodeError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(e) => write!(f, "transport: {e}"),
            CallError::Status(e) => write!(f, "{e}"),
            CallError::Decode(e) => write!(f, "response: {e}"),
        }
    }
}

impl From<h2::Error> for CallError {
    fn from(e: h2::Error) -> Self {
        CallError::Transport(e.to_string())
    }
}

/// One HTTP/2 connection to a gRPC server.
#[derive(Clone)]
pub struct UnaryClient {
    send: h2::client::SendRequest<Bytes>,
    authority: String,
}

impl UnaryClient {
    /// Connects to `addr` (`host:port`), with 16 MiB flow-control windows
    /// like the tonic client of the benchmark.
    pub async fn connect(addr: &str) -> Result<Self, CallError> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| CallError::Transport(format!("connect {addr}: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(16 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake(tcp)
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(UnaryClient {
            send,
            authority: addr.to_string(),
        })
    }

    /// Calls `path` (`/package.Service/Method`) with `request`.
    pub async fn call<Req: Message, Resp: Message + Default>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<Resp, CallError> {
        self.call_framed(path, frame(request)).await
    }

    /// Calls `path` with a request already framed by [`frame`].
    pub async fn call_framed<Resp: Message + Default>(
        &self,
        path: &str,
        framed: Bytes,
    ) -> Result<Resp, CallError> {
        let mut send = self.send.clone().ready().await?;
        let head = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let (response, mut stream) = send.send_request(head, false)?;
        // Queued behind the HEADERS before the connection task runs: one
        // flush carries both.
        stream.send_data(framed, true)?;

        let (parts, mut body) = response.await?.into_parts();
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await?;
        // A trailers-only answer carries the status in the headers.
        let field = |name: &str| {
            trailers
                .as_ref()
                .and_then(|t| t.get(name))
                .or_else(|| parts.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        match field("grpc-status").as_deref() {
            Some("0") => {}
            status => {
                return Err(CallError::Status(format!(
                    "grpc-status {status:?}: {}",
                    field("grpc-message").unwrap_or_default()
                )))
            }
        }
        let mut data = data.freeze();
        if data.len() < 5 {
            return Err(CallError::Transport(format!(
                "response of {} bytes has no gRPC message",
                data.len()
            )));
        }
        data.advance(5);
        Resp::decode(data).map_err(CallError::Decode)
    }
}

/// `message` as one gRPC message on the wire: the uncompressed flag, its
/// big-endian length, the encoded message.
pub fn frame<M: Message>(message: &M) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    message.encode_raw(&mut buf);
    buf.freeze()
}
