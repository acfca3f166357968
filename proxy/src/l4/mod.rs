//! TCP-mode services (`reqMode=tcp&srcPort=N`): a listener per `srcPort` relays each
//! connection to a replica with tokio. This is the user-space path; it always works and is
//! where anything the kernel fast path does not take ends up.
mod relay;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use tokio::{net::TcpListener, task::JoinHandle};

use crate::{control::ControlPlane, metrics::L4Metrics};

/// Why a TCP-mode service cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum L4Error {
    /// The port is taken (by another process, or this proxy's other listeners).
    #[error("srcPort {port} cannot be listened on ({source}); choose a free srcPort")]
    Bind {
        /// The port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The TCP-mode listeners, kept equal to the TCP destinations of the current routes.
pub struct L4Listeners {
    ip: IpAddr,
    control: Arc<ControlPlane>,
    metrics: L4Metrics,
    running: Mutex<BTreeMap<u16, JoinHandle<()>>>,
    /// Bound by `reserve` for a change not applied yet.
    reserved: Mutex<BTreeMap<u16, std::net::TcpListener>>,
}

impl L4Listeners {
    /// Listeners on `ip`, relaying to the replicas `control` knows.
    pub fn new(ip: IpAddr, control: Arc<ControlPlane>, metrics: L4Metrics) -> Arc<Self> {
        Arc::new(Self {
            ip,
            control,
            metrics,
            running: Mutex::new(BTreeMap::new()),
            reserved: Mutex::new(BTreeMap::new()),
        })
    }

    /// Makes sure `port` can be listened on before a change that needs it is applied, so a
    /// taken port refuses the change instead of leaving a service without a listener.
    pub fn reserve(&self, port: u16) -> Result<(), L4Error> {
        if lock(&self.running).contains_key(&port) || lock(&self.reserved).contains_key(&port) {
            return Ok(());
        }
        let listener = std::net::TcpListener::bind(SocketAddr::new(self.ip, port))
            .map_err(|source| L4Error::Bind { port, source })?;
        lock(&self.reserved).insert(port, listener);
        Ok(())
    }

    /// Starts listeners for new TCP destinations and stops those of removed ones.
    pub fn sync(self: &Arc<Self>) {
        let wanted: Vec<u16> = self.control.snapshot().routes.tcp_ports().collect();
        let mut running = lock(&self.running);
        running.retain(|port, task| {
            let keep = wanted.contains(port);
            if !keep {
                task.abort();
                tracing::info!(port, "TCP-mode listener stopped");
            }
            keep
        });
        let mut reserved = lock(&self.reserved);
        for port in wanted {
            if running.contains_key(&port) {
                continue;
            }
            let listener = match reserved.remove(&port) {
                Some(listener) => Ok(listener),
                None => std::net::TcpListener::bind(SocketAddr::new(self.ip, port)),
            };
            let listener = listener.and_then(|l| {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            });
            match listener {
                Ok(listener) => {
                    tracing::info!(port, "TCP-mode listener started");
                    let task = tokio::spawn(relay::accept_loop(Arc::clone(self), listener, port));
                    running.insert(port, task);
                }
                Err(e) => tracing::error!(port, error = %e, "TCP-mode listener could not start"),
            }
        }
        reserved.clear();
    }

    /// Stops every listener.
    pub fn stop(&self) {
        for (_, task) in std::mem::take(&mut *lock(&self.running)) {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
