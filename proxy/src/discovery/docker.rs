//! Label discovery through the Docker API (bollard, over the read-only mounted socket): the
//! Swarm services labelled `<notify label>=true` are read at start, again on every Docker
//! `service` event, and every --docker-poll-interval (Swarm sends no task events, and an event
//! stream can break). Each read is turned into changes by `labels::plan` and applied the way
//! the API applies them. Only managers can list services: on a worker this is said once and
//! the replica takes its configuration from its peers.
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::Duration,
};

use bollard::{
    API_DEFAULT_VERSION, Docker,
    errors::Error as DockerError,
    models::Service as DockerService,
    query_parameters::{EventsOptions, ListServicesOptions},
};
use futures_util::{Stream, StreamExt as _};

use super::{
    labels::{LabelError, SwarmService, plan},
    status::DiscoveryStatus,
};
use crate::{
    changes::Applied,
    cluster::{Cluster, nudge_peers},
    tls::unix_now,
};

/// Seconds bollard waits for the Docker daemon's response headers.
const DOCKER_TIMEOUT_SECS: u64 = 30;

/// What discovery needs to know.
#[derive(Debug, Clone)]
pub struct DockerDiscovery {
    /// The Docker socket.
    pub socket: PathBuf,
    /// Full re-reads besides events.
    pub poll: Duration,
    /// The label marking services for the proxy.
    pub notify_label: String,
}

/// A Swarm service from the Docker API as discovery sees it; `None` without a name.
pub fn swarm_service(service: &DockerService) -> Option<SwarmService> {
    let spec = service.spec.as_ref()?;
    let replicas = spec
        .mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .map(|n| n.max(0) as u64);
    Some(SwarmService {
        name: spec.name.clone()?,
        labels: spec
            .labels
            .as_ref()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        replicas,
    })
}

/// Whether the daemon refused because this node is not a Swarm manager.
fn is_not_manager(error: &DockerError) -> bool {
    matches!(error, DockerError::DockerResponseServerError { message, .. }
        if message.contains("not a swarm manager"))
}

/// Runs discovery forever, keeping `status` up to date for the status page.
pub async fn run(cluster: &Cluster, settings: DockerDiscovery, status: &DiscoveryStatus) {
    let mut state = Reported {
        logged: BTreeMap::new(),
        status,
    };
    loop {
        match connect(&settings).await {
            Ok(docker) => watch(cluster, &settings, &docker, &mut state).await,
            Err(e) => state.failing(format!(
                "Docker API at {} is not usable: {e}; retrying",
                settings.socket.display()
            )),
        }
        tokio::time::sleep(settings.poll).await;
    }
}

async fn connect(settings: &DockerDiscovery) -> Result<Docker, DockerError> {
    let docker = Docker::connect_with_unix(
        &settings.socket.to_string_lossy(),
        DOCKER_TIMEOUT_SECS,
        API_DEFAULT_VERSION,
    )?
    .negotiate_version()
    .await?;
    tracing::info!(
        socket = %settings.socket.display(),
        api_version = %docker.client_version(),
        "Docker label discovery connected"
    );
    Ok(docker)
}

/// Reads services now, then on each event or poll tick, until the event stream breaks (the
/// caller reconnects).
async fn watch(
    cluster: &Cluster,
    settings: &DockerDiscovery,
    docker: &Docker,
    state: &mut Reported<'_>,
) {
    let mut events = service_events(docker);
    let mut ticker = tokio::time::interval(settings.poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let refresh = tokio::select! {
            _ = ticker.tick() => false,
            event = events.next() => match event {
                Some(Ok(_)) => true,
                Some(Err(e)) => {
                    state.failing(format!("Docker event stream failed: {e}; reconnecting"));
                    return;
                }
                None => {
                    state.failing("Docker event stream ended; reconnecting".into());
                    return;
                }
            },
        };
        if let Err(e) = resync(cluster, settings, docker, state).await {
            if is_not_manager(&e) {
                state.failing(
                    "this node is not a Swarm manager, so it cannot list services: \
                     label-made services come from peer replicas on managers"
                        .into(),
                );
            } else {
                state.failing(format!("listing Swarm services failed: {e}"));
            }
            continue;
        }
        // A scaled service has new tasks: look its replicas up again now.
        if refresh {
            cluster.local.changes.control.refresh_all().await;
        }
    }
}

fn service_events(docker: &Docker) -> impl Stream<Item = Result<(), DockerError>> + use<> {
    let filters = HashMap::from([("type".to_owned(), vec!["service".to_owned()])]);
    docker
        .events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .map(|event| event.map(drop))
}

/// One read of the Swarm services and the changes it calls for.
async fn resync(
    cluster: &Cluster,
    settings: &DockerDiscovery,
    docker: &Docker,
    state: &mut Reported<'_>,
) -> Result<(), DockerError> {
    // Filter on the label's presence; its value (true, in any case) is checked in `labels`.
    let filters = HashMap::from([("label".to_owned(), vec![settings.notify_label.clone()])]);
    let listed = docker
        .list_services(Some(ListServicesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    let listed: Vec<SwarmService> = listed.iter().filter_map(swarm_service).collect();
    state.read(listed.len());
    let current = cluster.local.changes.control.snapshot_full();
    let plan = plan(&listed, &settings.notify_label, &current.routes);
    state.report_invalid(&plan.invalid);
    let mut changed = false;
    for service in plan.apply {
        let name = service.name.clone();
        match cluster.local.changes.reconfigure(service).await {
            Ok(Applied::Configured) => {
                tracing::info!(service = name, "service configured from its labels");
                changed = true;
            }
            Ok(Applied::Removed(removed)) => {
                if removed {
                    tracing::info!(service = name, "service scaled to 0 replicas: removed");
                }
                changed |= removed;
            }
            // Another proxy instance's service: normal when several share a Swarm.
            Ok(Applied::Filtered(why)) => tracing::debug!(service = name, "{why}"),
            Err(e) => state.once(
                &format!("apply:{name}"),
                format!("Swarm service {name}: its labels were not applied: {e}"),
            ),
        }
    }
    for name in plan.remove {
        match cluster.local.changes.remove(&name).await {
            Ok(_) => {
                tracing::info!(
                    service = name,
                    "service removed: its Swarm service is gone or no longer labelled"
                );
                changed = true;
            }
            Err(e) => tracing::error!(service = name, "removing the service failed: {e}"),
        }
    }
    // Workers cannot list services: tell the peers to take the change now.
    if changed {
        nudge_peers(cluster).await;
    }
    Ok(())
}

/// The key under which what stops reads is logged (connect, list, events, worker).
const READ_FAILURE: &str = "read";

/// Messages already logged, so that a poll every few seconds does not repeat them, and the
/// status page's view of what discovery does.
struct Reported<'a> {
    logged: BTreeMap<String, String>,
    status: &'a DiscoveryStatus,
}

impl Reported<'_> {
    /// Logs `message` unless it is what was last logged under `key`.
    fn once(&mut self, key: &str, message: String) {
        if self.logged.get(key) != Some(&message) {
            tracing::warn!("{message}");
            self.logged.insert(key.to_owned(), message);
        }
    }

    /// Reads of the services fail: logged once per distinct reason (one reason stops reads
    /// at a time), and shown on the status page.
    fn failing(&mut self, message: String) {
        self.status.failed(unix_now(), &message);
        self.once(READ_FAILURE, message);
    }

    /// A read found `labelled` services.
    fn read(&mut self, labelled: usize) {
        self.logged.remove(READ_FAILURE);
        self.status.read(unix_now(), labelled);
    }

    /// Logs each invalid service once per distinct error; unrouted ones at info level.
    fn report_invalid(&mut self, invalid: &[LabelError]) {
        for error in invalid {
            let key = format!("labels:{}", error.service);
            let message = error.to_string();
            if self.logged.get(&key) == Some(&message) {
                continue;
            }
            if error.is_unrouted() {
                tracing::info!("{message}; the service is not routed");
            } else {
                tracing::error!("{message}; nothing of it was applied");
            }
            self.logged.insert(key, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated};

    fn service(mode: ServiceSpecMode) -> DockerService {
        DockerService {
            spec: Some(ServiceSpec {
                name: Some("go-demo".into()),
                labels: Some(HashMap::from([(
                    "com.df.notify".to_owned(),
                    "true".to_owned(),
                )])),
                mode: Some(mode),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn replicated_services_carry_their_count_and_global_ones_none() {
        let replicated = service(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(3) }),
            ..Default::default()
        });
        let svc = swarm_service(&replicated).unwrap();
        assert_eq!(svc.name, "go-demo");
        assert_eq!(svc.replicas, Some(3));
        assert_eq!(svc.labels["com.df.notify"], "true");
        let global = service(ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        });
        assert_eq!(swarm_service(&global).unwrap().replicas, None);
        assert!(swarm_service(&DockerService::default()).is_none());
    }

    #[test]
    fn a_worker_is_recognised_by_the_daemons_message() {
        let worker = DockerError::DockerResponseServerError {
            status_code: 503,
            message: "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state.".into(),
        };
        assert!(is_not_manager(&worker));
        let other = DockerError::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        assert!(!is_not_manager(&other));
    }
}
