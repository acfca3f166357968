//! Binding the listeners, with a failed bind explained by its fix: a port in use, a privileged
//! port without the capability, an address this host does not have.
use std::{io, net::SocketAddr};

use tokio::net::TcpListener;

/// Where the kernel keeps the first port anyone may bind (1024 unless changed).
const UNPRIVILEGED_PORT_START: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";

/// A listener that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({flag}): {}", advice(.addr, .source, .unprivileged_start))]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The flag that set it.
    pub flag: &'static str,
    /// The OS error.
    pub source: io::Error,
    /// The first port bindable without `CAP_NET_BIND_SERVICE`.
    pub unprivileged_start: u16,
}

/// Binds `addr`, set by `flag`.
pub async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError {
        addr,
        flag,
        source,
        unprivileged_start: unprivileged_port_start(),
    })
}

fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string(UNPRIVILEGED_PORT_START)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// The OS error and what to do about it.
fn advice(addr: &SocketAddr, error: &io::Error, unprivileged_start: &u16) -> String {
    let unprivileged_start = *unprivileged_start;
    match error.kind() {
        io::ErrorKind::AddrInUse => format!("{error}: is another process using it?"),
        io::ErrorKind::PermissionDenied if addr.port() < unprivileged_start => format!(
            "permission denied: ports below {unprivileged_start} need root or the \
             CAP_NET_BIND_SERVICE capability; grant it (docker run --cap-add NET_BIND_SERVICE, \
             or setcap cap_net_bind_service=+ep on the binary) or choose a port of \
             {unprivileged_start} or above"
        ),
        io::ErrorKind::AddrNotAvailable => {
            format!("{error}: {} is not an address of this host", addr.ip())
        }
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(addr: &str, kind: io::ErrorKind) -> String {
        BindError {
            addr: addr.parse().unwrap(),
            flag: "--http-addr",
            source: io::Error::from(kind),
            unprivileged_start: 1024,
        }
        .to_string()
    }

    #[test]
    fn a_privileged_port_names_the_capability_and_the_alternative() {
        let text = message("0.0.0.0:80", io::ErrorKind::PermissionDenied);
        assert!(text.starts_with("cannot listen on 0.0.0.0:80 (--http-addr): permission denied"));
        assert!(text.contains("CAP_NET_BIND_SERVICE"), "{text}");
        assert!(text.contains("port of 1024 or above"), "{text}");
        assert!(!text.contains("another process"), "{text}");
    }

    #[test]
    fn a_port_in_use_and_a_foreign_address_say_so() {
        let in_use = message("0.0.0.0:8080", io::ErrorKind::AddrInUse);
        assert!(in_use.contains("is another process using it?"), "{in_use}");
        let foreign = message("198.18.9.9:8080", io::ErrorKind::AddrNotAvailable);
        assert!(
            foreign.contains("198.18.9.9 is not an address of this host"),
            "{foreign}"
        );
        // Denied on a high port is not about the capability (a seccomp or LSM rule, say).
        let high = message("0.0.0.0:8080", io::ErrorKind::PermissionDenied);
        assert!(!high.contains("CAP_NET_BIND_SERVICE"), "{high}");
    }

    #[tokio::test]
    async fn a_bound_port_is_refused_as_in_use() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind(taken.local_addr().unwrap(), "--api-addr")
            .await
            .unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("(--api-addr)"), "{err}");
    }
}
