//! Plain values of the ethdev API: the configuration a port is set up with ([`PortConfig`])
//! and what it reports ([`PortInfo`], [`Link`], [`PortStats`]).

/// Queue and ring sizes, MTU and tx offload choice for [`super::Port::configure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Rx queues (RSS spreads flows over them when more than one).
    pub rx_queues: u16,
    /// Tx queues.
    pub tx_queues: u16,
    /// Descriptors per rx queue (the driver may round it).
    pub rx_ring: u16,
    /// Descriptors per tx queue (the driver may round it).
    pub tx_ring: u16,
    /// MTU in bytes; must fit one mbuf of the rx pool with the Ethernet header and CRC.
    pub mtu: u16,
    /// Ask for `RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE` when the device has it. Only valid when
    /// every mbuf sent on the port comes from one mempool and is never shared (refcnt 1).
    pub tx_fast_free: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_ring: 1024,
            tx_ring: 1024,
            mtu: 1500,
            tx_fast_free: false,
        }
    }
}

/// What the driver reports about a port (`rte_eth_dev_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name, e.g. `net_null`.
    pub driver: String,
    /// Most rx queues.
    pub max_rx_queues: u16,
    /// Most tx queues.
    pub max_tx_queues: u16,
    /// Smallest MTU.
    pub min_mtu: u16,
    /// Largest MTU.
    pub max_mtu: u16,
    /// `RTE_ETH_RX_OFFLOAD_*` bits the device can do.
    pub rx_offload_capa: u64,
    /// `RTE_ETH_TX_OFFLOAD_*` bits the device can do.
    pub tx_offload_capa: u64,
    /// NUMA socket, `None` when unknown.
    pub socket: Option<u32>,
}

/// Link state (`rte_eth_link`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Autonegotiated.
    pub autoneg: bool,
}

/// Port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because rx rings were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}
