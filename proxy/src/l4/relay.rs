//! One TCP-mode listener: accept, pick a replica of the service that owns the port (read from
//! the current snapshot on every connection, so reconfigures apply at once), connect (trying
//! another replica if one refuses), then copy bytes both ways until either side closes.
use std::{sync::Arc, time::Duration};

use tokio::net::{TcpListener, TcpStream};

use super::L4Listeners;
use crate::{
    io_relay::copy_bidirectional_idle,
    metrics::L4Labels,
    upstream::retry::{RetryPolicy, Tried},
};

/// How long a connect to a replica may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Each direction's buffer. tokio's default 8 KiB costs a read and a write system call per
/// 8 KiB: iperf3 through the relay went from ~5 to ~10 Gbit/s with 64 KiB (256 KiB gave
/// ~12, at 512 KiB per connection; see docs/performance.md).
const BUFFER: usize = 64 * 1024;

/// Serves `port` until the task is aborted.
pub async fn accept_loop(listeners: Arc<L4Listeners>, listener: TcpListener, port: u16) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(port, error = %e, "TCP-mode accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let listeners = Arc::clone(&listeners);
        tokio::spawn(async move {
            if let Err(reason) = relay(&listeners, client, port).await {
                tracing::warn!(port, %peer, reason, "TCP-mode connection not relayed");
            }
        });
    }
}

async fn relay(listeners: &L4Listeners, client: TcpStream, port: u16) -> Result<(), String> {
    let snapshot = listeners.control.snapshot_full();
    let (service, dest) = snapshot
        .routes
        .tcp_service(port)
        .ok_or("no service owns this port any more")?;
    let replicas = snapshot
        .upstream(service, dest)
        .ok_or("the service has no replica set")?;
    replicas.ensure_resolved().await;
    // Every failure here is a connect's (nothing of the client's was sent), which the
    // policy always lets go to another replica.
    let policy = RetryPolicy::for_connection();
    let mut tried = Tried::default();
    let mut upstream = None;
    for _ in 0..policy.attempts() {
        let Some(replica) = replicas.pick(tried.as_slice()) else {
            break;
        };
        tried.push(replica);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(replica)).await {
            Ok(Ok(stream)) => {
                upstream = Some((stream, replica));
                break;
            }
            _ => {
                replicas.report_failure(replica);
            }
        }
    }
    let (upstream, replica) = upstream.ok_or_else(|| {
        format!(
            "no replica of {} is reachable (tried {:?})",
            service.name,
            tried.as_slice()
        )
    })?;
    listeners.metrics.connections.inc();
    listeners
        .metrics
        .by_service
        .get_or_create(&L4Labels {
            service: service.name.clone(),
            port: port.to_string(),
        })
        .inc();
    listeners.metrics.requests.tcp_connection(&service.name);
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (service, idle) = (service.name.clone(), dest.timeout_tunnel);
    drop(snapshot);
    // As HAProxy's `timeout tunnel`: closed only after `timeoutTunnel` without traffic.
    match copy_bidirectional_idle(client, upstream, idle, BUFFER).await {
        Ok((up, down)) => {
            listeners.metrics.relayed_bytes.inc_by(up + down);
            tracing::debug!(%service, %replica, up, down, "TCP-mode connection closed")
        }
        Err(e) => tracing::debug!(%service, %replica, error = %e, "TCP-mode connection ended"),
    }
    Ok(())
}
