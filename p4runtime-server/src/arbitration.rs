//! Client arbitration (§5): primary and backup controllers per role.
//!
//! Each StreamChannel that sends a `MasterArbitrationUpdate` joins the
//! election of its role (by name; the empty name is the default role). The
//! server remembers the highest election id seen for the role while it has
//! clients; the client holding it is the primary. When the primary leaves,
//! the role has no primary until a client sends an election id at least as
//! high. Every client of the role is told when the primary changes: `OK`
//! for the primary, `ALREADY_EXISTS` for backups while there is a primary,
//! `NOT_FOUND` when there is none, with the highest election id. A live
//! duplicate election id is refused with `ALREADY_EXISTS`.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::error::P4rtError;
use crate::proto::google::rpc::Status as RpcStatus;
use crate::proto::p4::v1::{
    stream_message_response, MasterArbitrationUpdate, Role, StreamMessageResponse, Uint128,
};

/// The sending half of a client's stream.
pub type StreamTx = mpsc::UnboundedSender<Result<StreamMessageResponse, tonic::Status>>;

/// An election id as one number; unset and zero both mean "no election
/// id": such a client is a backup and can never be primary.
pub fn election_id(e: &Option<Uint128>) -> Option<u128> {
    e.as_ref()
        .map(|e| u128::from(e.high) << 64 | u128::from(e.low))
        .filter(|e| *e != 0)
}

fn uint128(v: u128) -> Uint128 {
    Uint128 {
        high: (v >> 64) as u64,
        low: v as u64,
    }
}

#[derive(Debug)]
struct Client {
    election_id: Option<u128>,
    tx: StreamTx,
    role: Option<Role>,
}

#[derive(Debug, Default)]
struct RoleState {
    clients: HashMap<u64, Client>,
    highest: Option<u128>,
    primary: Option<u64>,
}

impl RoleState {
    fn elect(&mut self) {
        self.primary = self.highest.and_then(|h| {
            self.clients
                .iter()
                .find(|(_, c)| c.election_id == Some(h))
                .map(|(id, _)| *id)
        });
    }

    fn notify(&self, device_id: u64, only: Option<u64>) {
        for (id, c) in &self.clients {
            if only.is_some_and(|o| o != *id) {
                continue;
            }
            let (code, message) = match self.primary {
                Some(p) if p == *id => (tonic::Code::Ok, "primary"),
                Some(_) => (tonic::Code::AlreadyExists, "backup"),
                None => (tonic::Code::NotFound, "no primary"),
            };
            let update = MasterArbitrationUpdate {
                device_id,
                role: c.role.clone(),
                election_id: self.highest.map(uint128),
                status: Some(RpcStatus {
                    code: code as i32,
                    message: message.into(),
                    details: vec![],
                }),
            };
            // A closed stream is cleaned up by its own task.
            let _ = c.tx.send(Ok(StreamMessageResponse {
                update: Some(stream_message_response::Update::Arbitration(update)),
            }));
        }
    }
}

/// The elections of every role of one device.
#[derive(Debug)]
pub struct Arbiter {
    device_id: u64,
    roles: Mutex<HashMap<String, RoleState>>,
}

impl Arbiter {
    /// Elections for device `device_id`.
    pub fn new(device_id: u64) -> Self {
        Arbiter {
            device_id,
            roles: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RoleState>> {
        self.roles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles an arbitration update from stream `stream`, whose role so far
    /// is `joined` (updated on success).
    pub fn arbitrate(
        &self,
        stream: u64,
        tx: &StreamTx,
        u: &MasterArbitrationUpdate,
        joined: &mut Option<String>,
    ) -> Result<(), P4rtError> {
        if u.device_id != self.device_id {
            return Err(P4rtError::NotFound(format!(
                "arbitration: device_id {} is not this device ({})",
                u.device_id, self.device_id
            )));
        }
        let role = u.role.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        if u.role.as_ref().is_some_and(|r| r.config.is_some()) {
            return Err(P4rtError::Unimplemented(format!(
                "arbitration: role '{role}': role configs are not supported"
            )));
        }
        if let Some(j) = joined {
            if *j != role {
                return Err(P4rtError::FailedPrecondition(format!(
                    "arbitration: the stream joined role '{j}' and cannot change to '{role}'"
                )));
            }
        }
        let eid = election_id(&u.election_id);
        let mut roles = self.lock();
        if let Some(e) = eid {
            let duplicate = roles.get(&role).is_some_and(|st| {
                st.clients
                    .iter()
                    .any(|(id, c)| *id != stream && c.election_id == Some(e))
            });
            if duplicate {
                return Err(P4rtError::AlreadyExists(
                    "Election id already exists".into(),
                ));
            }
        }
        let st = roles.entry(role.clone()).or_default();
        st.clients.insert(
            stream,
            Client {
                election_id: eid,
                tx: tx.clone(),
                role: u.role.clone(),
            },
        );
        st.highest = st.highest.max(eid);
        let before = st.primary;
        st.elect();
        if st.primary != before {
            st.notify(self.device_id, None);
        } else {
            st.notify(self.device_id, Some(stream));
        }
        *joined = Some(role);
        Ok(())
    }

    /// Stream `stream` of `role` closed.
    pub fn leave(&self, stream: u64, role: &str) {
        let mut roles = self.lock();
        let Some(st) = roles.get_mut(role) else {
            return;
        };
        st.clients.remove(&stream);
        if st.clients.is_empty() {
            roles.remove(role);
            return;
        }
        let before = st.primary;
        st.elect();
        if st.primary != before {
            st.notify(self.device_id, None);
        }
    }

    /// True when `election_id` is the live primary of `role`.
    pub fn is_primary(&self, role: &str, election_id: Option<u128>) -> bool {
        let roles = self.lock();
        let Some(st) = roles.get(role) else {
            return false;
        };
        match (st.primary, election_id) {
            (Some(p), Some(e)) => st.clients.get(&p).is_some_and(|c| c.election_id == Some(e)),
            _ => false,
        }
    }

    /// True when stream `stream` is the primary of `role`.
    pub fn stream_is_primary(&self, stream: u64, role: &str) -> bool {
        self.lock()
            .get(role)
            .is_some_and(|st| st.primary == Some(stream))
    }
}
