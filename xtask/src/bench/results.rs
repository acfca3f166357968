//! What a run produces (`target/bench/results.json`): per scenario, one row per contender with
//! each metric's samples (one per round), their median and the ratio to the scenario's baseline
//! (HAProxy, unless the scenario compares something else).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::stats::median;

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// When the run started (UTC).
    pub date: String,
    /// `full` or `quick`.
    pub mode: String,
    /// Rounds of the alternating scenarios.
    pub rounds: u32,
    /// Where it ran.
    pub machine: Machine,
    /// Which process ran on which core.
    pub pinning: String,
    /// Scenarios 1 to 8, in order.
    pub scenarios: Vec<Scenario>,
    /// The targets, checked against the medians.
    pub targets: Vec<TargetCheck>,
}

/// The machine a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Cores available.
    pub cores: usize,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// `uname -r`.
    pub kernel: String,
    /// The distribution.
    pub os: String,
    /// Versions of the contenders and tools.
    pub tools: BTreeMap<String, String>,
}

/// One scenario's table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    /// The number for it (1-8).
    pub id: u32,
    /// Its title.
    pub title: String,
    /// How it was measured, in a sentence.
    pub method: String,
    /// The row every ratio is relative to.
    pub baseline: Option<String>,
    /// One row per contender.
    pub rows: Vec<Row>,
}

/// Whether a contender was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It ran; its metrics hold numbers.
    Measured,
    /// The feature does not exist yet; `note` names the issue.
    NotImplemented,
}

/// One contender in one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Who ran (`HAProxy`, `flowproxy`, ...).
    pub contender: String,
    /// Measured or not implemented.
    pub status: Status,
    /// Why a row has no numbers, or what to know about them.
    pub note: Option<String>,
    /// Its metrics, in the scenario's column order.
    pub metrics: Vec<Metric>,
}

/// One metric of one row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    /// Stable key (`req_per_s`, `p99_ms`, ...).
    pub key: String,
    /// Column heading.
    pub label: String,
    /// One value per round.
    pub samples: Vec<f64>,
    /// Their median.
    pub median: f64,
    /// median / the baseline row's median.
    pub vs_baseline: Option<f64>,
}

/// A target of the issue and what the run says about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    /// The scenario it belongs to.
    pub scenario: u32,
    /// The target, as the issue words it.
    pub target: String,
    /// The numbers it was judged on.
    pub measured: String,
    /// Met, missed, or not measurable yet.
    pub verdict: Verdict,
}

/// A target's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The run meets it.
    Met,
    /// The run falls short of it.
    Missed,
    /// The feature it measures does not exist yet.
    NotImplemented,
}

/// A column of a scenario: its key and heading.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Stable key.
    pub key: &'static str,
    /// Heading, with its unit.
    pub label: &'static str,
}

/// Collects one scenario's samples, round by round, then builds its rows.
#[derive(Debug)]
pub struct Table {
    columns: &'static [Column],
    rows: Vec<(String, Vec<Vec<f64>>, Option<String>)>,
    not_implemented: Vec<(String, String)>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &'static [Column]) -> Self {
        Self {
            columns,
            rows: Vec::new(),
            not_implemented: Vec::new(),
        }
    }

    /// Adds one round's values for `contender`, in column order; NaN where a column has no
    /// value this round (a column with none at all is left out of the row).
    pub fn add(&mut self, contender: &str, values: &[f64]) {
        assert_eq!(values.len(), self.columns.len(), "one value per column");
        let row = match self.rows.iter().position(|(c, ..)| c == contender) {
            Some(i) => &mut self.rows[i],
            None => {
                let empty = vec![Vec::new(); self.columns.len()];
                self.rows.push((contender.to_owned(), empty, None));
                self.rows.last_mut().expect("just pushed")
            }
        };
        for (samples, v) in row.1.iter_mut().zip(values) {
            samples.push(*v);
        }
    }

    /// Attaches a note to a contender's row.
    pub fn note(&mut self, contender: &str, note: impl Into<String>) {
        if let Some(row) = self.rows.iter_mut().find(|(c, ..)| c == contender) {
            row.2 = Some(note.into());
        }
    }

    /// A row for something that does not exist yet, with the reason.
    #[allow(dead_code)] // every contender exists today; kept for the next one that does not yet
    pub fn not_implemented(&mut self, contender: &str, reason: &str) {
        self.not_implemented
            .push((contender.to_owned(), reason.to_owned()));
    }

    /// The scenario, with medians and ratios to `baseline`'s medians.
    pub fn into_scenario(
        self,
        id: u32,
        title: &str,
        method: &str,
        baseline: Option<&str>,
    ) -> Scenario {
        let base: Option<Vec<f64>> = baseline.and_then(|b| {
            self.rows
                .iter()
                .find(|(c, ..)| c == b)
                .map(|(_, samples, _)| samples.iter().map(|s| median(s)).collect())
        });
        let mut rows: Vec<Row> = self
            .rows
            .into_iter()
            .map(|(contender, samples, note)| Row {
                contender,
                status: Status::Measured,
                note,
                metrics: self
                    .columns
                    .iter()
                    .zip(samples)
                    .enumerate()
                    .filter_map(|(i, (col, samples))| {
                        let samples: Vec<f64> =
                            samples.into_iter().filter(|v| !v.is_nan()).collect();
                        if samples.is_empty() {
                            return None;
                        }
                        let m = median(&samples);
                        let vs_baseline = base.as_ref().map(|b| m / b[i]).filter(|r| r.is_finite());
                        Some(Metric {
                            key: col.key.to_owned(),
                            label: col.label.to_owned(),
                            samples,
                            median: m,
                            vs_baseline,
                        })
                    })
                    .collect(),
            })
            .collect();
        rows.extend(
            self.not_implemented
                .into_iter()
                .map(|(contender, reason)| Row {
                    contender,
                    status: Status::NotImplemented,
                    note: Some(reason),
                    metrics: Vec::new(),
                }),
        );
        Scenario {
            id,
            title: title.to_owned(),
            method: method.to_owned(),
            baseline: baseline.map(str::to_owned),
            rows,
        }
    }
}

impl Results {
    /// The scenario with this id.
    pub fn scenario(&self, id: u32) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.id == id)
    }
}

impl Scenario {
    /// The median of `key` for `contender`, if it was measured.
    pub fn median(&self, contender: &str, key: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.contender == contender && r.status == Status::Measured)?
            .metrics
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.median)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn rows_hold_medians_and_ratios_to_the_baseline() {
        let mut t = Table::new(COLUMNS);
        for (a, b) in [(100.0, 2.0), (120.0, 4.0), (110.0, 3.0)] {
            t.add("HAProxy", &[a, b]);
            t.add("flowproxy", &[a * 1.5, b / 2.0]);
        }
        t.add("direct", &[500.0, f64::NAN]);
        t.not_implemented("flowproxy XDP", "not implemented (issue 5)");
        let s = t.into_scenario(1, "keep-alive", "wrk", Some("HAProxy"));
        assert_eq!(s.median("HAProxy", "req_per_s"), Some(110.0));
        let fp = &s.rows[1];
        assert_eq!(fp.metrics[0].vs_baseline, Some(1.5));
        assert_eq!(fp.metrics[1].median, 1.5);
        assert_eq!(
            s.rows[2].metrics.len(),
            1,
            "a column without values is left out"
        );
        assert_eq!(s.rows[3].status, Status::NotImplemented);
        assert_eq!(s.median("flowproxy XDP", "req_per_s"), None);
    }
}
