//! The standard `process_*` metrics every Prometheus client library exports, read from
//! `/proc/self` at scrape time (with the `procfs` crate): CPU time, memory, file descriptors,
//! threads and the start time, so the usual process dashboards and alerts work unchanged.
use procfs::{
    WithCurrentSystemInfo as _,
    process::{LimitValue, Process},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// What one read of `/proc/self` found; a value that could not be read is `None` and its
/// family is left out of the scrape rather than exported as 0.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ProcessStats {
    pub(super) cpu_seconds: Option<f64>,
    pub(super) resident_bytes: Option<u64>,
    pub(super) virtual_bytes: Option<u64>,
    pub(super) open_fds: Option<u64>,
    pub(super) max_fds: Option<u64>,
    pub(super) threads: Option<u64>,
    pub(super) start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures now.
    pub(super) fn read() -> Self {
        let Ok(me) = Process::myself() else {
            return Self::default();
        };
        let mut stats = Self {
            open_fds: me.fd_count().ok().map(|n| n as u64),
            max_fds: me
                .limits()
                .ok()
                .and_then(|l| match l.max_open_files.soft_limit {
                    LimitValue::Value(v) => Some(v),
                    LimitValue::Unlimited => None,
                }),
            ..Self::default()
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            stats.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
            stats.resident_bytes = Some(stat.rss_bytes().get());
            stats.virtual_bytes = Some(stat.vsize);
            stats.threads = u64::try_from(stat.num_threads).ok();
            stats.start_time_seconds = procfs::boot_time_secs()
                .ok()
                .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
        }
        stats
    }
}

/// Exports [`ProcessStats`] at each scrape.
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode(&mut encoder, &ProcessStats::read())
    }
}

/// The `process_*` families of `stats`.
fn encode(encoder: &mut DescriptorEncoder, stats: &ProcessStats) -> Result<(), std::fmt::Error> {
    if let Some(seconds) = stats.cpu_seconds {
        let family = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(seconds).encode(family)?;
    }
    let integers = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            stats.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            stats.virtual_bytes,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors",
            stats.open_fds,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors",
            stats.max_fds,
        ),
        (
            "process_threads",
            "Number of OS threads in the process",
            stats.threads,
        ),
    ];
    for (name, help, value) in integers {
        if let Some(value) = value {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(family)?;
        }
    }
    if let Some(start) = stats.start_time_seconds {
        let family = encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(start).encode(family)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn this_process_is_read_from_proc() {
        let stats = ProcessStats::read();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = stats.start_time_seconds.expect("start time");
        // The test binary started within the last hour, and not in the future (ticks are
        // 1/100 s, boot time whole seconds).
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
        assert!(stats.resident_bytes.expect("rss") > 1 << 20);
        assert!(stats.virtual_bytes.unwrap() >= stats.resident_bytes.unwrap());
        assert!(stats.open_fds.expect("fds") >= 3, "stdin, stdout, stderr");
        assert!(stats.threads.expect("threads") >= 1);
        assert!(stats.cpu_seconds.expect("cpu") >= 0.0);
    }

    #[derive(Debug)]
    struct Fixed(ProcessStats);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode(&mut encoder, &self.0)
        }
    }

    #[test]
    fn the_standard_names_are_exported_and_unread_ones_left_out() {
        let stats = ProcessStats {
            cpu_seconds: Some(1.5),
            resident_bytes: Some(4096),
            open_fds: Some(12),
            start_time_seconds: Some(1_700_000_000.25),
            ..ProcessStats::default()
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(stats)));
        let text = super::super::Format::Prometheus.encode(&registry).unwrap();
        for line in [
            "# TYPE process_cpu_seconds_total counter",
            "process_cpu_seconds_total 1.5",
            "process_resident_memory_bytes 4096",
            "process_open_fds 12",
            "process_start_time_seconds 1700000000.25",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("process_virtual_memory_bytes"), "{text}");
        assert!(!text.contains("process_threads"), "{text}");
    }
}
