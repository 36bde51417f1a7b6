//! §5 arbitration over a real gRPC stream.

mod common;

use common::*;
use p4k8s_p4runtime::proto::p4::v1::{
    stream_error, stream_message_request, stream_message_response, CapabilitiesRequest, PacketOut,
};
use tonic::Code;

const OK: i32 = 0;
const ALREADY_EXISTS: i32 = 6;
const NOT_FOUND: i32 = 5;

#[tokio::test]
async fn capabilities_report_1_5_0() {
    let mut h = Harness::start().await;
    let r = h
        .client
        .capabilities(CapabilitiesRequest { device_id: DEVICE })
        .await
        .expect("capabilities");
    assert_eq!(r.into_inner().p4runtime_api_version, "1.5.0");
    h.stop().await;
}

#[tokio::test]
async fn highest_election_id_is_primary_and_everyone_hears_of_changes() {
    let mut h = Harness::start().await;
    let mut a = Stream::open(&mut h.client).await;
    a.arbitrate(DEVICE, Some(1), "").await;
    assert_eq!(a.arbitration().await, (OK, 1));

    // A higher id takes over; both are told, with the new highest id.
    let mut b = Stream::open(&mut h.client).await;
    b.arbitrate(DEVICE, Some(2), "").await;
    assert_eq!(b.arbitration().await, (OK, 2));
    assert_eq!(a.arbitration().await, (ALREADY_EXISTS, 2));

    // A lower id joins as a backup: only it is told.
    let mut c = Stream::open(&mut h.client).await;
    c.arbitrate(DEVICE, Some(0), "").await;
    assert_eq!(c.arbitration().await, (ALREADY_EXISTS, 2));
    assert!(a.quiet().await && b.quiet().await);

    // Backups may not write or set the pipeline.
    let e = write_as(
        &mut h.client,
        1,
        p4k8s_p4runtime::proto::p4::v1::write_request::Atomicity::ContinueOnError,
        vec![],
    )
    .await
    .expect_err("backup write");
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = set_pipeline(
        &mut h.client,
        1,
        p4k8s_p4runtime::proto::p4::v1::set_forwarding_pipeline_config_request::Action::VerifyAndCommit,
        Some(upstream()),
        1,
    )
    .await
    .expect_err("backup set pipeline");
    assert_eq!(e.code(), Code::PermissionDenied);
    set_pipeline(
        &mut h.client,
        2,
        p4k8s_p4runtime::proto::p4::v1::set_forwarding_pipeline_config_request::Action::VerifyAndCommit,
        Some(upstream()),
        1,
    )
    .await
    .expect("primary sets the pipeline");
    write_as(
        &mut h.client,
        2,
        p4k8s_p4runtime::proto::p4::v1::write_request::Atomicity::ContinueOnError,
        vec![],
    )
    .await
    .expect("primary writes");

    // The primary leaves: nobody is primary; all remaining are told.
    drop(b);
    assert_eq!(a.arbitration().await, (NOT_FOUND, 2));
    assert_eq!(c.arbitration().await, (NOT_FOUND, 2));
    let e = write_as(
        &mut h.client,
        2,
        p4k8s_p4runtime::proto::p4::v1::write_request::Atomicity::ContinueOnError,
        vec![],
    )
    .await
    .expect_err("no primary");
    assert_eq!(e.code(), Code::PermissionDenied);

    // A backup raises its id to the highest: it becomes primary.
    a.arbitrate(DEVICE, Some(3), "").await;
    assert_eq!(a.arbitration().await, (OK, 3));
    assert_eq!(c.arbitration().await, (ALREADY_EXISTS, 3));
    h.stop().await;
}

#[tokio::test]
async fn a_live_duplicate_election_id_is_refused() {
    let mut h = Harness::start().await;
    let mut a = Stream::open(&mut h.client).await;
    a.arbitrate(DEVICE, Some(5), "").await;
    assert_eq!(a.arbitration().await, (OK, 5));
    let mut b = Stream::open(&mut h.client).await;
    b.arbitrate(DEVICE, Some(5), "").await;
    let e = b.next().await.expect_err("duplicate refused");
    assert_eq!(e.code(), Code::AlreadyExists);
    assert_eq!(e.message(), "Election id already exists");
    // The primary is untouched.
    assert!(a.quiet().await);
    // Once the first leaves, the id is free again.
    drop(a);
    // The server notices the closed stream asynchronously: retry for a while.
    let mut won = false;
    for _ in 0..100 {
        let mut c = Stream::open(&mut h.client).await;
        c.arbitrate(DEVICE, Some(5), "").await;
        match c.next().await {
            Ok(_) => {
                won = true;
                break;
            }
            Err(e) => assert_eq!(e.code(), Code::AlreadyExists),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(won, "election id 5 is free once its holder left");
    h.stop().await;
}

#[tokio::test]
async fn roles_have_separate_elections() {
    let mut h = Harness::start().await;
    let mut a = Stream::open(&mut h.client).await;
    a.arbitrate(DEVICE, Some(10), "").await;
    assert_eq!(a.arbitration().await, (OK, 10));
    let mut r = Stream::open(&mut h.client).await;
    r.arbitrate(DEVICE, Some(1), "policy").await;
    assert_eq!(r.arbitration().await, (OK, 1));
    // Same id in another role is no duplicate.
    let mut r2 = Stream::open(&mut h.client).await;
    r2.arbitrate(DEVICE, Some(10), "policy").await;
    assert_eq!(r2.arbitration().await, (OK, 10));
    assert_eq!(r.arbitration().await, (ALREADY_EXISTS, 10));
    assert!(a.quiet().await);
    // A stream cannot change its role.
    r.arbitrate(DEVICE, Some(1), "").await;
    assert_eq!(
        r.next().await.expect_err("role change").code(),
        Code::FailedPrecondition
    );
    h.stop().await;
}

#[tokio::test]
async fn wrong_device_id_ends_the_stream_with_not_found() {
    let mut h = Harness::start().await;
    let mut s = Stream::open(&mut h.client).await;
    s.arbitrate(DEVICE + 1, Some(1), "").await;
    assert_eq!(
        s.next().await.expect_err("wrong device").code(),
        Code::NotFound
    );
    h.stop().await;
}

#[tokio::test]
async fn bad_stream_messages_get_stream_errors() {
    let mut h = Harness::start().await;
    let mut s = Stream::open(&mut h.client).await;
    let pkt = PacketOut {
        payload: vec![1, 2, 3],
        metadata: vec![],
    };
    // Packet-out before arbitration.
    s.send(stream_message_request::Update::Packet(pkt.clone()))
        .await;
    match s.next().await.expect("stream error").update {
        Some(stream_message_response::Update::Error(e)) => {
            assert_eq!(e.canonical_code, Code::PermissionDenied as i32);
            assert!(
                matches!(e.details, Some(stream_error::Details::PacketOut(ref p)) if p.packet_out.as_ref() == Some(&pkt))
            );
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
    // After arbitration: the program has no packet-out.
    s.arbitrate(DEVICE, Some(1), "").await;
    assert_eq!(s.arbitration().await, (OK, 1));
    s.send(stream_message_request::Update::Packet(pkt)).await;
    match s.next().await.expect("stream error").update {
        Some(stream_message_response::Update::Error(e)) => {
            assert_eq!(
                e.canonical_code,
                Code::Unimplemented as i32,
                "{}",
                e.message
            )
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
    // An empty message.
    s.tx.send(Default::default()).await.expect("send");
    match s.next().await.expect("stream error").update {
        Some(stream_message_response::Update::Error(e)) => {
            assert_eq!(e.canonical_code, Code::InvalidArgument as i32)
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
    h.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let mut h = Harness::start().await;
    let mut a = primary(&mut h.client, 1).await;
    let mut b = Stream::open(&mut h.client).await;
    b.arbitrate(DEVICE, Some(2), "").await;
    assert_eq!(b.arbitration().await, (OK, 2));
    assert_eq!(a.arbitration().await, (ALREADY_EXISTS, 2));
    assert!(h.stop().await, "the server stops although streams are open");
    assert!(a.next().await.is_err() || a.next().await.is_err());
}

#[tokio::test]
async fn clients_without_an_election_id_are_backups() {
    let mut h = Harness::start().await;
    let mut a = Stream::open(&mut h.client).await;
    a.arbitrate(DEVICE, None, "").await;
    assert_eq!(a.arbitration().await, (NOT_FOUND, 0));
    let mut z = Stream::open(&mut h.client).await;
    z.arbitrate(DEVICE, Some(0), "").await;
    assert_eq!(
        z.arbitration().await,
        (NOT_FOUND, 0),
        "zero is no election id"
    );
    let _p = primary(&mut h.client, 4).await;
    assert_eq!(a.arbitration().await, (ALREADY_EXISTS, 4));
    assert_eq!(z.arbitration().await, (ALREADY_EXISTS, 4));
    h.stop().await;
}
