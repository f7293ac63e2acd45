//! Why a packet was dropped: one enum for the whole dataplane, each variant with a counter
//! (`aegisctl dp errors`) and a stable snake_case name used by the API, metrics and traces.

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, )*) => {
        /// The reason a packet was dropped. Every drop in the dataplane carries one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = [$(DropReason::$variant,)*].len();

            /// Stable machine name (snake_case).
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            /// Human description (the doc comment).
            pub const fn description(self) -> &'static str {
                match self { $(DropReason::$variant => concat!($($doc),*).trim_ascii_start(),)* }
            }

            /// Looks a reason up by its machine name.
            pub fn from_name(name: &str) -> Option<DropReason> {
                Self::ALL.iter().copied().find(|r| r.name() == name)
            }
        }
    };
}

drop_reasons! {
    /// Frame shorter than an Ethernet header.
    EthRunt = "eth_runt",
    /// Destination MAC is neither ours, broadcast, nor a multicast we accept.
    EthNotForUs = "eth_not_for_us",
    /// EtherType the dataplane does not handle (not IPv4 or ARP).
    EthUnknownType = "eth_unknown_type",
    /// ARP packet shorter than its header claims, or with odd hardware/protocol lengths.
    ArpMalformed = "arp_malformed",
    /// ARP for hardware/protocol types other than Ethernet/IPv4, or an unknown opcode.
    ArpUnsupported = "arp_unsupported",
    /// ARP request or reply about an address that is not ours on the port it came in on.
    ArpNotForUs = "arp_not_for_us",
    /// Frame too short for an IPv4 header.
    Ip4Truncated = "ip4_truncated",
    /// IP version field is not 4.
    Ip4BadVersion = "ip4_bad_version",
    /// IHL below 5 or header longer than the packet.
    Ip4BadIhl = "ip4_bad_ihl",
    /// IPv4 header checksum does not verify.
    Ip4BadChecksum = "ip4_bad_checksum",
    /// Total length larger than the frame or smaller than the header.
    Ip4BadLength = "ip4_bad_length",
    /// Source address is multicast, broadcast, loopback or zero (martian).
    Ip4MartianSource = "ip4_martian_source",
    /// Destination is multicast or broadcast: the dataplane routes unicast only.
    Ip4NotUnicast = "ip4_not_unicast",
    /// Destination in 0.0.0.0/8 or 127.0.0.0/8: never routed (RFC 1812 §5.3.7).
    Ip4MartianDestination = "ip4_martian_destination",
    /// Unicast IPv4 packet in a link-layer broadcast or multicast frame (RFC 1812 §5.3.4).
    Ip4LinkBroadcast = "ip4_link_broadcast",
    /// Loose or strict source-route option present (never honoured).
    Ip4SourceRoute = "ip4_source_route",
    /// TTL reached zero on forwarding (time-exceeded sent when allowed).
    Ip4TtlExpired = "ip4_ttl_expired",
    /// Fragmented packet addressed to the dataplane itself (no reassembly).
    Ip4FragmentToUs = "ip4_fragment_to_us",
    /// Packet larger than the egress MTU with DF set (fragmentation-needed sent).
    Ip4MtuExceeded = "ip4_mtu_exceeded",
    /// Packet larger than the egress MTU without DF (the dataplane does not fragment).
    Ip4FragmentationUnsupported = "ip4_fragmentation_unsupported",
    /// No route to the destination (destination-unreachable sent when allowed).
    NoRoute = "no_route",
    /// Route says blackhole: dropped silently on the wire, counted here.
    RouteBlackhole = "route_blackhole",
    /// Route says unreachable/prohibit (destination-unreachable sent).
    RouteUnreachable = "route_unreachable",
    /// Next hop's MAC not resolved in time (hold queue timed out or full).
    NeighbourUnresolved = "neighbour_unresolved",
    /// Packet for our own address to a protocol or port we do not serve (ICMP unreachable sent).
    LocalUnreachable = "local_unreachable",
    /// ICMP to us that is not an echo request (nothing to answer).
    LocalIcmpIgnored = "local_icmp_ignored",
    /// Malformed ICMP message addressed to us.
    IcmpMalformed = "icmp_malformed",
    /// Egress port is administratively or operationally down.
    PortDown = "port_down",
    /// Egress queue full: the driver refused the packet.
    TxQueueFull = "tx_queue_full",
    /// No mbuf could be allocated for a generated packet.
    NoBuffers = "no_buffers",
    /// Internal frame overflow (more packets for one node than a frame holds).
    FrameOverflow = "frame_overflow",
    /// A VM sent a frame from a MAC address that is not its port's (anti-spoofing).
    PortSpoofedMac = "port_spoofed_mac",
    /// A VM sent a packet or ARP from an IPv4 address that is not its port's (anti-spoofing).
    PortSpoofedIp = "port_spoofed_ip",
    /// EtherType other than IPv4 and ARP on a VM port (IPv6 is not routed yet).
    OverlayUnsupported = "overlay_unsupported",
    /// ARP request for an address no port or gateway of the subnet has (never flooded).
    OverlayArpUnknown = "overlay_arp_unknown",
    /// Broadcast or multicast IPv4 from a VM: the overlay does not flood.
    OverlayNoFlood = "overlay_no_flood",
    /// Unicast to a MAC that is neither the router's nor a port's in the sender's subnet.
    OverlayUnknownMac = "overlay_unknown_mac",
    /// Malformed IPv4 packet from a VM or inside a tunnel (header, length or checksum).
    OverlayBadIp4 = "overlay_bad_ip4",
    /// No subnet or route of the VPC covers the destination (ICMP net unreachable sent).
    VpcNoRoute = "vpc_no_route",
    /// Destination inside a subnet of the VPC, but no port has it (ICMP host unreachable sent).
    VpcNoPort = "vpc_no_port",
    /// A VPC route's next hop is no port's address.
    VpcNextHopUnknown = "vpc_next_hop_unknown",
    /// The destination port's host is unknown or has no underlay address.
    PortNotPlaced = "port_not_placed",
    /// Denied by a security group rule or the default ingress policy (see the rule counters).
    SecurityGroupDeny = "security_group_deny",
    /// The worker's connection table is full: a new connection was refused.
    ConntrackFull = "conntrack_full",
    /// A packet that fits no TCP state of its connection, or a TCP flag combination no
    /// stack sends.
    ConntrackInvalid = "conntrack_invalid",
    /// Another worker's hand-off ring was full (flows are handed to the worker that owns
    /// their connection-table entry).
    HandoffFull = "handoff_full",
    /// Geneve packet too short, with a bad version, overrunning options or a payload other
    /// than Ethernet.
    GeneveMalformed = "geneve_malformed",
    /// Geneve packet with a VNI no VPC has.
    GeneveUnknownVni = "geneve_unknown_vni",
    /// Geneve packet whose inner destination is no port on this host in that VPC (a sender
    /// with stale state, e.g. just after a port moved).
    GeneveNoLocalPort = "geneve_no_local_port",
    /// A VRRP advertisement longer than the control thread's hand-off buffer (over 50
    /// virtual addresses).
    VrrpOversize = "vrrp_oversize",
    /// The worker's queue to the control thread was full: a VRRP advertisement was lost.
    ControlQueueFull = "control_queue_full",
    /// A session-sync datagram longer than the control thread's hand-off buffer (1472
    /// bytes).
    SyncOversize = "sync_oversize",
    /// The worker's queue of session-sync datagrams to the control thread was full.
    SyncQueueFull = "sync_queue_full",
    /// The worker's NAT session table is full: a new session was refused.
    NatFull = "nat_full",
    /// No free outside port (or a floating IP's port is taken towards that remote).
    NatNoPort = "nat_no_port",
    /// A packet to be translated that NAT cannot carry (a non-first fragment, a protocol
    /// other than TCP, UDP and ICMP).
    NatUntranslatable = "nat_untranslatable",
    /// A packet to be translated shorter than its transport header.
    NatTruncated = "nat_truncated",
    /// A VM's packet reached its VPC's gateway, but no source NAT rule or floating IP
    /// covers its source address.
    NatNoRule = "nat_no_rule",
    /// Translated back to a VPC address that no port has here (the port was deleted, or
    /// the VPC is not in this gateway's overlay).
    NatInsideUnknown = "nat_inside_unknown",
    /// A VM's packet reached the gateway, but this host's routes send its destination
    /// elsewhere than the external port (add the external network's routes to the host).
    GatewayNoExternalRoute = "gateway_no_external_route",
    /// A VM sent a packet carrying the trace-probe mark (only the dataplane injects probes).
    TraceForged = "trace_forged",
    /// A probe arrived from another host while every trace slot of the worker was in use
    /// (a probe is never delivered untraced).
    TraceSlotsFull = "trace_slots_full",
}

/// Placeholder in packet metadata before any reason applies.
impl Default for DropReason {
    fn default() -> Self {
        DropReason::NoRoute
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert(r.name()), "duplicate name {}", r.name());
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
            assert!(!r.description().is_empty());
        }
        assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
        assert_eq!(DropReason::from_name("nope"), None);
    }
}

#[cfg(test)]
mod doc_tests {
    use super::DropReason;

    /// docs/dataplane.md lists every drop reason with its description: keep it true.
    #[test]
    fn operator_docs_list_every_reason() {
        let doc = include_str!("../../../docs/dataplane.md");
        for r in DropReason::ALL {
            let row = format!("| `{}` | {} |", r.name(), r.description());
            assert!(doc.contains(&row), "docs/dataplane.md lacks the row: {row}");
        }
    }
}
