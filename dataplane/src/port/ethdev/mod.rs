//! Ethernet ports: [`Port`] probes a device from devargs, configures and starts it, and
//! reads its MAC, link and counters; its queues are handed out as [`RxQueue`]/[`TxQueue`]
//! (see `queue.rs`). The plain configuration and report values are in `types.rs`.
//!
//! Ports use no rx offload (no checksum offload is needed: nodes check in software) and at
//! most the tx offloads the device reports. Scatter is never enabled: the MTU must fit one
//! mbuf, so every received packet is a single segment.
#![allow(unsafe_code)]

use std::ffi::{c_char, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use dpdk_sys::{rte_eth_conf, rte_eth_dev_info, rte_eth_link, rte_eth_stats, rte_ether_addr};

use super::eal::{strerror, Eal, EalShared};
use super::mempool::{Mempool, PoolShared, HEADROOM};
use super::queue::{RxQueue, TxQueue};
use super::ring::PairRings;

mod lookup;
mod types;

use lookup::{device_of, port_by_device_name, port_by_name, MAX_PORTS};
pub use types::{Link, PortConfig, PortInfo, PortStats};

/// Ethernet header + CRC + one VLAN tag: the frame bytes on top of the MTU.
const FRAME_OVERHEAD: u32 = 14 + 4 + 4;
/// `RTE_ETH_NAME_MAX_LEN`.
const NAME_MAX: usize = 64;
/// Port ids claimed by a live [`Port`], so no two handles drive one port.
static CLAIMED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// Errors from port operations; each names the port and the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The devargs are empty or contain a NUL byte.
    #[error("bad devargs {devargs:?}: must be non-empty without NUL bytes")]
    BadDevargs {
        /// The devargs.
        devargs: String,
    },
    /// `rte_dev_probe` failed.
    #[error("cannot probe device {devargs:?}: {message}")]
    Probe {
        /// The devargs.
        devargs: String,
        /// `rte_strerror` of the error.
        message: String,
    },
    /// The device was probed but no ethdev port carries the expected name.
    #[error("device {devargs:?} was probed but no ethdev port is named {name:?} (a PCI address must be written in full, e.g. 0000:01:00.0)")]
    NoSuchPort {
        /// The devargs.
        devargs: String,
        /// The name looked up.
        name: String,
    },
    /// Another [`Port`] handle already drives this port.
    #[error("port {name:?} (id {port}) is already open in this process")]
    AlreadyOpen {
        /// Port id.
        port: u16,
        /// Port name.
        name: String,
    },
    /// A configuration value is out of the device's range.
    #[error("port {name:?}: {field} = {value} is invalid: {reason}")]
    BadConfig {
        /// Port name.
        name: String,
        /// The offending field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Why it is refused.
        reason: String,
    },
    /// The operation needs the port stopped.
    #[error("port {name:?}: {op} needs the port stopped")]
    Started {
        /// Port name.
        name: String,
        /// The operation.
        op: &'static str,
    },
    /// The operation needs every queue handle returned (dropped) first.
    #[error(
        "port {name:?}: {op} needs every rx/tx queue handle dropped first ({taken} still held)"
    )]
    QueuesInUse {
        /// Port name.
        name: String,
        /// The operation.
        op: &'static str,
        /// Queue handles still alive.
        taken: usize,
    },
    /// The port was not configured yet.
    #[error("port {name:?}: {op} needs the port configured first")]
    NotConfigured {
        /// Port name.
        name: String,
        /// The operation.
        op: &'static str,
    },
    /// The driver does not support the operation (e.g. promiscuous mode on some vdevs).
    #[error("port {name:?}: {op} is not supported by the driver")]
    NotSupported {
        /// Port name.
        name: String,
        /// The operation.
        op: &'static str,
    },
    /// A DPDK call failed.
    #[error("port {name:?}: {op} failed: {message}")]
    Dpdk {
        /// Port name.
        name: String,
        /// The DPDK function.
        op: &'static str,
        /// `rte_strerror` of the error.
        message: String,
    },
}

/// State shared by a [`Port`] and its queue handles; the port is stopped and closed when the
/// last of them goes.
#[derive(Debug)]
pub(crate) struct PortShared {
    id: u16,
    name: String,
    /// The port's `rte_device`, as an address (detached after the last port closes).
    device: usize,
    started: AtomicBool,
    /// One flag per queue handle handed out; set once at configure time.
    queues: OnceLock<QueueSlots>,
    /// The rx pool, kept alive while the port can still return mbufs to it.
    pool: OnceLock<Arc<PoolShared>>,
    /// For ring-pair ports: the rings, freed after both ports close.
    _rings: Option<Arc<PairRings>>,
    _eal: Arc<EalShared>,
}

#[derive(Debug)]
struct QueueSlots {
    rx: Box<[AtomicBool]>,
    tx: Box<[AtomicBool]>,
}

/// An ethdev port. Not `Clone`: one handle configures, starts and stops the port; queue
/// handles taken from it may move to worker lcores.
#[derive(Debug)]
pub struct Port {
    shared: Arc<PortShared>,
}

impl Port {
    /// Probes the device named by `devargs` (any vdev devargs such as
    /// `net_ring0` or `net_pcap0,rx_pcap=f.pcap`, or a PCI address) with `rte_dev_probe`, and
    /// opens its ethdev port. The port's name is the devargs before the first comma; the
    /// ethdev port is the one of that name or, failing that (e.g. `net_ring` with
    /// `nodeaction=` names its port after the ring), the first port of the device of that
    /// name. A device the EAL already probed (e.g. from `--vdev`) is opened without probing
    /// again.
    pub fn probe(eal: &Eal, devargs: &str) -> Result<Port, PortError> {
        let name = devargs.split(',').next().unwrap_or("").trim().to_owned();
        let bad = || PortError::BadDevargs {
            devargs: devargs.to_owned(),
        };
        if name.is_empty() {
            return Err(bad());
        }
        let c_devargs = CString::new(devargs).map_err(|_| bad())?;
        let c_name = CString::new(name.as_str()).map_err(|_| bad())?;
        let id = match port_by_name(&c_name) {
            Some(id) => id,
            None => {
                // SAFETY: the EAL is initialised (`eal` exists); `c_devargs` is a valid C
                // string that DPDK copies.
                let ret = unsafe { dpdk_sys::rte_dev_probe(c_devargs.as_ptr()) };
                if ret < 0 {
                    return Err(PortError::Probe {
                        devargs: devargs.to_owned(),
                        message: strerror(-ret),
                    });
                }
                port_by_name(&c_name)
                    .or_else(|| port_by_device_name(&name))
                    .ok_or_else(|| PortError::NoSuchPort {
                        devargs: devargs.to_owned(),
                        name: name.clone(),
                    })?
            }
        };
        Port::claim(eal, id, name, None)
    }

    /// Opens the port with id `id` (e.g. one the EAL probed from its arguments).
    pub fn open(eal: &Eal, id: u16) -> Result<Port, PortError> {
        Port::open_inner(eal, id, None)
    }

    /// Opens a ring-pair port, keeping its rings alive.
    pub(crate) fn open_with_rings(
        eal: &Eal,
        id: u16,
        rings: Arc<PairRings>,
    ) -> Result<Port, PortError> {
        Port::open_inner(eal, id, Some(rings))
    }

    fn open_inner(eal: &Eal, id: u16, rings: Option<Arc<PairRings>>) -> Result<Port, PortError> {
        // SAFETY: plain validity check.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(PortError::NoSuchPort {
                devargs: String::new(),
                name: format!("port id {id}"),
            });
        }
        let mut buf = [0 as c_char; NAME_MAX];
        // SAFETY: `buf` has room for RTE_ETH_NAME_MAX_LEN bytes, as the call requires.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
        let name = if ret == 0 {
            // SAFETY: DPDK wrote a NUL-terminated name into `buf`.
            unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        } else {
            format!("port{id}")
        };
        Port::claim(eal, id, name, rings)
    }

    fn claim(
        eal: &Eal,
        id: u16,
        name: String,
        rings: Option<Arc<PairRings>>,
    ) -> Result<Port, PortError> {
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.contains(&id) {
            return Err(PortError::AlreadyOpen { port: id, name });
        }
        let device = device_of(id).unwrap_or(0);
        claimed.push(id);
        Ok(Port {
            shared: Arc::new(PortShared {
                id,
                name,
                device,
                started: AtomicBool::new(false),
                queues: OnceLock::new(),
                pool: OnceLock::new(),
                _rings: rings,
                _eal: eal.shared().clone(),
            }),
        })
    }

    /// The DPDK port id.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// The port's name (the devargs before the first comma).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// What the driver reports about the port.
    pub fn info(&self) -> Result<PortInfo, PortError> {
        let info = self.dev_info()?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null driver name is a static NUL-terminated string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
            socket: self.socket(),
        })
    }

    /// Configures queues, rings and MTU, with rx buffers from `pool`. Only once per port:
    /// queue handles are sized from this call.
    pub fn configure(&mut self, conf: &PortConfig, pool: &Mempool) -> Result<(), PortError> {
        let name = self.shared.name.clone();
        if self.shared.queues.get().is_some() {
            return Err(PortError::BadConfig {
                name,
                field: "configure",
                value: 2,
                reason: "a port is configured once".into(),
            });
        }
        let info = self.dev_info()?;
        let bad = |field, value: u64, reason: String| PortError::BadConfig {
            name: name.clone(),
            field,
            value,
            reason,
        };
        if conf.rx_queues == 0 || conf.rx_queues > info.max_rx_queues {
            return Err(bad(
                "rx_queues",
                conf.rx_queues.into(),
                format!("the device takes 1..={}", info.max_rx_queues),
            ));
        }
        if conf.tx_queues == 0 || conf.tx_queues > info.max_tx_queues {
            return Err(bad(
                "tx_queues",
                conf.tx_queues.into(),
                format!("the device takes 1..={}", info.max_tx_queues),
            ));
        }
        if conf.rx_ring == 0 || conf.tx_ring == 0 {
            return Err(bad("rx_ring/tx_ring", 0, "rings need descriptors".into()));
        }
        if conf.mtu < info.min_mtu || conf.mtu > info.max_mtu {
            return Err(bad(
                "mtu",
                conf.mtu.into(),
                format!("the device takes {}..={}", info.min_mtu, info.max_mtu),
            ));
        }
        let room = u32::from(pool.data_room() - HEADROOM);
        if u32::from(conf.mtu) + FRAME_OVERHEAD > room {
            return Err(bad(
                "mtu",
                conf.mtu.into(),
                format!(
                    "frames of {} bytes do not fit one mbuf of pool {:?} ({room} bytes); \
                     multi-segment packets are not supported, use a larger data room",
                    u32::from(conf.mtu) + FRAME_OVERHEAD,
                    pool.name()
                ),
            ));
        }

        let mut eth_conf = rte_eth_conf::default();
        eth_conf.rxmode.mtu = conf.mtu.into();
        eth_conf.rxmode.offloads = 0;
        let rss_hf = (dpdk_sys::AEGIS_RSS_IP | dpdk_sys::AEGIS_RSS_UDP | dpdk_sys::AEGIS_RSS_TCP)
            as u64
            & info.flow_type_rss_offloads;
        if conf.rx_queues > 1 && rss_hf != 0 {
            eth_conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            eth_conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        let fast_free = dpdk_sys::AEGIS_TX_OFFLOAD_MBUF_FAST_FREE as u64;
        if conf.tx_fast_free && info.tx_offload_capa & fast_free != 0 {
            eth_conf.txmode.offloads = fast_free;
        }
        let id = self.shared.id;
        // SAFETY: the port id is valid and the port stopped (it has never been configured,
        // so never started); `eth_conf` is a fully initialised configuration.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_configure(id, conf.rx_queues, conf.tx_queues, &eth_conf)
        };
        self.check(ret, "rte_eth_dev_configure")?;
        let (mut nb_rx, mut nb_tx) = (conf.rx_ring, conf.tx_ring);
        // SAFETY: valid port; the two pointers are to live locals.
        let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) };
        self.check(ret, "rte_eth_dev_adjust_nb_rx_tx_desc")?;
        let socket = self.socket().map_or(dpdk_sys::SOCKET_ID_ANY, |s| s as i32) as u32;
        let pool_shared = pool.shared().clone();
        for q in 0..conf.rx_queues {
            // SAFETY: valid port, configured with `rx_queues` queues; a null rxconf means
            // the driver defaults; the pool outlives the port (kept in `shared.pool`).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    nb_rx,
                    socket,
                    std::ptr::null(),
                    pool_shared.as_ptr(),
                )
            };
            self.check(ret, "rte_eth_rx_queue_setup")?;
        }
        for q in 0..conf.tx_queues {
            // SAFETY: as above; a null txconf means the driver defaults plus the port's
            // tx offloads.
            let ret =
                unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, nb_tx, socket, std::ptr::null()) };
            self.check(ret, "rte_eth_tx_queue_setup")?;
        }
        let _ = self.shared.pool.set(pool_shared);
        let slots = |n: u16| (0..n).map(|_| AtomicBool::new(false)).collect();
        let _ = self.shared.queues.set(QueueSlots {
            rx: slots(conf.rx_queues),
            tx: slots(conf.tx_queues),
        });
        Ok(())
    }

    /// Starts the port (`rte_eth_dev_start`).
    pub fn start(&mut self) -> Result<(), PortError> {
        if self.shared.queues.get().is_none() {
            return Err(PortError::NotConfigured {
                name: self.shared.name.clone(),
                op: "start",
            });
        }
        // SAFETY: valid, configured port.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.shared.id) };
        self.check(ret, "rte_eth_dev_start")?;
        self.shared.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the port. Every queue handle must have been dropped first, so no lcore is inside
    /// a burst on it (DPDK forbids stopping a port under a running burst).
    pub fn stop(&mut self) -> Result<(), PortError> {
        let taken = self.shared.taken_queues();
        if taken > 0 {
            return Err(PortError::QueuesInUse {
                name: self.shared.name.clone(),
                op: "stop",
                taken,
            });
        }
        // SAFETY: valid port, and no queue handle exists to burst on it concurrently.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.shared.id) };
        self.check(ret, "rte_eth_dev_stop")?;
        self.shared.started.store(false, Ordering::Release);
        Ok(())
    }

    /// Whether the port is started.
    pub fn is_started(&self) -> bool {
        self.shared.started.load(Ordering::Acquire)
    }

    /// Takes the handle of rx queue `queue`; `None` when the queue does not exist or its
    /// handle is already out. Dropping the handle gives it back.
    pub fn rx_queue(&self, queue: u16) -> Option<RxQueue> {
        let slot = self.shared.queues.get()?.rx.get(usize::from(queue))?;
        if slot.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(RxQueue::new(self.shared.clone(), queue))
    }

    /// Takes the handle of tx queue `queue`; as [`Port::rx_queue`].
    pub fn tx_queue(&self, queue: u16) -> Option<TxQueue> {
        let slot = self.shared.queues.get()?.tx.get(usize::from(queue))?;
        if slot.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(TxQueue::new(self.shared.clone(), queue))
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], PortError> {
        let mut addr = rte_ether_addr::default();
        // SAFETY: valid port; `addr` is a live, writable `rte_ether_addr`.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.shared.id, &mut addr) };
        self.check(ret, "rte_eth_macaddr_get")?;
        Ok(addr.addr_bytes)
    }

    /// The link state, without waiting for autonegotiation.
    pub fn link(&self) -> Result<Link, PortError> {
        let mut link = rte_eth_link::default();
        // SAFETY: valid port; `link` is a live, writable `rte_eth_link`.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.shared.id, &mut link) };
        self.check(ret, "rte_eth_link_get_nowait")?;
        Ok(Link {
            up: link.link_status() == dpdk_sys::RTE_ETH_LINK_UP as u16,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() == dpdk_sys::RTE_ETH_LINK_FULL_DUPLEX as u16,
            autoneg: link.link_autoneg() == dpdk_sys::RTE_ETH_LINK_AUTONEG as u16,
        })
    }

    /// The port's counters.
    pub fn stats(&self) -> Result<PortStats, PortError> {
        let mut s = rte_eth_stats::default();
        // SAFETY: valid port; `s` is a live, writable `rte_eth_stats`.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.shared.id, &mut s) };
        self.check(ret, "rte_eth_stats_get")?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Zeroes the port's counters.
    pub fn reset_stats(&self) -> Result<(), PortError> {
        // SAFETY: valid port.
        let ret = unsafe { dpdk_sys::rte_eth_stats_reset(self.shared.id) };
        self.check(ret, "rte_eth_stats_reset")
    }

    /// Turns promiscuous mode on or off. Drivers that cannot answer
    /// [`PortError::NotSupported`] (net_null and net_pcap are always promiscuous: turning it
    /// off is not supported there).
    pub fn promiscuous(&mut self, on: bool) -> Result<(), PortError> {
        let id = self.shared.id;
        // SAFETY: valid port.
        let ret = unsafe {
            if on {
                dpdk_sys::rte_eth_promiscuous_enable(id)
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(id)
            }
        };
        self.check(
            ret,
            if on {
                "promiscuous on"
            } else {
                "promiscuous off"
            },
        )
    }

    /// Sets the link administratively up or down.
    pub fn set_link(&mut self, up: bool) -> Result<(), PortError> {
        let id = self.shared.id;
        // SAFETY: valid port.
        let ret = unsafe {
            if up {
                dpdk_sys::rte_eth_dev_set_link_up(id)
            } else {
                dpdk_sys::rte_eth_dev_set_link_down(id)
            }
        };
        self.check(ret, if up { "set link up" } else { "set link down" })
    }

    fn socket(&self) -> Option<u32> {
        // SAFETY: plain lookup; -1 when unknown.
        let s = unsafe { dpdk_sys::rte_eth_dev_socket_id(self.shared.id) };
        u32::try_from(s).ok()
    }

    fn dev_info(&self) -> Result<rte_eth_dev_info, PortError> {
        let mut info = rte_eth_dev_info::default();
        // SAFETY: valid port; `info` is a live, writable `rte_eth_dev_info`.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(self.shared.id, &mut info) };
        self.check(ret, "rte_eth_dev_info_get")?;
        Ok(info)
    }

    fn check(&self, ret: i32, op: &'static str) -> Result<(), PortError> {
        const ENOTSUP: i32 = 95;
        match ret {
            r if r >= 0 => Ok(()),
            r if r == -ENOTSUP => Err(PortError::NotSupported {
                name: self.shared.name.clone(),
                op,
            }),
            r => Err(PortError::Dpdk {
                name: self.shared.name.clone(),
                op,
                message: strerror(-r),
            }),
        }
    }
}

impl PortShared {
    /// The DPDK port id.
    pub(crate) fn id(&self) -> u16 {
        self.id
    }

    /// Gives a queue handle back.
    pub(crate) fn release_queue(&self, rx: bool, queue: u16) {
        if let Some(slots) = self.queues.get() {
            let list = if rx { &slots.rx } else { &slots.tx };
            if let Some(slot) = list.get(usize::from(queue)) {
                slot.store(false, Ordering::Release);
            }
        }
    }

    fn taken_queues(&self) -> usize {
        self.queues.get().map_or(0, |s| {
            s.rx.iter()
                .chain(s.tx.iter())
                .filter(|q| q.load(Ordering::Acquire))
                .count()
        })
    }
}

impl Drop for PortShared {
    fn drop(&mut self) {
        if self.started.load(Ordering::Acquire) {
            // SAFETY: the last handle is going, so no burst can run on the port.
            unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
        }
        // SAFETY: stopped (or never started) and no handle left; closing returns the rx
        // rings' mbufs to the pool, which `self.pool` still keeps alive at this point.
        unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
        // Detach the device once none of its ports is left, so that it can be probed again.
        if self.device != 0 && !(0..MAX_PORTS).any(|p| device_of(p) == Some(self.device)) {
            // SAFETY: `device` is the live `rte_device` of the port just closed (devices
            // stay until removed, and only this code removes them), and no port of it
            // remains open.
            unsafe { dpdk_sys::rte_dev_remove(self.device as *mut dpdk_sys::rte_device) };
        }
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        claimed.retain(|&p| p != self.id);
    }
}
