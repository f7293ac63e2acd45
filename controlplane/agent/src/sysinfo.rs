//! Host samples for the agents' heartbeats: CPU and memory use from `/proc/stat` and
//! `/proc/meminfo`, and the link state of a kernel interface (via rtnetlink).
//!
//! The parsers are pure functions over the files' text ([`parse_proc_stat`],
//! [`parse_meminfo`]); they return errors naming the file and never panic.

use std::fs;
use std::io;
use std::path::PathBuf;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, State};

/// Where the kernel's CPU counters are.
const PROC_STAT: &str = "/proc/stat";
/// Where the kernel's memory figures are.
const PROC_MEMINFO: &str = "/proc/meminfo";
/// errno: no such device (an unknown interface name).
const ENODEV: i32 = 19;
/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// Why a host sample or a link state could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A `/proc` file could not be read.
    #[error("cannot read {}: {cause}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        cause: io::Error,
    },
    /// A `/proc` file's text is not what the kernel writes.
    #[error("{file}: {reason}")]
    Parse {
        /// The file ("/proc/stat" or "/proc/meminfo").
        file: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The interface's link state could not be queried over rtnetlink.
    #[error("cannot query the link state of {interface}: {detail}")]
    Link {
        /// The interface.
        interface: String,
        /// What failed.
        detail: String,
    },
}

/// One host sample, as sent in heartbeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSample {
    /// Percentage (0..=100) of CPU time, over all CPUs, that was not idle or waiting for
    /// I/O since the previous sample (since boot for the first one).
    pub cpu_percent: f64,
    /// Percentage (0..=100) of memory in use: (MemTotal - MemAvailable) / MemTotal.
    pub memory_percent: f64,
    /// MemTotal in bytes.
    pub memory_total_bytes: u64,
    /// MemAvailable in bytes.
    pub memory_available_bytes: u64,
}

/// The aggregate CPU counters of `/proc/stat` (the `cpu ` line), in USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq + steal (guest time is included in user).
    pub busy: u64,
    /// idle + iowait.
    pub idle: u64,
}

/// The memory figures of `/proc/meminfo` that a sample uses, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// MemTotal.
    pub total_bytes: u64,
    /// MemAvailable (on kernels without it, MemFree + Buffers + Cached).
    pub available_bytes: u64,
}

/// CPU and memory use of this host, from /proc.
#[derive(Debug, Clone)]
pub struct HostSampler {
    /// The counters of the previous sample (zero before the first, so it measures since
    /// boot).
    previous: CpuTimes,
    stat_path: PathBuf,
    meminfo_path: PathBuf,
}

impl Default for HostSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl HostSampler {
    /// A sampler reading `/proc/stat` and `/proc/meminfo`.
    pub fn new() -> Self {
        HostSampler {
            previous: CpuTimes::default(),
            stat_path: PathBuf::from(PROC_STAT),
            meminfo_path: PathBuf::from(PROC_MEMINFO),
        }
    }

    /// CPU % busy (all CPUs, since the previous call; the first call measures since boot),
    /// memory % used ((MemTotal - MemAvailable) / MemTotal), and the totals.
    pub fn sample(&mut self) -> Result<HostSample, SampleError> {
        let stat = read(&self.stat_path)?;
        let meminfo = read(&self.meminfo_path)?;
        self.sample_text(&stat, &meminfo)
    }

    /// [`HostSampler::sample`] over the files' text.
    fn sample_text(&mut self, stat: &str, meminfo: &str) -> Result<HostSample, SampleError> {
        let cpu = parse_proc_stat(stat)?;
        let memory = parse_meminfo(meminfo)?;
        let cpu_percent = cpu_percent(self.previous, cpu);
        self.previous = cpu;
        let used = memory.total_bytes.saturating_sub(memory.available_bytes);
        Ok(HostSample {
            cpu_percent,
            memory_percent: percent(used, memory.total_bytes),
            memory_total_bytes: memory.total_bytes,
            memory_available_bytes: memory.available_bytes,
        })
    }
}

fn read(path: &PathBuf) -> Result<String, SampleError> {
    fs::read_to_string(path).map_err(|cause| SampleError::Read {
        file: path.clone(),
        cause,
    })
}

/// Busy share of the CPU time between two readings, in percent. Counters that went
/// backwards count as no time.
fn cpu_percent(previous: CpuTimes, now: CpuTimes) -> f64 {
    let busy = now.busy.saturating_sub(previous.busy);
    let idle = now.idle.saturating_sub(previous.idle);
    percent(busy, busy.saturating_add(idle))
}

/// `part / whole` in percent, clamped to 0..=100; 0 when `whole` is 0.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 / whole as f64 * 100.0).clamp(0.0, 100.0)
}

fn stat_error(reason: impl Into<String>) -> SampleError {
    SampleError::Parse {
        file: PROC_STAT,
        reason: reason.into(),
    }
}

fn meminfo_error(reason: impl Into<String>) -> SampleError {
    SampleError::Parse {
        file: PROC_MEMINFO,
        reason: reason.into(),
    }
}

/// Parses the aggregate `cpu ` line of `/proc/stat` (user nice system idle [iowait irq
/// softirq steal guest guest_nice]; at least the first four must be there).
pub fn parse_proc_stat(text: &str) -> Result<CpuTimes, SampleError> {
    const NAMES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some("cpu"))
        .ok_or_else(|| stat_error("no aggregate \"cpu\" line"))?;
    let mut values = [0u64; 8];
    let mut count = 0;
    // guest and guest_nice (fields 9 and 10) are already part of user and nice.
    for (i, field) in line
        .split_whitespace()
        .skip(1)
        .take(NAMES.len())
        .enumerate()
    {
        values[i] = field.parse().map_err(|_| {
            stat_error(format!(
                "the {} field of the cpu line is not a counter: {field:?}",
                NAMES[i]
            ))
        })?;
        count = i + 1;
    }
    if count < 4 {
        return Err(stat_error(format!(
            "the cpu line has {count} counters, expected at least 4"
        )));
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values;
    let busy = [user, nice, system, irq, softirq, steal]
        .iter()
        .try_fold(0u64, |sum, v| sum.checked_add(*v))
        .ok_or_else(|| stat_error("the cpu counters overflow"))?;
    let idle = idle
        .checked_add(iowait)
        .ok_or_else(|| stat_error("the cpu counters overflow"))?;
    Ok(CpuTimes { busy, idle })
}

/// Parses MemTotal and MemAvailable of `/proc/meminfo` (values in kB). Without
/// MemAvailable (kernels before 3.14) the available memory is MemFree + Buffers + Cached.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, SampleError> {
    let mut total = None;
    let mut available = None;
    let mut free = None;
    let mut buffers = None;
    let mut cached = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "MemFree" => &mut free,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            _ => continue,
        };
        *slot = Some(meminfo_bytes(key.trim(), value)?);
    }
    let total = total.ok_or_else(|| meminfo_error("no MemTotal line"))?;
    if total == 0 {
        return Err(meminfo_error("MemTotal is 0"));
    }
    let available = match (available, free, buffers, cached) {
        (Some(available), ..) => available,
        (None, Some(free), Some(buffers), Some(cached)) => {
            free.saturating_add(buffers).saturating_add(cached)
        }
        _ => {
            return Err(meminfo_error(
                "no MemAvailable line (nor MemFree, Buffers and Cached)",
            ))
        }
    };
    Ok(MemInfo {
        total_bytes: total,
        available_bytes: available.min(total),
    })
}

/// The value of a meminfo line ("   16307740 kB") in bytes.
fn meminfo_bytes(key: &str, value: &str) -> Result<u64, SampleError> {
    let mut parts = value.split_whitespace();
    let number = parts.next().unwrap_or("");
    let unit = parts.next();
    let bad = || meminfo_error(format!("{key} is not a size in kB: {:?}", value.trim()));
    let number: u64 = number.parse().map_err(|_| bad())?;
    match unit {
        Some("kB") => number.checked_mul(1024).ok_or_else(bad),
        None => Ok(number),
        Some(_) => Err(bad()),
    }
}

/// Link state of a kernel interface: Up, Down, or Missing (no such interface in the
/// caller's network namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Operationally up: operstate "up", or "unknown" (loopback, tun) while
    /// administratively up with carrier.
    Up,
    /// Any other state (admin down, no carrier, dormant, ...).
    Down,
    /// No interface of that name.
    Missing,
}

/// The link state of `interface`, queried over rtnetlink (operstate, carrier and the
/// IFF_UP flag, as `/sys/class/net/IF/{operstate,carrier}` show them), in the network
/// namespace of the calling thread (unlike `/sys`, which shows the namespace sysfs was
/// mounted in). Must be called within a tokio runtime with IO enabled.
pub async fn link_state(interface: &str) -> Result<LinkState, SampleError> {
    if interface.is_empty() || interface.len() > MAX_IFNAME_LEN || interface.contains('/') {
        return Ok(LinkState::Missing);
    }
    let link_error = |detail: String| SampleError::Link {
        interface: interface.to_string(),
        detail,
    };
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| link_error("must be called from within a tokio runtime".into()))?;
    let (connection, handle, _messages) = rtnetlink::new_connection()
        .map_err(|e| link_error(format!("cannot open a netlink socket: {e}")))?;
    let task = runtime.spawn(connection);
    let reply = handle
        .link()
        .get()
        .match_name(interface)
        .execute()
        .try_next()
        .await;
    task.abort();
    let message = match reply {
        Ok(Some(message)) => message,
        Ok(None) => return Ok(LinkState::Missing),
        Err(rtnetlink::Error::NetlinkError(e))
            if e.code.map(|code| code.get().abs()) == Some(ENODEV) =>
        {
            return Ok(LinkState::Missing)
        }
        Err(e) => return Err(link_error(e.to_string())),
    };
    let mut operstate = State::Unknown;
    let mut carrier = false;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::OperState(state) => operstate = *state,
            LinkAttribute::Carrier(c) => carrier = *c != 0,
            _ => {}
        }
    }
    let admin_up = message.header.flags.contains(LinkFlags::Up);
    Ok(classify(operstate, carrier, admin_up))
}

/// The rule of [`link_state`]: "up" is Up; "unknown" with carrier on an administratively up
/// interface is Up; anything else is Down.
fn classify(operstate: State, carrier: bool, admin_up: bool) -> LinkState {
    match operstate {
        State::Up => LinkState::Up,
        State::Unknown if carrier && admin_up => LinkState::Up,
        _ => LinkState::Down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/stat of a 4-CPU host (kernel 6.x), trimmed of the long intr line.
    const PROC_STAT_SAMPLE: &str = "\
cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0
cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0
cpu1 1335370 28842 418788 11115432 3566 0 2536 0 28429 0
cpu2 3861740 115364 1059447 11165322 3779 0 2537 0 61523 0
cpu3 3541763 113524 1034428 11204437 3208 0 2247 0 61743 0
intr 1462898 23 9 0 0 0 0 0 0 1 0 0 0 0 0 0 0
ctxt 115315
btime 1565142774
processes 3060
procs_running 1
procs_blocked 0
softirq 229245889 94 60001584 13619 5175704 2471304 28 51212741 59130143 0 51240672
";

    /// /proc/meminfo of a 16 GiB host (kernel 6.x), first lines and a few later ones.
    const MEMINFO_SAMPLE: &str = "\
MemTotal:       16307740 kB
MemFree:         1290368 kB
MemAvailable:   10093544 kB
Buffers:          571720 kB
Cached:          8361640 kB
SwapCached:            0 kB
Active:          7712332 kB
Inactive:        5734976 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
Dirty:              1284 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
DirectMap1G:    10485760 kB
";

    #[test]
    fn parses_proc_stat() {
        let cpu = parse_proc_stat(PROC_STAT_SAMPLE).unwrap();
        // user nice system irq softirq steal
        assert_eq!(cpu.busy, 10132153 + 290696 + 3084719 + 25195);
        // idle iowait
        assert_eq!(cpu.idle, 46828483 + 16683);
    }

    #[test]
    fn parses_old_four_field_cpu_line() {
        let cpu = parse_proc_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(cpu, CpuTimes { busy: 6, idle: 4 });
    }

    #[test]
    fn proc_stat_errors_name_file_and_problem() {
        let e = parse_proc_stat("cpu0 1 2 3 4\nctxt 5\n").unwrap_err();
        assert_eq!(e.to_string(), "/proc/stat: no aggregate \"cpu\" line");
        let e = parse_proc_stat("cpu 1 2 x 4\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/proc/stat: the system field of the cpu line is not a counter: \"x\""
        );
        let e = parse_proc_stat("cpu 1 2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/proc/stat: the cpu line has 2 counters, expected at least 4"
        );
        let max = u64::MAX;
        assert!(parse_proc_stat(&format!("cpu {max} {max} 0 0\n")).is_err());
        assert!(parse_proc_stat("").is_err());
        assert!(parse_proc_stat("cpu -1 0 0 0\n").is_err());
    }

    #[test]
    fn parses_meminfo() {
        let m = parse_meminfo(MEMINFO_SAMPLE).unwrap();
        assert_eq!(m.total_bytes, 16307740 * 1024);
        assert_eq!(m.available_bytes, 10093544 * 1024);
    }

    #[test]
    fn meminfo_without_memavailable_falls_back() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.available_bytes, 420 * 1024);
    }

    #[test]
    fn meminfo_errors_name_file_and_problem() {
        let e = parse_meminfo("MemFree: 5 kB\n").unwrap_err();
        assert_eq!(e.to_string(), "/proc/meminfo: no MemTotal line");
        let e = parse_meminfo("MemTotal: lots kB\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/proc/meminfo: MemTotal is not a size in kB: \"lots kB\""
        );
        let e = parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n").unwrap_err();
        assert_eq!(e.to_string(), "/proc/meminfo: MemTotal is 0");
        let e = parse_meminfo("MemTotal: 10 kB\n").unwrap_err();
        assert!(e.to_string().contains("no MemAvailable"), "{e}");
        assert!(parse_meminfo("MemTotal: 10 MB\nMemAvailable: 1 kB\n").is_err());
        assert!(parse_meminfo(&format!("MemTotal: {} kB\n", u64::MAX)).is_err());
        assert!(parse_meminfo("").is_err());
        assert!(parse_meminfo(":::\n\u{0}\nMemTotal:\n").is_err());
    }

    #[test]
    fn available_is_capped_at_total() {
        let m = parse_meminfo("MemTotal: 10 kB\nMemAvailable: 20 kB\n").unwrap();
        assert_eq!(m.available_bytes, m.total_bytes);
    }

    #[test]
    fn sample_measures_since_previous_call() {
        let mut sampler = HostSampler::new();
        // First sample: since boot. busy 25, idle 75 -> 25 %.
        let first = sampler
            .sample_text(
                "cpu 10 0 10 70 5 0 5 0 0 0\n",
                "MemTotal: 1000 kB\nMemAvailable: 250 kB\n",
            )
            .unwrap();
        assert!((first.cpu_percent - 25.0).abs() < 1e-9, "{first:?}");
        assert!((first.memory_percent - 75.0).abs() < 1e-9, "{first:?}");
        assert_eq!(first.memory_total_bytes, 1_024_000);
        assert_eq!(first.memory_available_bytes, 256_000);
        // Then: +60 busy, +40 idle -> 60 %.
        let second = sampler
            .sample_text(
                "cpu 50 0 30 110 5 0 5 0 0 0\n",
                "MemTotal: 1000 kB\nMemAvailable: 1000 kB\n",
            )
            .unwrap();
        assert!((second.cpu_percent - 60.0).abs() < 1e-9, "{second:?}");
        assert_eq!(second.memory_percent, 0.0);
        // No time passed: 0 %, not NaN.
        let third = sampler
            .sample_text(
                "cpu 50 0 30 110 5 0 5 0 0 0\n",
                "MemTotal: 1000 kB\nMemAvailable: 1000 kB\n",
            )
            .unwrap();
        assert_eq!(third.cpu_percent, 0.0);
        // Counters going backwards do not produce nonsense.
        let fourth = sampler
            .sample_text(
                "cpu 40 0 30 100 0 0 5 0 0 0\n",
                "MemTotal: 1000 kB\nMemAvailable: 1000 kB\n",
            )
            .unwrap();
        assert!((0.0..=100.0).contains(&fourth.cpu_percent), "{fourth:?}");
        // A bad file leaves the previous counters alone.
        assert!(sampler.sample_text("garbage", "MemTotal: 1 kB\n").is_err());
    }

    #[test]
    fn samples_this_host() {
        let mut sampler = HostSampler::new();
        let sample = sampler.sample().unwrap();
        assert!((0.0..=100.0).contains(&sample.cpu_percent), "{sample:?}");
        assert!((0.0..=100.0).contains(&sample.memory_percent), "{sample:?}");
        assert!(sample.memory_total_bytes > 0);
        assert!(sample.memory_available_bytes <= sample.memory_total_bytes);
        let again = sampler.sample().unwrap();
        assert!((0.0..=100.0).contains(&again.cpu_percent), "{again:?}");
    }

    #[test]
    fn missing_file_error_names_it() {
        let mut sampler = HostSampler::new();
        sampler.stat_path = PathBuf::from("/nonexistent/aegis/stat");
        let e = sampler.sample().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/aegis/stat: "),
            "{e}"
        );
    }

    #[test]
    fn classify_follows_sysfs_rules() {
        assert_eq!(classify(State::Up, true, true), LinkState::Up);
        assert_eq!(classify(State::Unknown, true, true), LinkState::Up);
        assert_eq!(classify(State::Unknown, false, true), LinkState::Down);
        assert_eq!(classify(State::Unknown, true, false), LinkState::Down);
        assert_eq!(classify(State::Down, false, true), LinkState::Down);
        assert_eq!(
            classify(State::LowerLayerDown, false, true),
            LinkState::Down
        );
        assert_eq!(classify(State::Dormant, true, true), LinkState::Down);
    }

    #[tokio::test]
    async fn loopback_exists_and_nonsense_is_missing() {
        // Every network namespace has lo; it is up in the one the tests run in.
        let lo = link_state("lo").await.unwrap();
        assert!(matches!(lo, LinkState::Up | LinkState::Down), "{lo:?}");
        assert_eq!(link_state("aegis-nope0").await.unwrap(), LinkState::Missing);
        assert_eq!(link_state("").await.unwrap(), LinkState::Missing);
        assert_eq!(
            link_state("a-name-far-too-long-for-linux").await.unwrap(),
            LinkState::Missing
        );
    }
}
