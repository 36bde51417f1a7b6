//! P4Runtime server.
pub mod proto;
