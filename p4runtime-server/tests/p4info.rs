//! The P4Infos (upstream's and ours), `p4/k8s.p4` and the Rust binding agree.

use std::path::PathBuf;

use dataplane::DataplaneConfig;
use p4k8s_p4runtime::binding::{self, Binding, MatchKind};
use p4k8s_p4runtime::p4info::parse_text;
use p4k8s_p4runtime::proto::p4::config::v1::{match_field, P4Info};
use p4k8s_p4runtime::P4rtError;

fn p4_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../p4")
}

fn load(rel: &str) -> P4Info {
    let text = std::fs::read_to_string(p4_dir().join(rel)).expect("read P4Info");
    parse_text(&text).expect("parse P4Info")
}

fn upstream() -> P4Info {
    load("upstream/k8s_dp.p4info.txt")
}

fn ours() -> P4Info {
    load("k8s.p4info.txt")
}

/// Every object of `info` is bound, with the P4Info's ids, names, widths
/// and match kinds.
fn assert_fully_bound(info: &P4Info, b: &Binding) {
    for t in &info.tables {
        let p = t.preamble.as_ref().expect("preamble");
        let bt = b
            .table(p.id)
            .unwrap_or_else(|| panic!("table {} unbound", p.name));
        assert_eq!(bt.name, p.name);
        assert_eq!(bt.fields.len(), t.match_fields.len(), "{}", p.name);
        for f in &t.match_fields {
            let bf = bt
                .fields
                .iter()
                .find(|x| x.id == f.id)
                .expect("field bound");
            assert_eq!(bf.name, f.name);
            assert_eq!(bf.width as i32, f.bitwidth, "{} {}", p.name, f.name);
            let kind = match f.r#match {
                Some(match_field::Match::MatchType(m))
                    if m == match_field::MatchType::Exact as i32 =>
                {
                    MatchKind::Exact
                }
                Some(match_field::Match::MatchType(m))
                    if m == match_field::MatchType::Lpm as i32 =>
                {
                    MatchKind::Lpm
                }
                ref other => panic!("{}: unexpected match {other:?}", f.name),
            };
            assert_eq!(bf.kind, kind, "{} {}", p.name, f.name);
        }
        for r in &t.action_refs {
            assert!(
                bt.action_scope(r.id).is_some(),
                "{}: action {} unbound",
                p.name,
                r.id
            );
        }
    }
    for a in &info.actions {
        let p = a.preamble.as_ref().expect("preamble");
        let ba = b
            .action(p.id)
            .unwrap_or_else(|| panic!("action {} unbound", p.name));
        assert_eq!(ba.name, p.name);
        assert_eq!(ba.params.len(), a.params.len());
        for q in &a.params {
            let bq = ba
                .params
                .iter()
                .find(|x| x.id == q.id)
                .expect("param bound");
            assert_eq!(
                (bq.name.as_str(), bq.width as i32),
                (q.name.as_str(), q.bitwidth)
            );
        }
    }
    for ap in &info.action_profiles {
        let p = ap.preamble.as_ref().expect("preamble");
        let bp = b.profile(p.id).expect("profile bound");
        assert_eq!(bp.name, p.name);
        assert_eq!(vec![bp.table_id], ap.table_ids);
    }
    for c in &info.counters {
        let p = c.preamble.as_ref().expect("preamble");
        assert_eq!(b.counter(p.id).expect("counter bound").name, p.name);
    }
    // And the target implements nothing the P4Info leaves out.
    for (name, _) in binding::known_tables() {
        assert!(
            b.tables().any(|t| t.name == name),
            "{name} missing from the P4Info"
        );
    }
    assert_eq!(b.tables().count(), info.tables.len());
    assert_eq!(b.profiles().count(), 2);
    assert_eq!(b.counters().count(), 2);
}

#[test]
fn upstream_p4info_binds_unchanged() {
    let info = upstream();
    for cfg in [DataplaneConfig::small(), DataplaneConfig::default()] {
        let b = Binding::new(&info, &cfg).expect("upstream binds");
        assert_fully_bound(&info, &b);
    }
}

#[test]
fn our_p4info_binds_with_default_sizes() {
    let info = ours();
    let cfg = DataplaneConfig::default();
    let b = Binding::new(&info, &cfg).expect("ours binds");
    assert_fully_bound(&info, &b);
    for t in b.tables() {
        assert_eq!(
            t.size as usize,
            binding::capacity(t.kind, &cfg),
            "{}",
            t.name
        );
    }
    for p in b.profiles() {
        assert_eq!(p.size as usize, cfg.selector_members);
        assert_eq!(p.max_group_size as usize, cfg.group_max_members);
    }
    for c in b.counters() {
        assert_eq!(c.size as usize, cfg.counter_size);
    }
    // Too big for a small instance: refused, naming the first such table.
    match Binding::new(&info, &DataplaneConfig::small()) {
        Err(P4rtError::InvalidArgument(m)) => assert!(m.contains("k8s_dp_control."), "{m}"),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[test]
fn both_p4infos_have_the_same_objects_and_ids() {
    let (up, us) = (upstream(), ours());
    assert_eq!(up.actions, us.actions);
    assert_eq!(up.counters, us.counters);
    assert_eq!(up.type_info, us.type_info);
    assert_eq!(up.tables.len(), us.tables.len());
    for (a, b) in up.tables.iter().zip(&us.tables) {
        let mut b = b.clone();
        b.size = a.size;
        assert_eq!(*a, b);
    }
    for (a, b) in up.action_profiles.iter().zip(&us.action_profiles) {
        assert_eq!(
            (&a.preamble, &a.table_ids, a.with_selector),
            (&b.preamble, &b.table_ids, b.with_selector)
        );
    }
}

/// The body of `table NAME { ... }` in the program text.
fn table_block<'a>(src: &'a str, name: &str) -> &'a str {
    let start = src
        .find(&format!("table {name} {{"))
        .unwrap_or_else(|| panic!("table {name} not in k8s.p4"));
    let rest = &src[start..];
    &rest[..rest.find("\n    }").expect("end of table")]
}

#[test]
fn k8s_p4_declares_every_object_with_our_sizes() {
    let src = std::fs::read_to_string(p4_dir().join("k8s.p4")).expect("read k8s.p4");
    let info = ours();
    let short = |n: &str| n.rsplit('.').next().unwrap_or(n).to_owned();
    for t in &info.tables {
        let p = t.preamble.as_ref().expect("preamble");
        let block = table_block(&src, &short(&p.name));
        assert!(
            block.contains(&format!("size = {};", t.size)),
            "{}: size",
            p.name
        );
        for f in &t.match_fields {
            let kind = if f.r#match
                == Some(match_field::Match::MatchType(
                    match_field::MatchType::Lpm as i32,
                )) {
                "lpm"
            } else {
                "exact"
            };
            assert!(
                block.contains(&format!("{} : {kind};", f.name)),
                "{}: key {}",
                p.name,
                f.name
            );
        }
        for r in &t.action_refs {
            let a = info
                .actions
                .iter()
                .find(|a| a.preamble.as_ref().is_some_and(|p| p.id == r.id))
                .expect("action");
            let name = short(&a.preamble.as_ref().expect("preamble").name);
            assert!(block.contains(&name), "{}: action {name}", p.name);
        }
    }
    for a in &info.actions {
        let name = short(&a.preamble.as_ref().expect("preamble").name);
        if name == "NoAction" {
            continue;
        }
        let sig = if let Some(i) = src.find(&format!("action {name}(")) {
            let s = &src[i..];
            s[..s.find(')').expect("signature end")].to_owned()
        } else {
            assert!(
                src.contains(&format!("RANGE_ACTION({name})")),
                "action {name} not in k8s.p4"
            );
            let i = src.find("action name(").expect("range macro");
            let s = &src[i..];
            s[..s.find(')').expect("signature end")].to_owned()
        };
        for q in &a.params {
            let typed = format!("bit<{}> {}", q.bitwidth, q.name);
            let port = format!("PortId_t {}", q.name);
            assert!(
                sig.contains(&typed) || (q.bitwidth == 32 && sig.contains(&port)),
                "{name}: param {}",
                q.name
            );
        }
    }
    for ap in &info.action_profiles {
        let name = short(&ap.preamble.as_ref().expect("preamble").name);
        assert!(
            src.contains(&format!(
                "ActionSelector(PNA_HashAlgorithm_t.TARGET_DEFAULT, {}, 16) {name};",
                ap.size
            )),
            "{name}"
        );
    }
    for c in &info.counters {
        let name = short(&c.preamble.as_ref().expect("preamble").name);
        assert!(
            src.contains(&format!("Counter<bit<64>, bit<32>>({}, ", c.size))
                && src.contains(&format!(" {name};")),
            "{name}"
        );
    }
}

#[test]
fn unknown_objects_are_refused_by_name() {
    let mut info = upstream();
    let mut extra = info.tables[0].clone();
    if let Some(p) = extra.preamble.as_mut() {
        p.id = 49999999;
        p.name = "k8s_dp_control.frobnicate_table".into();
    }
    info.tables.push(extra);
    match Binding::new(&info, &DataplaneConfig::small()) {
        Err(P4rtError::InvalidArgument(m)) => {
            assert!(m.contains("k8s_dp_control.frobnicate_table"), "{m}")
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    // A default the dataplane fixes cannot be declared modifiable.
    let mut info = upstream();
    info.tables[1].const_default_action_id = 0;
    match Binding::new(&info, &DataplaneConfig::small()) {
        Err(P4rtError::InvalidArgument(m)) => {
            assert!(
                m.contains("arpt_to_port_table") && m.contains("const_default_action_id"),
                "{m}"
            )
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    let mut info = upstream();
    info.tables[1].match_fields[0].bitwidth = 16;
    match Binding::new(&info, &DataplaneConfig::small()) {
        Err(P4rtError::InvalidArgument(m)) => assert!(m.contains("hdr.arp.tpa"), "{m}"),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}
