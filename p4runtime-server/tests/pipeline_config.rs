//! §14/§15: SetForwardingPipelineConfig and GetForwardingPipelineConfig.

mod common;

use common::*;
use p4k8s_p4runtime::proto::p4::v1::get_forwarding_pipeline_config_request::ResponseType;
use p4k8s_p4runtime::proto::p4::v1::set_forwarding_pipeline_config_request::Action as SetAction;
use p4k8s_p4runtime::proto::p4::v1::{
    ForwardingPipelineConfig, GetForwardingPipelineConfigRequest,
};
use tonic::Code;

async fn get(h: &mut Harness, t: ResponseType) -> Result<ForwardingPipelineConfig, tonic::Status> {
    h.client
        .get_forwarding_pipeline_config(GetForwardingPipelineConfigRequest {
            device_id: DEVICE,
            response_type: t as i32,
        })
        .await
        .map(|r| r.into_inner().config.unwrap_or_default())
}

fn pod(ip: [u8; 4], port: u8) -> p4k8s_p4runtime::proto::p4::v1::Update {
    ins(entry(
        "arpt_to_port_table",
        vec![exact(1, &ip)],
        direct(action("set_dest_vport", &[&[port]])),
    ))
}

#[tokio::test]
async fn nothing_works_before_a_pipeline_is_committed() {
    let mut h = Harness::start().await;
    let _s = primary(&mut h.client, 1).await;
    assert_eq!(
        get(&mut h, ResponseType::All)
            .await
            .expect_err("no config")
            .code(),
        Code::FailedPrecondition
    );
    let e = write(&mut h.client, vec![pod([10, 0, 0, 2], 2)])
        .await
        .expect_err("no pipeline");
    assert_eq!(e.code(), Code::FailedPrecondition);
    let e = read(
        &mut h.client,
        vec![entry("arpt_to_port_table", vec![], None)],
    )
    .await
    .expect_err("no pipeline");
    assert_eq!(e.code(), Code::FailedPrecondition);
    // VERIFY checks without committing.
    set_pipeline(&mut h.client, 1, SetAction::Verify, Some(upstream()), 1)
        .await
        .expect("verify");
    assert_eq!(
        get(&mut h, ResponseType::All)
            .await
            .expect_err("still none")
            .code(),
        Code::FailedPrecondition
    );
    // COMMIT needs a saved config.
    let e = set_pipeline(&mut h.client, 1, SetAction::Commit, None, 0)
        .await
        .expect_err("nothing saved");
    assert_eq!(e.code(), Code::FailedPrecondition);
    let e = set_pipeline(
        &mut h.client,
        1,
        SetAction::Unspecified,
        Some(upstream()),
        0,
    )
    .await
    .expect_err("unspecified");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = set_pipeline(&mut h.client, 1, SetAction::VerifyAndCommit, None, 0)
        .await
        .expect_err("no config");
    assert_eq!(e.code(), Code::InvalidArgument);
    h.stop().await;
}

#[tokio::test]
async fn get_returns_what_was_committed_by_response_type() {
    let mut h = Harness::start().await;
    let _s = primary(&mut h.client, 1).await;
    set_pipeline(
        &mut h.client,
        1,
        SetAction::VerifyAndCommit,
        Some(upstream()),
        0xc00c1e,
    )
    .await
    .expect("commit");
    let all = get(&mut h, ResponseType::All).await.expect("all");
    assert_eq!(all.p4info, Some(upstream()));
    assert_eq!(all.p4_device_config, b"opaque device config");
    assert_eq!(all.cookie.map(|c| c.cookie), Some(0xc00c1e));
    let c = get(&mut h, ResponseType::CookieOnly).await.expect("cookie");
    assert_eq!(
        (c.p4info.is_none(), c.p4_device_config.is_empty()),
        (true, true)
    );
    assert_eq!(c.cookie.map(|c| c.cookie), Some(0xc00c1e));
    let p = get(&mut h, ResponseType::P4infoAndCookie)
        .await
        .expect("p4info");
    assert_eq!(
        (p.p4info, p.p4_device_config.is_empty()),
        (Some(upstream()), true)
    );
    let d = get(&mut h, ResponseType::DeviceConfigAndCookie)
        .await
        .expect("device config");
    assert_eq!(
        (d.p4info, d.p4_device_config),
        (None, b"opaque device config".to_vec())
    );
    assert_eq!(d.cookie.map(|c| c.cookie), Some(0xc00c1e));
    h.stop().await;
}

#[tokio::test]
async fn verify_and_commit_clears_state_and_reconcile_keeps_it() {
    let (mut h, _s) = ready().await;
    write(&mut h.client, vec![pod([10, 0, 0, 2], 2)])
        .await
        .expect("write");
    assert_eq!(
        read_table(&mut h.client, "arpt_to_port_table").await.len(),
        1
    );

    // Reconcile with the same objects: state kept.
    set_pipeline(
        &mut h.client,
        1,
        SetAction::ReconcileAndCommit,
        Some(upstream()),
        8,
    )
    .await
    .expect("reconcile");
    assert_eq!(
        read_table(&mut h.client, "arpt_to_port_table").await.len(),
        1
    );
    assert_eq!(
        get(&mut h, ResponseType::CookieOnly)
            .await
            .expect("get")
            .cookie
            .map(|c| c.cookie),
        Some(8)
    );

    // Reconcile with a different set of tables: refused, state kept.
    let mut fewer = upstream();
    fewer.tables.retain(|t| {
        t.preamble
            .as_ref()
            .is_some_and(|p| p.alias != "set_meta_udp")
    });
    let e = set_pipeline(
        &mut h.client,
        1,
        SetAction::ReconcileAndCommit,
        Some(fewer),
        9,
    )
    .await
    .expect_err("incompatible");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("set_meta_udp") || e.message().contains("tables"),
        "{}",
        e.message()
    );
    assert_eq!(
        read_table(&mut h.client, "arpt_to_port_table").await.len(),
        1
    );

    // Verify-and-commit: a new pipeline, empty tables.
    set_pipeline(
        &mut h.client,
        1,
        SetAction::VerifyAndCommit,
        Some(upstream()),
        10,
    )
    .await
    .expect("commit");
    assert!(read_table(&mut h.client, "arpt_to_port_table")
        .await
        .is_empty());
    h.stop().await;
}

#[tokio::test]
async fn verify_and_save_then_commit() {
    let (mut h, _s) = ready().await;
    write(&mut h.client, vec![pod([10, 0, 0, 2], 2)])
        .await
        .expect("write");
    set_pipeline(
        &mut h.client,
        1,
        SetAction::VerifyAndSave,
        Some(upstream()),
        42,
    )
    .await
    .expect("save");
    // A new forwarding state starts under the saved config...
    assert!(read_table(&mut h.client, "arpt_to_port_table")
        .await
        .is_empty());
    write(&mut h.client, vec![pod([10, 0, 0, 3], 3)])
        .await
        .expect("write after SAVE");
    // ...while GetForwardingPipelineConfig still reports the committed one.
    assert_eq!(
        get(&mut h, ResponseType::CookieOnly)
            .await
            .expect("get")
            .cookie
            .map(|c| c.cookie),
        Some(7)
    );
    set_pipeline(&mut h.client, 1, SetAction::Commit, None, 0)
        .await
        .expect("commit");
    assert_eq!(
        get(&mut h, ResponseType::CookieOnly)
            .await
            .expect("get")
            .cookie
            .map(|c| c.cookie),
        Some(42)
    );
    // What was written since the SAVE stays.
    let t = read_table(&mut h.client, "arpt_to_port_table").await;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].r#match, vec![exact(1, &[10, 0, 0, 3])]);
    // A second COMMIT has nothing saved.
    let e = set_pipeline(&mut h.client, 1, SetAction::Commit, None, 0)
        .await
        .expect_err("nothing saved");
    assert_eq!(e.code(), Code::FailedPrecondition);
    h.stop().await;
}

#[tokio::test]
async fn upstream_p4info_is_accepted_unchanged_and_unknown_tables_are_refused_by_name() {
    let mut h = Harness::start().await;
    let _s = primary(&mut h.client, 1).await;
    set_pipeline(
        &mut h.client,
        1,
        SetAction::VerifyAndCommit,
        Some(upstream()),
        1,
    )
    .await
    .expect("upstream P4Info accepted");
    let mut bad = upstream();
    let mut t = bad.tables[0].clone();
    if let Some(p) = t.preamble.as_mut() {
        p.id = 40000001;
        p.name = "k8s_dp_control.mystery_table".into();
        p.alias = "mystery_table".into();
    }
    bad.tables.push(t);
    for action in [
        SetAction::Verify,
        SetAction::VerifyAndCommit,
        SetAction::ReconcileAndCommit,
    ] {
        let e = set_pipeline(&mut h.client, 1, action, Some(bad.clone()), 2)
            .await
            .expect_err("unknown table");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message().contains("k8s_dp_control.mystery_table"),
            "{}",
            e.message()
        );
    }
    // Our own, larger P4Info needs a default-sized dataplane: refused here by name.
    let e = set_pipeline(&mut h.client, 1, SetAction::Verify, Some(ours()), 3)
        .await
        .expect_err("too big for a small dataplane");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("size"), "{}", e.message());
    h.stop().await;
}

#[tokio::test]
async fn our_p4info_is_accepted_by_a_default_sized_dataplane() {
    let control = std::sync::Arc::new(dataplane::Control::new(
        dataplane::DataplaneConfig::default(),
    ));
    let mut h = Harness::with_control(control).await;
    let _s = primary(&mut h.client, 1).await;
    set_pipeline(
        &mut h.client,
        1,
        SetAction::VerifyAndCommit,
        Some(ours()),
        1,
    )
    .await
    .expect("our P4Info");
    write(&mut h.client, vec![pod([10, 0, 0, 2], 2)])
        .await
        .expect("write under our P4Info");
    h.stop().await;
}

#[tokio::test]
async fn messages_larger_than_grpcs_default_4_mb_pass_both_ways() {
    let mut h = Harness::start().await;
    let _s = primary(&mut h.client, 1).await;
    let big: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    h.client
        .set_forwarding_pipeline_config(
            p4k8s_p4runtime::proto::p4::v1::SetForwardingPipelineConfigRequest {
                device_id: DEVICE,
                election_id: eid(1),
                action: SetAction::VerifyAndCommit as i32,
                config: Some(ForwardingPipelineConfig {
                    p4info: Some(upstream()),
                    p4_device_config: big.clone(),
                    cookie: None,
                }),
                ..Default::default()
            },
        )
        .await
        .expect("8 MB request");
    let got = get(&mut h, ResponseType::DeviceConfigAndCookie)
        .await
        .expect("8 MB response");
    assert_eq!(got.p4_device_config, big);
    h.stop().await;
}
