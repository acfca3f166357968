//! The README's stack file (`deploy/flowproxy-stack.yml`), as the multi-node scenario deploys
//! it, adapted where nodes share one machine.
use crate::shell::workspace_root;

/// The stack file users deploy, verbatim.
pub const STACK_FILE: &str = include_str!("../../../deploy/flowproxy-stack.yml");
/// `docker stack deploy ... proxy` names the service `<stack>_<service>`.
pub const STACK: &str = "proxy";
/// The proxy's service name in the stack (its `SERVICE_NAME`, for `tasks.proxy_proxy`).
pub const SERVICE: &str = "proxy_proxy";

/// The stack file for nodes that share one kernel and have no `/var/run/docker.sock` of their
/// own: each replica pins its maps in a directory of its own (`BPFFS_DIR` per node ID), and the
/// host's Docker socket is not mounted (it is not the nodes' daemon).
pub fn for_shared_host(file: &str) -> String {
    let mut out = String::new();
    for line in file.lines() {
        if line.contains("/var/run/docker.sock") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.trim() == "- MODE=swarm" {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(indent);
            out.push_str("- BPFFS_DIR=/sys/fs/bpf/flowproxy-{{.Node.ID}}\n");
        }
    }
    out
}

/// Writes `contents` where `docker stack deploy -c` can read it.
pub fn write(contents: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = workspace_root().join("target/swarm-test");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("flowproxy-stack.yml");
    std::fs::write(&path, contents)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_shows_the_stack_file_verbatim() {
        let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
        assert!(
            readme.contains(STACK_FILE.trim_end()),
            "README.md's stack file differs from deploy/flowproxy-stack.yml"
        );
    }

    #[test]
    fn shared_hosts_get_pins_per_node_and_no_host_socket() {
        let adapted = for_shared_host(STACK_FILE);
        assert!(!adapted.contains("docker.sock"), "{adapted}");
        assert!(
            adapted.contains(
                "      - MODE=swarm\n      - BPFFS_DIR=/sys/fs/bpf/flowproxy-{{.Node.ID}}\n"
            ),
            "{adapted}"
        );
        assert!(adapted.contains("cap_add:"), "{adapted}");
    }
}
