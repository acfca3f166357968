//! The TCP-mode fast path, user-space half: settings, programming services and their Maglev
//! rings, the source-port range, and sweeping conntrack. The kernel half is
//! `proxy-ebpf/src/flows.rs` (and the two hooks that apply it).
pub mod maglev;
pub mod ports;
mod services;
pub mod sweep;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use proxy_common::{
    fastpath::{FastPathConfig, PROTO_TCP, ServiceKey, budget, v4_mapped},
    map_names,
};

use super::{
    error::DataPlaneError,
    maps::{Maps, map_err},
};
pub use services::Programmed;
pub use sweep::SweepReport;

/// `--l4-fastpath`: whether and where the kernel forwards TCP-mode flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum FastPathMode {
    /// No fast path: every TCP-mode connection goes through the user-space relay.
    Off,
    /// XDP in generic (skb) mode: physical NICs only; refused on virtual devices, whose local
    /// senders leave TCP checksums to offload (the default on veths), which it cannot rewrite.
    Generic,
    /// Native XDP (also `xdp`): physical NICs only; refused on virtual devices.
    #[value(alias = "xdp")]
    Native,
    /// The TC program on every interface.
    Tc,
    /// Per interface: native XDP on physical NICs whose driver has it, TC elsewhere.
    #[default]
    Auto,
}

/// The fast path's settings.
#[derive(Debug, Clone)]
pub struct FastPathSettings {
    /// `--l4-fastpath`.
    pub mode: FastPathMode,
    /// `--conntrack-size`: the most fast-path flows at once.
    pub conntrack_size: u32,
    /// `--l4-drain-timeout`: how long flows to a removed replica keep going.
    pub drain_timeout: Duration,
    /// Test hook: the attach-time self-test judges its probe with one bit flipped.
    pub self_test_fault: bool,
}

impl FastPathSettings {
    /// Entries of the conntrack map: two per flow, plus room for the per-CPU free lists of an
    /// LRU map, so that live flows are never evicted while the budget holds.
    pub fn conntrack_entries(&self) -> u32 {
        let cpus = aya::util::nr_cpus().unwrap_or(64) as u32;
        self.conntrack_size
            .saturating_mul(2)
            .saturating_add(cpus.saturating_mul(256))
    }
}

/// A TCP-mode service as the fast path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L4Service {
    /// The service's name (logs and stats).
    pub name: String,
    /// The address its listener is bound to (unspecified: any local address).
    pub listen: IpAddr,
    /// `srcPort`.
    pub port: u16,
    /// Its replicas now.
    pub replicas: Vec<SocketAddr>,
    /// `timeoutTunnel`.
    pub idle_timeout: Duration,
}

impl L4Service {
    /// The `L4_SERVICES` key.
    pub fn key(&self) -> ServiceKey {
        // `0.0.0.0` is every IPv4 address (`::ffff:0.0.0.0`); `[::]` every address of both.
        let addr = match self.listen {
            IpAddr::V4(v4) => v4_mapped(v4.octets()),
            IpAddr::V6(v6) => v6.octets(),
        };
        ServiceKey {
            addr,
            port: self.port,
            proto: PROTO_TCP,
            _pad: 0,
        }
    }
}

/// The fast path's running state.
#[derive(Debug)]
pub struct FastPath {
    settings: FastPathSettings,
    programmed: BTreeMap<ServiceKey, Programmed>,
    draining: sweep::Draining,
}

impl FastPath {
    /// Writes the settings into freshly loaded maps: the source-port range and the flow budget
    /// (0, which turns the fast path off, when the mode is `off` or no port range is free).
    pub fn init(maps: &mut Maps, settings: FastPathSettings) -> Result<Self, DataPlaneError> {
        let ports = ports::ephemeral_ports().and_then(ports::fast_path_ports);
        let config = match &ports {
            Some(r) => FastPathConfig {
                port_min: *r.start(),
                port_count: (*r.end() as u32 - *r.start() as u32 + 1).min(u16::MAX as u32) as u16,
            },
            None => FastPathConfig::default(),
        };
        let enabled = settings.mode != FastPathMode::Off && ports.is_some();
        if settings.mode != FastPathMode::Off && ports.is_none() {
            tracing::warn!(
                "no source ports are free outside net.ipv4.ip_local_port_range; the TCP-mode \
                 fast path is off (narrow the range to enable it)"
            );
        }
        maps.l4_config
            .set(0, config, 0)
            .map_err(map_err(map_names::L4_CONFIG))?;
        let limit = if enabled {
            settings.conntrack_size as u64
        } else {
            0
        };
        sweep::write_budget(maps, budget::LIMIT, limit)?;
        if enabled {
            tracing::info!(
                mode = ?settings.mode,
                flows = settings.conntrack_size,
                ports = ?ports,
                "TCP-mode fast path on"
            );
        }
        Ok(Self {
            settings,
            programmed: BTreeMap::new(),
            draining: sweep::Draining::default(),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &FastPathSettings {
        &self.settings
    }

    /// Makes the programmed services exactly `wanted` (none when the mode is `off`).
    pub fn sync(&mut self, maps: &mut Maps, wanted: &[L4Service]) -> Result<(), DataPlaneError> {
        let wanted = if self.settings.mode == FastPathMode::Off {
            &[][..]
        } else {
            wanted
        };
        self.programmed = services::sync(maps, wanted, &self.programmed)?;
        Ok(())
    }

    /// Sweeps conntrack once (see [`sweep::sweep`]).
    pub fn sweep(&mut self, maps: &mut Maps) -> Result<SweepReport, DataPlaneError> {
        let replicas = self
            .programmed
            .values()
            .map(|p| (p.slot, p.replicas.clone()))
            .collect();
        sweep::sweep(
            maps,
            &replicas,
            &mut self.draining,
            self.settings.drain_timeout,
            monotonic_ns(),
        )
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Turns IPv4 and IPv6 forwarding on for `interface`: `bpf_fib_lookup` refuses to route from
/// an interface that does not forward, and the stack must forward the frames the fast path
/// hands it while a neighbour is resolved.
pub fn enable_forwarding(interface: &str) {
    set_forwarding(interface, "ipv4");
    let v6 = format!("/proc/sys/net/ipv6/conf/{interface}");
    if !std::path::Path::new(&v6).exists() {
        return; // IPv6 is off on this interface (or in this kernel): nothing to forward.
    }
    // A forwarding interface ignores router advertisements unless accept_ra is 2: keep what
    // the host learnt from them (its default route) by moving 1 to 2 first.
    let accept_ra = format!("{v6}/accept_ra");
    if std::fs::read_to_string(&accept_ra).is_ok_and(|v| v.trim() == "1")
        && std::fs::write(&accept_ra, "2").is_ok()
    {
        tracing::info!(
            interface,
            "accept_ra set to 2, so router advertisements still count once IPv6 forwards"
        );
    }
    set_forwarding(interface, "ipv6");
}

fn set_forwarding(interface: &str, family: &str) {
    let path = format!("/proc/sys/net/{family}/conf/{interface}/forwarding");
    match std::fs::read_to_string(&path) {
        Ok(v) if v.trim() == "1" => {}
        _ => match std::fs::write(&path, "1") {
            Ok(()) => tracing::info!(
                interface,
                family,
                "forwarding enabled for the TCP-mode fast path"
            ),
            Err(e) => tracing::warn!(
                interface,
                error = %e,
                "cannot enable {family} forwarding; TCP-mode flows from this interface stay on \
                 the slow path (set net.{family}.conf.{interface}.forwarding=1)"
            ),
        },
    }
}
