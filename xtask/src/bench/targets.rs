//! The targets, checked against a run's medians. A target below reach is a result to
//! report, not an error: the run never fails on one.
use super::{
    contenders::Contender,
    report::fmt_value,
    results::{Scenario, TargetCheck, Verdict},
    scenarios::{fastpath, https, reconfigure, tcp},
};

/// Every target the scenarios of this run can be judged on.
pub fn check(scenarios: &[Scenario]) -> Vec<TargetCheck> {
    let find = |id: u32| scenarios.iter().find(|s| s.id == id);
    let fp = Contender::Flowproxy.label();
    let ha = Contender::Haproxy.label();
    let mut out = Vec::new();
    if let Some(s) = find(1) {
        // Against the better of HAProxy and nginx on each measure (issue 16).
        let nginx = Contender::Nginx.label();
        let fastest = best(s, &[ha, nginx], "req_per_s", f64::max);
        let steadiest = best(s, &[ha, nginx], "p99_ms", f64::min);
        out.extend(
            fastest.and_then(|b| ratio(s, fp, b, "req_per_s", "req/s", Bound::AtLeast(1.2))),
        );
        out.extend(steadiest.and_then(|b| ratio(s, fp, b, "p99_ms", "p99 ms", Bound::AtMost(0.8))));
    }
    if let Some(s) = find(2) {
        out.extend(ratio(s, fp, ha, "req_per_s", "req/s", Bound::AtLeast(1.1)));
    }
    if let Some(s) = find(3) {
        out.extend(ratio(s, fp, ha, "p999_ms", "p99.9 ms", Bound::AtMost(1.0)));
    }
    if let Some(s) = find(4) {
        out.extend(fast_path(s));
    }
    if let Some(s) = find(5)
        && let Some(failed) = s.median(reconfigure::FLOWPROXY, "failed")
    {
        let requests = s.median(reconfigure::FLOWPROXY, "requests").unwrap_or(0.0);
        let haproxy = s.median(reconfigure::HAPROXY, "failed");
        out.push(TargetCheck {
            scenario: 5,
            target: "zero failed requests for flowproxy".to_owned(),
            measured: format!(
                "flowproxy {} failed of {} (median of rounds); HAProxy {} failed",
                fmt_value(failed),
                fmt_value(requests),
                opt(haproxy)
            ),
            verdict: verdict(failed == 0.0),
        });
    }
    if let Some(s) = find(6) {
        out.extend(ratio(s, fp, ha, "rss_mib", "RSS MiB", Bound::AtMost(1.0)));
        out.extend(ratio(
            s,
            fp,
            ha,
            "kib_per_connection",
            "KiB per idle connection",
            Bound::AtMost(1.0),
        ));
    }
    if let Some(s) = find(7)
        && let [small, large, ..] = s.rows.as_slice()
    {
        let (small, large) = (small.contender.as_str(), large.contender.as_str());
        out.extend(ratio(
            s,
            large,
            small,
            "req_per_s",
            "req/s",
            Bound::AtLeast(0.9),
        ));
        out.extend(ratio(
            s,
            large,
            small,
            "reconfigure_ms",
            "reconfigure call ms",
            Bound::AtMost(1.1),
        ));
    }
    if let Some(s) = find(8) {
        let detached = Contender::FlowproxyDetached.label();
        out.extend(ratio(
            s,
            fp,
            detached,
            "req_per_s",
            "req/s",
            Bound::AtLeast(0.98),
        ));
    }
    if let Some(s) = find(9) {
        out.extend(tls(s));
    }
    out
}

/// Scenario 9's targets: each HTTPS load ≥ 1.2× HAProxy's, and flowproxy's HTTP/2 no slower
/// per request than its HTTP/1.1.
fn tls(s: &Scenario) -> Vec<TargetCheck> {
    let (fp, ha) = (https::FLOWPROXY, https::HAPROXY);
    let mut out: Vec<TargetCheck> = [
        ("handshake_req_per_s", "full-handshake req/s"),
        ("h1_req_per_s", "HTTP/1.1-over-TLS req/s"),
        ("h2_req_per_s", "HTTP/2-over-TLS req/s"),
    ]
    .into_iter()
    .filter_map(|(key, what)| ratio(s, fp, ha, key, what, Bound::AtLeast(1.2)))
    .collect();
    if let (Some(h2), Some(h1)) = (s.median(fp, "h2_req_per_s"), s.median(fp, "h1_req_per_s")) {
        out.push(TargetCheck {
            scenario: 9,
            target: "flowproxy HTTP/2 req/s ≥ its HTTP/1.1 req/s over TLS".to_owned(),
            measured: format!("{} vs {} = {:.2}×", fmt_value(h2), fmt_value(h1), h2 / h1),
            verdict: verdict(h2 >= h1),
        });
    }
    out
}

/// Of `rows`, the one whose median of `key` `pick` prefers (`f64::max` for rates, `f64::min`
/// for latencies); `None` when none of them has one.
fn best<'a>(
    s: &Scenario,
    rows: &[&'a str],
    key: &str,
    pick: fn(f64, f64) -> f64,
) -> Option<&'a str> {
    let measured = rows.iter().filter_map(|r| Some((*r, s.median(r, key)?)));
    measured
        .reduce(|a, b| if pick(a.1, b.1) == a.1 { a } else { b })
        .map(|(row, _)| row)
}

/// Where a ratio must stay.
#[derive(Debug, Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

/// `row`'s median of `key` against `base`'s, judged by `bound`; `None` when either is missing.
/// Scenario 4's targets: the fast path against a direct transfer on the same wires and against
/// HAProxy, and flowproxy's user-space CPU during it against HAProxy's.
fn fast_path(s: &Scenario) -> Vec<TargetCheck> {
    let fast = s.median(fastpath::FAST_PATH, "gbit_per_s");
    let direct = s.median(fastpath::DIRECT_ROUTED, "gbit_per_s");
    let haproxy = s.median(tcp::HAPROXY, "gbit_per_s");
    let fast_cpu = s.median(fastpath::FAST_PATH, "proxy_user_cpu_pct");
    let haproxy_cpu = s.median(tcp::HAPROXY, "proxy_user_cpu_pct");
    let (Some(fast), Some(direct), Some(haproxy)) = (fast, direct, haproxy) else {
        return Vec::new();
    };
    let mut out = vec![TargetCheck {
        scenario: 4,
        target: "fast path ≥ 0.9× direct and ≥ 2× HAProxy (Gbit/s)".to_owned(),
        measured: format!(
            "fast path {} Gbit/s = {:.2}× direct on the same lab ({} Gbit/s), {:.2}× HAProxy ({} Gbit/s)",
            fmt_value(fast),
            fast / direct,
            fmt_value(direct),
            fast / haproxy,
            fmt_value(haproxy)
        ),
        verdict: verdict(fast >= 0.9 * direct && fast >= 2.0 * haproxy),
    }];
    if let (Some(cpu), Some(ha_cpu)) = (fast_cpu, haproxy_cpu) {
        out.push(TargetCheck {
            scenario: 4,
            target: "flowproxy user-space CPU during the fast-path transfer < 5% of HAProxy's"
                .to_owned(),
            measured: format!("{}% vs HAProxy {}%", fmt_value(cpu), fmt_value(ha_cpu)),
            verdict: verdict(cpu < 0.05 * ha_cpu),
        });
    }
    out
}

fn ratio(
    s: &Scenario,
    row: &str,
    base: &str,
    key: &str,
    what: &str,
    bound: Bound,
) -> Option<TargetCheck> {
    let (v, b) = (s.median(row, key)?, s.median(base, key)?);
    let r = v / b;
    let (target, met) = match bound {
        Bound::AtLeast(x) => (format!("{row} {what} ≥ {x}× {base}'s"), r >= x),
        Bound::AtMost(x) => (format!("{row} {what} ≤ {x}× {base}'s"), r <= x),
    };
    Some(TargetCheck {
        scenario: s.id,
        target,
        measured: format!("{} vs {} = {r:.2}×", fmt_value(v), fmt_value(b)),
        verdict: verdict(met),
    })
}

fn verdict(met: bool) -> Verdict {
    if met { Verdict::Met } else { Verdict::Missed }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), fmt_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::{Column, Table};

    const COLUMNS: &[Column] = &[
        Column {
            key: "req_per_s",
            label: "req/s",
        },
        Column {
            key: "p99_ms",
            label: "p99 ms",
        },
    ];

    #[test]
    fn scenario_one_is_judged_on_throughput_and_tail_latency() {
        let mut t = Table::new(COLUMNS);
        t.add("HAProxy", &[36_000.0, 2.0]);
        t.add("flowproxy", &[45_000.0, 1.8]);
        let checks = check(&[t.into_scenario(1, "", "", Some("HAProxy"))]);
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].verdict, Verdict::Met, "{:?}", checks[0]);
        assert_eq!(checks[0].measured, "45,000 vs 36,000 = 1.25×");
        assert_eq!(checks[1].verdict, Verdict::Missed, "p99 is 0.9× HAProxy's");
    }

    #[test]
    fn scenario_one_is_judged_against_the_better_of_haproxy_and_nginx() {
        let mut t = Table::new(COLUMNS);
        t.add("HAProxy", &[36_000.0, 2.0]);
        t.add("nginx", &[40_000.0, 2.5]);
        t.add("flowproxy", &[45_000.0, 1.5]);
        let checks = check(&[t.into_scenario(1, "", "", Some("HAProxy"))]);
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].measured, "45,000 vs 40,000 = 1.12×");
        assert_eq!(
            checks[0].verdict,
            Verdict::Missed,
            "1.12× nginx is below 1.2×"
        );
        assert!(checks[0].target.contains("nginx"), "{}", checks[0].target);
        assert_eq!(checks[1].measured, "1.50 vs 2.00 = 0.75×");
        assert_eq!(checks[1].verdict, Verdict::Met);
    }

    #[test]
    fn https_is_judged_per_load_and_http2_against_http1() {
        const TLS: &[Column] = &[
            Column {
                key: "handshake_req_per_s",
                label: "",
            },
            Column {
                key: "h1_req_per_s",
                label: "",
            },
            Column {
                key: "h2_req_per_s",
                label: "",
            },
        ];
        let mut t = Table::new(TLS);
        t.add("HAProxy", &[2_500.0, 32_000.0, 35_000.0]);
        t.add("flowproxy", &[3_200.0, 27_000.0, 20_000.0]);
        let checks = check(&[t.into_scenario(9, "", "", Some("HAProxy"))]);
        let verdicts: Vec<Verdict> = checks.iter().map(|c| c.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Met,
                Verdict::Missed,
                Verdict::Missed,
                Verdict::Missed
            ],
            "{checks:?}"
        );
        assert_eq!(checks[3].measured, "20,000 vs 27,000 = 0.74×");
    }

    #[test]
    fn missing_rows_give_no_verdict() {
        let mut t = Table::new(COLUMNS);
        t.add("HAProxy", &[36_000.0, 2.0]);
        assert!(check(&[t.into_scenario(1, "", "", Some("HAProxy"))]).is_empty());
    }
}
