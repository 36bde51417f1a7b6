//! Errors of the control API.

use thiserror::Error;

use super::TableId;

/// Why a table update was refused. Every variant names the table, and the
/// key or value at fault; the P4Runtime server maps them to gRPC codes.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TableError {
    /// Insert of a key that exists.
    #[error("{table}: entry {key} already exists")]
    AlreadyExists {
        /// The table.
        table: TableId,
        /// The key, formatted.
        key: String,
    },
    /// Modify or delete of a missing key, or a reference to a missing member/group.
    #[error("{table}: no entry {key}")]
    NotFound {
        /// The table.
        table: TableId,
        /// The key, formatted.
        key: String,
    },
    /// A value the table cannot hold.
    #[error("{table}: invalid value: {what}")]
    InvalidValue {
        /// The table.
        table: TableId,
        /// What was wrong.
        what: String,
    },
    /// No room left.
    #[error("{table}: table full ({capacity} entries)")]
    Full {
        /// The table.
        table: TableId,
        /// Its capacity.
        capacity: usize,
    },
    /// The program fixes this table's default action.
    #[error("{table}: the default action is constant")]
    ConstDefault {
        /// The table.
        table: TableId,
    },
    /// Delete of a member or group that something still uses.
    #[error("{table}: {what} is still in use")]
    InUse {
        /// The table (selector).
        table: TableId,
        /// The member or group.
        what: String,
    },
    /// The batch was refused as a whole because another update in it failed
    /// (rollback and dataplane-atomic modes).
    #[error("not applied: another update of the atomic batch failed")]
    Aborted,
}
