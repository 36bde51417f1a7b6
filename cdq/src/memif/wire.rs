//! The memif wire format: control messages and the shared-memory layout.
//!
//! Control messages are fixed 128-byte records sent over a `SOCK_SEQPACKET`
//! UNIX socket: a 16-bit type followed by a packed payload. Everything is in
//! the host's byte order (memif peers share a host); this module reads and
//! writes little-endian, which is the host order on every target p4k8s runs
//! on.
//!
//! Message flow (the side that serves the socket is the *server*; the side
//! that connects is the *client* and owns the shared memory):
//!
//! ```text
//! server                         client
//!   HELLO  ------------------------>
//!         <------------------------ INIT          (interface id, secret)
//!   ACK    ------------------------>
//!         <------------------------ ADD_REGION    (memfd by SCM_RIGHTS)
//!   ACK    ------------------------>
//!         <------------------------ ADD_RING      (eventfd by SCM_RIGHTS), per ring
//!   ACK    ------------------------>
//!         <------------------------ CONNECT
//!   CONNECTED --------------------->
//! either side: DISCONNECT (code, reason) and close
//! ```
//!
//! Field offsets are `const` ranges in private `field` modules; parsing
//! never panics on any 128-byte input.

use std::fmt;

/// Size of every control message.
pub const MSG_SIZE: usize = 128;
/// memif protocol version 2.0, as `(major << 8) | minor`.
pub const VERSION: u16 = 0x0200;
/// Value of the ring header's cookie field.
pub const COOKIE: u32 = 0x03E3_1F20;
/// Length of the name fields.
pub const NAME_LEN: usize = 32;
/// Length of the secret field.
pub const SECRET_LEN: usize = 24;
/// Length of the disconnect reason.
pub const REASON_LEN: usize = 96;
/// Largest ring size, as log2, that DPDK accepts.
pub const MAX_LOG2_RING_SIZE: u8 = 14;
/// Largest number of regions one connection may add.
pub const MAX_REGIONS: usize = 256;

/// `ADD_RING` flag: the ring carries client-to-server traffic.
pub const ADD_RING_FLAG_C2S: u16 = 1;
/// Descriptor flag: the packet continues in the next descriptor.
pub const DESC_FLAG_NEXT: u16 = 1;
/// Ring flag: the receiver polls; do not signal its eventfd.
pub const RING_FLAG_MASK_INT: u16 = 1;

/// Ring header size: cookie, flags and head on one 64-byte cache line,
/// tail on the next; descriptors follow.
pub const RING_HEADER_SIZE: usize = 128;
/// Offset of the cookie (u32) in the ring header.
pub const RING_COOKIE: usize = 0;
/// Offset of the flags (u16) in the ring header.
pub const RING_FLAGS: usize = 4;
/// Offset of head (u16) in the ring header.
pub const RING_HEAD: usize = 6;
/// Offset of tail (u16) in the ring header.
pub const RING_TAIL: usize = 64;
/// Size of one descriptor.
pub const DESC_SIZE: usize = 16;
/// Offset of the flags (u16) in a descriptor.
pub const DESC_FLAGS: usize = 0;
/// Offset of the region index (u16) in a descriptor.
pub const DESC_REGION: usize = 2;
/// Offset of the buffer length (u32) in a descriptor.
pub const DESC_LENGTH: usize = 4;
/// Offset of the buffer offset (u32) in a descriptor.
pub const DESC_OFFSET: usize = 8;

/// Bytes one ring of `1 << log2` descriptors occupies.
pub const fn ring_bytes(log2: u8) -> usize {
    RING_HEADER_SIZE + DESC_SIZE * (1usize << log2)
}

/// Control message type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum MsgType {
    /// No message.
    None = 0,
    /// Acknowledges INIT, ADD_REGION and ADD_RING.
    Ack = 1,
    /// Server's greeting: versions and limits.
    Hello = 2,
    /// Client's interface id, mode and secret.
    Init = 3,
    /// A shared-memory region (memfd attached).
    AddRegion = 4,
    /// A ring (eventfd attached).
    AddRing = 5,
    /// Client finished setting up.
    Connect = 6,
    /// Server accepted the setup.
    Connected = 7,
    /// Either side is leaving, with a reason.
    Disconnect = 8,
}

impl MsgType {
    /// The type for a code; `None` for an unknown code.
    pub fn from_code(code: u16) -> Option<MsgType> {
        Some(match code {
            0 => MsgType::None,
            1 => MsgType::Ack,
            2 => MsgType::Hello,
            3 => MsgType::Init,
            4 => MsgType::AddRegion,
            5 => MsgType::AddRing,
            6 => MsgType::Connect,
            7 => MsgType::Connected,
            8 => MsgType::Disconnect,
            _ => return None,
        })
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            MsgType::None => "NONE",
            MsgType::Ack => "ACK",
            MsgType::Hello => "HELLO",
            MsgType::Init => "INIT",
            MsgType::AddRegion => "ADD_REGION",
            MsgType::AddRing => "ADD_RING",
            MsgType::Connect => "CONNECT",
            MsgType::Connected => "CONNECTED",
            MsgType::Disconnect => "DISCONNECT",
        };
        f.write_str(s)
    }
}

/// HELLO: the server's versions and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Server application name.
    pub name: Name,
    /// Lowest supported version.
    pub min_version: u16,
    /// Highest supported version.
    pub max_version: u16,
    /// Highest region index accepted.
    pub max_region: u16,
    /// Highest server-to-client ring index accepted.
    pub max_s2c_ring: u16,
    /// Highest client-to-server ring index accepted.
    pub max_c2s_ring: u16,
    /// Largest ring size (log2) accepted.
    pub max_log2_ring_size: u8,
}

/// INIT: which interface the client wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    /// Protocol version the client speaks.
    pub version: u16,
    /// Interface id on the socket.
    pub id: u32,
    /// Interface mode (0 = Ethernet).
    pub mode: u8,
    /// Optional secret, NUL-padded.
    pub secret: [u8; SECRET_LEN],
    /// Client application name.
    pub name: Name,
}

/// ADD_REGION: a region whose memfd rides along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddRegion {
    /// Region index (regions are added in order from 0).
    pub index: u16,
    /// Region size in bytes.
    pub size: u64,
}

/// ADD_RING: a ring whose eventfd rides along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddRing {
    /// [`ADD_RING_FLAG_C2S`] for a client-to-server ring.
    pub flags: u16,
    /// Ring (queue) index within its direction.
    pub index: u16,
    /// Region holding the ring.
    pub region: u16,
    /// Offset of the ring header in the region.
    pub offset: u32,
    /// Ring size as log2.
    pub log2_ring_size: u8,
    /// Private header size (unused; 0).
    pub private_hdr_size: u16,
}

/// A NUL-padded 32-byte name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name(pub [u8; NAME_LEN]);

impl Name {
    /// A name from a string, truncated to fit with its NUL.
    pub fn new(s: &str) -> Name {
        let mut b = [0u8; NAME_LEN];
        let n = s.len().min(NAME_LEN - 1);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        Name(b)
    }

    /// The name up to its first NUL, lossily decoded.
    pub fn as_string(&self) -> String {
        c_string(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_string())
    }
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A parsed control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Acknowledgement.
    Ack,
    /// Server greeting.
    Hello(Hello),
    /// Client init.
    Init(Init),
    /// Region announcement.
    AddRegion(AddRegion),
    /// Ring announcement.
    AddRing(AddRing),
    /// Client's interface name; setup finished.
    Connect(Name),
    /// Server's interface name; connection up.
    Connected(Name),
    /// Leaving: error code and reason.
    Disconnect {
        /// Error code (0 in DPDK).
        code: u32,
        /// Reason text.
        reason: String,
    },
}

/// A control message that could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not exactly [`MSG_SIZE`] bytes.
    #[error("control message of {0} bytes (expected 128)")]
    Size(usize),
    /// Unknown type code.
    #[error("unknown control message type {0}")]
    UnknownType(u16),
    /// A NONE message.
    #[error("control message of type NONE")]
    NoneType,
}

mod field {
    use std::ops::Range;
    pub const TYPE: Range<usize> = 0..2;
    pub const P: usize = 2; // payload start

    pub mod hello {
        use super::P;
        use std::ops::Range;
        pub const NAME: Range<usize> = P..P + 32;
        pub const MIN_VERSION: Range<usize> = P + 32..P + 34;
        pub const MAX_VERSION: Range<usize> = P + 34..P + 36;
        pub const MAX_REGION: Range<usize> = P + 36..P + 38;
        pub const MAX_S2C: Range<usize> = P + 38..P + 40;
        pub const MAX_C2S: Range<usize> = P + 40..P + 42;
        pub const MAX_LOG2: usize = P + 42;
    }
    pub mod init {
        use super::P;
        use std::ops::Range;
        pub const VERSION: Range<usize> = P..P + 2;
        pub const ID: Range<usize> = P + 2..P + 6;
        pub const MODE: usize = P + 6;
        pub const SECRET: Range<usize> = P + 7..P + 31;
        pub const NAME: Range<usize> = P + 31..P + 63;
    }
    pub mod region {
        use super::P;
        use std::ops::Range;
        pub const INDEX: Range<usize> = P..P + 2;
        pub const SIZE: Range<usize> = P + 2..P + 10;
    }
    pub mod ring {
        use super::P;
        use std::ops::Range;
        pub const FLAGS: Range<usize> = P..P + 2;
        pub const INDEX: Range<usize> = P + 2..P + 4;
        pub const REGION: Range<usize> = P + 4..P + 6;
        pub const OFFSET: Range<usize> = P + 6..P + 10;
        pub const LOG2: usize = P + 10;
        pub const PRIV: Range<usize> = P + 11..P + 13;
    }
    pub mod connect {
        use super::P;
        use std::ops::Range;
        pub const NAME: Range<usize> = P..P + 32;
    }
    pub mod disconnect {
        use super::P;
        use std::ops::Range;
        pub const CODE: Range<usize> = P..P + 4;
        pub const REASON: Range<usize> = P + 4..P + 100;
    }
}

fn u16_at(b: &[u8; MSG_SIZE], r: std::ops::Range<usize>) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[r]);
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8; MSG_SIZE], r: std::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8; MSG_SIZE], r: std::ops::Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_le_bytes(a)
}

fn name_at(b: &[u8; MSG_SIZE], r: std::ops::Range<usize>) -> Name {
    let mut n = [0u8; NAME_LEN];
    n.copy_from_slice(&b[r]);
    Name(n)
}

impl Msg {
    /// The message's type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Msg::Ack => MsgType::Ack,
            Msg::Hello(_) => MsgType::Hello,
            Msg::Init(_) => MsgType::Init,
            Msg::AddRegion(_) => MsgType::AddRegion,
            Msg::AddRing(_) => MsgType::AddRing,
            Msg::Connect(_) => MsgType::Connect,
            Msg::Connected(_) => MsgType::Connected,
            Msg::Disconnect { .. } => MsgType::Disconnect,
        }
    }

    /// Parses a received message; `bytes` is what `recvmsg` returned.
    pub fn parse(bytes: &[u8]) -> Result<Msg, ParseError> {
        let b: &[u8; MSG_SIZE] = bytes
            .try_into()
            .map_err(|_| ParseError::Size(bytes.len()))?;
        let code = u16_at(b, field::TYPE);
        let ty = MsgType::from_code(code).ok_or(ParseError::UnknownType(code))?;
        Ok(match ty {
            MsgType::None => return Err(ParseError::NoneType),
            MsgType::Ack => Msg::Ack,
            MsgType::Hello => {
                use field::hello as f;
                Msg::Hello(Hello {
                    name: name_at(b, f::NAME),
                    min_version: u16_at(b, f::MIN_VERSION),
                    max_version: u16_at(b, f::MAX_VERSION),
                    max_region: u16_at(b, f::MAX_REGION),
                    max_s2c_ring: u16_at(b, f::MAX_S2C),
                    max_c2s_ring: u16_at(b, f::MAX_C2S),
                    max_log2_ring_size: b[f::MAX_LOG2],
                })
            }
            MsgType::Init => {
                use field::init as f;
                let mut secret = [0u8; SECRET_LEN];
                secret.copy_from_slice(&b[f::SECRET]);
                Msg::Init(Init {
                    version: u16_at(b, f::VERSION),
                    id: u32_at(b, f::ID),
                    mode: b[f::MODE],
                    secret,
                    name: name_at(b, f::NAME),
                })
            }
            MsgType::AddRegion => Msg::AddRegion(AddRegion {
                index: u16_at(b, field::region::INDEX),
                size: u64_at(b, field::region::SIZE),
            }),
            MsgType::AddRing => {
                use field::ring as f;
                Msg::AddRing(AddRing {
                    flags: u16_at(b, f::FLAGS),
                    index: u16_at(b, f::INDEX),
                    region: u16_at(b, f::REGION),
                    offset: u32_at(b, f::OFFSET),
                    log2_ring_size: b[f::LOG2],
                    private_hdr_size: u16_at(b, f::PRIV),
                })
            }
            MsgType::Connect => Msg::Connect(name_at(b, field::connect::NAME)),
            MsgType::Connected => Msg::Connected(name_at(b, field::connect::NAME)),
            MsgType::Disconnect => Msg::Disconnect {
                code: u32_at(b, field::disconnect::CODE),
                reason: c_string(&b[field::disconnect::REASON]),
            },
        })
    }

    /// Writes the message as the 128 bytes to send.
    pub fn emit(&self) -> [u8; MSG_SIZE] {
        let mut b = [0u8; MSG_SIZE];
        b[field::TYPE].copy_from_slice(&(self.msg_type() as u16).to_le_bytes());
        match self {
            Msg::Ack => {}
            Msg::Hello(h) => {
                use field::hello as f;
                b[f::NAME].copy_from_slice(&h.name.0);
                b[f::MIN_VERSION].copy_from_slice(&h.min_version.to_le_bytes());
                b[f::MAX_VERSION].copy_from_slice(&h.max_version.to_le_bytes());
                b[f::MAX_REGION].copy_from_slice(&h.max_region.to_le_bytes());
                b[f::MAX_S2C].copy_from_slice(&h.max_s2c_ring.to_le_bytes());
                b[f::MAX_C2S].copy_from_slice(&h.max_c2s_ring.to_le_bytes());
                b[f::MAX_LOG2] = h.max_log2_ring_size;
            }
            Msg::Init(i) => {
                use field::init as f;
                b[f::VERSION].copy_from_slice(&i.version.to_le_bytes());
                b[f::ID].copy_from_slice(&i.id.to_le_bytes());
                b[f::MODE] = i.mode;
                b[f::SECRET].copy_from_slice(&i.secret);
                b[f::NAME].copy_from_slice(&i.name.0);
            }
            Msg::AddRegion(r) => {
                b[field::region::INDEX].copy_from_slice(&r.index.to_le_bytes());
                b[field::region::SIZE].copy_from_slice(&r.size.to_le_bytes());
            }
            Msg::AddRing(r) => {
                use field::ring as f;
                b[f::FLAGS].copy_from_slice(&r.flags.to_le_bytes());
                b[f::INDEX].copy_from_slice(&r.index.to_le_bytes());
                b[f::REGION].copy_from_slice(&r.region.to_le_bytes());
                b[f::OFFSET].copy_from_slice(&r.offset.to_le_bytes());
                b[f::LOG2] = r.log2_ring_size;
                b[f::PRIV].copy_from_slice(&r.private_hdr_size.to_le_bytes());
            }
            Msg::Connect(n) | Msg::Connected(n) => {
                b[field::connect::NAME].copy_from_slice(&n.0);
            }
            Msg::Disconnect { code, reason } => {
                use field::disconnect as f;
                b[f::CODE].copy_from_slice(&code.to_le_bytes());
                let n = reason.len().min(REASON_LEN - 1);
                b[f::REASON.start..f::REASON.start + n].copy_from_slice(&reason.as_bytes()[..n]);
            }
        }
        b
    }
}

/// Packs a secret string into the INIT field (truncated, NUL-padded).
pub fn secret_bytes(secret: Option<&str>) -> [u8; SECRET_LEN] {
    let mut s = [0u8; SECRET_LEN];
    if let Some(secret) = secret {
        let n = secret.len().min(SECRET_LEN - 1);
        s[..n].copy_from_slice(&secret.as_bytes()[..n]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: Msg) {
        let b = m.emit();
        assert_eq!(Msg::parse(&b).unwrap(), m);
    }

    #[test]
    fn messages_round_trip() {
        round_trip(Msg::Ack);
        round_trip(Msg::Hello(Hello {
            name: Name::new("DPDK 22.11.11"),
            min_version: VERSION,
            max_version: VERSION,
            max_region: 255,
            max_s2c_ring: 3,
            max_c2s_ring: 3,
            max_log2_ring_size: 14,
        }));
        round_trip(Msg::Init(Init {
            version: VERSION,
            id: 7,
            mode: 0,
            secret: secret_bytes(Some("s3cret")),
            name: Name::new("app"),
        }));
        round_trip(Msg::AddRegion(AddRegion {
            index: 0,
            size: 0x1234_5678_9abc,
        }));
        round_trip(Msg::AddRing(AddRing {
            flags: ADD_RING_FLAG_C2S,
            index: 2,
            region: 0,
            offset: 4096,
            log2_ring_size: 10,
            private_hdr_size: 0,
        }));
        round_trip(Msg::Connect(Name::new("net_memif0")));
        round_trip(Msg::Connected(Name::new("p4k8s")));
        round_trip(Msg::Disconnect {
            code: 0,
            reason: "Unknown message type".into(),
        });
    }

    /// Byte layout as DPDK's packed structs put it (type at 0, payload at 2).
    #[test]
    fn add_ring_layout_matches_packed_struct() {
        let m = Msg::AddRing(AddRing {
            flags: 1,
            index: 0x0302,
            region: 0x0504,
            offset: 0x0908_0706,
            log2_ring_size: 10,
            private_hdr_size: 0x0c0b,
        });
        let b = m.emit();
        assert_eq!(
            &b[..15],
            &[5, 0, 1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x0b, 0x0c]
        );
        assert!(b[15..].iter().all(|&x| x == 0));
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        assert_eq!(Msg::parse(&[0u8; 12]), Err(ParseError::Size(12)));
        let mut b = [0u8; MSG_SIZE];
        assert_eq!(Msg::parse(&b), Err(ParseError::NoneType));
        b[0] = 0x42;
        assert_eq!(Msg::parse(&b), Err(ParseError::UnknownType(0x42)));
        for t in 0..20u8 {
            let mut b = [0xffu8; MSG_SIZE];
            b[0] = t;
            b[1] = 0;
            let _ = Msg::parse(&b);
        }
    }

    #[test]
    fn disconnect_reason_is_truncated_with_nul() {
        let long = "x".repeat(200);
        let b = Msg::Disconnect {
            code: 1,
            reason: long,
        }
        .emit();
        match Msg::parse(&b).unwrap() {
            Msg::Disconnect { code, reason } => {
                assert_eq!(code, 1);
                assert_eq!(reason.len(), REASON_LEN - 1);
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(ring_bytes(10), 128 + 16 * 1024);
    }
}
