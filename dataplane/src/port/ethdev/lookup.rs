//! Finding ethdev ports: by port name, by the name of the device under them, and the device
//! of a port.
#![allow(unsafe_code)]

use std::ffi::CStr;

use dpdk_sys::rte_eth_dev_info;

/// Number of ethdev port ids.
pub(super) const MAX_PORTS: u16 = dpdk_sys::RTE_MAX_ETHPORTS as u16;

/// The address of the `rte_device` under port `id`, if the port exists.
pub(super) fn device_of(id: u16) -> Option<usize> {
    // SAFETY: plain validity check.
    if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
        return None;
    }
    let mut info = rte_eth_dev_info::default();
    // SAFETY: valid port; `info` is a live, writable `rte_eth_dev_info`.
    if unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) } != 0 || info.device.is_null() {
        return None;
    }
    Some(info.device as usize)
}

/// The first ethdev port whose underlying device is called `name`.
pub(super) fn port_by_device_name(name: &str) -> Option<u16> {
    (0..MAX_PORTS).find(|&id| {
        let Some(device) = device_of(id) else {
            return false;
        };
        // SAFETY: `device` is the port's live `rte_device`; its name is a NUL-terminated
        // string owned by the device.
        let dev_name = unsafe {
            CStr::from_ptr(dpdk_sys::rte_dev_name(
                device as *const dpdk_sys::rte_device,
            ))
        };
        dev_name.to_bytes() == name.as_bytes()
    })
}

/// The id of the ethdev port called `name`, if any.
pub(super) fn port_by_name(name: &CStr) -> Option<u16> {
    let mut id = 0u16;
    // SAFETY: `name` is a valid C string and `id` a live, writable u16.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(name.as_ptr(), &mut id) };
    (ret == 0).then_some(id)
}
