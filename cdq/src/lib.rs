//! Container Dedicated Queues (CDQs) and host ports: the port backends that
//! connect pods and the node to the p4k8s dataplane.
//!
//! - [`tap`]: a multi-queue TAP netdev in the pod's network namespace, with
//!   the virtio-net header for checksum and segmentation offload.
//! - [`memif`]: shared-memory rings, wire-compatible with DPDK's `net_memif`.
//! - [`af_packet`]: the node's own interfaces (host and uplink ports).
//! - [`af_xdp`]: the same over AF_XDP sockets and an XDP program, falling
//!   back to AF_PACKET where AF_XDP cannot be used.
//!
//! Each backend hands out one [`p4k8s_packet::QueuePair`] per worker.

pub mod af_packet;
pub mod af_xdp;
mod mapping;
pub mod memif;
pub mod netns;
mod sockopt;
pub mod tap;
