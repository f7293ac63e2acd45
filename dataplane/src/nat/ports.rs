//! Outside ports, partitioned per worker: worker `w` of `n` owns a contiguous slice of the
//! port range of every outside address, so a reply arriving from outside is steered to the
//! worker that owns its session by its destination port alone (no shared state, no locks),
//! and each worker allocates from its own slice.

/// Lowest port handed out (below it: well-known and registered ports stay untouched).
pub const FIRST_PORT: u16 = 1024;

/// The slice of ports one worker owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSlice {
    /// First port of the slice.
    pub first: u16,
    /// Ports in the slice.
    pub len: u16,
}

/// The slice of worker `w` of `workers` (the last one takes the remainder).
pub fn slice(w: usize, workers: usize) -> PortSlice {
    let total = u32::from(u16::MAX) - u32::from(FIRST_PORT) + 1;
    let n = workers.max(1) as u32;
    let per = total / n;
    let first = u32::from(FIRST_PORT) + per * w as u32;
    let len = if w as u32 + 1 == n {
        total - per * w as u32
    } else {
        per
    };
    PortSlice {
        first: first as u16,
        len: len.min(u32::from(u16::MAX)) as u16,
    }
}

/// The worker that owns outside `port`, or `None` below [`FIRST_PORT`].
#[inline]
pub fn owner(port: u16, workers: usize) -> Option<usize> {
    if port < FIRST_PORT {
        return None;
    }
    let total = u32::from(u16::MAX) - u32::from(FIRST_PORT) + 1;
    let n = workers.max(1) as u32;
    let per = total / n;
    let w = (u32::from(port) - u32::from(FIRST_PORT)) / per;
    Some(w.min(n - 1) as usize)
}

impl PortSlice {
    /// The `i`-th port of the slice (wrapping).
    #[inline]
    pub fn nth(&self, i: u32) -> u16 {
        self.first + (i % u32::from(self.len)) as u16
    }

    /// True if `port` is in the slice.
    pub fn contains(&self, port: u16) -> bool {
        port >= self.first && u32::from(port) < u32::from(self.first) + u32::from(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_range_once_and_owner_agrees() {
        for workers in [1usize, 2, 3, 4, 7] {
            let mut covered = 0u32;
            for w in 0..workers {
                let s = slice(w, workers);
                covered += u32::from(s.len);
                for p in [s.first, s.nth(u32::from(s.len) - 1), s.nth(12345)] {
                    assert!(s.contains(p));
                    assert_eq!(owner(p, workers), Some(w), "port {p} of {workers}");
                }
            }
            assert_eq!(covered, 65536 - 1024, "{workers} workers");
        }
        assert_eq!(owner(80, 2), None);
    }
}
