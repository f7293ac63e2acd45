//! Time-stamp counter helpers: [`rdtsc`] for per-node cycle accounting and [`tsc_hz`] to turn
//! cycles into time.
#![allow(unsafe_code)]

/// Reads the time-stamp counter (an inlined `rdtsc` on x86_64; DPDK's `rte_rdtsc` elsewhere).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` has no preconditions; every x86_64 CPU has it.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: `rte_rdtsc` reads a counter register; no preconditions.
        unsafe { dpdk_sys::aegis_rdtsc() }
    }
}

/// Counter frequency in Hz as the EAL measured it; 0 before the EAL is initialised.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL set at init (0 before).
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// `cycles` at `hz` in nanoseconds (0 when `hz` is 0), without overflow.
#[inline]
pub fn cycles_to_ns(cycles: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    (u128::from(cycles) * 1_000_000_000 / u128::from(hz)) as u64
}

/// `ns` nanoseconds in cycles at `hz`, saturating.
#[inline]
pub fn ns_to_cycles(ns: u64, hz: u64) -> u64 {
    let c = u128::from(ns) * u128::from(hz) / 1_000_000_000;
    u64::try_from(c).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        assert_eq!(cycles_to_ns(2_500_000_000, 2_500_000_000), 1_000_000_000);
        assert_eq!(cycles_to_ns(25, 2_500_000_000), 10);
        assert_eq!(cycles_to_ns(5, 0), 0);
        assert_eq!(ns_to_cycles(1_000, 3_000_000_000), 3_000);
        assert_eq!(ns_to_cycles(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn rdtsc_moves_forward() {
        let a = rdtsc();
        let b = rdtsc();
        assert!(b >= a);
    }
}
