//! The p4k8s dataplane: the Kubernetes pipeline of `PIPELINE.md` (routing,
//! ARP, network policy, connection tracking, service load balancing and
//! NAT) run over batches of packets by poll-mode workers.
//!
//! - [`tables`]: the typed match tables, action selectors and the learner
//!   (connection-tracking) tables.
//! - [`control`]: the control API: typed updates per table, committed in
//!   batches and published to running workers without stopping them.
//! - [`pipeline`]: the two passes of the k8s program over a batch.
//! - [`worker`]: the poll loop that moves bursts between ports and the pipeline.
//! - [`stats`]: per-worker counters (drops by reason, table hits and misses,
//!   the program's `pkt_cntr`/`byte_cntr`).

pub mod config;
pub mod control;
mod hugepages;
pub mod pipeline;
mod prefetch;
pub mod stats;
pub mod tables;
pub mod worker;

pub use config::{DataplaneConfig, Gateway, DEFAULT_HAIRPIN_SNAT};
pub use control::{Control, TableError, TableOp};
pub use pipeline::{Pipeline, Verdict};
