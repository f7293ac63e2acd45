//! One virtual router's state machine (RFC 3768 §6.4 and RFC 5798 §6.4), with keepalived's
//! choices where the RFCs leave room: a master answers a lower-priority advertisement with
//! one of its own at once, a `state MASTER` instance claims at start-up, gratuitous ARP goes
//! out in bursts (at the transition, again after `garp_master_delay`, and every
//! `garp_master_refresh`), and tracking lowers the priority or forces FAULT.
//!
//! Sans-I/O: the caller passes time in (a [`Duration`] since any fixed origin), feeds
//! received advertisements to [`Instance::receive`], calls [`Instance::poll`] at
//! [`Instance::poll_at`], and carries out the [`Action`]s it pops, in order. A transition to
//! MASTER is popped before the advertisement and gratuitous ARP that announce it, so the
//! caller can install everything the new master needs (addresses, synced sessions) before
//! the network hears of it.

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{AuthType, Repr, Version};

/// Priority of the address owner: it claims at once and never waits.
pub const OWNER_PRIORITY: u8 = 255;
/// Priority a master sends when it stops: its backups take over after the skew time only.
pub const STOP_PRIORITY: u8 = 0;

/// A VRRP instance's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started, or shut down.
    Init,
    /// Listening to a master; takes over when it falls silent.
    Backup,
    /// Owns the virtual addresses and advertises.
    Master,
    /// A tracked interface (or a sync-group peer) failed: neither listens nor advertises.
    Fault,
}

impl State {
    /// keepalived's name for the state (`MASTER`, `BACKUP`, `FAULT`, `INIT`), as notify
    /// scripts receive it.
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The state an instance enters when started (keepalived `state MASTER|BACKUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    /// Wait one master-down interval for a master before claiming.
    Backup,
    /// Claim at once (a higher-priority master still takes over when it is heard).
    Master,
}

/// One instance's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Instance name (keepalived `vrrp_instance NAME`).
    pub name: String,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Protocol version.
    pub version: Version,
    /// Configured priority, 1..=255 (255: address owner).
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2: a multiple of 100).
    pub interval_cs: u16,
    /// Take over from a lower-priority master (keepalived default; `nopreempt` clears it).
    pub preempt: bool,
    /// After start-up, accept a lower-priority master this long before preempting it.
    pub preempt_delay: Duration,
    /// Start-up state.
    pub initial: Initial,
    /// The virtual addresses.
    pub addresses: Vec<Ipv4Addr>,
    /// Our own address on the link: the source of advertisements and the tie-break at
    /// equal priority (the higher address wins).
    pub primary: Ipv4Addr,
    /// Unicast peers; empty: the 224.0.0.18 group.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// v2 simple-text password (keepalived `auth_type PASS`), zero-padded to 8 bytes.
    pub auth_pass: Option<[u8; 8]>,
    /// Gratuitous ARPs per address in each burst (keepalived `garp_master_repeat`).
    pub garp_repeat: u32,
    /// A second burst this long after becoming master (keepalived `garp_master_delay`).
    pub garp_delay: Option<Duration>,
    /// Then one burst every this long while master (keepalived `garp_master_refresh`).
    pub garp_refresh: Option<Duration>,
    /// Send from the virtual MAC 00-00-5E-00-01-VRID (keepalived `use_vmac`).
    pub use_vmac: bool,
}

impl Config {
    /// keepalived's defaults for everything but the identity and addresses.
    pub fn new(name: &str, vrid: u8, primary: Ipv4Addr, addresses: Vec<Ipv4Addr>) -> Config {
        Config {
            name: name.to_string(),
            vrid,
            version: Version::V2,
            priority: 100,
            interval_cs: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            initial: Initial::Backup,
            addresses,
            primary,
            unicast_peers: Vec::new(),
            auth_pass: None,
            garp_repeat: 5,
            garp_delay: Some(Duration::from_secs(5)),
            garp_refresh: None,
            use_vmac: false,
        }
    }

    /// Checks what the state machine relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::Vrid);
        }
        if self.priority == 0 {
            return Err(ConfigError::Priority);
        }
        if self.addresses.is_empty() {
            return Err(ConfigError::NoAddresses);
        }
        if self.addresses.len() > crate::wire::MAX_ADDRESSES {
            return Err(ConfigError::TooManyAddresses(self.addresses.len()));
        }
        match self.version {
            Version::V2 if self.interval_cs == 0 || !self.interval_cs.is_multiple_of(100) => {
                return Err(ConfigError::Interval(
                    self.interval_cs,
                    "a whole number of seconds, 1..=255, with VRRPv2",
                ))
            }
            Version::V2 if self.interval_cs / 100 > 255 => {
                return Err(ConfigError::Interval(
                    self.interval_cs,
                    "at most 255 s with VRRPv2",
                ))
            }
            Version::V3 if self.interval_cs == 0 || self.interval_cs > 4095 => {
                return Err(ConfigError::Interval(
                    self.interval_cs,
                    "1..=4095 centiseconds with VRRPv3",
                ))
            }
            _ => {}
        }
        if self.auth_pass.is_some() && self.version == Version::V3 {
            return Err(ConfigError::AuthV3);
        }
        if self.garp_repeat == 0 {
            return Err(ConfigError::GarpRepeat);
        }
        Ok(())
    }

    /// The advertisement interval.
    pub fn interval(&self) -> Duration {
        cs(self.interval_cs)
    }
}

/// Why a [`Config`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// VRID 0.
    #[error("virtual_router_id must be 1..=255")]
    Vrid,
    /// Priority 0 (reserved for a stopping master).
    #[error("priority must be 1..=255 (0 is what a stopping master sends)")]
    Priority,
    /// No virtual address.
    #[error("an instance needs at least one virtual address")]
    NoAddresses,
    /// Over 255 addresses.
    #[error("{0} virtual addresses: an advertisement carries at most 255")]
    TooManyAddresses(usize),
    /// An interval the version cannot carry.
    #[error("advert interval {0} cs: must be {1}")]
    Interval(u16, &'static str),
    /// Authentication with v3 (RFC 5798 removed it).
    #[error("authentication is VRRPv2 only (RFC 5798 removed it)")]
    AuthV3,
    /// `garp_repeat` of 0.
    #[error("garp_master_repeat must be at least 1")]
    GarpRepeat,
    /// [`Instance::reconfigure`] with another name or VRID: another virtual router.
    #[error("the name and virtual_router_id of a running instance cannot change")]
    Identity,
}

/// Why the instance changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// [`Instance::start`].
    Startup,
    /// No advertisement for the master-down interval (or the skew after a priority-0 one).
    MasterDown,
    /// A master of higher priority (or equal priority and higher address) was heard.
    HigherPriority {
        /// Its address.
        from: Ipv4Addr,
        /// Its priority.
        priority: u8,
    },
    /// A tracked interface failed ([`Instance::set_fault`]).
    Fault,
    /// The fault cleared.
    FaultCleared,
    /// A member of the same sync group changed state.
    SyncGroup,
    /// [`Instance::shutdown`].
    Shutdown,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Startup => f.write_str("startup"),
            Cause::MasterDown => f.write_str("master down"),
            Cause::HigherPriority { from, priority } => {
                write!(f, "higher priority master {from} (priority {priority})")
            }
            Cause::Fault => f.write_str("fault"),
            Cause::FaultCleared => f.write_str("fault cleared"),
            Cause::SyncGroup => f.write_str("sync group"),
            Cause::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// What the caller must do, in the order popped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The state changed: install the addresses on MASTER, remove them otherwise, run the
    /// notify hooks.
    Transition {
        /// Before.
        from: State,
        /// After.
        to: State,
        /// Why.
        cause: Cause,
    },
    /// Send an advertisement with this priority (to the group, or to each unicast peer):
    /// [`Instance::advertisement`] builds it.
    Advertise {
        /// The priority to send (0 when stopping).
        priority: u8,
    },
    /// Send this many gratuitous ARPs for each virtual address.
    GratuitousArp {
        /// Per address.
        count: u32,
    },
}

/// Why an advertisement was not acted on (each is counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Discard {
    /// For another virtual router.
    Vrid,
    /// Another protocol version.
    Version,
    /// v2: another advertisement interval (RFC 3768 §7.1).
    Interval,
    /// The password differs, or one side has none.
    Auth,
    /// Sent from our own address (our advertisement looped back).
    Own,
    /// The instance is in INIT or FAULT.
    NotListening,
    /// A master heard a lower-priority (or lower-address) master; it re-asserted itself.
    Lower,
}

impl Discard {
    /// Every reason, in counter order.
    pub const ALL: [Discard; 7] = [
        Discard::Vrid,
        Discard::Version,
        Discard::Interval,
        Discard::Auth,
        Discard::Own,
        Discard::NotListening,
        Discard::Lower,
    ];

    /// Stable snake_case name (metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Discard::Vrid => "vrid",
            Discard::Version => "version",
            Discard::Interval => "interval_mismatch",
            Discard::Auth => "auth",
            Discard::Own => "own",
            Discard::NotListening => "not_listening",
            Discard::Lower => "lower_priority",
        }
    }
}

/// Counters of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Advertisements acted on.
    pub adverts_rx: u64,
    /// Advertisements sent (each to the group or to all unicast peers).
    pub adverts_tx: u64,
    /// Priority-0 advertisements received.
    pub priority_zero_rx: u64,
    /// Priority-0 advertisements sent.
    pub priority_zero_tx: u64,
    /// Received advertisements whose address list differs from ours (accepted; logged by
    /// keepalived too).
    pub address_mismatch: u64,
    /// Discards per [`Discard::ALL`] index.
    pub discards: [u64; 7],
    /// Times this instance became master.
    pub became_master: u64,
    /// All state changes.
    pub transitions: u64,
    /// Gratuitous ARP bursts asked for.
    pub garp_bursts: u64,
}

/// What an operator wants to see of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state.
    pub state: State,
    /// Since when (the time passed to the call that changed it).
    pub since: Duration,
    /// The priority in force (configured, adjusted by tracking).
    pub effective_priority: u8,
    /// The master last heard (address, priority), while backup.
    pub master: Option<(Ipv4Addr, u8)>,
    /// The master's advertisement interval in force (v3 backups learn it).
    pub master_interval_cs: u16,
    /// The last transition's cause.
    pub last_cause: Option<Cause>,
}

/// One virtual router.
#[derive(Debug, Clone)]
pub struct Instance {
    config: Config,
    state: State,
    since: Duration,
    last_cause: Option<Cause>,
    priority_adjust: i32,
    fault: bool,
    master_interval_cs: u16,
    master: Option<(Ipv4Addr, u8)>,
    started_at: Duration,
    master_down_at: Option<Duration>,
    advert_at: Option<Duration>,
    garp_at: Option<Duration>,
    preempt_hold: bool,
    actions: VecDeque<Action>,
    stats: Stats,
}

/// Centiseconds as a duration.
fn cs(v: u16) -> Duration {
    Duration::from_millis(u64::from(v) * 10)
}

impl Instance {
    /// A stopped instance (state INIT) for a validated `config`.
    pub fn new(config: Config) -> Result<Instance, ConfigError> {
        config.validate()?;
        Ok(Instance {
            master_interval_cs: config.interval_cs,
            config,
            state: State::Init,
            since: Duration::ZERO,
            last_cause: None,
            priority_adjust: 0,
            fault: false,
            master: None,
            started_at: Duration::ZERO,
            master_down_at: None,
            advert_at: None,
            garp_at: None,
            preempt_hold: false,
            actions: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The operator's view.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            since: self.since,
            effective_priority: self.effective_priority(),
            master: match self.state {
                State::Master => Some((self.config.primary, self.effective_priority())),
                State::Backup => self.master,
                _ => None,
            },
            master_interval_cs: self.master_interval_cs,
            last_cause: self.last_cause,
        }
    }

    /// The priority in force: the configured one plus the tracking adjustment, kept in
    /// 1..=254 (255 only for an unadjusted owner), as keepalived does.
    pub fn effective_priority(&self) -> u8 {
        if self.priority_adjust == 0 {
            return self.config.priority;
        }
        (i32::from(self.config.priority) + self.priority_adjust).clamp(1, 254) as u8
    }

    /// Skew time: (256 − priority) × master interval / 256.
    fn skew(&self) -> Duration {
        let p = u64::from(256 - u16::from(self.effective_priority()));
        Duration::from_micros(p * u64::from(self.master_interval_cs) * 10_000 / 256)
    }

    /// Master-down interval: 3 × master interval + skew, plus [`Instance::hold_delay`].
    pub fn master_down_interval(&self) -> Duration {
        cs(self.master_interval_cs) * 3 + self.skew() + self.hold_delay()
    }

    /// While preemption is held (a gateway whose replica is incomplete, or a spare), a
    /// missing master is claimed one master interval later than RFC 5798 says, so that a
    /// backup that is ready (a synced standby) claims first whatever the priorities, and
    /// its adverts arrive before this one's timer runs out. The skew spans less than one
    /// interval, so one interval is enough.
    fn hold_delay(&self) -> Duration {
        if self.preempt_hold {
            cs(self.master_interval_cs)
        } else {
            Duration::ZERO
        }
    }

    /// The next time [`Instance::poll`] has something to do.
    pub fn poll_at(&self) -> Option<Duration> {
        [self.master_down_at, self.advert_at, self.garp_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next action to carry out.
    pub fn pop_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Starts the instance: MASTER at once for the address owner, a `state MASTER`
    /// instance, or none when faulted; otherwise BACKUP for one master-down interval.
    pub fn start(&mut self, now: Duration) {
        if self.state != State::Init {
            return;
        }
        self.started_at = now;
        self.master_interval_cs = self.config.interval_cs;
        if self.fault {
            self.enter(now, State::Fault, Cause::Startup);
        } else if self.config.priority == OWNER_PRIORITY || self.config.initial == Initial::Master {
            self.become_master(now, Cause::Startup);
        } else {
            self.become_backup(now, Cause::Startup, None);
        }
    }

    /// Stops the instance: a master sends priority 0 so its backups take over after the skew
    /// time, not the whole master-down interval.
    pub fn shutdown(&mut self, now: Duration) {
        if self.state == State::Master {
            self.advertise(STOP_PRIORITY);
        }
        self.clear_timers();
        self.enter(now, State::Init, Cause::Shutdown);
    }

    /// Changes the parameters of a running instance in place, keeping its state (no
    /// transition): priority, interval, version, preemption, peers, addresses, gratuitous
    /// ARP settings. The virtual router id and the name are its identity: a change of
    /// either is refused ([`ConfigError::Identity`]); the caller replaces the instance.
    ///
    /// A MASTER advertises at once when its priority or interval changed, so that a backup
    /// that now outranks it (or that it now outranks) hears of it within one interval less;
    /// a BACKUP that has heard no master yet re-arms its master-down timer on the new
    /// interval.
    pub fn reconfigure(&mut self, now: Duration, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        if config.vrid != self.config.vrid || config.name != self.config.name {
            return Err(ConfigError::Identity);
        }
        let old = std::mem::replace(&mut self.config, config);
        let timing =
            old.interval_cs != self.config.interval_cs || old.version != self.config.version;
        match self.state {
            State::Master => {
                if timing {
                    self.master_interval_cs = self.config.interval_cs;
                }
                if timing || old.priority != self.config.priority {
                    self.advertise(self.effective_priority());
                    self.advert_at = Some(now + cs(self.config.interval_cs));
                }
            }
            State::Backup => {
                if timing && (self.master.is_none() || old.version != self.config.version) {
                    self.master_interval_cs = self.config.interval_cs;
                    self.master_down_at = Some(now + self.master_down_interval());
                }
            }
            State::Init | State::Fault => self.master_interval_cs = self.config.interval_cs,
        }
        Ok(())
    }

    /// Sets the tracking adjustment (sum of the weights of failed tracked objects).
    pub fn set_priority_adjust(&mut self, adjust: i32) {
        self.priority_adjust = adjust;
    }

    /// The tracking adjustment in force.
    pub fn priority_adjust(&self) -> i32 {
        self.priority_adjust
    }

    /// Holds preemption (the owner of the instance is not ready to take over, e.g. a
    /// gateway whose session sync has not completed its bulk resync): while held, a
    /// lower-priority master is followed as if `nopreempt` were set. A missing master is
    /// still replaced when the master-down timer runs out, one master interval later than
    /// without the hold (see `hold_delay`).
    pub fn set_preempt_hold(&mut self, hold: bool) {
        self.preempt_hold = hold;
    }

    /// Whether preemption is held ([`Instance::set_preempt_hold`]).
    pub fn preempt_held(&self) -> bool {
        self.preempt_hold
    }

    /// Enters FAULT (a master first sends priority 0) or leaves it for BACKUP.
    pub fn set_fault(&mut self, now: Duration, fault: bool) {
        if self.fault == fault {
            return;
        }
        self.fault = fault;
        match (fault, self.state) {
            (true, State::Master) => {
                self.advertise(STOP_PRIORITY);
                self.clear_timers();
                self.enter(now, State::Fault, Cause::Fault);
            }
            (true, State::Backup) => {
                self.clear_timers();
                self.enter(now, State::Fault, Cause::Fault);
            }
            (false, State::Fault) => {
                if self.config.priority == OWNER_PRIORITY {
                    self.become_master(now, Cause::FaultCleared);
                } else {
                    self.become_backup(now, Cause::FaultCleared, None);
                }
            }
            _ => {}
        }
    }

    /// True while a tracked object holds the instance in FAULT.
    pub fn faulted(&self) -> bool {
        self.fault
    }

    /// Moves to `to` because a sync-group peer did (no-op if already there, or for INIT).
    pub fn follow(&mut self, now: Duration, to: State) {
        if self.state == to || self.state == State::Init {
            return;
        }
        match to {
            State::Master if !self.fault => self.become_master(now, Cause::SyncGroup),
            State::Backup if !self.fault => self.become_backup(now, Cause::SyncGroup, None),
            State::Fault => {
                if self.state == State::Master {
                    self.advertise(STOP_PRIORITY);
                }
                self.clear_timers();
                self.enter(now, State::Fault, Cause::SyncGroup);
            }
            _ => {}
        }
    }

    /// Runs the timers due at `now`.
    pub fn poll(&mut self, now: Duration) {
        if self.master_down_at.is_some_and(|t| t <= now) && self.state == State::Backup {
            self.become_master(now, Cause::MasterDown);
        }
        if self.state == State::Master {
            if self.advert_at.is_some_and(|t| t <= now) {
                self.advertise(self.effective_priority());
                self.advert_at = Some(now + cs(self.config.interval_cs));
            }
            if self.garp_at.is_some_and(|t| t <= now) {
                self.garp_burst();
                self.garp_at = self.config.garp_refresh.map(|r| now + r);
            }
        }
    }

    /// Handles an advertisement from `src` that passed the codec's checks. Returns why it
    /// was discarded, if it was (the caller counts it; [`Stats::discards`] does too).
    pub fn receive(&mut self, now: Duration, src: Ipv4Addr, adv: &Repr) -> Result<(), Discard> {
        let r = self.check(src, adv).and_then(|()| self.act(now, src, adv));
        match r {
            Ok(()) => {
                self.stats.adverts_rx += 1;
                if adv.addresses != self.config.addresses {
                    self.stats.address_mismatch += 1;
                }
                if adv.priority == STOP_PRIORITY {
                    self.stats.priority_zero_rx += 1;
                }
            }
            Err(d) => self.stats.discards[d as usize] += 1,
        }
        r
    }

    fn act(&mut self, now: Duration, src: Ipv4Addr, adv: &Repr) -> Result<(), Discard> {
        let mine = self.effective_priority();
        if self.state == State::Backup {
            if adv.priority == STOP_PRIORITY {
                self.master = None;
                self.master_down_at = Some(now + self.skew() + self.hold_delay());
                return Ok(());
            }
            let in_delay = now < self.started_at + self.config.preempt_delay;
            if self.config.preempt && !in_delay && !self.preempt_hold && adv.priority < mine {
                // A lower-priority master and we preempt: let the timer run out.
                return Err(Discard::Lower);
            }
            if self.config.version == Version::V3 {
                self.master_interval_cs = adv.interval_cs;
            }
            self.master = Some((src, adv.priority));
            self.master_down_at = Some(now + self.master_down_interval());
            return Ok(());
        }
        // MASTER (check() lets only BACKUP and MASTER through).
        if adv.priority == STOP_PRIORITY {
            self.advertise(mine);
            self.advert_at = Some(now + cs(self.config.interval_cs));
            return Ok(());
        }
        let wins = adv.priority > mine
            || (adv.priority == mine && u32::from(src) > u32::from(self.config.primary));
        if !wins {
            // keepalived: answer at once so the other side yields quickly.
            self.advertise(mine);
            self.advert_at = Some(now + cs(self.config.interval_cs));
            return Err(Discard::Lower);
        }
        if self.config.version == Version::V3 {
            self.master_interval_cs = adv.interval_cs;
        }
        let cause = Cause::HigherPriority {
            from: src,
            priority: adv.priority,
        };
        self.become_backup(now, cause, Some((src, adv.priority)));
        Ok(())
    }

    /// The advertisement to send for [`Action::Advertise`] with `priority`.
    pub fn advertisement(&self, priority: u8) -> Repr {
        let (auth_type, auth_data) = match self.config.auth_pass {
            Some(p) => (AuthType::SimpleText, p),
            None => (AuthType::None, [0; 8]),
        };
        Repr {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            interval_cs: self.config.interval_cs,
            auth_type,
            auth_data,
            addresses: self.config.addresses.clone(),
        }
    }

    fn check(&self, src: Ipv4Addr, adv: &Repr) -> Result<(), Discard> {
        if adv.vrid != self.config.vrid {
            return Err(Discard::Vrid);
        }
        if adv.version != self.config.version {
            return Err(Discard::Version);
        }
        if src == self.config.primary {
            return Err(Discard::Own);
        }
        if !matches!(self.state, State::Backup | State::Master) {
            return Err(Discard::NotListening);
        }
        if self.config.version == Version::V2 && adv.interval_cs != self.config.interval_cs {
            return Err(Discard::Interval);
        }
        let auth_ok = match (self.config.auth_pass, adv.auth_type) {
            (None, AuthType::None) => true,
            (Some(p), AuthType::SimpleText) => p == adv.auth_data,
            _ => false,
        };
        if !auth_ok {
            return Err(Discard::Auth);
        }
        Ok(())
    }

    fn become_master(&mut self, now: Duration, cause: Cause) {
        self.clear_timers();
        self.master = None;
        self.enter(now, State::Master, cause);
        self.advertise(self.effective_priority());
        self.advert_at = Some(now + cs(self.config.interval_cs));
        self.garp_burst();
        self.garp_at = self
            .config
            .garp_delay
            .or(self.config.garp_refresh)
            .map(|d| now + d);
        self.stats.became_master += 1;
    }

    fn become_backup(&mut self, now: Duration, cause: Cause, master: Option<(Ipv4Addr, u8)>) {
        self.clear_timers();
        if master.is_none() {
            // No master heard yet: wait on our own interval.
            self.master_interval_cs = self.config.interval_cs;
        }
        self.master = master;
        self.enter(now, State::Backup, cause);
        self.master_down_at = Some(now + self.master_down_interval());
    }

    fn enter(&mut self, now: Duration, to: State, cause: Cause) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.since = now;
        self.last_cause = Some(cause);
        self.stats.transitions += 1;
        self.actions
            .push_back(Action::Transition { from, to, cause });
    }

    fn advertise(&mut self, priority: u8) {
        self.stats.adverts_tx += 1;
        if priority == STOP_PRIORITY {
            self.stats.priority_zero_tx += 1;
        }
        self.actions.push_back(Action::Advertise { priority });
    }

    fn garp_burst(&mut self) {
        self.stats.garp_bursts += 1;
        self.actions.push_back(Action::GratuitousArp {
            count: self.config.garp_repeat,
        });
    }

    fn clear_timers(&mut self) {
        self.master_down_at = None;
        self.advert_at = None;
        self.garp_at = None;
    }
}

#[cfg(test)]
mod tests;
