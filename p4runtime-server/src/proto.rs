//! The P4Runtime v1.5.0 messages and service, generated from the vendored protos.
#![allow(missing_docs, clippy::all, clippy::pedantic)]
#![allow(
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls,
    rustdoc::broken_intra_doc_links
)]

/// `p4.*` packages.
pub mod p4 {
    /// `p4.v1`: the P4Runtime service and its messages.
    pub mod v1 {
        tonic::include_proto!("p4.v1");
    }
    /// `p4.config.v1`: P4Info.
    pub mod config {
        /// `p4.config.v1`.
        pub mod v1 {
            tonic::include_proto!("p4.config.v1");
        }
    }
}

/// `google.rpc`: `Status`.
pub mod google {
    /// `google.rpc`.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// The encoded `FileDescriptorSet` of the protos (for text-format P4Info).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/p4runtime_descriptor.bin"));
