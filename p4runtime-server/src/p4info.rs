//! P4Info in protobuf text format, parsed with `prost-reflect` over the
//! descriptors protox compiled at build time.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use thiserror::Error;

use crate::proto::p4::config::v1::P4Info;
use crate::proto::FILE_DESCRIPTOR_SET;

/// Why a P4Info text could not be read.
#[derive(Debug, Error)]
pub enum P4InfoTextError {
    /// The compiled descriptors do not load (a build problem).
    #[error("descriptor pool: {0}")]
    Descriptors(String),
    /// The text is not a valid `p4.config.v1.P4Info`.
    #[error("P4Info text format: {0}")]
    Parse(String),
}

fn pool() -> Result<&'static DescriptorPool, P4InfoTextError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| P4InfoTextError::Descriptors(e.clone()))
}

/// Parses a P4Info in protobuf text format.
pub fn parse_text(text: &str) -> Result<P4Info, P4InfoTextError> {
    let desc = pool()?
        .get_message_by_name("p4.config.v1.P4Info")
        .ok_or_else(|| P4InfoTextError::Descriptors("p4.config.v1.P4Info missing".into()))?;
    let dynamic = DynamicMessage::parse_text_format(desc, text)
        .map_err(|e| P4InfoTextError::Parse(e.to_string()))?;
    P4Info::decode(dynamic.encode_to_vec().as_slice())
        .map_err(|e| P4InfoTextError::Parse(e.to_string()))
}
