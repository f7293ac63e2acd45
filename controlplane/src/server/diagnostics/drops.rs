//! `Drops` answers from the dataplanes' replies (sans-I/O): one host's `ShowErrors` totals
//! and `ShowSecurityDenials` become its non-zero [`HostDrop`]s, with the denial counters
//! ("GROUP/RULE_ID") behind the security-group drop reason; the hosts' drops are ranked
//! together, highest count first.

use std::cmp::Reverse;

use aegis_api::controlplane::v1::{DropsResponse, HostDrop, RuleCount, UnreachableHost};
use aegis_api::dataplane::v1 as pb;

/// The drop reason that security-group denials are counted under.
pub const SECURITY_GROUP_REASON: &str = "security_group_deny";

/// What one host gave: its drops, or why it could not be asked.
pub type HostResult = Result<(pb::ShowErrorsReply, pb::ShowSecurityDenialsReply), String>;

/// The non-zero drop counters of `host` (totals over its workers), the security-group
/// reason carrying the non-zero denial counters, highest first.
pub fn host_drops(
    host: &str,
    errors: &pb::ShowErrorsReply,
    denials: &pb::ShowSecurityDenialsReply,
) -> Vec<HostDrop> {
    let mut rules: Vec<RuleCount> = denials
        .denials
        .iter()
        .filter(|d| d.count > 0)
        .map(|d| RuleCount {
            rule: d.rule.clone(),
            count: d.count,
        })
        .collect();
    rules.sort_by(|a, b| (Reverse(a.count), &a.rule).cmp(&(Reverse(b.count), &b.rule)));
    errors
        .total
        .iter()
        .filter(|e| e.count > 0)
        .map(|e| HostDrop {
            host: host.to_owned(),
            reason: e.reason.clone(),
            description: e.description.clone(),
            count: e.count,
            rules: if e.reason == SECURITY_GROUP_REASON {
                rules.clone()
            } else {
                Vec::new()
            },
        })
        .collect()
}

/// The answer from every host's result: drops ranked by count (ties by host, then reason),
/// unreachable hosts and answering hosts by name.
pub fn response(results: Vec<(String, HostResult)>) -> DropsResponse {
    let mut r = DropsResponse::default();
    for (host, result) in results {
        match result {
            Ok((errors, denials)) => {
                r.drops.extend(host_drops(&host, &errors, &denials));
                r.hosts.push(host);
            }
            Err(error) => r.unreachable.push(UnreachableHost { host, error }),
        }
    }
    r.drops.sort_by(|a, b| {
        (Reverse(a.count), &a.host, &a.reason).cmp(&(Reverse(b.count), &b.host, &b.reason))
    });
    r.hosts.sort();
    r.unreachable.sort_by(|a, b| a.host.cmp(&b.host));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(counts: &[(&str, u64)]) -> pb::ShowErrorsReply {
        pb::ShowErrorsReply {
            workers: Vec::new(),
            total: counts
                .iter()
                .map(|(reason, count)| pb::ErrorCounter {
                    reason: (*reason).into(),
                    description: format!("{reason} described"),
                    count: *count,
                })
                .collect(),
        }
    }

    fn denials(counts: &[(&str, u64)]) -> pb::ShowSecurityDenialsReply {
        pb::ShowSecurityDenialsReply {
            denials: counts
                .iter()
                .map(|(rule, count)| pb::SecurityDenial {
                    rule: (*rule).into(),
                    count: *count,
                })
                .collect(),
        }
    }

    #[test]
    fn zeros_are_hidden_and_rules_go_with_the_security_group_reason() {
        let d = host_drops(
            "c1",
            &errors(&[
                ("no_route", 0),
                ("security_group_deny", 7),
                ("port_spoofed_ip", 3),
            ]),
            &denials(&[
                ("sg-web/no-http", 2),
                ("default/ingress-deny", 5),
                ("sg-db/x", 0),
            ]),
        );
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].reason.as_str(), d[0].count),
            ("security_group_deny", 7)
        );
        assert_eq!(
            d[0].rules
                .iter()
                .map(|r| (r.rule.as_str(), r.count))
                .collect::<Vec<_>>(),
            [("default/ingress-deny", 5), ("sg-web/no-http", 2)]
        );
        assert_eq!(d[1].host, "c1");
        assert_eq!(d[1].description, "port_spoofed_ip described");
        assert!(d[1].rules.is_empty());
    }

    #[test]
    fn hosts_are_ranked_together_and_failures_listed() {
        let r = response(vec![
            (
                "c2".into(),
                Ok((errors(&[("no_route", 4), ("ttl_expired", 9)]), denials(&[]))),
            ),
            ("c3".into(), Err("down".into())),
            (
                "c1".into(),
                Ok((
                    errors(&[("port_spoofed_ip", 4), ("no_route", 0)]),
                    denials(&[]),
                )),
            ),
        ]);
        let ranked: Vec<(&str, &str, u64)> = r
            .drops
            .iter()
            .map(|d| (d.host.as_str(), d.reason.as_str(), d.count))
            .collect();
        assert_eq!(
            ranked,
            [
                ("c2", "ttl_expired", 9),
                ("c1", "port_spoofed_ip", 4),
                ("c2", "no_route", 4),
            ]
        );
        assert_eq!(r.hosts, ["c1", "c2"]);
        assert_eq!(r.unreachable.len(), 1);
        assert_eq!(
            (
                r.unreachable[0].host.as_str(),
                r.unreachable[0].error.as_str()
            ),
            ("c3", "down")
        );
    }
}
