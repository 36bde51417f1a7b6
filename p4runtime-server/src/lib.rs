//! The p4k8s P4Runtime v1.5 server: a tonic service over the dataplane's
//! control API.
//!
//! - [`service`]: the gRPC service, [`serve`] and [`serve_with_listener`]
//!   (plaintext), [`serve_tls`] and [`serve_with_listener_tls`].
//! - [`tls`]: optional TLS and mutual TLS.
//! - [`arbitration`]: primary/backup election per role (§5).
//! - [`pipeline_config`]: Set/GetForwardingPipelineConfig (§14, §15).
//! - [`write`](mod@write) and [`read`]: entities to dataplane operations and back (§12, §13);
//!   [`shadow`]: what the server keeps beside the dataplane (one-shots, metadata).
//! - [`binding`]: a P4Info bound, by name, to the dataplane's tables.
//! - [`translate`]: match keys and actions, both ways.
//! - [`canonical`]: canonical byte strings (§8.4).
//! - [`p4info`]: P4Info text format.
//! - [`error`]: typed errors and their gRPC codes.
//! - [`proto`]: messages and service generated from the vendored protos;
//!   [`codec`]: their gRPC codec.

pub mod arbitration;
pub mod binding;
pub mod canonical;
pub mod codec;
pub mod error;
pub mod p4info;
pub mod pipeline_config;
mod plan;
pub mod proto;
pub mod read;
pub mod service;
pub mod shadow;
pub mod tls;
pub mod translate;
pub mod write;

pub use binding::Binding;
pub use error::P4rtError;
pub use service::{
    serve, serve_tls, serve_with_listener, serve_with_listener_tls, P4RuntimeService, API_VERSION,
    ERROR_SPACE, MAX_MESSAGE_SIZE,
};
pub use tls::TlsConfig;
