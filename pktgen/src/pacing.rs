//! TSC-based pacing: how many units (packets, or bits for a bit rate) a tx core may send by
//! now, computed from the start time so rounding never accumulates (`rate × elapsed −
//! spent`). A core that falls behind (descheduled, or its port full) may catch up by at most
//! `max_backlog` units; anything older is given up and counted as late, so a stall never
//! turns into a long line-rate burst.

/// Pacing state of one tx core. Pure arithmetic on TSC values; no clock is read here.
#[derive(Debug, Clone)]
pub struct Pacer {
    hz: u64,
    /// Units per second × 1000 (millunits, so fractional packet rates work).
    milli_per_sec: u128,
    start: u64,
    spent: u128,
    max_backlog: u64,
    late: u64,
}

impl Pacer {
    /// A pacer for `per_sec` units per second at TSC frequency `hz`, starting at TSC `start`.
    pub fn new(hz: u64, per_sec: f64, start: u64, max_backlog: u64) -> Pacer {
        Pacer {
            hz: hz.max(1),
            milli_per_sec: (per_sec * 1000.0).round().max(1.0) as u128,
            start,
            spent: 0,
            max_backlog: max_backlog.max(1),
            late: 0,
        }
    }

    /// Units allowed by TSC `now` (all of it since the start).
    pub fn target(&self, now: u64) -> u128 {
        u128::from(now.saturating_sub(self.start)) * self.milli_per_sec
            / (u128::from(self.hz) * 1000)
    }

    /// Units that may be sent now; a backlog beyond `max_backlog` is dropped and counted in
    /// [`Pacer::late`].
    pub fn available(&mut self, now: u64) -> u64 {
        let due = self.target(now).saturating_sub(self.spent);
        let max = u128::from(self.max_backlog);
        if due > max {
            let skipped = due - max;
            self.spent += skipped;
            self.late += u64::try_from(skipped).unwrap_or(u64::MAX);
            return self.max_backlog;
        }
        due as u64
    }

    /// Records `units` sent (or built for sending).
    pub fn spend(&mut self, units: u64) {
        self.spent += u128::from(units);
    }

    /// Units given up because the core fell more than `max_backlog` behind.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// TSC cycles per unit (for sizing backlogs); at least 1.
    pub fn cycles_per_unit(hz: u64, per_sec: f64) -> f64 {
        (hz as f64 / per_sec).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 2_000_000_000;

    #[test]
    fn exact_rate_without_drift() {
        // 100 kpps: one packet every 20,000 cycles. Polling at odd intervals never drifts.
        let mut p = Pacer::new(HZ, 100_000.0, 1_000, 64);
        let mut sent = 0;
        let mut now = 1_000;
        while now < 1_000 + HZ {
            now += 7_777;
            let n = p.available(now).min(32);
            p.spend(n);
            sent += n;
        }
        assert!((99_999..=100_000).contains(&sent), "{sent}");
        assert_eq!(p.late(), 0);
    }

    #[test]
    fn fractional_and_bit_rates() {
        let mut p = Pacer::new(HZ, 0.5, 0, 10);
        assert_eq!(p.available(HZ), 0);
        assert_eq!(p.available(2 * HZ), 1);
        // 1 Gbps of 512-bit frames: 1,953,125 frames a second.
        let mut b = Pacer::new(HZ, 1e9, 0, 1 << 20);
        let mut frames = 0u64;
        for step in 1..=1000u64 {
            let mut avail = b.available(step * HZ / 1000);
            while avail >= 512 {
                b.spend(512);
                avail -= 512;
                frames += 1;
            }
        }
        assert!((1_953_124..=1_953_125).contains(&frames), "{frames}");
    }

    #[test]
    fn a_stall_is_capped_and_counted_late() {
        let mut p = Pacer::new(HZ, 1_000_000.0, 0, 100);
        // 10 ms stall: 10,000 packets due, only 100 may be caught up.
        assert_eq!(p.available(HZ / 100), 100);
        assert_eq!(p.late(), 9_900);
        p.spend(100);
        assert_eq!(p.available(HZ / 100), 0);
        // Back on schedule: 1 ms later, 1000 more.
        assert_eq!(p.available(HZ / 100 + HZ / 1000), 100);
        assert_eq!(p.late(), 9_900 + 900);
    }
}
