//! Human (table) output of `aegisctl dp`, drawn from the JSON views so both outputs always
//! show the same data.

use std::io::{self, Write};

use super::view::{
    ConnectionView, ConnectionsView, DenialsView, ErrorView, ErrorsView, InterfacesView,
    NatSessionsView, NeighboursView, NodeView, RoutesView, RuntimeView, StatusView, SyncView,
    VpcView, VpcsView, VrrpView,
};
use crate::table::{Align, Table};

/// `show status`.
pub fn status(v: &StatusView, out: &mut dyn Write) -> io::Result<()> {
    let lcores: Vec<String> = v.workers.iter().map(|w| w.lcore.to_string()).collect();
    let workers = match v.workers.len() {
        0 => "none".to_string(),
        n => format!("{n} (lcores {})", lcores.join(", ")),
    };
    writeln!(out, "Revision   {}", v.revision)?;
    writeln!(out, "Uptime     {}", duration(v.uptime_seconds))?;
    writeln!(out, "Version    {}", v.version)?;
    writeln!(out, "Poll mode  {}", v.poll_mode)?;
    writeln!(out, "Workers    {workers}")?;
    if let Some(cp) = &v.controlplane {
        let link = if cp.connected {
            "connected"
        } else {
            "disconnected"
        };
        let cache = if cp.from_cache { ", from cache" } else { "" };
        writeln!(
            out,
            "Control plane  {} as host {} ({link})",
            cp.servers, cp.host
        )?;
        writeln!(
            out,
            "  revision     {} applied, {} received{cache}",
            cp.applied_revision, cp.received_revision
        )?;
        if let Some(e) = &cp.apply_error {
            writeln!(out, "  apply error  {e}")?;
        }
        for c in &cp.nat_conflicts {
            writeln!(out, "  NAT conflict {c}")?;
        }
    }
    Ok(())
}

/// `show interfaces`: state table (with a "VM port" column when a control-plane port is
/// bound to any of them), then counters table.
pub fn interfaces(v: &InterfacesView, out: &mut dyn Write) -> io::Result<()> {
    if v.interfaces.is_empty() {
        return writeln!(out, "No interfaces.");
    }
    let vm_ports = v.interfaces.iter().any(|i| i.endpoint.is_some());
    let mut columns = vec![
        ("Name", Align::Left),
        ("Idx", Align::Right),
        ("Admin", Align::Left),
        ("Link", Align::Left),
        ("Speed", Align::Right),
        ("MTU", Align::Right),
        ("MAC", Align::Left),
        ("Addresses", Align::Left),
    ];
    if vm_ports {
        columns.push(("VM port", Align::Left));
    }
    columns.push(("Devargs", Align::Left));
    let mut state = Table::new(&columns);
    let mut counters = Table::new(&[
        ("Name", Align::Left),
        ("Rx packets", Align::Right),
        ("Rx bytes", Align::Right),
        ("Tx packets", Align::Right),
        ("Tx bytes", Align::Right),
        ("Rx missed", Align::Right),
        ("Rx errors", Align::Right),
        ("Tx errors", Align::Right),
        ("Rx nombuf", Align::Right),
    ]);
    for i in &v.interfaces {
        let mut row = vec![
            i.name.clone(),
            i.index.to_string(),
            up_down(i.admin_up).into(),
            up_down(i.link_up).into(),
            speed(i.link_speed_mbps),
            i.mtu.to_string(),
            i.mac.clone(),
            dash_if_empty(i.addresses.join(",")),
        ];
        if vm_ports {
            row.push(i.endpoint.clone().unwrap_or_else(|| "-".into()));
        }
        row.push(i.devargs.clone());
        state.row(row);
        let c = &i.counters;
        counters.row(
            std::iter::once(i.name.clone())
                .chain(
                    [
                        c.rx_packets,
                        c.rx_bytes,
                        c.tx_packets,
                        c.tx_bytes,
                        c.rx_missed,
                        c.rx_errors,
                        c.tx_errors,
                        c.rx_nombuf,
                    ]
                    .iter()
                    .map(u64::to_string),
                )
                .collect(),
        );
    }
    state.write(out, 0)?;
    writeln!(out)?;
    counters.write(out, 0)
}

/// `show runtime`: one block per worker, then totals when there is more than one worker.
pub fn runtime(v: &RuntimeView, out: &mut dyn Write) -> io::Result<()> {
    if v.workers.is_empty() {
        return writeln!(out, "No workers.");
    }
    for (i, w) in v.workers.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let idle = if w.polls == 0 {
            0.0
        } else {
            100.0 * w.idle_polls as f64 / w.polls as f64
        };
        writeln!(
            out,
            "Worker {} (lcore {}): polls {}, idle {} ({idle:.1}%), sleeps {}; \
             consumed {}, ICMP errors sent {} (rate-limited {})",
            w.id,
            w.lcore,
            w.polls,
            w.idle_polls,
            w.sleeps,
            w.consumed,
            w.icmp_sent,
            w.icmp_rate_limited
        )?;
        if w.nat_sessions > 0 || w.nat_sessions_revoked > 0 {
            writeln!(
                out,
                "NAT sessions {} (revoked by configuration changes since start: {})",
                w.nat_sessions, w.nat_sessions_revoked
            )?;
        }
        node_table(&w.nodes).write(out, 0)?;
    }
    if v.workers.len() > 1 {
        writeln!(out, "\nTotal ({} workers)", v.workers.len())?;
        node_table(&v.total).write(out, 0)?;
    }
    Ok(())
}

fn node_table(nodes: &[NodeView]) -> Table {
    let mut t = Table::new(&[
        ("Name", Align::Left),
        ("Calls", Align::Right),
        ("Vectors", Align::Right),
        ("Clocks", Align::Right),
        ("Vectors/Call", Align::Right),
        ("Clocks/Pkt", Align::Right),
    ]);
    for n in nodes {
        t.row(vec![
            n.name.clone(),
            n.calls.to_string(),
            n.vectors.to_string(),
            n.clocks.to_string(),
            format!("{:.2}", n.vectors_per_call),
            format!("{:.2}", n.clocks_per_packet),
        ]);
    }
    t
}

/// `show errors`: totals (or one block per worker), non-zero counters unless `all`.
pub fn errors(v: &ErrorsView, all: bool, per_worker: bool, out: &mut dyn Write) -> io::Result<()> {
    if !per_worker {
        return error_table(&v.total, all, out);
    }
    for (i, w) in v.workers.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "Worker {}", w.worker)?;
        error_table(&w.counters, all, out)?;
    }
    Ok(())
}

fn error_table(counters: &[ErrorView], all: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut t = Table::new(&[
        ("Count", Align::Right),
        ("Reason", Align::Left),
        ("Description", Align::Left),
    ]);
    for c in counters.iter().filter(|c| all || c.count > 0) {
        t.row(vec![
            c.count.to_string(),
            c.reason.clone(),
            c.description.clone(),
        ]);
    }
    if t.is_empty() {
        return writeln!(out, "No drops counted (--all lists every reason).");
    }
    t.write(out, 0)
}

/// `show routes`.
pub fn routes(v: &RoutesView, out: &mut dyn Write) -> io::Result<()> {
    if v.routes.is_empty() {
        return writeln!(out, "No routes.");
    }
    let mut t = Table::new(&[
        ("Prefix", Align::Left),
        ("Kind", Align::Left),
        ("Next hop", Align::Left),
        ("Port", Align::Left),
        ("Origin", Align::Left),
    ]);
    for r in &v.routes {
        t.row(vec![
            r.prefix.clone(),
            r.kind.clone(),
            r.next_hop.clone().unwrap_or_else(|| "-".into()),
            r.port.clone().unwrap_or_else(|| "-".into()),
            r.origin.clone(),
        ]);
    }
    t.write(out, 0)
}

/// `show neighbours`.
pub fn neighbours(v: &NeighboursView, out: &mut dyn Write) -> io::Result<()> {
    if v.neighbours.is_empty() {
        return writeln!(out, "No neighbours.");
    }
    let mut t = Table::new(&[
        ("Port", Align::Left),
        ("IP", Align::Left),
        ("MAC", Align::Left),
        ("State", Align::Left),
        ("Age", Align::Right),
    ]);
    for n in &v.neighbours {
        t.row(vec![
            n.port.clone(),
            n.ip.clone(),
            n.mac.clone().unwrap_or_else(|| "-".into()),
            n.state.clone(),
            duration(n.age_seconds),
        ]);
    }
    t.write(out, 0)
}

/// `show connections`: one row per connection, then per worker how many matched and how
/// many its table holds (a limit hides rows, never counts).
pub fn connections(v: &ConnectionsView, out: &mut dyn Write) -> io::Result<()> {
    let mut t = Table::new(&[
        ("Worker", Align::Right),
        ("Port", Align::Left),
        ("Proto", Align::Left),
        ("Source", Align::Left),
        ("Destination", Align::Left),
        ("State", Align::Left),
        ("Expires", Align::Right),
        ("Packets", Align::Right),
        ("Bytes", Align::Right),
    ]);
    for w in &v.workers {
        for c in &w.connections {
            t.row(vec![
                w.worker.to_string(),
                match &c.endpoint {
                    Some(e) => format!("{} ({e})", c.port),
                    None => c.port.clone(),
                },
                c.protocol.clone(),
                endpoint(c, &c.src_ip, c.src_port),
                endpoint(c, &c.dst_ip, c.dst_port),
                c.state.clone(),
                duration(c.expires_seconds),
                format!("{}/{}", c.packets_orig, c.packets_reply),
                format!("{}/{}", c.bytes_orig, c.bytes_reply),
            ]);
        }
    }
    if t.is_empty() {
        writeln!(out, "No connections match.")?;
    } else {
        t.write(out, 0)?;
    }
    for w in &v.workers {
        match &w.error {
            Some(e) => writeln!(out, "Worker {}: {e}", w.worker)?,
            None => writeln!(
                out,
                "Worker {}: {} shown of {} matching; {} in table (capacity {})",
                w.worker,
                w.connections.len(),
                w.matched,
                w.entries,
                w.capacity
            )?,
        }
    }
    Ok(())
}

/// `show nat-sessions`: one row per session, then per worker how many matched and how many
/// its table holds; a dataplane without NAT says so.
pub fn nat_sessions(v: &NatSessionsView, out: &mut dyn Write) -> io::Result<()> {
    if !v.workers.is_empty() && v.workers.iter().all(|w| !w.enabled && w.error.is_none()) {
        return writeln!(out, "NAT is not configured on this dataplane.");
    }
    let mut t = Table::new(&[
        ("Worker", Align::Right),
        ("VPC", Align::Left),
        ("Proto", Align::Left),
        ("Inside", Align::Left),
        ("Outside", Align::Left),
        ("Remote", Align::Left),
        ("Kind", Align::Left),
        ("State", Align::Left),
        ("Expires", Align::Right),
    ]);
    let side = |proto: &str, ip: &str, port: u32| match proto {
        "tcp" | "udp" => format!("{ip}:{port}"),
        "icmp" if port != 0 => format!("{ip} id {port}"),
        _ => ip.to_string(),
    };
    for w in &v.workers {
        for s in &w.sessions {
            t.row(vec![
                w.worker.to_string(),
                match &s.vpc {
                    Some(name) => name.clone(),
                    None if s.vni == 0 => "routed".to_string(),
                    None => format!("vni {}", s.vni),
                },
                s.protocol.clone(),
                side(&s.protocol, &s.inside_ip, s.inside_port),
                side(&s.protocol, &s.outside_ip, s.outside_port),
                side(&s.protocol, &s.remote_ip, s.remote_port),
                s.kind.clone(),
                s.state.clone(),
                duration(s.expires_seconds),
            ]);
        }
    }
    if t.is_empty() {
        writeln!(out, "No NAT sessions match.")?;
    } else {
        t.write(out, 0)?;
    }
    for w in &v.workers {
        match &w.error {
            Some(e) => writeln!(out, "Worker {}: {e}", w.worker)?,
            None => writeln!(
                out,
                "Worker {}: {} shown of {} matching; {} in table (capacity {})",
                w.worker,
                w.sessions.len(),
                w.matched,
                w.entries,
                w.capacity
            )?,
        }
    }
    Ok(())
}

/// One side of a connection: "ip:port" for TCP and UDP, "ip id N" for ICMP echo, the
/// address alone otherwise.
fn endpoint(c: &ConnectionView, ip: &str, port: u32) -> String {
    match c.protocol.as_str() {
        "tcp" | "udp" => format!("{ip}:{port}"),
        "icmp" => format!("{ip} id {port}"),
        _ => ip.to_string(),
    }
}

/// `show vpc`: the overlay's revision, then per VPC its subnets, routes and ports.
pub fn vpcs(v: &VpcsView, out: &mut dyn Write) -> io::Result<()> {
    match &v.underlay_ip {
        Some(ip) => writeln!(
            out,
            "Overlay revision {}, underlay {ip}, inner MTU {}",
            v.revision, v.mtu
        )?,
        None => writeln!(
            out,
            "Overlay revision {}: this host takes no part in the overlay",
            v.revision
        )?,
    }
    if v.vpcs.is_empty() {
        return writeln!(out, "No VPCs.");
    }
    for vpc in &v.vpcs {
        writeln!(out)?;
        vpc_blocks(vpc, out)?;
    }
    Ok(())
}

fn vpc_blocks(v: &VpcView, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "VPC {} (VNI {})", v.name, v.vni)?;
    let mut subnets = Table::new(&[
        ("Subnet", Align::Left),
        ("CIDR", Align::Left),
        ("Gateway", Align::Left),
    ]);
    for s in &v.subnets {
        subnets.row(vec![s.name.clone(), s.cidr.clone(), s.gateway.clone()]);
    }
    if subnets.is_empty() {
        writeln!(out, "  No subnets.")?;
    } else {
        subnets.write(out, 2)?;
    }
    let mut routes = Table::new(&[("Route", Align::Left), ("Next hop", Align::Left)]);
    for r in &v.routes {
        let target = match (r.kind.as_str(), &r.port) {
            ("port", Some(p)) => p.clone(),
            (kind, _) => kind.replace('_', "-"),
        };
        routes.row(vec![r.prefix.clone(), target]);
    }
    if routes.is_empty() {
        writeln!(out, "  No static routes.")?;
    } else {
        routes.write(out, 2)?;
    }
    let mut ports = Table::new(&[
        ("Port", Align::Left),
        ("Subnet", Align::Left),
        ("MAC", Align::Left),
        ("IPs", Align::Left),
        ("Location", Align::Left),
    ]);
    for p in &v.ports {
        let location = match (p.location.as_str(), &p.device, &p.host_ip) {
            ("local", Some(dev), _) => format!("local {dev}"),
            ("remote", _, Some(ip)) => format!("remote {ip}"),
            (other, _, _) => other.to_string(),
        };
        ports.row(vec![
            p.name.clone(),
            p.subnet.clone(),
            p.mac.clone(),
            dash_if_empty(p.ips.join(",")),
            location,
        ]);
    }
    if ports.is_empty() {
        writeln!(out, "  No ports.")
    } else {
        ports.write(out, 2)
    }
}

/// `show security-denials`: non-zero counters unless `all`.
pub fn denials(v: &DenialsView, all: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut t = Table::new(&[("Count", Align::Right), ("Rule", Align::Left)]);
    for d in v.denials.iter().filter(|d| all || d.count > 0) {
        t.row(vec![d.count.to_string(), d.rule.clone()]);
    }
    if t.is_empty() {
        return writeln!(out, "No denials counted (--all lists every rule).");
    }
    t.write(out, 0)
}

/// `show vrrp`: one row per instance, then what was discarded or refused, if anything.
pub fn vrrp(v: &VrrpView, out: &mut dyn Write) -> io::Result<()> {
    if v.instances.is_empty() {
        writeln!(
            out,
            "No VRRP instance (no [vrrp] in host.toml, and not a member of a gateway group)."
        )?;
        for p in &v.problems {
            writeln!(out, "! {p}")?;
        }
        return Ok(());
    }
    let mut t = Table::new(&[
        ("Instance", Align::Left),
        ("Port", Align::Left),
        ("VRID", Align::Right),
        ("Ver", Align::Right),
        ("Interval", Align::Right),
        ("State", Align::Left),
        ("Since", Align::Right),
        ("Prio", Align::Right),
        ("Master", Align::Left),
        ("Trans", Align::Right),
        ("Adv rx/tx", Align::Right),
        ("Addresses", Align::Left),
    ]);
    for i in &v.instances {
        let prio = vrrp_priority(i.priority, i.effective_priority);
        let master = vrrp_master(i.master.as_deref(), i.master_priority);
        t.row(vec![
            i.name.clone(),
            i.port.clone(),
            i.vrid.to_string(),
            i.version.to_string(),
            format!("{}ms", i.interval_ms),
            i.state.clone(),
            format!("{:.1}s", i.in_state_ms as f64 / 1000.0),
            prio,
            master,
            i.transitions.to_string(),
            format!("{}/{}", i.adverts_rx, i.adverts_tx),
            i.addresses.join(","),
        ]);
    }
    t.write(out, 0)?;
    for i in &v.instances {
        let d: Vec<String> = i
            .discards
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            out,
            "{}: {}{}, from {}, {}{}",
            i.name,
            dash_if_empty(i.last_cause.clone()),
            i.sync_group
                .as_ref()
                .map(|g| format!(", sync group {g}"))
                .unwrap_or_default(),
            dash_if_empty(i.source.clone()),
            if i.peers.is_empty() {
                "multicast".to_owned()
            } else {
                format!("unicast to {}", i.peers.join(","))
            },
            if d.is_empty() {
                String::new()
            } else {
                format!("; discarded: {}", d.join(", "))
            }
        )?;
    }
    let e: Vec<String> = v
        .rx_errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if !e.is_empty() {
        writeln!(out, "Refused: {}", e.join(", "))?;
    }
    for p in &v.problems {
        writeln!(out, "! {p}")?;
    }
    Ok(())
}

/// A VRRP priority: the one in force, the configured one in brackets when tracking changed it.
pub(crate) fn vrrp_priority(configured: u32, effective: u32) -> String {
    if effective == configured {
        configured.to_string()
    } else {
        format!("{effective} ({configured})")
    }
}

/// The master a VRRP instance knows, with its priority; "-" when none.
pub(crate) fn vrrp_master(address: Option<&str>, priority: u32) -> String {
    match address {
        Some(m) => format!("{m} ({priority})"),
        None => "-".into(),
    }
}

fn up_down(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// Link speed: "-" when unknown, else "100M", "10G", "2.5G".
fn speed(mbps: u32) -> String {
    match mbps {
        0 => "-".into(),
        m if m % 1000 == 0 => format!("{}G", m / 1000),
        m if m > 1000 => format!("{}G", f64::from(m) / 1000.0),
        m => format!("{m}M"),
    }
}

/// A duration in seconds, human-sized: "1.5s", "3m12s", "2h05m", "3d04h".
pub(crate) fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".into();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{s:02}s")
    }
}

/// `show sync`: the role and sessions, the peers (master) or the replica (backup), then
/// installs, transport and refusals.
pub fn sync(v: &SyncView, out: &mut dyn Write) -> io::Result<()> {
    if !v.configured {
        return writeln!(out, "No session sync (host.toml has no [sync] section).");
    }
    writeln!(
        out,
        "Role       {} for {:.1}s ({} changes), following VRRP instance {}",
        v.role,
        v.in_role_ms as f64 / 1000.0,
        v.role_changes,
        v.vrrp_instance
    )?;
    writeln!(
        out,
        "Group      {} on {}:{}",
        v.group, v.address, v.udp_port
    )?;
    writeln!(
        out,
        "Sessions   {}{}",
        v.sessions,
        if v.synced {
            ""
        } else {
            " (replica incomplete: bulk resync not done)"
        }
    )?;
    if !v.peers_from.is_empty() {
        writeln!(
            out,
            "Peers      from {}: streams to {} as master{} ({} changes)",
            v.peers_from,
            if v.stream_to.is_empty() {
                "nobody".to_owned()
            } else {
                v.stream_to.join(", ")
            },
            if v.spare {
                "; a spare (nobody streams to it)"
            } else {
                ""
            },
            v.peer_changes
        )?;
    }
    if let (Some(n), Some(us)) = (v.last_commit_sessions, v.last_commit_us) {
        writeln!(
            out,
            "Takeover   {n} sessions committed before claiming ({:.1} ms waiting for the worker)",
            us as f64 / 1000.0
        )?;
    }
    if v.role == "master" {
        let mut t = Table::new(&[
            ("Peer", Align::Left),
            ("Lag", Align::Right),
            ("Oldest unacked", Align::Right),
            ("Events", Align::Right),
            ("Datagrams", Align::Right),
            ("Resends", Align::Right),
            ("Acks", Align::Right),
            ("Bulk", Align::Right),
        ]);
        for p in &v.peers {
            t.row(vec![
                p.address.clone(),
                p.lag.to_string(),
                if p.lag == 0 {
                    "-".into()
                } else {
                    format!("{}ms", p.oldest_unacked_ms)
                },
                p.events.to_string(),
                p.datagrams.to_string(),
                p.resends.to_string(),
                p.acks.to_string(),
                format!("{} ({} sessions)", p.bulk_resyncs, p.bulk_sessions),
            ]);
        }
        writeln!(out)?;
        t.write(out, 0)?;
    } else {
        writeln!(
            out,
            "Master     {}",
            v.master.as_deref().unwrap_or("none heard yet")
        )?;
        writeln!(
            out,
            "Stream     {} datagrams applied ({} events), {} duplicates, {} early, {} bulk resyncs, {} requests",
            v.applied, v.events_applied, v.duplicates, v.out_of_order, v.bulk_completed, v.resync_requests
        )?;
    }
    writeln!(
        out,
        "Installs   {} applied of {} handed to the worker, {} refused; {} events lost",
        v.installs_done, v.installs_pushed, v.installs_failed, v.events_lost
    )?;
    writeln!(
        out,
        "Datagrams  {} sent, {} received; not sent: {} unresolved, {} queue full; {} from no peer",
        v.tx_datagrams, v.rx_datagrams, v.tx_unresolved, v.tx_queue_full, v.rx_unknown_peer
    )?;
    let refused: Vec<String> = v
        .rejected
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if !refused.is_empty() {
        writeln!(out, "Refused    {}", refused.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::view::ControlPlaneView;
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(speed(0), "-");
        assert_eq!(speed(100), "100M");
        assert_eq!(speed(10_000), "10G");
        assert_eq!(speed(2_500), "2.5G");
        assert_eq!(duration(1.5), "1.5s");
        assert_eq!(duration(192.0), "3m12s");
        assert_eq!(duration(7_500.0), "2h05m");
        assert_eq!(duration(273_600.0), "3d04h");
        assert_eq!(duration(f64::NAN), "-");
    }

    /// `show status` of a control-plane-fed dataplane: the revisions, then one line per
    /// problem (an apply error, each NAT object left out).
    #[test]
    fn status_lists_the_feeds_problems() {
        let v = StatusView {
            revision: 12,
            uptime_seconds: 75.0,
            version: "0.1.0".into(),
            poll_mode: "adaptive".into(),
            workers: Vec::new(),
            controlplane: Some(ControlPlaneView {
                servers: "10.0.0.1:7000".into(),
                host: "g1".into(),
                connected: true,
                applied_revision: 41,
                apply_error: None,
                received_revision: 41,
                from_cache: false,
                nat_conflicts: vec!["the control plane's floating IP 203.0.113.20 clashes".into()],
            }),
        };
        let mut out = Vec::new();
        status(&v, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("revision     41 applied, 41 received\n"),
            "{text}"
        );
        assert!(!text.contains("apply error"), "{text}");
        assert!(
            text.contains("  NAT conflict the control plane's floating IP 203.0.113.20 clashes\n"),
            "{text}"
        );
    }
}
