//! Per-queue burst handles: [`RxQueue`] receives into, and [`TxQueue`] sends from, an
//! `ArrayVec<Mbuf, N>` with no allocation and no copy of the pointers.
//!
//! A handle is the only way to burst on its queue and is not `Clone`, so each queue is
//! driven by one thread at a time, as DPDK requires. Handles may move to worker lcores.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::sync::Arc;

use arrayvec::ArrayVec;
use dpdk_sys::rte_mbuf;

use super::ethdev::PortShared;
use crate::buf::mbuf::Mbuf;

/// Receive side of one queue of a port.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    shared: Arc<PortShared>,
}

/// Transmit side of one queue of a port.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    shared: Arc<PortShared>,
}

impl RxQueue {
    pub(crate) fn new(shared: Arc<PortShared>, queue: u16) -> RxQueue {
        RxQueue {
            port: shared.id(),
            queue,
            shared,
        }
    }

    /// The port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives up to `max` packets (and no more than `out`'s spare capacity), appending them
    /// to `out`. Returns how many arrived. A stopped port returns 0.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, out: &mut ArrayVec<Mbuf, N>, max: usize) -> usize {
        let len = out.len();
        let n = max.min(N - len).min(usize::from(u16::MAX));
        if n == 0 {
            return 0;
        }
        // `Mbuf` is `repr(transparent)` over a non-null `*mut rte_mbuf`.
        let dst = out.as_mut_ptr().wrapping_add(len).cast::<*mut rte_mbuf>();
        // SAFETY: `dst` points to `n` unused slots of `out`; the PMD writes at most `n`
        // pointers; this handle is the only user of the queue, which exists (handles are
        // made only for configured queues) on a port kept open by `self.shared`.
        let got = unsafe { dpdk_sys::aegis_rx_burst(self.port, self.queue, dst, n as u16) };
        let got = usize::from(got).min(n);
        // SAFETY: the PMD filled the first `got` slots after `len` with valid, non-null
        // mbufs whose ownership passes to us.
        unsafe { out.set_len(len + got) };
        got
    }

    /// Receives up to `out.len()` packets into the front of `out`; returns how many, `k`.
    /// Exactly `out[..k]` are initialised afterwards and owned by the caller (who must
    /// `assume_init_read` each once, e.g. through [`Mbuf`]'s drop, or leak them).
    #[inline]
    pub fn rx_burst_uninit(&mut self, out: &mut [MaybeUninit<Mbuf>]) -> usize {
        let n = out.len().min(usize::from(u16::MAX));
        let dst = out.as_mut_ptr().cast::<*mut rte_mbuf>();
        // SAFETY: as in `rx_burst`: `dst` has room for `n` pointers and the queue is ours.
        let got = unsafe { dpdk_sys::aegis_rx_burst(self.port, self.queue, dst, n as u16) };
        usize::from(got).min(n)
    }
}

impl TxQueue {
    pub(crate) fn new(shared: Arc<PortShared>, queue: u16) -> TxQueue {
        TxQueue {
            port: shared.id(),
            queue,
            shared,
        }
    }

    /// The port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Sends packets from the front of `pkts`; returns how many the driver took. Sent
    /// packets leave `pkts`; the unsent ones stay in it, in order, at the front, still owned
    /// by the caller (to retry, or to count as drops and free).
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, pkts: &mut ArrayVec<Mbuf, N>) -> usize {
        let len = pkts.len();
        let n = len.min(usize::from(u16::MAX));
        if n == 0 {
            return 0;
        }
        let base = pkts.as_mut_ptr().cast::<*mut rte_mbuf>();
        // SAFETY: `base` points to `n` initialised mbuf pointers owned by `pkts`; this
        // handle is the only user of the queue, on a port kept open by `self.shared`.
        let sent = unsafe { dpdk_sys::aegis_tx_burst(self.port, self.queue, base, n as u16) };
        let sent = usize::from(sent).min(n);
        if sent > 0 {
            // SAFETY: the driver now owns `pkts[..sent]`: forget them by moving the
            // `len - sent` unsent pointers over them (regions may overlap, so `copy`) and
            // shortening the vector. Every remaining element is an owned, valid `Mbuf`.
            unsafe {
                std::ptr::copy(pkts.as_ptr().add(sent), pkts.as_mut_ptr(), len - sent);
                pkts.set_len(len - sent);
            }
        }
        sent
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.shared.release_queue(true, self.queue);
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.shared.release_queue(false, self.queue);
    }
}
