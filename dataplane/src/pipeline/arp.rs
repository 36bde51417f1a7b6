//! Proxy ARP for the pod gateway (Calico's `169.254.1.1`).
//!
//! Reads: the ARP header at `l3_offset`. Writes: the whole frame, turned
//! into the reply in place. Follows: the reply leaves by the port the
//! request came in on; anything else goes on to `arpt_to_port_table`.

use p4k8s_packet::wire::{ArpPacket, EthernetPacket};
use p4k8s_packet::PacketMeta;

use crate::config::Gateway;

const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

/// Turns an ARP request for the gateway into its reply, in place; `false`
/// (frame untouched) when it is not a request.
#[inline]
pub fn answer(frame: &mut [u8], m: &PacketMeta, gw: Gateway) -> bool {
    let Some(l3) = frame.get_mut(usize::from(m.l3_offset)..) else {
        return false;
    };
    let Ok(mut arp) = ArpPacket::new_checked(l3) else {
        return false;
    };
    if arp.oper() != ARP_REQUEST {
        return false;
    }
    let (asker_mac, asker_ip) = (arp.sha(), arp.spa());
    arp.set_oper(ARP_REPLY);
    arp.set_sha(gw.mac);
    arp.set_spa(gw.ip);
    arp.set_tha(asker_mac);
    arp.set_tpa(asker_ip);
    if let Ok(mut eth) = EthernetPacket::new_checked(frame) {
        eth.set_dst(asker_mac);
        eth.set_src(gw.mac);
    }
    true
}
