//! What an operator sees with bpftool, parsed from its JSON output.
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::cmd::run;

/// `bpftool map dump pinned PATH`, as JSON.
pub fn map_dump(path: &Path) -> anyhow::Result<Value> {
    let out = run(
        "bpftool",
        &["-j", "map", "dump", "pinned", &path.to_string_lossy()],
    )?;
    serde_json::from_str(&out).context("parsing bpftool's map dump")
}

/// Names of the XDP programs attached to `interface` (`bpftool net show dev`).
pub fn xdp_programs(interface: &str) -> anyhow::Result<Vec<String>> {
    let out = run("bpftool", &["-j", "net", "show", "dev", interface])?;
    let doc: Value = serde_json::from_str(&out).context("parsing bpftool net")?;
    let mut names = Vec::new();
    for section in doc.as_array().into_iter().flatten() {
        for prog in section["xdp"].as_array().into_iter().flatten() {
            // Older bpftool (Debian's 7.1) lists only the id here.
            let name = match prog["name"].as_str() {
                Some(name) => name.to_owned(),
                None => program_name(prog["id"].as_u64().context("xdp entry without id")?)?,
            };
            names.push(name);
        }
    }
    Ok(names)
}

/// The fdinfo of every BPF link process `pid` holds, as `field: value` pairs (link type, id,
/// ifindex, attach type...). Debian's bpftool predates tcx and cannot show tcx attachments,
/// but the kernel names them here.
fn link_fdinfos(pid: u32) -> anyhow::Result<Vec<std::collections::BTreeMap<String, String>>> {
    let mut links = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(info) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        let fields: std::collections::BTreeMap<String, String> = info
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        if fields.contains_key("link_type") {
            links.push(fields);
        }
    }
    Ok(links)
}

/// The BPF links process `pid` holds, as `(link type, link id)`, sorted.
pub fn links_of(pid: u32) -> anyhow::Result<Vec<(String, u64)>> {
    let mut links = Vec::new();
    for link in link_fdinfos(pid)? {
        if let (Some(kind), Some(id)) = (link.get("link_type"), link.get("link_id")) {
            links.push((kind.clone(), id.parse()?));
        }
    }
    links.sort();
    Ok(links)
}

/// Where process `pid` attached programs to `interface` (of the caller's namespace) through
/// links: `"xdp"`, `"tc-ingress"` or `"tc-egress"`, sorted.
pub fn hooks_on(pid: u32, interface: &str) -> anyhow::Result<Vec<String>> {
    let ifindex = std::fs::read_to_string(format!("/sys/class/net/{interface}/ifindex"))
        .with_context(|| format!("no interface {interface}"))?;
    hooks_on_index(pid, ifindex.trim().parse()?)
}

/// As [`hooks_on`], for the interface with index `ifindex` (of whatever namespace).
pub fn hooks_on_index(pid: u32, ifindex: u32) -> anyhow::Result<Vec<String>> {
    let ifindex = ifindex.to_string();
    let mut hooks = Vec::new();
    for link in link_fdinfos(pid)? {
        if link.get("ifindex") != Some(&ifindex) {
            continue;
        }
        // "46 (ingress)" on newer kernels, "46" on older ones.
        let attach = link
            .get("attach_type")
            .and_then(|a| a.split_whitespace().next());
        let hook = match (link.get("link_type").map(String::as_str), attach) {
            (Some("xdp"), _) => "xdp",
            // BPF_TCX_INGRESS and BPF_TCX_EGRESS.
            (Some("tcx"), Some("46")) => "tc-ingress",
            (Some("tcx"), Some("47")) => "tc-egress",
            (kind, attach) => bail!("unexpected link {kind:?} {attach:?} on ifindex {ifindex}"),
        };
        hooks.push(hook.to_owned());
    }
    hooks.sort();
    Ok(hooks)
}

/// True while the kernel still has BPF link `id`.
pub fn link_exists(id: u64) -> bool {
    run("bpftool", &["link", "show", "id", &id.to_string()]).is_ok()
}

/// The name of program `id` (`bpftool prog show id`).
pub fn program_name(id: u64) -> anyhow::Result<String> {
    let out = run("bpftool", &["-j", "prog", "show", "id", &id.to_string()])?;
    let doc: Value = serde_json::from_str(&out).context("parsing bpftool prog")?;
    Ok(doc["name"].as_str().unwrap_or("?").to_owned())
}

/// Reads a per-CPU array entry's value as little-endian u64 fields, summed over CPUs.
/// Accepts both bpftool forms: raw hex bytes and BTF-formatted values.
pub fn percpu_u64_sum(dump: &Value, key: u32, fields: usize) -> anyhow::Result<Vec<u64>> {
    let entries = dump.as_array().context("a map dump is a JSON array")?;
    let entry = entries
        .iter()
        .find(|e| entry_key(e) == Some(key))
        .with_context(|| format!("no entry {key} in {dump}"))?;
    let mut sums = vec![0u64; fields];
    let values = entry["values"]
        .as_array()
        .context("per-CPU entries have values")?;
    for cpu in values {
        let parsed = if let Some(bytes) = cpu["value"].as_array() {
            hex_u64s(bytes)?
        } else if let Some(obj) = cpu["value"].as_object() {
            obj.values().filter_map(Value::as_u64).collect()
        } else {
            bail!("unexpected per-CPU value {cpu}");
        };
        for (sum, v) in sums.iter_mut().zip(parsed) {
            *sum += v;
        }
    }
    Ok(sums)
}

fn entry_key(entry: &Value) -> Option<u32> {
    if let Some(k) = entry["key"].as_u64() {
        return u32::try_from(k).ok();
    }
    let bytes = hex_bytes(entry["key"].as_array()?).ok()?;
    Some(u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?))
}

fn hex_bytes(values: &[Value]) -> anyhow::Result<Vec<u8>> {
    values
        .iter()
        .map(|v| {
            let s = v.as_str().context("hex byte")?;
            Ok(u8::from_str_radix(s.trim_start_matches("0x"), 16)?)
        })
        .collect()
}

fn hex_u64s(values: &[Value]) -> anyhow::Result<Vec<u64>> {
    let bytes = hex_bytes(values)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// The BPF object `cargo xtask build-ebpf` made (`$FLOWPROXY_BPF_OBJECT` overrides), for tests
/// that load the programs themselves (BPF_PROG_TEST_RUN).
pub fn bpf_object() -> anyhow::Result<Vec<u8>> {
    let path = std::env::var_os("FLOWPROXY_BPF_OBJECT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/ebpf/bpfel-unknown-none/release/flowproxy-ebpf")
        });
    std::fs::read(&path)
        .with_context(|| format!("{}: build it with `cargo xtask build-ebpf`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_raw_hex_per_cpu_values() {
        let dump: Value = serde_json::json!([
            {"key": ["0x01","0x00","0x00","0x00"], "values": [
                {"cpu": 0, "value": ["0x02","0","0","0","0","0","0","0", "0x10","0","0","0","0","0","0","0"]},
                {"cpu": 1, "value": ["0x03","0","0","0","0","0","0","0", "0x20","0","0","0","0","0","0","0"]}
            ]}
        ]);
        assert_eq!(percpu_u64_sum(&dump, 1, 2).unwrap(), vec![5, 48]);
        assert!(percpu_u64_sum(&dump, 2, 2).is_err());
    }
}
