//! [`Mbuf`]: an owned DPDK `rte_mbuf` implementing [`PacketBuf`] and [`BulkFree`]. This file
//! and `port/` are the only places in the crate that touch the bindings.
//!
//! The packet window is read and written straight from the `rte_mbuf` fields (`buf_addr`,
//! `data_off`, `data_len`, `pkt_len`), so every [`PacketBuf`] method is a few loads and
//! stores, inlined, with no FFI call.
//!
//! **Single segment only.** Ports are configured without scatter and with an MTU that fits
//! one mbuf (see `port::ethdev`), so received packets are never chained. The
//! [`PacketBuf`] methods look at the first segment only: on a chained mbuf `data()` would show
//! the first segment's bytes, and `prepend`/`adj`/`append`/`trim` keep `pkt_len` in step with
//! the first segment's `data_len`, as DPDK's own `rte_pktmbuf_prepend`/`adj` do. Freeing is
//! always correct for chains (DPDK walks the segments).
#![allow(unsafe_code)]

use core::ptr::NonNull;

use dpdk_sys::rte_mbuf;

use super::{BulkFree, PacketBuf};

/// Mbufs handed to `rte_pktmbuf_free_bulk` per call by [`BulkFree::free_bulk`] (a stack array).
const FREE_CHUNK: usize = 64;

/// An owned, single-segment DPDK packet buffer. Dropping it returns it to its mempool.
///
/// `repr(transparent)` over a non-null `rte_mbuf` pointer: a `[Mbuf]` has the layout of the
/// `struct rte_mbuf *[]` that `rte_eth_rx_burst`/`rte_eth_tx_burst` take, which is what lets
/// `port::RxQueue`/`port::TxQueue` burst straight into and out of an `ArrayVec<Mbuf, N>`.
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an `Mbuf` is the only handle to its `rte_mbuf` (reference count 1, nobody else
// holds the pointer), so moving it to another thread moves exclusive ownership; DPDK mempools
// are multi-producer/multi-consumer, so it may be freed from any thread.
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only reads the mbuf's fields and bytes; there is no interior mutability.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf (e.g. one a PMD returned from a burst).
    ///
    /// # Safety
    /// `ptr` must point to a valid, initialised `rte_mbuf` from a live mempool that nothing
    /// else owns or will free (reference count 1, no other copy of the pointer used again),
    /// with `data_off + data_len <= buf_len`.
    #[inline]
    pub unsafe fn from_raw(ptr: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf(ptr)
    }

    /// Gives up ownership: the caller must hand the pointer to DPDK (e.g. a tx burst) or turn
    /// it back into an `Mbuf` with [`Mbuf::from_raw`], or the buffer leaks.
    #[inline]
    pub fn into_raw(self) -> NonNull<rte_mbuf> {
        let ptr = self.0;
        core::mem::forget(self);
        ptr
    }

    /// The raw pointer, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut rte_mbuf {
        self.0.as_ptr()
    }

    /// `rte_mbuf.port`: the rx port where the PMD sets it. Not every PMD does (net_ring
    /// leaves `u16::MAX`), so the worker should take the port from its rx queue instead.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Number of segments; always 1 for packets Aegis receives (see the module docs).
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Bytes free in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    /// Bytes free behind the data in this segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    /// Appends a copy of `bytes` at the back. Returns false, changing nothing, when the
    /// tailroom is short.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        let old = self.len();
        if !self.append(bytes.len()) {
            return false;
        }
        self.data_mut()[old..].copy_from_slice(bytes);
        true
    }

    #[inline]
    fn raw(&self) -> &rte_mbuf {
        // SAFETY: `self.0` is valid for the lifetime of `self` (constructor contract) and we
        // own it exclusively, so a shared borrow tied to `&self` cannot alias a mutable one.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: as in `raw`, and `&mut self` guarantees exclusivity.
        unsafe { self.0.as_mut() }
    }

    /// Start of the packet data.
    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        let m = self.raw();
        // `wrapping_add` keeps this safe; the offset is in bounds by the mbuf invariant.
        m.buf_addr
            .cast::<u8>()
            .wrapping_add(usize::from(m.data_off))
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let len = usize::from(self.raw().data_len);
        // SAFETY: `buf_addr` points to `buf_len` bytes of mbuf data room owned by this mbuf,
        // and `data_off + data_len <= buf_len` holds (DPDK sets it; every method here keeps
        // it). The bytes live in DPDK memory that stays mapped while the mbuf exists, and the
        // borrow is tied to `&self`.
        unsafe { core::slice::from_raw_parts(self.data_ptr(), len) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.raw().data_len);
        // SAFETY: as in `data`; `&mut self` makes the borrow exclusive, and an owned mbuf has
        // reference count 1, so no other buffer shares these bytes.
        unsafe { core::slice::from_raw_parts_mut(self.data_ptr(), len) }
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > usize::from(m.data_off) {
            return false;
        }
        // n <= data_off <= u16::MAX, and data_off + data_len stays the same, so neither
        // field can overflow.
        let n16 = n as u16;
        m.data_off -= n16;
        m.data_len += n16;
        m.pkt_len += u32::from(n16);
        true
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > usize::from(m.data_len) {
            return false;
        }
        let n16 = n as u16;
        m.data_off += n16;
        m.data_len -= n16;
        m.pkt_len -= u32::from(n16);
        true
    }

    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        let m = self.raw_mut();
        // n <= tailroom < buf_len <= u16::MAX.
        let n16 = n as u16;
        m.data_len += n16;
        m.pkt_len += u32::from(n16);
        true
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > usize::from(m.data_len) {
            return false;
        }
        let n16 = n as u16;
        m.data_len -= n16;
        m.pkt_len -= u32::from(n16);
        true
    }

    #[inline]
    fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch is only a hint; it never faults or reads memory visibly,
            // whatever the address. SSE is part of the x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(self.data_ptr().cast::<i8>().cast_const()) };
        }
    }
}

impl BulkFree for Mbuf {
    /// Returns the buffers to their mempools with `rte_pktmbuf_free_bulk`, 64 per call,
    /// collecting the pointers in a stack array (no allocation).
    fn free_bulk(bufs: impl Iterator<Item = Self>) {
        let mut chunk = [core::ptr::null_mut::<rte_mbuf>(); FREE_CHUNK];
        let mut n = 0;
        for buf in bufs {
            chunk[n] = buf.into_raw().as_ptr();
            n += 1;
            if n == FREE_CHUNK {
                free_raw(&mut chunk[..n]);
                n = 0;
            }
        }
        if n > 0 {
            free_raw(&mut chunk[..n]);
        }
    }
}

/// Frees owned raw mbufs (taken from `Mbuf::into_raw`) in one call.
fn free_raw(ptrs: &mut [*mut rte_mbuf]) {
    // SAFETY: every pointer came from `Mbuf::into_raw`, so each is a valid mbuf we own and
    // nothing uses again; `ptrs.len() <= FREE_CHUNK` fits the `unsigned int` count.
    unsafe { dpdk_sys::rte_pktmbuf_free_bulk(ptrs.as_mut_ptr(), ptrs.len() as u32) };
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (constructor contract) and it is never used after drop;
        // `rte_pktmbuf_free` returns every segment to its pool.
        unsafe { dpdk_sys::aegis_pktmbuf_free(self.0.as_ptr()) };
    }
}

impl core::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Mbuf({} bytes, headroom {}, port {})",
            self.len(),
            self.headroom(),
            self.port()
        )
    }
}
