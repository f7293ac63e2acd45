//! In-process port pairs over two DPDK rings (`rte_eth_from_rings`): what one port sends,
//! the other receives. For tests and labs that need a real ethdev without a device.
//!
//! `net_ring` devargs cannot make such a pair inside one process (its `ATTACH` action is
//! meant for a second process), hence this constructor.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys::rte_ring;

use super::eal::{rte_errno, strerror, Eal};
use super::ethdev::{Port, PortError};

/// Longest `name` accepted (ring names get a 3-byte suffix, DPDK allows 29 bytes).
pub const MAX_PAIR_NAME_LEN: usize = 20;

/// The two rings under a pair; freed when both ports are closed.
#[derive(Debug)]
pub(crate) struct PairRings {
    a_to_b: NonNull<rte_ring>,
    b_to_a: NonNull<rte_ring>,
}

// SAFETY: the pointers are only used to free the rings once, in `Drop`, which DPDK allows
// from any thread.
unsafe impl Send for PairRings {}
// SAFETY: `&PairRings` gives no access to the rings at all.
unsafe impl Sync for PairRings {}

/// Makes two connected ports, `net_ring_<name>_a` and `net_ring_<name>_b`, each with one rx
/// and one tx queue: packets sent on one are received on the other, in order, up to
/// `ring_size - 1` in flight per direction (`ring_size` a power of two).
pub fn ring_pair(eal: &Eal, name: &str, ring_size: u32) -> Result<(Port, Port), PortError> {
    let bad = |reason: String| PortError::BadConfig {
        name: name.to_owned(),
        field: "ring pair",
        value: ring_size.into(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_PAIR_NAME_LEN || name.contains('\0') {
        return Err(bad(format!(
            "name must be 1..={MAX_PAIR_NAME_LEN} bytes without NUL"
        )));
    }
    if !ring_size.is_power_of_two() || ring_size < 2 {
        return Err(bad("ring_size must be a power of two >= 2".into()));
    }
    let a_to_b = create_ring(&format!("{name}_ab"), ring_size)?;
    let b_to_a = match create_ring(&format!("{name}_ba"), ring_size) {
        Ok(r) => r,
        Err(e) => {
            // SAFETY: created just above and not used by anything yet.
            unsafe { dpdk_sys::rte_ring_free(a_to_b.as_ptr()) };
            return Err(e);
        }
    };
    // From here on the rings are freed when `rings` goes (after both ports close).
    let rings = Arc::new(PairRings { a_to_b, b_to_a });
    let a = from_rings(eal, &format!("{name}_a"), b_to_a, a_to_b, &rings)?;
    let b = from_rings(eal, &format!("{name}_b"), a_to_b, b_to_a, &rings)?;
    Ok((a, b))
}

fn create_ring(name: &str, size: u32) -> Result<NonNull<rte_ring>, PortError> {
    let c_name = CString::new(name).unwrap_or_default();
    // SAFETY: the EAL is initialised (the caller holds an `Eal`); DPDK copies the name.
    let ring = unsafe {
        dpdk_sys::rte_ring_create(
            c_name.as_ptr(),
            size,
            dpdk_sys::SOCKET_ID_ANY,
            dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ,
        )
    };
    NonNull::new(ring).ok_or_else(|| PortError::Dpdk {
        name: name.to_owned(),
        op: "rte_ring_create",
        message: strerror(rte_errno()),
    })
}

fn from_rings(
    eal: &Eal,
    name: &str,
    rx: NonNull<rte_ring>,
    tx: NonNull<rte_ring>,
    rings: &Arc<PairRings>,
) -> Result<Port, PortError> {
    let c_name = CString::new(name).unwrap_or_default();
    let rx_rings = [rx.as_ptr()];
    let tx_rings = [tx.as_ptr()];
    // SAFETY: valid name and one live ring per direction; the rings outlive the port (the
    // port keeps `rings`). Each ring has one producer (one tx queue) and one consumer (one
    // rx queue), matching its SP/SC flags.
    let ret = unsafe {
        dpdk_sys::rte_eth_from_rings(
            c_name.as_ptr(),
            rx_rings.as_ptr(),
            1,
            tx_rings.as_ptr(),
            1,
            dpdk_sys::SOCKET_ID_ANY as u32,
        )
    };
    let id = u16::try_from(ret).map_err(|_| PortError::Dpdk {
        name: name.to_owned(),
        op: "rte_eth_from_rings",
        message: strerror(rte_errno()),
    })?;
    Port::open_with_rings(eal, id, rings.clone())
}

impl Drop for PairRings {
    fn drop(&mut self) {
        // SAFETY: both ports using the rings are closed (each kept an `Arc` to us until
        // then), so nothing enqueues or dequeues any more. Mbufs still in a ring are leaked,
        // which keeps their pool (and the EAL) from being freed: safe.
        unsafe {
            dpdk_sys::rte_ring_free(self.a_to_b.as_ptr());
            dpdk_sys::rte_ring_free(self.b_to_a.as_ptr());
        }
    }
}
