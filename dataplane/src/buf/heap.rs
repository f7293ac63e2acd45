//! A heap-allocated packet buffer with mbuf-like headroom, for unit tests, fuzzing and the
//! EAL-free pipeline benchmarks. Allocation happens only in the constructors.

use super::{BulkFree, PacketBuf};

/// Headroom reserved in front of the data, as in a DPDK mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: usize = 128;
/// Total buffer size, as in a default DPDK mbuf data room.
pub const BUF_SIZE: usize = 2048 + HEADROOM;

/// An owned packet buffer on the heap.
#[derive(Clone)]
pub struct HeapBuf {
    storage: Box<[u8]>,
    start: usize,
    end: usize,
}

impl HeapBuf {
    /// A buffer holding a copy of `bytes` after the standard headroom. Bytes beyond the
    /// buffer's capacity are cut off.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut storage = vec![0u8; BUF_SIZE.max(HEADROOM + bytes.len())].into_boxed_slice();
        let end = HEADROOM + bytes.len();
        storage[HEADROOM..end].copy_from_slice(bytes);
        HeapBuf {
            storage,
            start: HEADROOM,
            end,
        }
    }

    /// An empty buffer with the standard headroom.
    pub fn empty() -> Self {
        Self::from_bytes(&[])
    }

    /// Bytes free in front of the data.
    pub fn headroom(&self) -> usize {
        self.start
    }
}

impl std::fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeapBuf({} bytes)", self.len())
    }
}

impl PacketBuf for HeapBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if self.end + n > self.storage.len() {
            return false;
        }
        self.end += n;
        true
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
}

impl BulkFree for HeapBuf {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_and_shrink_respect_bounds() {
        let mut b = HeapBuf::from_bytes(&[1, 2, 3, 4]);
        assert_eq!(b.data(), &[1, 2, 3, 4]);
        assert!(b.adj(1));
        assert_eq!(b.data(), &[2, 3, 4]);
        assert!(b.prepend(1));
        assert_eq!(b.data(), &[1, 2, 3, 4]);
        assert!(!b.prepend(HEADROOM + 1));
        assert!(b.trim(2));
        assert_eq!(b.data(), &[1, 2]);
        assert!(!b.trim(3));
        assert!(b.append(1));
        assert_eq!(b.len(), 3);
        assert!(!b.append(BUF_SIZE));
    }
}
