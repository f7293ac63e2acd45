//! Packet mempools: [`Mempool`] wraps `rte_pktmbuf_pool_create` and hands out [`Mbuf`]s one
//! at a time or in bulk (all or nothing, no allocation).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use arrayvec::ArrayVec;
use dpdk_sys::{rte_mbuf, rte_mempool};

use super::eal::{rte_errno, strerror, Eal, EalShared};
use crate::buf::mbuf::Mbuf;

/// Longest mempool name DPDK accepts (`RTE_MEMPOOL_NAMESIZE` less the NUL).
pub const MAX_NAME_LEN: usize = dpdk_sys::AEGIS_MEMPOOL_NAMESIZE as usize - 1;
/// Headroom DPDK reserves in front of the packet in every mbuf.
pub const HEADROOM: u16 = dpdk_sys::RTE_PKTMBUF_HEADROOM as u16;
/// DPDK's default data room: 2048 bytes of packet plus the headroom.
pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// Errors from mempool creation.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// The name is empty, too long or contains a NUL byte.
    #[error("mempool name {name:?} must be 1..={MAX_NAME_LEN} bytes without NUL")]
    BadName {
        /// The name.
        name: String,
    },
    /// The data room leaves no space after the headroom.
    #[error("mempool {name:?}: data_room {data_room} must exceed the {HEADROOM}-byte headroom")]
    DataRoomTooSmall {
        /// The pool name.
        name: String,
        /// The data room asked for.
        data_room: u16,
    },
    /// `rte_pktmbuf_pool_create` failed.
    #[error("cannot create mempool {name:?} ({n_mbufs} mbufs, cache {cache}, data room {data_room}): {message}")]
    Create {
        /// The pool name.
        name: String,
        /// Mbufs asked for.
        n_mbufs: u32,
        /// Per-lcore cache size asked for.
        cache: u32,
        /// Data room asked for.
        data_room: u16,
        /// `rte_strerror(rte_errno)`.
        message: String,
    },
}

/// State shared by a [`Mempool`] and the ports whose rx queues fill from it.
#[derive(Debug)]
pub(crate) struct PoolShared {
    ptr: NonNull<rte_mempool>,
    name: String,
    size: u32,
    data_room: u16,
    eal: Arc<EalShared>,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer; every operation through this
// pointer (get, put, counts, free in Drop) is safe from any thread.
unsafe impl Send for PoolShared {}
// SAFETY: as above; `&PoolShared` only allows thread-safe mempool operations.
unsafe impl Sync for PoolShared {}

/// A pool of packet buffers (`rte_pktmbuf_pool_create`).
///
/// Ports keep their rx pool alive, so dropping the handle early is harmless. The pool is
/// freed when its last user goes, unless mbufs from it are still out (then it is left to the
/// process exit, and the EAL is not cleaned up).
#[derive(Debug, Clone)]
pub struct Mempool {
    shared: Arc<PoolShared>,
}

impl Mempool {
    /// Creates a pool of `n_mbufs` buffers, each with `data_room` bytes (headroom included;
    /// [`DEFAULT_DATA_ROOM`] suits 1500-byte MTUs), a per-lcore cache of `cache` buffers, on
    /// NUMA `socket` (`None`: any). DPDK requires `cache <= 512` and `cache <= n_mbufs / 1.5`.
    pub fn new(
        eal: &Eal,
        name: &str,
        n_mbufs: u32,
        cache: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Mempool, MempoolError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(MempoolError::BadName { name: name.into() });
        }
        let c_name = CString::new(name).map_err(|_| MempoolError::BadName { name: name.into() })?;
        if data_room <= HEADROOM {
            return Err(MempoolError::DataRoomTooSmall {
                name: name.into(),
                data_room,
            });
        }
        let socket_id = socket.map_or(dpdk_sys::SOCKET_ID_ANY, |s| s as i32);
        // SAFETY: the EAL is initialised (`eal` exists) and `c_name` is a valid C string
        // that DPDK copies.
        let ptr = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                n_mbufs,
                cache,
                0,
                data_room,
                socket_id,
            )
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| MempoolError::Create {
            name: name.into(),
            n_mbufs,
            cache,
            data_room,
            message: strerror(rte_errno()),
        })?;
        Ok(Mempool {
            shared: Arc::new(PoolShared {
                ptr,
                name: name.to_owned(),
                size: n_mbufs,
                data_room,
                eal: eal.shared().clone(),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Number of mbufs in the pool.
    pub fn size(&self) -> u32 {
        self.shared.size
    }

    /// Data room of each mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        self.shared.data_room
    }

    /// Mbufs free in the pool (per-lcore caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive while `self` is; a read-only count.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.shared.ptr.as_ptr()) }
    }

    /// Mbufs taken from the pool and not yet returned.
    pub fn in_use(&self) -> u32 {
        // SAFETY: as in `available`.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.shared.ptr.as_ptr()) }
    }

    /// One empty mbuf (`data_len` 0, standard headroom), or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive while `self` is.
        let m = unsafe { dpdk_sys::aegis_pktmbuf_alloc(self.shared.ptr.as_ptr()) };
        // SAFETY: a non-null result is a freshly reset mbuf we now own alone.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Appends `n` empty mbufs to `out`, all or nothing: returns false, changing nothing,
    /// when the pool has fewer than `n` free or `out` has less than `n` spare capacity.
    pub fn alloc_bulk<const N: usize>(&self, out: &mut ArrayVec<Mbuf, N>, n: usize) -> bool {
        let len = out.len();
        if n > N - len {
            return false;
        }
        if n == 0 {
            return true;
        }
        // `Mbuf` is `repr(transparent)` over a non-null `*mut rte_mbuf`.
        let dst = out.as_mut_ptr().wrapping_add(len).cast::<*mut rte_mbuf>();
        // SAFETY: `dst` points to `n <= N - len` unused slots of `out`; DPDK writes `n`
        // pointers there on success and nothing it leaves behind on failure matters.
        let ret =
            unsafe { dpdk_sys::aegis_pktmbuf_alloc_bulk(self.shared.ptr.as_ptr(), dst, n as u32) };
        if ret != 0 {
            return false;
        }
        // SAFETY: the `n` slots after `len` now hold valid, non-null mbufs we own.
        unsafe { out.set_len(len + n) };
        true
    }

    /// The shared state, for ports that fill rx rings from this pool.
    pub(crate) fn shared(&self) -> &Arc<PoolShared> {
        &self.shared
    }
}

impl PoolShared {
    /// The raw pool, for queue setup.
    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for PoolShared {
    fn drop(&mut self) {
        // SAFETY: the pool is alive until freed below.
        let in_use = unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no mbuf of this pool is out and no handle (pool or port) is left, so
            // nothing can touch the pool again.
            unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
        } else {
            // Mbufs are still out (in a caller's hands or another port's rings): keep the
            // pool, and keep the EAL from being cleaned up under them.
            std::mem::forget(self.eal.clone());
        }
    }
}
