//! How long and how often each scenario runs: the full benchmark, or `--quick` (every scenario
//! briefly, to check that the harness works).
use std::time::Duration;

/// Load-generator settings shared by the HTTP scenarios (the reference: `wrk -t1 -c32`).
pub const CONNECTIONS: u32 = 32;

/// Durations, round counts and sizes for one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `full` or `quick`, as recorded in the results.
    pub mode: &'static str,
    /// Rounds of the alternating scenarios (A B C D, A B C D, ...).
    pub rounds: u32,
    /// Load before each measurement, so pools and caches are warm (whole seconds: wrk's unit).
    pub warmup_secs: u32,
    /// One measurement of scenarios 1, 2, 7 and 8.
    pub load_secs: u32,
    /// One measurement at a fixed rate (scenario 3): longer, so p99.9 rests on enough samples.
    pub fixed_rate: Duration,
    /// One iperf3 transfer (scenario 4).
    pub tcp_secs: u32,
    /// The load during which the proxy is reconfigured or reloaded (scenario 5).
    pub reconfigure_load_secs: u32,
    /// flowproxy reconfigure calls during that load.
    pub reconfigures: u32,
    /// HAProxy reloads during that load (the reference rate: 5 per second).
    pub reloads: u32,
    /// Idle keep-alive connections for the memory scenario (6).
    pub idle_connections: u32,
    /// Services configured in the scale scenario (7), against 10.
    pub services: u32,
}

impl Plan {
    /// The benchmark whose table goes into the README.
    pub fn full() -> Self {
        Self {
            mode: "full",
            rounds: 5,
            warmup_secs: 1,
            load_secs: 5,
            fixed_rate: Duration::from_secs(10),
            tcp_secs: 5,
            reconfigure_load_secs: 20,
            reconfigures: 1000,
            reloads: 100,
            idle_connections: 10_000,
            services: 10_000,
        }
    }

    /// Every scenario once and briefly: checks the harness, says little about performance.
    pub fn quick() -> Self {
        Self {
            mode: "quick",
            rounds: 1,
            warmup_secs: 1,
            load_secs: 2,
            fixed_rate: Duration::from_secs(2),
            tcp_secs: 2,
            reconfigure_load_secs: 5,
            reconfigures: 250,
            reloads: 25,
            idle_connections: 1000,
            services: 1000,
        }
    }
}
