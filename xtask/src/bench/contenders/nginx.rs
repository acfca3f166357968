//! nginx, twice: the backend every contender forwards to (`return 200`), and a contender
//! itself (a reverse proxy with a keep-alive upstream pool). One process each
//! (`master_process off`), so pinning and RSS concern exactly one process; no access log.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// The body every request gets.
pub const BODY: &str = "hello, world!\\n";

/// The command line for a configuration file, with every path inside `work`.
pub fn argv(work: &Path, conf: &Path) -> Vec<String> {
    vec![
        "nginx".into(),
        "-p".into(),
        work.display().to_string(),
        "-e".into(),
        work.join("nginx-start.log").display().to_string(),
        "-c".into(),
        conf.display().to_string(),
    ]
}

/// Settings both configurations share: one process in the foreground, room for 10,000
/// connections (within the open-file limit it inherits), no access log, keep-alive that never runs out during a run.
fn common(work: &Path, name: &str) -> String {
    let dir = |d: &str| -> PathBuf { work.join(format!("{name}-{d}")) };
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {pid};
error_log {error} warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};
",
        pid = work.join(format!("{name}.pid")).display(),
        error = work.join(format!("{name}-error.log")).display(),
        body = dir("body").display(),
        proxy = dir("proxy").display(),
        fastcgi = dir("fastcgi").display(),
        uwsgi = dir("uwsgi").display(),
        scgi = dir("scgi").display(),
    )
}

/// The backend: `return 200` on `port` of every address of its namespace.
pub fn backend_config(work: &Path, port: u16) -> String {
    format!(
        "{}    server {{
        listen {port};
        location / {{
            default_type text/plain;
            return 200 \"{BODY}\";
        }}
    }}
}}
",
        common(work, "backend")
    )
}

/// The contender: a reverse proxy on `listen` to `backend`, reusing upstream connections.
pub fn proxy_config(work: &Path, listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "{}    upstream backend {{
        server {backend};
        keepalive 64;
        keepalive_requests 100000000;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            # The headers flowproxy adds, so both do the same work per request.
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
    }}
}}
",
        common(work, "proxy")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_keep_everything_in_the_work_directory() {
        let work = Path::new("/tmp/w");
        let conf = proxy_config(
            work,
            "127.0.0.1:1".parse().unwrap(),
            "198.18.0.2:8080".parse().unwrap(),
        );
        assert!(conf.contains("server 198.18.0.2:8080;"));
        assert!(conf.contains("listen 127.0.0.1:1;"));
        assert!(conf.contains("pid /tmp/w/proxy.pid;"));
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
        let backend = backend_config(work, 8080);
        assert!(backend.contains("return 200 \"hello, world!\\n\";"));
        assert_eq!(backend.matches('{').count(), backend.matches('}').count());
    }
}
