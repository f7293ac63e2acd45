//! Packet buffers: the [`PacketBuf`] trait every graph node is generic over, with two
//! implementations — [`heap::HeapBuf`] (unit tests, fuzzing, benchmarks without an EAL) and
//! [`mbuf::Mbuf`] (a DPDK `rte_mbuf`, the only one that touches the bindings).

pub mod heap;
pub mod mbuf;

/// A packet's bytes with room to grow at the front (headroom) and the back (tailroom).
///
/// The data window is `data()`; nodes parse and rewrite it in place. Implementations keep
/// every method O(1) and allocation-free.
pub trait PacketBuf: Sized {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Length of the packet in bytes.
    #[inline]
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True for a zero-length packet.
    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Grows the packet at the front by `n` bytes (the new bytes are uninitialised garbage
    /// the caller overwrites). Returns false, changing nothing, when headroom is short.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front. Returns false, changing nothing, if `n > len`.
    fn adj(&mut self, n: usize) -> bool;
    /// Grows the packet at the back by `n` bytes. Returns false when tailroom is short.
    fn append(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the back. Returns false, changing nothing, if `n > len`.
    fn trim(&mut self, n: usize) -> bool;
    /// Hints the CPU to fetch the packet's first cache line (no-op where meaningless).
    #[inline]
    fn prefetch(&self) {}
}

/// Frees many buffers at once. The DPDK implementation returns them to their mempool in
/// bulk; the default just drops them one by one.
pub trait BulkFree: PacketBuf {
    /// Frees every buffer yielded by `bufs`.
    fn free_bulk(bufs: impl Iterator<Item = Self>) {
        bufs.for_each(drop);
    }
}
