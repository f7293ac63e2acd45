//! CPU memory hints for the workers' large tables: [`prefetch`] (a non-faulting cache hint,
//! so a frame's table lookups overlap instead of missing one after another) and
//! [`advise_huge_pages`] (transparent huge pages for a table's memory, so random lookups over
//! tens of megabytes do not also miss the TLB). Both are hints: ignoring them changes speed,
//! never results.
#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line holding `value` into all cache levels. Never faults,
/// never blocks: the load happens in the background while the caller goes on.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = (value as *const T).cast::<i8>();
        // SAFETY: a prefetch is only a hint; it never faults and does not dereference `p` in
        // the language's sense (and `p` points into a live reference anyway). SSE, which the
        // instruction belongs to, is part of the x86_64 baseline.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = value;
    }
}

/// Size of a transparent huge page on x86_64.
const HUGE_PAGE: usize = 2 << 20;

/// Advises the kernel to back the whole 2 MiB pages inside `memory` with transparent huge
/// pages (`madvise(MADV_HUGEPAGE)`; what the system's `madvise` THP mode needs). Call it before
/// the memory is first written, so the first faults already take huge pages. Returns whether
/// the advice was taken (false: no whole huge page inside, or the kernel refused, e.g. THP
/// disabled).
pub fn advise_huge_pages<T>(memory: &[std::mem::MaybeUninit<T>]) -> bool {
    let start = memory.as_ptr() as usize;
    let end = start + std::mem::size_of_val(memory);
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = end / HUGE_PAGE * HUGE_PAGE;
    if last <= first {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `first..last` lies inside `memory`, which this process owns (it is borrowed
        // for the call); MADV_HUGEPAGE changes how the kernel backs those pages, never their
        // contents or their mapping, so no Rust-visible memory changes.
        let rc = unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            )
        };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_is_harmless() {
        let v = [1u64, 2, 3];
        prefetch(&v[1]);
        assert_eq!(v, [1, 2, 3]);
    }

    #[test]
    fn small_memory_has_no_huge_page_to_advise() {
        let mut v: Vec<u64> = Vec::with_capacity(16);
        assert!(!advise_huge_pages(v.spare_capacity_mut()));
    }

    #[test]
    fn large_memory_is_advised_when_the_kernel_has_thp() {
        let mut v: Vec<u8> = Vec::with_capacity(8 * HUGE_PAGE);
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| !s.contains("[never]"));
        let advised = advise_huge_pages(v.spare_capacity_mut());
        assert_eq!(advised, thp, "THP available: {thp}");
        v.resize(8 * HUGE_PAGE, 7);
        assert!(v.iter().all(|&b| b == 7));
    }
}
