//! The node graph: fixed-capacity frames of packets, the node ids and their order, the
//! dispatcher that runs each node over a whole frame and measures it, and the drop reasons.
//!
//! A node takes its input frame and hands every packet on through [`Outputs`]: to another
//! node, to a port's transmit frame, or to the drop frame with a [`DropReason`]. Nothing
//! is dropped silently and nothing allocates after start-up.

pub mod dispatch;
pub mod drop;
pub mod frame;
pub mod hold;
pub mod last;
pub mod stats;

pub use dispatch::{
    owner_of_hash, ControlEvent, Graph, GraphEnv, Handed, Handoff, NodeCtx, Outputs, PuntedFrame,
    TokenBucket, PUNT_CAP,
};
pub use drop::DropReason;
pub use frame::{Frame, Meta, Pkt, TxFrame, FRAME_CAP};
pub use last::LastLookup;
pub use stats::{NodeCounters, WorkerStats};

/// Every node of the forwarding graph, in dispatch order (a node only sends packets to
/// nodes later in this order, except ICMP errors, which go back to `Ip4Lookup`, and held
/// packets released to `Ip4Lookup` that turn out to be local; both are handled in a second
/// pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum NodeId {
    /// Ethernet input: VM ports to `vm-input`; else MAC filter and EtherType dispatch.
    EthInput,
    /// Frames from a VM: port security (MAC/IP anti-spoofing), the ARP responder, L2 or L3.
    VmInput,
    /// ARP: answer for our addresses, learn neighbours.
    ArpInput,
    /// IPv4 forwarding path: input checks, lookup and rewrite in one pass.
    Ip4Forward,
    /// Packets for our own addresses (ICMP echo, Geneve, unreachable for the rest).
    Ip4Local,
    /// Geneve decapsulation: VNI to VPC, inner destination to a local port.
    GeneveInput,
    /// A VPC's distributed router: route lookup, TTL, MAC rewrite, router ICMP.
    VpcRoute,
    /// Stateful security groups: egress of the source port, ingress of the destination port.
    SecurityGroup,
    /// A gateway's way out for VMs: source NAT or floating IP, then the external port.
    GatewayOutput,
    /// Delivery to a local VM port, or Geneve encapsulation towards the port's host.
    OverlayOutput,
    /// Longest-prefix match for packets the dataplane built (ICMP errors, echo replies,
    /// Geneve-encapsulated packets).
    Ip4Lookup,
    /// ICMP error generation (time exceeded, unreachable, fragmentation needed).
    Ip4IcmpError,
}

impl NodeId {
    /// All graph nodes in dispatch order.
    pub const ALL: [NodeId; 12] = [
        NodeId::EthInput,
        NodeId::VmInput,
        NodeId::ArpInput,
        NodeId::Ip4Forward,
        NodeId::Ip4Local,
        NodeId::GeneveInput,
        NodeId::VpcRoute,
        NodeId::SecurityGroup,
        NodeId::GatewayOutput,
        NodeId::OverlayOutput,
        NodeId::Ip4Lookup,
        NodeId::Ip4IcmpError,
    ];
    /// Number of graph nodes.
    pub const COUNT: usize = Self::ALL.len();

    /// The node's name as `show runtime` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            NodeId::EthInput => "ethernet-input",
            NodeId::VmInput => "vm-input",
            NodeId::ArpInput => "arp-input",
            NodeId::Ip4Forward => "ip4-forward",
            NodeId::Ip4Local => "ip4-local",
            NodeId::GeneveInput => "geneve-input",
            NodeId::VpcRoute => "vpc-route",
            NodeId::SecurityGroup => "security-group",
            NodeId::GatewayOutput => "gateway-output",
            NodeId::OverlayOutput => "overlay-output",
            NodeId::Ip4Lookup => "ip4-lookup",
            NodeId::Ip4IcmpError => "ip4-icmp-error",
        }
    }
}

/// Runtime counter slots: the graph nodes plus the I/O stages the worker measures.
pub const RUNTIME_SLOTS: [&str; NodeId::COUNT + 2] = [
    NodeId::EthInput.name(),
    NodeId::VmInput.name(),
    NodeId::ArpInput.name(),
    NodeId::Ip4Forward.name(),
    NodeId::Ip4Local.name(),
    NodeId::GeneveInput.name(),
    NodeId::VpcRoute.name(),
    NodeId::SecurityGroup.name(),
    NodeId::GatewayOutput.name(),
    NodeId::OverlayOutput.name(),
    NodeId::Ip4Lookup.name(),
    NodeId::Ip4IcmpError.name(),
    "port-rx",
    "port-tx",
];
/// Slot of the rx stage in [`RUNTIME_SLOTS`].
pub const SLOT_PORT_RX: usize = NodeId::COUNT;
/// Slot of the tx stage in [`RUNTIME_SLOTS`].
pub const SLOT_PORT_TX: usize = NodeId::COUNT + 1;
