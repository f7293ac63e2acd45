//! Hop records: what a worker writes each time a traced packet leaves a node. Fixed-size
//! and `Copy`, so writing one never allocates; names (ports, rules, VPCs) are resolved on
//! the control thread when the records are read.

use super::summary::PacketSummary;
use crate::graph::{DropReason, NodeId};

/// What happened to the packet at a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A probe was injected at VM port `port`'s ingress, as if the VM had sent it.
    Injected {
        /// The VM's DPDK port.
        port: u16,
    },
    /// A packet received on `port` matched a trace watch's filter (real traffic, traced
    /// on this host and delivered normally).
    Watched {
        /// The port it came in on.
        port: u16,
    },
    /// Arrived from another host in Geneve with the trace option (or, for a watched packet,
    /// its inner frame matched a trace watch's filter).
    Received {
        /// The underlay port it came in on.
        port: u16,
        /// Outer source address (the sending host's underlay address), host order.
        from: u32,
        /// Geneve VNI.
        vni: u32,
    },
    /// Passed on to the next node.
    Next(NodeId),
    /// Queued for transmission on `port`.
    Transmitted {
        /// The DPDK port.
        port: u16,
    },
    /// A probe reached its destination port: consumed there, never delivered to the VM.
    Delivered {
        /// The destination VM's DPDK port.
        port: u16,
    },
    /// Dropped, with the same reason the counters use.
    Dropped(DropReason),
    /// Consumed by the dataplane itself (ARP, echo to the router's address, sync).
    Consumed,
    /// Parked until the MAC of neighbour `ip` on `port` is known.
    Held {
        /// The port the next hop is on.
        port: u16,
        /// The next hop, host order.
        ip: u32,
    },
    /// Handed to the worker owning the flow (tracing stops at this worker).
    HandedOff {
        /// The owning worker.
        worker: u16,
    },
}

/// Why the node decided as it did (noted by the node before the packet leaves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// Nothing to add.
    #[default]
    None,
    /// The VPC router chose `prefix/len` (a subnet or a static route) in VPC `vpc`.
    VpcRoute {
        /// VPC index in the overlay.
        vpc: u16,
        /// Network, host order.
        prefix: u32,
        /// Prefix length.
        len: u8,
    },
    /// The destination is port (endpoint) `endpoint` of the overlay.
    Endpoint {
        /// Endpoint index in the overlay.
        endpoint: u32,
    },
    /// The security groups' checks: egress of the source port, ingress of the destination.
    Security {
        /// The source port's egress check (on the source host).
        egress: SgCheck,
        /// The destination port's ingress check (on the destination host).
        ingress: SgCheck,
    },
    /// Encapsulated in Geneve towards another host.
    Encap {
        /// The destination host's underlay address, host order.
        remote: u32,
        /// Geneve VNI.
        vni: u32,
    },
    /// The dataplane answered with an ICMP error.
    IcmpError {
        /// ICMP type.
        msg_type: u8,
        /// ICMP code.
        code: u8,
        /// Next-hop MTU of fragmentation-needed, else 0.
        mtu: u16,
    },
    /// The headers of a watched packet where the watch matched it.
    Packet(PacketSummary),
    /// NAT rewrote the packet.
    Nat {
        /// Address before, host order.
        from_ip: u32,
        /// Port (or ICMP id) before.
        from_port: u16,
        /// Address after, host order.
        to_ip: u32,
        /// Port (or ICMP id) after.
        to_port: u16,
    },
}

/// How one security-group check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SgCheck {
    /// Not checked here (the port is on another host, or the check did not run).
    #[default]
    NotChecked,
    /// A packet of a known connection: passed without looking at the rules.
    Connection,
    /// An ICMP error about a known connection.
    Related,
    /// A rule (or the default) decided; its counter slot names it (`GROUP/RULE`).
    Rule {
        /// Counter slot of the rule.
        slot: u16,
        /// The rule allowed the packet.
        allow: bool,
    },
    /// The connection tracker refused the packet (invalid TCP state, table full).
    Refused,
}

/// One hop of one traced packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopRecord {
    /// The trace id.
    pub trace: u64,
    /// When, on the worker's clock (ns).
    pub ts_ns: u64,
    /// The control-plane revision of the overlay the worker applied.
    pub revision: u64,
    /// Order of the record within the trace on this worker.
    pub seq: u16,
    /// The worker.
    pub worker: u16,
    /// The node the packet left.
    pub node: NodeId,
    /// What happened.
    pub action: Action,
    /// Why.
    pub detail: Detail,
}
