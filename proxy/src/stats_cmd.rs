//! `flowproxy stats`: the data plane's counters as a table or JSON.
use std::{io::Write as _, path::Path};

use crate::{cli::StatsArgs, dataplane};

/// Prints the counters pinned under `pin_dir`.
pub fn run(pin_dir: &Path, args: &StatsArgs) -> anyhow::Result<()> {
    let interfaces = dataplane::read_iface_stats(pin_dir)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({ "interfaces": interfaces });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
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
