//! `target/bench/results.md`: one table per scenario (medians, the ratio to the baseline row in
//! parentheses), then the targets with their verdicts. The README quotes it.
use std::fmt::Write as _;

use super::results::{Results, Scenario, Status, Verdict};

/// The whole report.
pub fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let tools: Vec<String> = [
        ("haproxy", "HAProxy"),
        ("nginx", "nginx"),
        ("wrk", "wrk"),
        ("iperf3", "iperf3"),
        ("rustc", "rustc"),
    ]
    .iter()
    .filter_map(|(key, name)| m.tools.get(*key).map(|v| format!("{name} {v}")))
    .collect();
    let _ = writeln!(
        md,
        "Run of {} (`cargo xtask bench`{}): {} round{} per scenario, contenders alternating round by round; each cell is the median over the rounds, with the ratio to the scenario's baseline row in parentheses.\n",
        r.date,
        if r.mode == "quick" { " --quick" } else { "" },
        r.rounds,
        if r.rounds == 1 { "" } else { "s" },
    );
    let _ = writeln!(
        md,
        "Machine: {}, {} cores, {} GiB, {}, Linux {}; {}.\n",
        m.cpu,
        m.cores,
        m.memory_gib,
        m.os,
        m.kernel,
        tools.join("; ")
    );
    let _ = writeln!(md, "Pinning: {}.\n", r.pinning);
    for s in &r.scenarios {
        scenario(&mut md, s);
    }
    let _ = writeln!(md, "#### Targets (issues 7, 13 and 16)\n");
    let _ = writeln!(md, "| scenario | target | measured | verdict |");
    let _ = writeln!(md, "|---|---|---|---|");
    for t in &r.targets {
        let verdict = match t.verdict {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NotImplemented => "not implemented",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {verdict} |",
            t.scenario, t.target, t.measured
        );
    }
    md
}

fn scenario(md: &mut String, s: &Scenario) {
    let _ = writeln!(md, "#### {}. {}\n", s.id, s.title);
    let _ = writeln!(md, "{}.\n", s.method.trim_end_matches('.'));
    // Columns: every metric key in the order the rows first show them.
    let mut columns: Vec<(&str, &str)> = Vec::new();
    for row in &s.rows {
        for metric in &row.metrics {
            if !columns.iter().any(|(k, _)| *k == metric.key) {
                columns.push((&metric.key, &metric.label));
            }
        }
    }
    let _ = write!(md, "| contender |");
    for (_, label) in &columns {
        let _ = write!(md, " {label} |");
    }
    let _ = write!(md, "\n|---|");
    for _ in &columns {
        let _ = write!(md, "---:|");
    }
    md.push('\n');
    let mut notes = Vec::new();
    for row in &s.rows {
        let base = s.baseline.as_deref() == Some(row.contender.as_str());
        let name = if base {
            format!("{} (baseline)", row.contender)
        } else {
            row.contender.clone()
        };
        let _ = write!(md, "| {name} |");
        if row.status == Status::NotImplemented {
            let note = row.note.as_deref().unwrap_or("not implemented");
            let _ = write!(md, " {note} |");
            for _ in 1..columns.len() {
                let _ = write!(md, " – |");
            }
            md.push('\n');
            continue;
        }
        for (key, _) in &columns {
            let cell = row.metrics.iter().find(|m| m.key == *key).map_or_else(
                || "–".to_owned(),
                |m| match m.vs_baseline {
                    Some(r) if !base => format!("{} ({})", fmt_value(m.median), fmt_ratio(r)),
                    _ => fmt_value(m.median),
                },
            );
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
        if let Some(note) = &row.note {
            notes.push(format!("{}: {note}", row.contender));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\n{}.", notes.join("; "));
    }
    md.push('\n');
}

/// A number with the precision it deserves: thousands separated, small values with decimals.
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a < 1.0 {
        format!("{v:.3}")
    } else if a < 10.0 {
        format!("{v:.2}")
    } else if a < 100.0 {
        format!("{v:.1}")
    } else {
        let rounded = v.round() as i64;
        let out = thousands(rounded.unsigned_abs());
        if rounded < 0 { format!("-{out}") } else { out }
    }
}

/// 10000 -> "10,000".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::{Column, Table};

    #[test]
    fn values_keep_the_precision_they_deserve() {
        assert_eq!(fmt_value(36_123.4), "36,123");
        assert_eq!(fmt_value(1_234_567.0), "1,234,567");
        assert_eq!(fmt_value(42.345), "42.3");
        assert_eq!(fmt_value(1.456), "1.46");
        assert_eq!(fmt_value(0.2271), "0.227");
        assert_eq!(fmt_value(0.0), "0");
        assert_eq!(thousands(10), "10");
        assert_eq!(thousands(10_000), "10,000");
    }

    #[test]
    fn tables_show_ratios_and_not_implemented_rows() {
        const COLUMNS: &[Column] = &[
            Column {
                key: "gbit_per_s",
                label: "Gbit/s",
            },
            Column {
                key: "cpu",
                label: "CPU %",
            },
        ];
        let mut t = Table::new(COLUMNS);
        t.add("direct", &[20.0, f64::NAN]);
        t.add("HAProxy", &[10.0, 50.0]);
        t.not_implemented("flowproxy", "not implemented (issue 5)");
        let mut md = String::new();
        scenario(
            &mut md,
            &t.into_scenario(4, "TCP", "iperf3", Some("HAProxy")),
        );
        assert!(md.contains("| contender | Gbit/s | CPU % |"), "{md}");
        assert!(md.contains("| direct | 20.0 (2.00×) | – |"), "{md}");
        assert!(md.contains("| HAProxy (baseline) | 10.0 | 50.0 |"), "{md}");
        assert!(
            md.contains("| flowproxy | not implemented (issue 5) | – |"),
            "{md}"
        );
    }
}
