//! `flowproxy stats`: the data plane's counters as tables or JSON, read from the pinned maps
//! (no running proxy needed).
use std::{io::Write as _, path::Path};

use crate::{cli::StatsArgs, dataplane};

/// Prints the counters pinned under `pin_dir`.
pub fn run(pin_dir: &Path, args: &StatsArgs) -> anyhow::Result<()> {
    let interfaces = dataplane::read_iface_stats(pin_dir)?;
    let backends = dataplane::read_backend_stats(pin_dir)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({ "backends": backends, "interfaces": interfaces });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<22} {:>10} {:>12} {:>10} {:>12} {:>8} {:>7}",
        "SERVICE", "REPLICA", "PKTS_IN", "BYTES_IN", "PKTS_OUT", "BYTES_OUT", "CONNS", "RESETS"
    )?;
    for b in &backends {
        let c = &b.counters;
        writeln!(
            out,
            "{:<20} {:<22} {:>10} {:>12} {:>10} {:>12} {:>8} {:>7}",
            b.service,
            b.backend.to_string(),
            c.packets_in,
            c.bytes_in,
            c.packets_out,
            c.bytes_out,
            c.connections,
            c.resets
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<16} {:>8} {:>14} {:>16}",
        "INTERFACE", "IFINDEX", "PACKETS_IN", "BYTES_IN"
    )?;
    for s in &interfaces {
        let name = s.interface.as_deref().unwrap_or("(gone)");
        writeln!(
            out,
            "{name:<16} {:>8} {:>14} {:>16}",
            s.ifindex, s.packets, s.bytes
        )?;
    }
    Ok(())
}
