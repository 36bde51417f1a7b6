//! Packets for the p4k8s dataplane: owned buffers moved in batches, zero-copy
//! header views, the parser that turns a frame into [`PacketMeta`], RFC 1624
//! incremental checksums, and the [`port`] interface every port backend
//! (in-memory rings, TAP, memif, AF_PACKET) implements.
//!
//! Nothing here allocates per packet: buffers come from a [`BufPool`] and go
//! back to it.

pub mod batch;
pub mod buffer;
pub mod checksum;
pub mod offload;
pub mod parse;
pub mod port;
pub mod wire;

pub use batch::{Batch, MAX_BURST};
pub use buffer::{BufPool, PacketBuf};
pub use offload::VnetHeader;
pub use parse::{parse, L3Kind, L4Kind, Malformed, PacketMeta};
pub use port::{PortCounters, PortId, QueuePair, TxOutcome};
