//! Keys and actions: P4Runtime `FieldMatch`/`Action` messages to the
//! dataplane's typed keys and actions, and back (in canonical form).

use std::fmt::{self, Display};
use std::ops::Deref;

use dataplane::control::{
    AclAction, IpsetAction, MemberAction, NatAction, RangeAction, SetDestMacVport, SetDestVport,
    SetMetaAction, VipKey,
};
use dataplane::tables::prefix::{mask_prefix, PrefixKey};
use dataplane::tables::FlowKey;

use crate::binding::{ActionKind, Binding, BoundTable, MatchKind, Scope, TableKind};
use crate::canonical;
use crate::error::P4rtError;
use crate::proto::p4::v1::{action, field_match, Action, FieldMatch};

/// A key of one of the dataplane's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// One 32-bit or 24-bit exact field (pods, NAT pointers).
    U32(u32),
    /// (IPv4, port) exact (services).
    Vip(VipKey),
    /// Pod IP exact + protocol prefix.
    PodProto(PrefixKey<u32>),
    /// Policy id exact + peer IP prefix.
    Ipset(PrefixKey<u8>),
    /// Policy id (range tables).
    PolId(u8),
    /// 5-tuple (learner tables).
    Flow(FlowKey),
}

/// An action of one of the dataplane's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpAction {
    /// `set_dest_vport`.
    DestVport(SetDestVport),
    /// `set_dest_mac_vport`.
    DestMacVport(SetDestMacVport),
    /// NAT tables.
    Nat(NatAction),
    /// Selector members (`set_default_lb_dest` / `NoAction`).
    Member(MemberAction),
    /// `set_meta_*`.
    SetMeta(SetMetaAction),
    /// `acl_pod_ip_proto_table_*`.
    Acl(AclAction),
    /// `acl_ipset_match_table_*`.
    Ipset(IpsetAction),
    /// Range tables.
    Range(RangeAction),
    /// Learner tables: hit with a pointer.
    FlowHit(u32),
    /// Learner tables: the miss default.
    FlowMiss,
}

/// Most match fields a table of the k8s program has (the learner tables' 5-tuple).
pub const MAX_FIELDS: usize = 5;

/// Most parameters an action of the k8s program has (the range tables' 8 pairs).
pub const MAX_PARAMS: usize = 16;

/// "`{what}: match field {name} (id {id})`", formatted only when an error
/// names it: the success path of a write formats nothing.
struct FieldName<'a, W: ?Sized> {
    what: &'a W,
    name: &'a str,
    id: u32,
}

impl<W: Display + ?Sized> Display for FieldName<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: match field {} (id {})",
            self.what, self.name, self.id
        )
    }
}

/// "`{what}: action {action} parameter {param}`", formatted on demand.
struct ParamName<'a, W: ?Sized> {
    what: &'a W,
    action: &'a str,
    param: &'a str,
}

impl<W: Display + ?Sized> Display for ParamName<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: action {} parameter {}",
            self.what, self.action, self.param
        )
    }
}

/// An action's argument values by parameter slot, kept inline (decoding a
/// write allocates nothing per parameter).
#[derive(Debug, Clone, Copy)]
pub struct ActionArgs {
    vals: [u128; MAX_PARAMS],
    len: usize,
}

impl Deref for ActionArgs {
    type Target = [u128];

    fn deref(&self) -> &[u128] {
        &self.vals[..self.len]
    }
}

/// Decodes the match of an entry of `t` (`what` names the entity in errors).
pub fn decode_key(
    t: &BoundTable,
    fields: &[FieldMatch],
    what: &(impl Display + ?Sized),
) -> Result<Key, P4rtError> {
    if t.fields.len() > MAX_FIELDS {
        return Err(P4rtError::Unimplemented(format!(
            "{what}: {} has {} match fields, more than the target's {MAX_FIELDS}",
            t.name,
            t.fields.len()
        )));
    }
    // (value, prefix length) by slot; an omitted LPM field is the /0 wildcard.
    let mut out = [(0u128, 0u8); MAX_FIELDS];
    // Bit i: slot i was given.
    let mut given = 0u32;
    for m in fields {
        let Some(f) = t.fields.iter().find(|f| f.id == m.field_id) else {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: match field id {} is not a field of {}",
                m.field_id, t.name
            )));
        };
        let fname = FieldName {
            what,
            name: &f.name,
            id: f.id,
        };
        if given & 1 << f.slot != 0 {
            return Err(P4rtError::InvalidArgument(format!("{fname} appears twice")));
        }
        given |= 1 << f.slot;
        out[f.slot] = match (&m.field_match_type, f.kind) {
            (Some(field_match::FieldMatchType::Exact(e)), MatchKind::Exact) => {
                (canonical::decode(&e.value, f.width, &fname)?, f.width as u8)
            }
            (Some(field_match::FieldMatchType::Lpm(l)), MatchKind::Lpm) => {
                // The spec asks for a wildcard to be omitted, but the
                // upstream manager (p4runtime-go-client) sends `/0` with a
                // zero value: accepted as the same wildcard, read back omitted.
                if l.prefix_len < 0 || l.prefix_len as u32 > f.width {
                    return Err(P4rtError::InvalidArgument(format!(
                        "{fname}: prefix_len {} must be in 0..={}",
                        l.prefix_len, f.width
                    )));
                }
                let v = canonical::decode(&l.value, f.width, &fname)?;
                let len = l.prefix_len as u8;
                if mask_prefix(v, len, f.width as u8) != v {
                    return Err(P4rtError::InvalidArgument(format!(
                        "{fname}: value {v:#x} has bits set past the /{len} prefix"
                    )));
                }
                (v, len)
            }
            (other, kind) => {
                return Err(P4rtError::InvalidArgument(format!(
                    "{fname}: is {kind:?}, the request has {}",
                    match other {
                        None => "no match",
                        Some(field_match::FieldMatchType::Exact(_)) => "EXACT",
                        Some(field_match::FieldMatchType::Lpm(_)) => "LPM",
                        Some(field_match::FieldMatchType::Ternary(_)) => "TERNARY",
                        Some(field_match::FieldMatchType::Range(_)) => "RANGE",
                        Some(field_match::FieldMatchType::Optional(_)) => "OPTIONAL",
                        Some(field_match::FieldMatchType::Other(_)) => "another match kind",
                    }
                )))
            }
        };
    }
    for (i, f) in t.fields.iter().enumerate() {
        if given & 1 << i == 0 && matches!(f.kind, MatchKind::Exact) {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: exact match field {} (id {}) is missing",
                f.name, f.id
            )));
        }
    }
    let v = |i: usize| out[i].0;
    Ok(match t.kind {
        TableKind::ArptToPort
        | TableKind::Ipv4ToPort
        | TableKind::WriteDestIp
        | TableKind::WriteSourceIp => Key::U32(v(0) as u32),
        TableKind::TxBalance(_) | TableKind::SetMeta(_) => Key::Vip(VipKey {
            ip: v(0) as u32,
            port: v(1) as u16,
        }),
        TableKind::AclPodIpProto(_) => Key::PodProto(PrefixKey {
            exact: v(0) as u32,
            prefix: v(1),
            len: out[1].1,
        }),
        TableKind::AclIpsetMatch(_) => Key::Ipset(PrefixKey {
            exact: v(0) as u8,
            prefix: v(1),
            len: out[1].1,
        }),
        TableKind::RangeCheck(_) => Key::PolId(v(0) as u8),
        TableKind::Flows(_) => Key::Flow(FlowKey {
            src_ip: v(0) as u32,
            dst_ip: v(1) as u32,
            proto: v(2) as u8,
            src_port: v(3) as u16,
            dst_port: v(4) as u16,
        }),
    })
}

/// The canonical `FieldMatch`es of `key` in table `t` (a /0 prefix is omitted).
pub fn encode_key(t: &BoundTable, key: &Key) -> Vec<FieldMatch> {
    let vals: Vec<(u128, u8)> = match *key {
        Key::U32(x) => vec![(u128::from(x), 0)],
        Key::Vip(k) => vec![(u128::from(k.ip), 0), (u128::from(k.port), 0)],
        Key::PodProto(k) => vec![(u128::from(k.exact), 0), (k.prefix, k.len)],
        Key::Ipset(k) => vec![(u128::from(k.exact), 0), (k.prefix, k.len)],
        Key::PolId(p) => vec![(u128::from(p), 0)],
        Key::Flow(k) => vec![
            (u128::from(k.src_ip), 0),
            (u128::from(k.dst_ip), 0),
            (u128::from(k.proto), 0),
            (u128::from(k.src_port), 0),
            (u128::from(k.dst_port), 0),
        ],
    };
    t.fields
        .iter()
        .zip(vals)
        .filter_map(|(f, (v, len))| {
            let m = match f.kind {
                MatchKind::Exact => field_match::FieldMatchType::Exact(field_match::Exact {
                    value: canonical::encode(v),
                }),
                MatchKind::Lpm => {
                    if len == 0 {
                        return None;
                    }
                    field_match::FieldMatchType::Lpm(field_match::Lpm {
                        value: canonical::encode(v),
                        prefix_len: i32::from(len),
                    })
                }
            };
            Some(FieldMatch {
                field_id: f.id,
                field_match_type: Some(m),
            })
        })
        .collect()
}

/// The dataplane action of `a` in table `t`: [`decode_action`], then
/// [`typed_action`], with the argument array in this frame (it is never
/// moved: every update of a write passes here).
pub fn dp_action(
    b: &Binding,
    t: &BoundTable,
    a: &Action,
    default: bool,
    what: &(impl Display + ?Sized),
) -> Result<DpAction, P4rtError> {
    let mut args = ActionArgs {
        vals: [0; MAX_PARAMS],
        len: 0,
    };
    let kind = decode_args(b, t, a, default, what, &mut args)?;
    typed_action(t.kind, kind, &args, what)
}

/// Decodes `a` as an action of table `t` (or of selector members when
/// `t` is the indirect table), checking its scope; returns the dataplane
/// action kind and the argument values by parameter slot.
pub fn decode_action(
    b: &Binding,
    t: &BoundTable,
    a: &Action,
    default: bool,
    what: &(impl Display + ?Sized),
) -> Result<(ActionKind, ActionArgs), P4rtError> {
    let mut args = ActionArgs {
        vals: [0; MAX_PARAMS],
        len: 0,
    };
    let kind = decode_args(b, t, a, default, what, &mut args)?;
    Ok((kind, args))
}

/// [`decode_action`] into `out` (all zero on entry).
fn decode_args(
    b: &Binding,
    t: &BoundTable,
    a: &Action,
    default: bool,
    what: &(impl Display + ?Sized),
    out: &mut ActionArgs,
) -> Result<ActionKind, P4rtError> {
    let Some(scope) = t.action_scope(a.action_id) else {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: action id {} is not an action of {}",
            a.action_id, t.name
        )));
    };
    let Some(ba) = b.action(a.action_id) else {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: unknown action id {}",
            a.action_id
        )));
    };
    match (scope, default) {
        (Scope::TableOnly, true) => {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: action {} is @tableonly in {} and cannot be the default",
                ba.name, t.name
            )))
        }
        (Scope::DefaultOnly, false) => {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: action {} is @defaultonly in {} and cannot be used by an entry",
                ba.name, t.name
            )))
        }
        _ => {}
    }
    if ba.params.len() > MAX_PARAMS {
        return Err(P4rtError::Unimplemented(format!(
            "{what}: action {} has {} parameters, more than the target's {MAX_PARAMS}",
            ba.name,
            ba.params.len()
        )));
    }
    out.len = ba.params.len();
    // Bit i: parameter slot i was given (values go straight into `out`).
    let mut given = 0u32;
    for p in &a.params {
        let Some(bp) = ba.params.iter().find(|bp| bp.id == p.param_id) else {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: action {} has no parameter id {}",
                ba.name, p.param_id
            )));
        };
        let pname = ParamName {
            what,
            action: &ba.name,
            param: &bp.name,
        };
        if given & 1 << bp.slot != 0 {
            return Err(P4rtError::InvalidArgument(format!("{pname} appears twice")));
        }
        given |= 1 << bp.slot;
        out.vals[bp.slot] = canonical::decode(&p.value, bp.width, &pname)?;
    }
    if let Some(missing) = (0..ba.params.len()).find(|i| given & 1 << i == 0) {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: action {} parameter {} is missing",
            ba.name, ba.params[missing].name
        )));
    }
    Ok(ba.kind)
}

fn ranges(args: &[u128]) -> [(u16, u16); 8] {
    let mut r = [(0u16, 0u16); 8];
    for (i, slot) in r.iter_mut().enumerate() {
        *slot = (
            args.get(2 * i).copied().unwrap_or(0) as u16,
            args.get(2 * i + 1).copied().unwrap_or(0) as u16,
        );
    }
    r
}

fn dmac(v: u128) -> [u8; 6] {
    let b = v.to_be_bytes();
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[10..16]);
    m
}

/// The typed action of table kind `kind` for a decoded P4 action. For an
/// indirect (`tx_balance_*`) table this is a selector member's action.
pub fn typed_action(
    kind: TableKind,
    ak: ActionKind,
    args: &[u128],
    what: &(impl Display + ?Sized),
) -> Result<DpAction, P4rtError> {
    let a = |i: usize| args.get(i).copied().unwrap_or(0);
    Ok(match (kind, ak) {
        (TableKind::ArptToPort, ActionKind::SetDestVport) => {
            DpAction::DestVport(SetDestVport { port: a(0) as u32 })
        }
        (TableKind::Ipv4ToPort, ActionKind::SetDestMacVport) => {
            DpAction::DestMacVport(SetDestMacVport {
                port: a(0) as u32,
                dmac: dmac(a(1)),
            })
        }
        (TableKind::WriteDestIp, ActionKind::UpdateDstIp)
        | (TableKind::WriteSourceIp, ActionKind::UpdateSrcIp) => {
            DpAction::Nat(NatAction::Rewrite {
                ip: a(0) as u32,
                port: a(1) as u16,
            })
        }
        (TableKind::WriteDestIp | TableKind::WriteSourceIp, ActionKind::NoAction) => {
            DpAction::Nat(NatAction::NoAction)
        }
        (TableKind::TxBalance(_), ActionKind::SetDefaultLbDest) => {
            DpAction::Member(MemberAction::SetDefaultLbDest { ptr: a(0) as u32 })
        }
        (TableKind::TxBalance(_), ActionKind::NoAction) => DpAction::Member(MemberAction::NoAction),
        (TableKind::SetMeta(_), ActionKind::SetKeyForReverseCt) => {
            DpAction::SetMeta(SetMetaAction::SetKeyForReverseCt { ptr: a(0) as u32 })
        }
        (TableKind::SetMeta(_), ActionKind::NoAction) => DpAction::SetMeta(SetMetaAction::NoAction),
        (TableKind::AclPodIpProto(_), ActionKind::SetStatusMatchIpsetOnly) => {
            DpAction::Acl(AclAction::MatchIpsetOnly { pol_id: a(0) as u8 })
        }
        (TableKind::AclPodIpProto(_), ActionKind::SetRangeCheckRef) => {
            DpAction::Acl(AclAction::RangeCheckRef {
                pol_id: a(0) as u8,
                range_check_ref: a(1) as u8,
            })
        }
        (TableKind::AclPodIpProto(_), ActionKind::SetStatusDenyAll) => {
            DpAction::Acl(AclAction::DenyAll)
        }
        (TableKind::AclPodIpProto(_), ActionKind::NoAction) => DpAction::Acl(AclAction::NoAction),
        (TableKind::AclIpsetMatch(_), ActionKind::AclDeny) => DpAction::Ipset(IpsetAction::Deny),
        (TableKind::AclIpsetMatch(_), ActionKind::SetIpsetMatchResult) => {
            DpAction::Ipset(IpsetAction::SetMatchResult { mask: a(0) as u8 })
        }
        (TableKind::RangeCheck(_), ActionKind::AclDeny | ActionKind::UdpAclDeny) => {
            DpAction::Range(RangeAction::Deny)
        }
        (TableKind::RangeCheck(r), ActionKind::DoRangeCheck(ar)) if r == ar => {
            DpAction::Range(RangeAction::Check {
                ranges: ranges(args),
            })
        }
        (TableKind::Flows(d), ActionKind::FlowHit(ad)) if d == ad => DpAction::FlowHit(a(0) as u32),
        (TableKind::Flows(d), ActionKind::FlowMiss(ad)) if d == ad => DpAction::FlowMiss,
        (k, ak) => {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: action {ak:?} is not implemented for table {k:?}"
            )))
        }
    })
}

/// The P4Runtime `Action` of a typed action in table `t`, canonical.
pub fn encode_action(b: &Binding, t: &BoundTable, a: &DpAction) -> Option<Action> {
    let (kinds, args): (&[ActionKind], Vec<u128>) = match *a {
        DpAction::DestVport(x) => (&[ActionKind::SetDestVport], vec![u128::from(x.port)]),
        DpAction::DestMacVport(x) => {
            let mut m = [0u8; 16];
            m[10..].copy_from_slice(&x.dmac);
            (
                &[ActionKind::SetDestMacVport],
                vec![u128::from(x.port), u128::from_be_bytes(m)],
            )
        }
        DpAction::Nat(NatAction::Rewrite { ip, port }) => (
            if t.kind == TableKind::WriteDestIp {
                &[ActionKind::UpdateDstIp]
            } else {
                &[ActionKind::UpdateSrcIp]
            },
            vec![u128::from(ip), u128::from(port)],
        ),
        DpAction::Nat(NatAction::NoAction)
        | DpAction::Member(MemberAction::NoAction)
        | DpAction::SetMeta(SetMetaAction::NoAction)
        | DpAction::Acl(AclAction::NoAction) => (&[ActionKind::NoAction], vec![]),
        DpAction::Member(MemberAction::SetDefaultLbDest { ptr }) => {
            (&[ActionKind::SetDefaultLbDest], vec![u128::from(ptr)])
        }
        DpAction::SetMeta(SetMetaAction::SetKeyForReverseCt { ptr }) => {
            (&[ActionKind::SetKeyForReverseCt], vec![u128::from(ptr)])
        }
        DpAction::Acl(AclAction::MatchIpsetOnly { pol_id }) => (
            &[ActionKind::SetStatusMatchIpsetOnly],
            vec![u128::from(pol_id)],
        ),
        DpAction::Acl(AclAction::RangeCheckRef {
            pol_id,
            range_check_ref,
        }) => (
            &[ActionKind::SetRangeCheckRef],
            vec![u128::from(pol_id), u128::from(range_check_ref)],
        ),
        DpAction::Acl(AclAction::DenyAll) => (&[ActionKind::SetStatusDenyAll], vec![]),
        DpAction::Ipset(IpsetAction::Deny) | DpAction::Range(RangeAction::Deny) => {
            (&[ActionKind::UdpAclDeny, ActionKind::AclDeny], vec![])
        }
        DpAction::Ipset(IpsetAction::SetMatchResult { mask }) => {
            (&[ActionKind::SetIpsetMatchResult], vec![u128::from(mask)])
        }
        DpAction::Range(RangeAction::Check { ranges }) => {
            let TableKind::RangeCheck(r) = t.kind else {
                return None;
            };
            let args = ranges
                .iter()
                .flat_map(|(lo, hi)| [u128::from(*lo), u128::from(*hi)])
                .collect();
            return build(b, t, &[ActionKind::DoRangeCheck(r)], args);
        }
        DpAction::FlowHit(ptr) => {
            let TableKind::Flows(d) = t.kind else {
                return None;
            };
            return build(b, t, &[ActionKind::FlowHit(d)], vec![u128::from(ptr)]);
        }
        DpAction::FlowMiss => {
            let TableKind::Flows(d) = t.kind else {
                return None;
            };
            return build(b, t, &[ActionKind::FlowMiss(d)], vec![]);
        }
    };
    build(b, t, kinds, args)
}

fn build(b: &Binding, t: &BoundTable, kinds: &[ActionKind], args: Vec<u128>) -> Option<Action> {
    let ba = b.action_for(t, kinds)?;
    Some(Action {
        action_id: ba.id,
        params: ba
            .params
            .iter()
            .map(|p| action::Param {
                param_id: p.id,
                value: canonical::encode(args.get(p.slot).copied().unwrap_or(0)),
            })
            .collect(),
    })
}

/// `key` in words, for messages: `field=value` (with `/len` for prefixes).
pub fn describe_key(t: &BoundTable, key: &Key) -> String {
    let fields = encode_key(t, key);
    let mut parts = Vec::with_capacity(t.fields.len());
    for f in &t.fields {
        let m = fields.iter().find(|m| m.field_id == f.id);
        let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        parts.push(match m.and_then(|m| m.field_match_type.as_ref()) {
            Some(field_match::FieldMatchType::Exact(e)) => {
                format!("{}=0x{}", f.name, hex(&e.value))
            }
            Some(field_match::FieldMatchType::Lpm(l)) => {
                format!("{}=0x{}/{}", f.name, hex(&l.value), l.prefix_len)
            }
            _ => format!("{}=*", f.name),
        });
    }
    parts.join(", ")
}
