//! What the control plane tells the rest of the process: counters of the changes it applied or
//! refused, and a signal when routes or replicas change. Plain prometheus-client handles, so the
//! control plane needs nothing of the metrics module (which registers them).
use std::{
    sync::{Arc, atomic::AtomicU64},
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::sync::Notify;

/// What the control plane tells the rest of the process.
#[derive(Clone, Default)]
pub struct ControlHooks {
    /// Counts applied changes (`flowproxy_config_reloads_total`).
    pub reloads: Counter,
    /// Counts changes by result (`flowproxy_config_changes_total{result}`).
    pub changes: ChangeCounters,
    /// Notified when routes or replicas change.
    pub changed: Arc<Notify>,
}

/// The counters behind `flowproxy_config_changes_total{result}` and
/// `flowproxy_config_last_change_timestamp_seconds`.
#[derive(Clone, Default, Debug)]
pub struct ChangeCounters {
    /// `result="applied"`: saved and swapped in.
    pub applied: Counter,
    /// `result="rejected"`: refused as invalid or conflicting (a 4xx); nothing changed.
    pub rejected: Counter,
    /// `result="failed"`: valid but not saved (the state directory), so not applied (a 500).
    pub failed: Counter,
    /// When the running configuration was last applied (unix seconds): the start-up restore,
    /// then every applied change.
    pub last_applied: Gauge<f64, AtomicU64>,
}

impl ChangeCounters {
    /// Records a change applied now.
    pub fn applied(&self) {
        self.applied.inc();
        self.touch();
    }

    /// Records that the running configuration was (re)loaded now without counting a change:
    /// the restore at start, so the gauge is never 0 while the proxy runs.
    pub fn touch(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_applied.set(now);
    }
}
