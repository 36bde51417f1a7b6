//! The typed tables of the k8s pipeline.
//!
//! - [`ExactTable`]: exact-match keys (pod IPs, VIPs, NAT pointers, policy ids).
//! - [`PrefixTable`]: an exact part plus a longest-prefix-match part (the
//!   policy tables' protocol and peer CIDR).
//! - [`ActionSelector`]: action-profile members and groups, picking a member
//!   by a hash of the flow.
//! - [`FlowTable`]: the learner tables `pinned_flows` and
//!   `pinned_flows_reverse`, shared by all workers, with expiry classes.
//! - [`TableSet`]: every configured table of the program, published to
//!   workers as one snapshot.

pub mod exact;
pub mod flow;
pub mod prefix;
pub mod selector;
pub mod set;

pub use exact::ExactTable;
pub use flow::{FlowEntry, FlowKey, FlowTable, LearnOutcome};
pub use prefix::PrefixTable;
pub use selector::{ActionSelector, SelectorGroup};
pub use set::TableSet;
