//! Reading `aegisctl --output json` replies. The one place that knows their shape, so a change
//! of the CLI's JSON is a change here only.
//!
//! The shapes are defined by `controlplane/src/dp/view.rs` (`ErrorsView`, `RoutesView`) and
//! mirror the admin API in `controlplane/api/proto/aegis/dataplane/v1/admin.proto`:
//! `show errors` is `{"workers": [{"worker", "counters": [..]}], "total": [{"reason",
//! "description", "count"}]}` with every reason listed, zeros included; `show routes` is
//! `{"routes": [{"prefix", "kind", "next_hop", "port", "origin"}]}` with `null` for an absent
//! gateway or port. The protobuf JSON mapping's spellings are accepted too (`nextHop`, 64-bit
//! counters as decimal strings), so a switch to it needs no change here.

use std::collections::BTreeMap;

use serde_json::Value;

/// Drop counters by reason name, summed over workers.
pub type DropCounters = BTreeMap<String, u64>;

/// One route of `show routes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRow {
    /// Destination prefix, CIDR.
    pub prefix: String,
    /// Kind as the CLI prints it ("ROUTE_KIND_GATEWAY", "gateway", ...).
    pub kind: String,
    /// Gateway, empty when none.
    pub next_hop: String,
    /// Egress port, empty when none.
    pub port: String,
}

/// Drop counters from a `show errors` reply: the `total` list when present, else the sum of
/// the per-worker lists.
pub fn drop_counters(v: &Value) -> Result<DropCounters, String> {
    if let Some(total) = v.get("total").and_then(Value::as_array) {
        return counter_list(total);
    }
    if let Some(workers) = v.get("workers").and_then(Value::as_array) {
        let mut sum = DropCounters::new();
        for w in workers {
            let list = w
                .get("counters")
                .and_then(Value::as_array)
                .ok_or("a worker entry has no `counters` list")?;
            for (reason, n) in counter_list(list)? {
                *sum.entry(reason).or_default() += n;
            }
        }
        return Ok(sum);
    }
    if let Some(list) = v.as_array() {
        return counter_list(list);
    }
    Err("expected an object with `total` or `workers`, or a list of counters".into())
}

/// Routes from a `show routes` reply (`{"routes": [...]}` or a bare list).
pub fn routes(v: &Value) -> Result<Vec<RouteRow>, String> {
    let list = v
        .get("routes")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .ok_or("expected an object with a `routes` list, or a list")?;
    list.iter()
        .map(|r| {
            Ok(RouteRow {
                prefix: text(r, &["prefix"]).ok_or("a route has no `prefix`")?,
                kind: text(r, &["kind"]).unwrap_or_default(),
                next_hop: text(r, &["next_hop", "nextHop"]).unwrap_or_default(),
                port: text(r, &["port"]).unwrap_or_default(),
            })
        })
        .collect()
}

fn counter_list(list: &[Value]) -> Result<DropCounters, String> {
    let mut out = DropCounters::new();
    for c in list {
        let reason =
            text(c, &["reason", "name"]).ok_or_else(|| format!("counter without `reason`: {c}"))?;
        let n = c
            .get("count")
            .and_then(number)
            .ok_or_else(|| format!("counter {reason} without a numeric `count`: {c}"))?;
        *out.entry(reason).or_default() += n;
    }
    Ok(out)
}

fn text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match v.get(*k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_from_total() {
        let v = json!({
            "workers": [{"worker": 0, "counters": [{"reason": "no_route", "description": "x", "count": 99}]}],
            "total": [
                {"reason": "no_route", "description": "No route", "count": 3},
                {"reason": "ip4_bad_ihl", "description": "IHL", "count": "18446744073709551615"}
            ]
        });
        let c = drop_counters(&v).unwrap();
        assert_eq!(c["no_route"], 3);
        assert_eq!(c["ip4_bad_ihl"], u64::MAX);
    }

    #[test]
    fn errors_summed_over_workers_without_total() {
        let v = json!({"workers": [
            {"worker": 0, "counters": [{"reason": "no_route", "count": 2}]},
            {"worker": 1, "counters": [{"reason": "no_route", "count": 5}, {"reason": "eth_runt", "count": 1}]}
        ]});
        let c = drop_counters(&v).unwrap();
        assert_eq!(c["no_route"], 7);
        assert_eq!(c["eth_runt"], 1);
    }

    #[test]
    fn errors_reject_unknown_shapes() {
        assert!(drop_counters(&json!({"x": 1})).is_err());
        assert!(drop_counters(&json!({"total": [{"count": 1}]})).is_err());
        assert!(drop_counters(&json!({"total": [{"reason": "a", "count": "x"}]})).is_err());
    }

    #[test]
    fn routes_in_both_field_spellings() {
        let v = json!({"routes": [
            {"prefix": "10.0.3.0/24", "kind": "ROUTE_KIND_GATEWAY", "next_hop": "10.0.2.2", "port": "eth1"},
            {"prefix": "10.0.1.0/24", "kind": "connected", "nextHop": "", "port": "eth0"},
            {"prefix": "10.0.1.1/32", "kind": 1},
            {"prefix": "10.0.2.0/24", "kind": "connected", "next_hop": null, "port": null, "origin": "connected"}
        ]});
        let r = routes(&v).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!((r[3].next_hop.as_str(), r[3].port.as_str()), ("", ""));
        assert_eq!(r[0].next_hop, "10.0.2.2");
        assert_eq!(r[0].port, "eth1");
        assert_eq!(r[1].kind, "connected");
        assert_eq!(r[2].kind, "1");
        assert_eq!(r[2].next_hop, "");
        assert!(routes(&json!({"routes": [{"kind": 1}]})).is_err());
    }
}
