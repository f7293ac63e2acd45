//! The control-plane cluster IP: the address the Raft leader holds on its management
//! interface. This module owns the kernel I/O (rtnetlink address add/remove/lookup and
//! gratuitous ARP); when to hold the address is decided elsewhere.

mod garp;
mod netlink;

pub use garp::{gratuitous_arp, gratuitous_arp_reply, GARP_FRAME_LEN};
pub use netlink::{ClusterIp, VipError};
