//! `segment_tcp_gso` and `complete_partial_checksum`, checked segment by
//! segment against checksums etherparse recomputes. No privileges needed.

use etherparse::{
    Ethernet2HeaderSlice, Ipv4HeaderSlice, Ipv6HeaderSlice, PacketBuilder, TcpHeaderSlice,
};
use p4k8s_cdq::tap::{
    complete_l4_checksum, complete_partial_checksum, segment_tcp_gso, OffloadError, VnetHeader,
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
};
use p4k8s_packet::{BufPool, PacketBuf};

const SRC: [u8; 4] = [10, 77, 0, 2];
const DST: [u8; 4] = [10, 77, 0, 3];

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

fn gso_frame_v4(payload: &[u8], id: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [0xee; 6])
        .ipv4(SRC, DST, 64)
        .tcp(40000, 5001, 0xffff_f000, 512)
        .ack(77)
        .psh()
        .fin()
        .cwr();
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    // Identification, then redo the IPv4 header checksum.
    out[18..20].copy_from_slice(&id.to_be_bytes());
    out[24..26].copy_from_slice(&[0, 0]);
    let c = Ipv4HeaderSlice::from_slice(&out[14..])
        .unwrap()
        .to_header()
        .calc_header_checksum();
    out[24..26].copy_from_slice(&c.to_be_bytes());
    // Make the TCP checksum partial as the kernel would (pseudo-header sum).
    let l4_len = out.len() - 34;
    let pseudo = pseudo_sum(&SRC, &DST, l4_len);
    out[34 + 16..34 + 18].copy_from_slice(&pseudo.to_be_bytes());
    out
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn pseudo_sum(src: &[u8], dst: &[u8], l4_len: usize) -> u16 {
    let mut s = 0u32;
    for w in src.chunks(2).chain(dst.chunks(2)) {
        s += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    fold(s + 6 + l4_len as u32)
}

fn vnet_v4(mss: u16) -> VnetHeader {
    VnetHeader {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
        hdr_len: 66,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
    }
}

#[test]
fn ipv4_segments_have_right_lengths_ids_seqs_flags_and_checksums() {
    let data = payload(5000);
    let frame = gso_frame_v4(&data, 0xfffe);
    let mut pool = BufPool::new(8, 2048);
    let mut segs: Vec<PacketBuf> = Vec::new();
    let n = segment_tcp_gso(&frame, &vnet_v4(1448), &mut pool, |b| segs.push(b)).unwrap();
    assert_eq!(n, 4);
    assert_eq!(segs.len(), 4);
    let mut reassembled = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        let f = seg.data();
        Ethernet2HeaderSlice::from_slice(f).unwrap();
        let ip = Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
        let tcp = TcpHeaderSlice::from_slice(&f[34..]).unwrap();
        let body = &f[34 + tcp.slice().len()..];
        let want_len = if i < 3 { 1448 } else { 5000 - 3 * 1448 };
        assert_eq!(body.len(), want_len, "segment {i} payload");
        assert_eq!(
            usize::from(ip.total_len()),
            f.len() - 14,
            "segment {i} total_len"
        );
        assert_eq!(
            ip.identification(),
            0xfffeu16.wrapping_add(i as u16),
            "segment {i} id"
        );
        assert_eq!(
            ip.header_checksum(),
            ip.to_header().calc_header_checksum(),
            "segment {i} IPv4 checksum"
        );
        assert_eq!(
            tcp.sequence_number(),
            0xffff_f000u32.wrapping_add((i * 1448) as u32),
            "segment {i} seq"
        );
        let last = i == 3;
        assert_eq!(tcp.fin(), last, "segment {i} FIN");
        assert_eq!(tcp.psh(), last, "segment {i} PSH");
        assert_eq!(tcp.cwr(), i == 0, "segment {i} CWR");
        assert!(tcp.ack() && tcp.acknowledgment_number() == 77);
        assert_eq!(
            tcp.checksum(),
            tcp.calc_checksum_ipv4(&ip, body).unwrap(),
            "segment {i} TCP checksum"
        );
        reassembled.extend_from_slice(body);
    }
    assert_eq!(reassembled, data);
}

#[test]
fn ipv6_segments_have_right_lengths_and_checksums() {
    let src6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let dst6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
    let data = payload(3000);
    let b = PacketBuilder::ethernet2([2; 6], [0xee; 6])
        .ipv6(src6, dst6, 64)
        .tcp(1, 2, 100, 512)
        .psh();
    let mut frame = Vec::new();
    b.write(&mut frame, &data).unwrap();
    let vnet = VnetHeader {
        gso_type: VIRTIO_NET_HDR_GSO_TCPV6,
        gso_size: 1000,
        ..VnetHeader::NONE
    };
    let mut pool = BufPool::new(4, 2048);
    let mut segs = Vec::new();
    assert_eq!(
        segment_tcp_gso(&frame, &vnet, &mut pool, |b| segs.push(b)).unwrap(),
        3
    );
    for (i, seg) in segs.iter().enumerate() {
        let f = seg.data();
        let ip = Ipv6HeaderSlice::from_slice(&f[14..]).unwrap();
        let tcp = TcpHeaderSlice::from_slice(&f[54..]).unwrap();
        let body = &f[54 + tcp.slice().len()..];
        assert_eq!(body.len(), 1000);
        assert_eq!(usize::from(ip.payload_length()), f.len() - 54);
        assert_eq!(tcp.sequence_number(), 100 + (i as u32) * 1000);
        assert_eq!(tcp.psh(), i == 2);
        assert_eq!(
            tcp.checksum(),
            tcp.calc_checksum_ipv6(&ip, body).unwrap(),
            "segment {i}"
        );
    }
}

#[test]
fn segmentation_refuses_what_it_cannot_do() {
    let frame = gso_frame_v4(&payload(3000), 1);
    let mut pool = BufPool::new(1, 512);
    let err =
        segment_tcp_gso(&frame, &vnet_v4(1448), &mut pool, |_| panic!("emitted")).unwrap_err();
    assert!(matches!(err, OffloadError::BufferTooSmall { .. }));
    let err = segment_tcp_gso(&frame, &VnetHeader::NONE, &mut pool, |_| panic!()).unwrap_err();
    assert_eq!(err, OffloadError::NotTcpGso(0));
    let err = segment_tcp_gso(&frame, &vnet_v4(0), &mut pool, |_| panic!()).unwrap_err();
    assert_eq!(err, OffloadError::ZeroMss);
    let err = segment_tcp_gso(&frame[..40], &vnet_v4(1448), &mut pool, |_| panic!()).unwrap_err();
    assert_eq!(err, OffloadError::BadHeaders);
}

#[test]
fn partial_checksum_is_completed() {
    let data = payload(999); // odd length: the last byte is padded
    let mut frame = gso_frame_v4(&data, 5);
    let mut vnet = vnet_v4(0);
    vnet.gso_type = 0;
    complete_partial_checksum(&mut frame, &mut vnet).unwrap();
    assert!(!vnet.needs_csum());
    let ip = Ipv4HeaderSlice::from_slice(&frame[14..]).unwrap();
    let tcp = TcpHeaderSlice::from_slice(&frame[34..]).unwrap();
    let body = &frame[34 + tcp.slice().len()..];
    assert_eq!(tcp.checksum(), tcp.calc_checksum_ipv4(&ip, body).unwrap());
    // A header without NEEDS_CSUM leaves the frame alone.
    let before = frame.clone();
    complete_partial_checksum(&mut frame, &mut vnet).unwrap();
    assert_eq!(frame, before);
}

#[test]
fn l4_checksum_is_found_and_completed_for_udp_and_tcp() {
    // UDP: build with a correct checksum, make it partial, complete it.
    let b = PacketBuilder::ethernet2([2; 6], [0xee; 6])
        .ipv4(SRC, DST, 64)
        .udp(5000, 9999);
    let mut udp = Vec::new();
    b.write(&mut udp, &payload(77)).unwrap();
    let want = udp[40..42].to_vec();
    let l4_len = udp.len() - 34;
    let mut s = 0u32;
    for w in SRC.chunks(2).chain(DST.chunks(2)) {
        s += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    let pseudo = fold(s + 17 + l4_len as u32);
    udp[40..42].copy_from_slice(&pseudo.to_be_bytes());
    complete_l4_checksum(&mut udp).unwrap();
    assert_eq!(udp[40..42], want[..]);

    // TCP, through the partial frame of the GSO tests.
    let mut tcp = gso_frame_v4(&payload(100), 1);
    complete_l4_checksum(&mut tcp).unwrap();
    let ip = Ipv4HeaderSlice::from_slice(&tcp[14..]).unwrap();
    let th = TcpHeaderSlice::from_slice(&tcp[34..]).unwrap();
    assert_eq!(
        th.checksum(),
        th.calc_checksum_ipv4(&ip, &tcp[34 + th.slice().len()..])
            .unwrap()
    );

    // Neither TCP nor UDP.
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        complete_l4_checksum(&mut arp),
        Err(OffloadError::UnsupportedEthertype(0x0806))
    );
}
