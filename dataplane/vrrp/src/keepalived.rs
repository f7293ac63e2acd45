//! Imports `vrrp_instance` and `vrrp_sync_group` blocks from a keepalived.conf, so an
//! operator can move a keepalived pair to Aegis gateways with the file they have.
//!
//! The subset understood is listed in docs/vrrp.md; anything else in a block we import is
//! refused with its line (`line 12: vrrp_instance VI_1: unsupported keyword "lvs_sync_daemon_interface"`)
//! rather than silently ignored, since a setting we drop could change failover behaviour.
//! `global_defs` is read for the VRRP defaults it can carry; its mail and identity settings
//! are skipped. `virtual_server`, `vrrp_script` and `include` are refused.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::group::SyncGroupConfig;
use crate::instance::{Config, Initial};
use crate::wire::Version;

/// Why a keepalived.conf could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A tracked interface: FAULT when it is down, or, with a weight, the priority adjusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// Interface (port) name.
    pub interface: String,
    /// Added to the priority while the interface is down; `None`: FAULT instead.
    pub weight: Option<i32>,
}

/// Notify hooks (keepalived's argument convention: `TYPE NAME STATE PRIORITY`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    /// Run on every transition, with the state as an argument.
    pub any: Option<String>,
    /// Run on becoming MASTER.
    pub master: Option<String>,
    /// Run on becoming BACKUP.
    pub backup: Option<String>,
    /// Run on entering FAULT.
    pub fault: Option<String>,
    /// Run when the instance stops.
    pub stop: Option<String>,
}

/// One imported `vrrp_instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedInstance {
    /// The state machine's parameters. `primary` is the `unicast_src_ip` or `mcast_src_ip`
    /// when given, else unspecified (0.0.0.0): the caller takes the interface's first address.
    pub config: Config,
    /// `interface`.
    pub interface: String,
    /// The virtual addresses with their prefix lengths (32 when none is written).
    pub prefixes: Vec<(Ipv4Addr, u8)>,
    /// `track_interface`.
    pub track: Vec<Track>,
    /// `notify*`.
    pub notify: Notify,
    /// Line of `vrrp_instance`.
    pub line: usize,
}

/// One imported `vrrp_sync_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedGroup {
    /// Name and members.
    pub group: SyncGroupConfig,
    /// The group's notify hooks.
    pub notify: Notify,
}

/// What a keepalived.conf holds that Aegis uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Instances, in file order.
    pub instances: Vec<ImportedInstance>,
    /// Sync groups, in file order.
    pub groups: Vec<ImportedGroup>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, ImportError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let mut chars = raw.chars().peekable();
        while let Some(&c) = chars.peek() {
            match c {
                '#' | '!' => break,
                c if c.is_whitespace() => {
                    chars.next();
                }
                '{' => {
                    chars.next();
                    out.push((line, Tok::Open));
                }
                '}' => {
                    chars.next();
                    out.push((line, Tok::Close));
                }
                '"' => {
                    chars.next();
                    let mut s = String::new();
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some(c) => s.push(c),
                            None => {
                                return Err(ImportError {
                                    line,
                                    message: "unterminated quoted string".into(),
                                })
                            }
                        }
                    }
                    out.push((line, Tok::Word(s)));
                }
                _ => {
                    let mut s = String::new();
                    while let Some(&c) = chars.peek() {
                        if c.is_whitespace() || c == '{' || c == '}' || c == '#' || c == '!' {
                            break;
                        }
                        s.push(c);
                        chars.next();
                    }
                    out.push((line, Tok::Word(s)));
                }
            }
        }
    }
    Ok(out)
}

/// A parsed statement: a keyword, its arguments on the same line, and an optional block.
#[derive(Debug, Clone)]
struct Stmt {
    line: usize,
    key: String,
    args: Vec<String>,
    block: Option<Vec<Stmt>>,
}

fn parse_block(
    toks: &[(usize, Tok)],
    pos: &mut usize,
    nested: bool,
) -> Result<Vec<Stmt>, ImportError> {
    let mut out = Vec::new();
    while *pos < toks.len() {
        let (line, tok) = &toks[*pos];
        match tok {
            Tok::Close if nested => {
                *pos += 1;
                return Ok(out);
            }
            Tok::Close => {
                return Err(err(*line, "unexpected '}'"));
            }
            Tok::Open => {
                // An anonymous block (keepalived allows `{` on its own line after a key).
                return Err(err(*line, "'{' without a keyword before it"));
            }
            Tok::Word(w) => {
                let line = *line;
                let key = w.clone();
                *pos += 1;
                let mut args = Vec::new();
                while let Some((l, Tok::Word(a))) = toks.get(*pos) {
                    if *l != line {
                        break;
                    }
                    args.push(a.clone());
                    *pos += 1;
                }
                let block = if let Some((_, Tok::Open)) = toks.get(*pos) {
                    *pos += 1;
                    Some(parse_block(toks, pos, true)?)
                } else {
                    None
                };
                out.push(Stmt {
                    line,
                    key,
                    args,
                    block,
                });
            }
        }
    }
    if nested {
        let line = toks.last().map_or(1, |t| t.0);
        return Err(err(line, "missing '}' at end of file"));
    }
    Ok(out)
}

fn err(line: usize, message: impl Into<String>) -> ImportError {
    ImportError {
        line,
        message: message.into(),
    }
}

/// Defaults `global_defs` may change.
struct Globals {
    version: Version,
    garp_delay: Option<Duration>,
    garp_repeat: u32,
    garp_refresh: Option<Duration>,
}

/// Parses `text` (the contents of a keepalived.conf).
pub fn import(text: &str) -> Result<Imported, ImportError> {
    let toks = tokenize(text)?;
    let mut pos = 0;
    let top = parse_block(&toks, &mut pos, false)?;
    let mut g = Globals {
        version: Version::V2,
        garp_delay: Some(Duration::from_secs(5)),
        garp_repeat: 5,
        garp_refresh: None,
    };
    // global_defs first, wherever it is: it sets defaults for every instance.
    for s in top.iter().filter(|s| s.key == "global_defs") {
        globals(s, &mut g)?;
    }
    let mut out = Imported::default();
    for s in &top {
        match s.key.as_str() {
            "global_defs" => {}
            "vrrp_instance" => out.instances.push(instance(s, &g)?),
            "vrrp_sync_group" => out.groups.push(sync_group(s)?),
            "virtual_server" | "virtual_server_group" | "vrrp_script" | "include" => {
                return Err(err(
                    s.line,
                    format!(
                        "{} is not supported: Aegis imports vrrp_instance and vrrp_sync_group only",
                        s.key
                    ),
                ))
            }
            other => {
                return Err(err(
                    s.line,
                    format!("unknown top-level keyword \"{other}\""),
                ))
            }
        }
    }
    if out.instances.is_empty() {
        return Err(err(1, "no vrrp_instance block"));
    }
    Ok(out)
}

fn block<'a>(s: &'a Stmt, what: &str) -> Result<&'a [Stmt], ImportError> {
    s.block
        .as_deref()
        .ok_or_else(|| err(s.line, format!("{what} needs a {{ ... }} block")))
}

fn one_arg<'a>(s: &'a Stmt, ctx: &str) -> Result<&'a str, ImportError> {
    match s.args.as_slice() {
        [a] => Ok(a),
        _ => Err(err(
            s.line,
            format!("{ctx}: {} takes exactly one value", s.key),
        )),
    }
}

fn number<T: std::str::FromStr>(s: &Stmt, ctx: &str, what: &str) -> Result<T, ImportError> {
    let a = one_arg(s, ctx)?;
    a.parse()
        .map_err(|_| err(s.line, format!("{ctx}: {} \"{a}\" is not {what}", s.key)))
}

fn seconds(s: &Stmt, ctx: &str) -> Result<Duration, ImportError> {
    let v: f64 = number(s, ctx, "a number of seconds")?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(err(s.line, format!("{ctx}: {} {v} is out of range", s.key)));
    }
    Ok(Duration::from_secs_f64(v))
}

fn ipv4(line: usize, ctx: &str, a: &str) -> Result<Ipv4Addr, ImportError> {
    a.parse()
        .map_err(|_| err(line, format!("{ctx}: \"{a}\" is not an IPv4 address")))
}

fn globals(s: &Stmt, g: &mut Globals) -> Result<(), ImportError> {
    let ctx = "global_defs";
    for k in block(s, ctx)? {
        match k.key.as_str() {
            "vrrp_version" => {
                g.version = match one_arg(k, ctx)? {
                    "2" => Version::V2,
                    "3" => Version::V3,
                    v => return Err(err(k.line, format!("{ctx}: vrrp_version {v}: 2 or 3"))),
                }
            }
            "vrrp_garp_master_delay" => {
                g.garp_delay = Some(seconds(k, ctx)?).filter(|d| !d.is_zero())
            }
            "vrrp_garp_master_repeat" => g.garp_repeat = number(k, ctx, "a count")?,
            "vrrp_garp_master_refresh" => {
                g.garp_refresh = Some(seconds(k, ctx)?).filter(|d| !d.is_zero())
            }
            // Identity, mail and script settings do not change VRRP on the wire.
            "router_id"
            | "notification_email"
            | "notification_email_from"
            | "smtp_server"
            | "smtp_connect_timeout"
            | "enable_script_security"
            | "script_user"
            | "max_auto_priority" => {}
            other => {
                return Err(err(
                    k.line,
                    format!("{ctx}: unsupported keyword \"{other}\""),
                ))
            }
        }
    }
    Ok(())
}

fn notify_key(k: &Stmt, n: &mut Notify, ctx: &str) -> Result<bool, ImportError> {
    let slot = match k.key.as_str() {
        "notify" => &mut n.any,
        "notify_master" => &mut n.master,
        "notify_backup" => &mut n.backup,
        "notify_fault" => &mut n.fault,
        "notify_stop" => &mut n.stop,
        _ => return Ok(false),
    };
    if k.args.is_empty() {
        return Err(err(k.line, format!("{ctx}: {} needs a script", k.key)));
    }
    *slot = Some(k.args.join(" "));
    Ok(true)
}

fn instance(s: &Stmt, g: &Globals) -> Result<ImportedInstance, ImportError> {
    let name = match s.args.as_slice() {
        [n] => n.clone(),
        _ => return Err(err(s.line, "vrrp_instance needs one name")),
    };
    let ctx = format!("vrrp_instance {name}");
    let ctx = ctx.as_str();
    let mut c = Config::new(&name, 0, Ipv4Addr::UNSPECIFIED, Vec::new());
    c.version = g.version;
    c.garp_delay = g.garp_delay;
    c.garp_repeat = g.garp_repeat;
    c.garp_refresh = g.garp_refresh;
    let mut interface = None;
    let mut vrid = None;
    let mut advert: Option<(usize, f64)> = None;
    let mut prefixes = Vec::new();
    let mut track = Vec::new();
    let mut notify = Notify::default();
    let mut auth_type: Option<(usize, String)> = None;
    let mut auth_pass: Option<(usize, String)> = None;
    for k in block(s, ctx)? {
        if notify_key(k, &mut notify, ctx)? {
            continue;
        }
        match k.key.as_str() {
            "state" => {
                c.initial = match one_arg(k, ctx)? {
                    "MASTER" => Initial::Master,
                    "BACKUP" => Initial::Backup,
                    v => return Err(err(k.line, format!("{ctx}: state {v}: MASTER or BACKUP"))),
                }
            }
            "interface" => interface = Some(one_arg(k, ctx)?.to_string()),
            "virtual_router_id" => {
                let v: u16 = number(k, ctx, "a number")?;
                if !(1..=255).contains(&v) {
                    return Err(err(
                        k.line,
                        format!("{ctx}: virtual_router_id {v}: 1..=255"),
                    ));
                }
                vrid = Some(v as u8);
            }
            "priority" => {
                let v: u16 = number(k, ctx, "a number")?;
                if !(1..=255).contains(&v) {
                    return Err(err(k.line, format!("{ctx}: priority {v}: 1..=255")));
                }
                c.priority = v as u8;
            }
            "advert_int" => advert = Some((k.line, number(k, ctx, "a number of seconds")?)),
            "version" => {
                c.version = match one_arg(k, ctx)? {
                    "2" => Version::V2,
                    "3" => Version::V3,
                    v => return Err(err(k.line, format!("{ctx}: version {v}: 2 or 3"))),
                }
            }
            "nopreempt" => c.preempt = false,
            "preempt" => c.preempt = true,
            "preempt_delay" => c.preempt_delay = seconds(k, ctx)?,
            "unicast_src_ip" | "mcast_src_ip" => {
                c.primary = ipv4(k.line, ctx, one_arg(k, ctx)?)?;
            }
            "unicast_peer" => {
                for p in block(k, ctx)? {
                    if !p.args.is_empty() || p.block.is_some() {
                        return Err(err(
                            p.line,
                            format!("{ctx}: unicast_peer: only addresses, one per line"),
                        ));
                    }
                    c.unicast_peers.push(ipv4(p.line, ctx, &p.key)?);
                }
            }
            "authentication" => {
                for a in block(k, ctx)? {
                    match a.key.as_str() {
                        "auth_type" => auth_type = Some((a.line, one_arg(a, ctx)?.to_string())),
                        "auth_pass" => auth_pass = Some((a.line, one_arg(a, ctx)?.to_string())),
                        other => {
                            return Err(err(
                                a.line,
                                format!("{ctx}: authentication: unsupported keyword \"{other}\""),
                            ))
                        }
                    }
                }
            }
            "virtual_ipaddress" => {
                for a in block(k, ctx)? {
                    prefixes.push(virtual_address(a, ctx)?);
                }
            }
            "track_interface" => {
                for t in block(k, ctx)? {
                    let weight = match t.args.as_slice() {
                        [] => None,
                        [w, v] if w == "weight" => Some(v.parse::<i32>().ok().filter(|v| (-253..=253).contains(v)).ok_or_else(|| {
                            err(t.line, format!("{ctx}: track_interface {}: weight \"{v}\" is not -253..=253", t.key))
                        })?),
                        _ => {
                            return Err(err(
                                t.line,
                                format!("{ctx}: track_interface: IFACE [weight N]"),
                            ))
                        }
                    };
                    track.push(Track {
                        interface: t.key.clone(),
                        weight,
                    });
                }
            }
            "garp_master_delay" => c.garp_delay = Some(seconds(k, ctx)?).filter(|d| !d.is_zero()),
            "garp_master_repeat" => c.garp_repeat = number(k, ctx, "a count")?,
            "garp_master_refresh" => {
                c.garp_refresh = Some(seconds(k, ctx)?).filter(|d| !d.is_zero())
            }
            "use_vmac" => c.use_vmac = true,
            other => {
                return Err(err(
                    k.line,
                    format!("{ctx}: unsupported keyword \"{other}\""),
                ))
            }
        }
    }
    let interface = interface.ok_or_else(|| err(s.line, format!("{ctx}: no interface")))?;
    c.vrid = vrid.ok_or_else(|| err(s.line, format!("{ctx}: no virtual_router_id")))?;
    if prefixes.is_empty() {
        return Err(err(s.line, format!("{ctx}: no virtual_ipaddress")));
    }
    c.addresses = prefixes.iter().map(|p| p.0).collect();
    if let Some((line, secs)) = advert {
        let cs = (secs * 100.0).round();
        let whole = (secs.fract() == 0.0) || c.version == Version::V3;
        if !whole || !(1.0..=4095.0).contains(&cs) {
            return Err(err(
                line,
                format!("{ctx}: advert_int {secs}: VRRPv2 takes whole seconds 1..=255, VRRPv3 0.01..=40.95"),
            ));
        }
        c.interval_cs = cs as u16;
    }
    match (auth_type, auth_pass) {
        (None, None) => {}
        (Some((line, t)), _) if t != "PASS" => {
            return Err(err(
                line,
                format!("{ctx}: auth_type {t}: only PASS is supported"),
            ))
        }
        (Some(_), Some((line, p))) => {
            if c.version == Version::V3 {
                return Err(err(line, format!("{ctx}: authentication is VRRPv2 only")));
            }
            if p.len() > 8 {
                return Err(err(
                    line,
                    format!("{ctx}: auth_pass is longer than 8 characters"),
                ));
            }
            let mut pass = [0u8; 8];
            pass[..p.len()].copy_from_slice(p.as_bytes());
            c.auth_pass = Some(pass);
        }
        (Some((line, _)), None) | (None, Some((line, _))) => {
            return Err(err(
                line,
                format!("{ctx}: authentication needs auth_type PASS and auth_pass"),
            ))
        }
    }
    // What the state machine checks (intervals, counts) is reported at the block's line.
    let mut probe = c.clone();
    if probe.primary.is_unspecified() {
        probe.primary = Ipv4Addr::new(192, 0, 2, 1);
    }
    probe
        .validate()
        .map_err(|e| err(s.line, format!("{ctx}: {e}")))?;
    Ok(ImportedInstance {
        config: c,
        interface,
        prefixes,
        track,
        notify,
        line: s.line,
    })
}

fn virtual_address(a: &Stmt, ctx: &str) -> Result<(Ipv4Addr, u8), ImportError> {
    let (addr, len) = match a.key.split_once('/') {
        Some((ip, len)) => {
            let len: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(|| {
                err(
                    a.line,
                    format!("{ctx}: virtual_ipaddress {}: bad prefix length", a.key),
                )
            })?;
            (ipv4(a.line, ctx, ip)?, len)
        }
        None => (ipv4(a.line, ctx, &a.key)?, 32),
    };
    // "dev IFACE" and "label NAME" only say where the kernel puts it; anything else (scope,
    // brd, IPv6) changes meaning and is refused.
    let mut rest = a.args.iter();
    while let Some(opt) = rest.next() {
        match opt.as_str() {
            "dev" | "label" if rest.next().is_some() => {}
            other => {
                return Err(err(
                    a.line,
                    format!(
                        "{ctx}: virtual_ipaddress {}: unsupported option \"{other}\"",
                        a.key
                    ),
                ))
            }
        }
    }
    Ok((addr, len))
}

fn sync_group(s: &Stmt) -> Result<ImportedGroup, ImportError> {
    let name = match s.args.as_slice() {
        [n] => n.clone(),
        _ => return Err(err(s.line, "vrrp_sync_group needs one name")),
    };
    let ctx = format!("vrrp_sync_group {name}");
    let mut members = Vec::new();
    let mut notify = Notify::default();
    for k in block(s, &ctx)? {
        if notify_key(k, &mut notify, &ctx)? {
            continue;
        }
        match k.key.as_str() {
            "group" => {
                for m in block(k, &ctx)? {
                    members.push(m.key.clone());
                    members.extend(m.args.iter().cloned());
                }
            }
            other => {
                return Err(err(
                    k.line,
                    format!("{ctx}: unsupported keyword \"{other}\""),
                ))
            }
        }
    }
    if members.is_empty() {
        return Err(err(s.line, format!("{ctx}: empty group")));
    }
    Ok(ImportedGroup {
        group: SyncGroupConfig { name, members },
        notify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIR: &str = r#"
! Configuration File for keepalived
global_defs {
   router_id gw-a
   notification_email {
     ops@example.com
   }
   vrrp_garp_master_delay 2
}

vrrp_sync_group GW {
    group {
        VI_EXT
        VI_INT
    }
    notify_master "/usr/local/bin/gw-notify master"
}

vrrp_instance VI_EXT {
    state MASTER
    interface ext0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        203.0.113.10/24 dev ext0
        203.0.113.11
    }
    track_interface {
        uplink weight -60
        int0
    }
    notify "/usr/local/bin/notify.sh"
}

vrrp_instance VI_INT {
    state BACKUP
    interface int0
    version 3
    virtual_router_id 52
    priority 100
    advert_int 0.1   # 100 ms
    nopreempt
    preempt_delay 5
    unicast_src_ip 10.0.0.2
    unicast_peer {
        10.0.0.3
    }
    virtual_ipaddress {
        10.0.0.1/24
    }
    garp_master_refresh 60
}
"#;

    #[test]
    fn a_typical_gateway_pair_imports() {
        let imp = import(PAIR).unwrap();
        assert_eq!(imp.instances.len(), 2);
        let ext = &imp.instances[0];
        assert_eq!(ext.interface, "ext0");
        assert_eq!(ext.config.vrid, 51);
        assert_eq!(ext.config.priority, 150);
        assert_eq!(ext.config.initial, Initial::Master);
        assert_eq!(ext.config.version, Version::V2);
        assert_eq!(ext.config.interval_cs, 100);
        assert_eq!(ext.config.auth_pass, Some(*b"s3cret\0\0"));
        assert_eq!(ext.config.garp_delay, Some(Duration::from_secs(2)));
        assert_eq!(
            ext.prefixes,
            [
                (Ipv4Addr::new(203, 0, 113, 10), 24),
                (Ipv4Addr::new(203, 0, 113, 11), 32)
            ]
        );
        assert_eq!(
            ext.track,
            [
                Track {
                    interface: "uplink".into(),
                    weight: Some(-60)
                },
                Track {
                    interface: "int0".into(),
                    weight: None
                }
            ]
        );
        assert_eq!(ext.notify.any.as_deref(), Some("/usr/local/bin/notify.sh"));
        assert!(ext.config.primary.is_unspecified());
        let int = &imp.instances[1];
        assert_eq!(int.config.version, Version::V3);
        assert_eq!(int.config.interval_cs, 10);
        assert!(!int.config.preempt);
        assert_eq!(int.config.preempt_delay, Duration::from_secs(5));
        assert_eq!(int.config.primary, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(int.config.unicast_peers, [Ipv4Addr::new(10, 0, 0, 3)]);
        assert_eq!(int.config.garp_refresh, Some(Duration::from_secs(60)));
        assert_eq!(imp.groups[0].group.members, ["VI_EXT", "VI_INT"]);
        assert_eq!(
            imp.groups[0].notify.master.as_deref(),
            Some("/usr/local/bin/gw-notify master")
        );
    }

    fn error(text: &str) -> String {
        import(text).unwrap_err().to_string()
    }

    #[test]
    fn what_is_not_understood_is_refused_with_its_line() {
        let base = "vrrp_instance V {\n interface e\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n";
        assert_eq!(
            error(&format!("{base} lvs_sync_daemon_interface e\n}}\n")),
            "line 7: vrrp_instance V: unsupported keyword \"lvs_sync_daemon_interface\""
        );
        assert_eq!(
            error(&format!("{base} advert_int 1.5\n}}\n")),
            "line 7: vrrp_instance V: advert_int 1.5: VRRPv2 takes whole seconds 1..=255, VRRPv3 0.01..=40.95"
        );
        assert_eq!(
            error(&format!("{base} priority 300\n}}\n")),
            "line 7: vrrp_instance V: priority 300: 1..=255"
        );
        assert_eq!(
            error(&format!(
                "{base} authentication {{\n auth_type AH\n auth_pass x\n }}\n}}\n"
            )),
            "line 8: vrrp_instance V: auth_type AH: only PASS is supported"
        );
        assert_eq!(
            error(&format!("{base}\n")),
            "line 6: missing '}' at end of file"
        );
        assert_eq!(
            error("vrrp_instance V {\n interface e\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n"),
            "line 1: vrrp_instance V: no virtual_router_id"
        );
        assert_eq!(
            error("virtual_server 10.0.0.1 80 {\n}\n"),
            "line 1: virtual_server is not supported: Aegis imports vrrp_instance and vrrp_sync_group only"
        );
        assert_eq!(
            error("vrrp_instance V {\n interface e\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1 scope link\n }\n}\n"),
            "line 5: vrrp_instance V: virtual_ipaddress 10.0.0.1: unsupported option \"scope\""
        );
        assert_eq!(
            error("global_defs {\n vrrp_strict\n}\n"),
            "line 2: global_defs: unsupported keyword \"vrrp_strict\""
        );
        assert_eq!(error("# nothing\n"), "line 1: no vrrp_instance block");
        assert_eq!(
            error("vrrp_instance V {\n notify \"x\n}\n"),
            "line 2: unterminated quoted string"
        );
    }

    #[test]
    fn imported_instances_build_a_router() {
        let imp = import(PAIR).unwrap();
        let configs = imp
            .instances
            .into_iter()
            .map(|mut i| {
                if i.config.primary.is_unspecified() {
                    i.config.primary = Ipv4Addr::new(203, 0, 113, 2);
                }
                i.config
            })
            .collect();
        let groups = imp.groups.into_iter().map(|g| g.group).collect();
        let r = crate::group::Router::new(configs, groups).unwrap();
        assert_eq!(r.group_of(1), Some("GW"));
    }

    #[test]
    fn never_panics_on_garbage() {
        for text in [
            "{",
            "}",
            "{{}}",
            "vrrp_instance",
            "vrrp_instance {",
            "a b c {\n}\n}",
            "\"",
            "vrrp_instance V { interface }",
        ] {
            let _ = import(text);
        }
        let bytes: Vec<u8> = (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = import(&String::from_utf8_lossy(&bytes));
    }
}
