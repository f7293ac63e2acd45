//! DPDK plumbing: the EAL ([`Eal`]: init, lcores, remote launch, cleanup), packet mempools
//! ([`Mempool`]), ethdev ports ([`Port`]: probe, configure, start/stop, MAC, link, counters)
//! with their per-queue burst handles ([`RxQueue`], [`TxQueue`]), in-process ring port pairs
//! ([`ring_pair`]), memory hints for the workers' large tables ([`memory`]: prefetch,
//! transparent huge pages), and the TSC clock.
//!
//! With `buf::mbuf` this is the only code that calls the bindings. Ownership rules that keep
//! it sound: queue handles are unique per queue; ports keep their rx mempool and the EAL
//! alive; a port stops only when no queue handle is out; the EAL is cleaned up only when no
//! object made under it is left.
//!
//! Shutdown order for a daemon: tell workers to stop, [`Eal::wait_all`] (their closures drop
//! the queue handles), drop the ports, then the mempools, then the [`Eal`].

pub mod clock;
pub mod eal;
pub mod ethdev;
pub mod memory;
pub mod mempool;
pub mod queue;
pub mod ring;

pub use eal::{Eal, EalError};
pub use ethdev::{Link, Port, PortConfig, PortError, PortInfo, PortStats};
pub use mempool::{Mempool, MempoolError};
pub use queue::{RxQueue, TxQueue};
pub use ring::ring_pair;
