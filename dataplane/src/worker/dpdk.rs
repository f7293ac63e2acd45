//! [`PortQueues`] over DPDK: one rx and one tx queue per port for this worker, and the
//! mempool that injected frames are copied into.

use crate::buf::mbuf::Mbuf;
use crate::graph::TxFrame;
use crate::port::mempool::Mempool;
use crate::port::queue::{RxQueue, TxQueue};

use super::io::PortQueues;

/// A worker's DPDK queues: `rx[i]` and `tx[i]` belong to port index `i`.
pub struct DpdkQueues {
    rx: Vec<RxQueue>,
    tx: Vec<TxQueue>,
    pool: Mempool,
}

impl DpdkQueues {
    /// Queues for one worker. `rx` and `tx` hold one queue per port, in port order.
    pub fn new(rx: Vec<RxQueue>, tx: Vec<TxQueue>, pool: Mempool) -> Self {
        assert_eq!(rx.len(), tx.len(), "one rx and one tx queue per port");
        DpdkQueues { rx, tx, pool }
    }
}

impl PortQueues for DpdkQueues {
    type Buf = Mbuf;

    #[inline]
    fn n_ports(&self) -> usize {
        self.rx.len()
    }

    #[inline]
    fn rx(&mut self, port: usize, out: &mut TxFrame<Mbuf>, max: usize) {
        self.rx[port].rx_burst(out, max);
    }

    #[inline]
    fn tx(&mut self, port: usize, pkts: &mut TxFrame<Mbuf>) {
        // Retry once for the common case of a transiently full ring.
        if self.tx[port].tx_burst(pkts) > 0 && !pkts.is_empty() {
            self.tx[port].tx_burst(pkts);
        }
    }

    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<Mbuf> {
        let mut m = self.pool.alloc()?;
        m.extend_from_slice(bytes).then_some(m)
    }
}
