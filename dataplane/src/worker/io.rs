//! The worker's view of its ports: receive into and transmit from fixed-capacity frames.
//! [`PortQueues`] is implemented over DPDK queues (`crate::port`) and, for tests, over
//! in-memory queues ([`MemQueues`]).

use std::collections::VecDeque;

use crate::buf::heap::HeapBuf;
use crate::buf::PacketBuf;
use crate::graph::TxFrame;

/// One worker's receive and transmit queues, one of each per port.
pub trait PortQueues {
    /// The packet buffer these queues carry.
    type Buf: PacketBuf;

    /// Number of ports.
    fn n_ports(&self) -> usize;

    /// Receives up to `max` packets from `port`, appending to `out` (which has room).
    fn rx(&mut self, port: usize, out: &mut TxFrame<Self::Buf>, max: usize);

    /// Transmits packets from the front of `pkts` on `port`, removing the ones sent;
    /// what remains was refused by the queue.
    fn tx(&mut self, port: usize, pkts: &mut TxFrame<Self::Buf>);

    /// A fresh buffer holding a copy of `bytes` (for packets the control thread injects).
    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<Self::Buf>;
}

/// In-memory queues for tests: frames pushed into `rx[port]` are received, transmitted
/// frames land in `tx[port]`. `tx_room` limits how many a tx call takes (None: all).
#[derive(Default)]
pub struct MemQueues {
    /// Frames waiting to be received, per port.
    pub rx: Vec<VecDeque<Vec<u8>>>,
    /// Frames transmitted, per port.
    pub tx: Vec<Vec<Vec<u8>>>,
    /// Most packets one tx call accepts.
    pub tx_room: Option<usize>,
}

impl MemQueues {
    /// Queues for `n` ports.
    pub fn new(n: usize) -> Self {
        MemQueues {
            rx: vec![VecDeque::new(); n],
            tx: vec![Vec::new(); n],
            tx_room: None,
        }
    }
}

impl PortQueues for MemQueues {
    type Buf = HeapBuf;

    fn n_ports(&self) -> usize {
        self.rx.len()
    }

    fn rx(&mut self, port: usize, out: &mut TxFrame<HeapBuf>, max: usize) {
        let q = &mut self.rx[port];
        while out.len() < max && !out.is_full() {
            match q.pop_front() {
                Some(f) => out.push(HeapBuf::from_bytes(&f)),
                None => break,
            }
        }
    }

    fn tx(&mut self, port: usize, pkts: &mut TxFrame<HeapBuf>) {
        let n = self.tx_room.map_or(pkts.len(), |r| r.min(pkts.len()));
        self.tx[port].extend(pkts.drain(..n).map(|b| b.data().to_vec()));
    }

    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<HeapBuf> {
        Some(HeapBuf::from_bytes(bytes))
    }
}
