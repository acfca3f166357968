//! Wires the parts of a running proxy together and stops them in order on a signal.
use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{Notify, watch},
};

use crate::{
    api::{self, ApiContext},
    bind::bind,
    changes::Changes,
    cli::RunArgs,
    cluster::{self, Cluster, ClusterArgs, LocalConfig, Mode},
    control::{ControlHooks, ControlPlane},
    credentials::Credentials,
    dataplane::{
        Backend, DataPlane, DataPlaneConfig, DataPlaneError, live_interface_for,
        neighbours::Warmer, up_ethernet_interfaces,
    },
    discovery::{self, DockerDiscovery},
    l4::L4Listeners,
    l7::{self, HttpsPolicy, Listener, Proxy, TlsListener, Trust},
    metrics::{ClientErrors, Metrics},
    state::StateFile,
    tls::{self, CertSources, CertStore},
    upstream::{ReplicaResolver, new_client},
    versioning::Hlc,
    wire::ApiToken,
};

/// How often the counted backends are checked against discovery even without a change signal.
const BACKEND_SYNC_FALLBACK: Duration = Duration::from_secs(5);

/// Runs the proxy until SIGINT or SIGTERM, then stops accepting, drains open connections,
/// detaches the data plane and (unless `--keep-pins`) removes its pins.
pub async fn run(args: RunArgs, pin_dir: PathBuf) -> anyhow::Result<()> {
    // Before any service is parsed, the saved ones included.
    crate::routes::set_separator(&args.separator)?;
    crate::routes::set_default_timeouts(crate::routes::DefaultTimeouts {
        server: Duration::from_secs(args.timeout_server),
        tunnel: Duration::from_secs(args.timeout_tunnel),
    });
    crate::routes::set_default_domain_algo(args.service_domain_algo);
    let state = StateFile::open(&args.state_dir)?;
    let saved = state.load()?;
    tracing::info!(services = saved.routes.services().len(), file = %state.path().display(), "configuration restored");
    let dns_server = args.cluster.dns_server(args.dns_server);
    if let Some(server) = dns_server {
        tracing::info!(%server, "replicas are looked up with this DNS server");
    }
    let resolver = ReplicaResolver::new(dns_server)?;
    let token = api_token(&args.cluster)?;

    let provider = tls::install_provider();
    let certs = Arc::new(CertStore::new(
        tls::self_signed(&provider)?,
        args.default_cert.clone(),
    ));
    let sources = CertSources {
        certs_dir: args.certs_dir.clone(),
        secrets_dir: args.secrets_dir.clone(),
        api_dir: state.certs_dir(),
    };
    certs.insert(tls::load_all(&sources, tls::unix_now(), &provider));
    if certs.is_empty() {
        tracing::warn!(
            certs_dir = %sources.certs_dir.display(),
            "no certificate found: HTTPS serves a self-signed certificate for localhost until one is added (files, secrets, or PUT /v1/docker-flow-proxy/cert)"
        );
    }

    let http = bind(args.http_addr, "--http-addr").await?;
    let https = bind(args.https_addr, "--https-addr").await?;
    let api = bind(args.api_addr, "--api-addr").await?;
    let (http_addr, https_addr, api_addr) =
        (http.local_addr()?, https.local_addr()?, api.local_addr()?);
    let data_plane = start_data_plane(&args, pin_dir)?;
    let metrics = Metrics::new(
        data_plane.as_ref().map(|dp| dp.pin_dir().to_path_buf()),
        Arc::clone(&certs),
    );
    let hooks = ControlHooks {
        reloads: metrics.config_reloads(),
        changes: metrics.config_changes(),
        changed: Arc::new(Notify::new()),
    };
    let api_certs_dir = state.certs_dir();
    let api_cert_names: Vec<String> = tls::read_api_certs(&api_certs_dir).into_keys().collect();
    let clock = Arc::new(Hlc::random(args.cluster.clock_offset_ms));
    if args.cluster.clock_offset_ms != 0 {
        tracing::warn!(
            offset_ms = args.cluster.clock_offset_ms,
            "test hook: this replica's versions use a clock offset from the system's"
        );
    }
    let control = Arc::new(ControlPlane::new(
        saved,
        &api_cert_names,
        state,
        resolver.clone(),
        hooks.clone(),
        clock,
    )?);
    metrics.watch(Arc::clone(&control));

    let (stop, stopped) = watch::channel(false);
    let https_policy = HttpsPolicy {
        port: Some(https_addr.port()),
        only: args.https_only,
    };
    let credentials = Arc::new(global_credentials(&args)?);
    let request_limits = args.request_limits().context("--allowed-upgrades")?;
    let proxy = Arc::new(Proxy::new(
        Arc::clone(&control),
        new_client(
            metrics.backend_bytes(),
            Duration::from_secs(args.timeout_connect),
        ),
        Arc::clone(&metrics),
        https_policy,
        request_limits,
        Trust {
            credentials: Arc::clone(&credentials),
            sticky_secret: Arc::from(args.sticky_secret.as_bytes()),
            trusted_proxies: Arc::from(args.trusted_proxies.as_slice()),
        },
    ));
    // The future `handle` returns, as it is: wrapping it in an `async` block would add a
    // copy of it to every request's state.
    let proxy_handler = Arc::new(move |req, peer| Arc::clone(&proxy).handle(req, peer));
    let l4 = L4Listeners::new(args.http_addr.ip(), Arc::clone(&control), metrics.l4());
    // Restored TCP-mode services get their listeners now.
    l4.sync();
    let changes = Arc::new(Changes {
        control: Arc::clone(&control),
        l4: Arc::clone(&l4),
        credentials,
        version: None,
        instance: args
            .filter_proxy_instance_name
            .then(|| Arc::from(args.proxy_instance_name.as_str())),
    });
    let discovery_args = discovery::Settings {
        static_services: discovery::StaticService::parse_all(&args.static_services)
            .map_err(anyhow::Error::msg)?,
        ..discovery_settings(&args.cluster)?
    };
    let cluster = Arc::new(Cluster::new(
        cluster_settings(&args.cluster),
        &args.cluster.service_name,
        api_addr.port(),
        token.clone(),
        Duration::from_secs(args.cluster.peer_timeout),
        resolver,
        LocalConfig::new(
            Arc::clone(&changes),
            Arc::clone(&certs),
            Arc::clone(&provider),
            api_certs_dir.clone(),
        ),
    ));
    let api_context = Arc::new(ApiContext {
        changes,
        metrics: Arc::clone(&metrics),
        certs: Arc::clone(&certs),
        provider: Arc::clone(&provider),
        api_certs_dir,
        cluster: Arc::clone(&cluster),
        token,
        pin_dir: data_plane.as_ref().map(|dp| dp.pin_dir().to_path_buf()),
        discovery: discovery_summary(&args.cluster),
        discovery_status: Arc::clone(&discovery_args.status),
        refusals: Arc::default(),
    });
    let api_handler = Arc::new(move |req, peer: Arc<l7::Peer>| {
        api::handle(Arc::clone(&api_context), req, peer.addr.ip())
    });
    let (handshakes_ok, handshakes_failed) = metrics.handshakes();
    let tls = TlsListener {
        acceptor: tls::acceptor(Arc::clone(&certs), Arc::clone(&provider))
            .context("setting up TLS")?,
        ok: handshakes_ok,
        failed: handshakes_failed,
    };
    let listeners = (
        Listener {
            socket: http,
            handler: Arc::clone(&proxy_handler),
            open: Some(metrics.open_connections()),
            parked: Some(metrics.parked_connections()),
            tls: None,
            max_connections: args.max_connections as usize,
            settings: args.conn_settings(),
            client_errors: metrics.client_errors(),
        },
        Listener {
            socket: https,
            handler: proxy_handler,
            open: Some(metrics.open_connections()),
            parked: Some(metrics.parked_connections()),
            tls: Some(tls),
            max_connections: args.max_connections as usize,
            settings: args.conn_settings(),
            client_errors: metrics.client_errors(),
        },
        Listener {
            socket: api,
            handler: api_handler,
            open: None,
            parked: None,
            tls: None,
            max_connections: 1024,
            // The same timeouts guard the API; its refusals are not the proxy's clients'
            // errors, so they go to counters nobody exports.
            settings: args.conn_settings(),
            client_errors: ClientErrors::default(),
        },
    );
    let servers = tokio::spawn({
        let stopped = stopped.clone();
        async move {
            tokio::join!(
                l7::serve(listeners.0, stopped.clone()),
                l7::serve(listeners.1, stopped.clone()),
                l7::serve(listeners.2, stopped),
            )
        }
    });
    let mut background = vec![tokio::spawn({
        let control = Arc::clone(&control);
        let every = Duration::from_secs(args.dns_refresh);
        async move { control.refresh_periodically(every).await }
    })];
    let data_plane = data_plane.map(|dp| Arc::new(Mutex::new(dp)));
    if let Some(dp) = &data_plane {
        background.push(tokio::spawn(sync_backends(
            Arc::clone(&control),
            Arc::clone(dp),
            Arc::clone(&hooks.changed),
            args.auto_interfaces(),
            args.http_addr.ip(),
        )));
        background.push(tokio::spawn(sweep_flows(
            Arc::clone(dp),
            Duration::from_secs(args.l4_sweep_interval),
        )));
    }
    tokio::spawn({
        let control = Arc::clone(&control);
        async move { control.refresh_all().await }
    });
    // A lone replica is ready (ping 200, and "flowproxy ready" logged) before this returns;
    // one with peers keeps answering 503 until it has their configuration, and says "ready"
    // only then.
    cluster.first_look().await;
    background.push(tokio::spawn(Arc::clone(&cluster).run()));
    background.push(tokio::spawn(discovery::run(
        Arc::clone(&cluster),
        discovery_args,
    )));
    tracing::info!(%http_addr, %https_addr, %api_addr, "flowproxy listening");

    wait_for_shutdown_signal().await?;
    let _ = stop.send(true);
    for task in &background {
        task.abort();
    }
    for task in background {
        let _ = task.await;
    }
    servers.await.context("the listeners' task failed")?;
    l4.stop();
    if let Some(dp) = data_plane {
        let dp = Arc::into_inner(dp)
            .context("the data plane is still in use")?
            .into_inner()
            .map_err(|_| anyhow::anyhow!("the data plane lock was poisoned"))?;
        dp.shutdown(args.keep_pins)
            .context("stopping the data plane")?;
    }
    tracing::info!("flowproxy stopped");
    Ok(())
}

/// The API token from the flags; without one in swarm mode, a warning says what is exposed.
fn api_token(args: &ClusterArgs) -> anyhow::Result<Option<ApiToken>> {
    let token = args
        .token()
        .map_err(anyhow::Error::msg)?
        .and_then(|t| ApiToken::new(&t));
    match (&token, args.mode) {
        (Some(_), _) => tracing::info!("the API requires a token (ping and /metrics stay open)"),
        (None, Mode::Swarm) => tracing::warn!(
            "no API_TOKEN: anyone who reaches the API port can change routes and read \
             /v1/flowproxy/config (users= passwords, certificate keys)"
        ),
        (None, Mode::Default) => {}
    }
    Ok(token)
}

/// What the cluster tasks run with.
fn cluster_settings(args: &ClusterArgs) -> cluster::Settings {
    cluster::Settings {
        mode: args.mode,
        peer_sync_interval: Duration::from_secs(args.peer_sync_interval),
        bootstrap_timeout: Duration::from_secs(args.bootstrap_timeout),
        tombstone_ttl: Duration::from_secs(args.tombstone_ttl),
        listener_addresses: args.listener_address.clone(),
    }
}

/// What discovery runs with.
fn discovery_settings(args: &ClusterArgs) -> anyhow::Result<discovery::Settings> {
    let docker = args
        .docker_discovery()
        .map_err(anyhow::Error::msg)?
        .then(|| DockerDiscovery {
            socket: args.docker_socket.clone(),
            poll: Duration::from_secs(args.docker_poll_interval),
            notify_label: args.notify_label.clone(),
        });
    Ok(discovery::Settings {
        status: Arc::new(discovery::DiscoveryStatus::new(docker.is_some())),
        docker,
        listeners: args.listener_address.clone(),
        static_services: Vec::new(),
    })
}

/// Keeps the kernel's `BACKENDS` equal to the replicas discovery knows, on every change; with
/// `auto`, also attaches to every interface that routes to a replica, and to every interface
/// once TCP-mode services exist.
async fn sync_backends(
    control: Arc<ControlPlane>,
    data_plane: Arc<Mutex<DataPlane>>,
    changed: Arc<Notify>,
    auto: bool,
    l4_listen: IpAddr,
) {
    let mut counted = (Vec::new(), Vec::new());
    let mut warmer = Warmer::default();
    let mut refused = BTreeSet::new();
    loop {
        let snapshot = control.snapshot();
        let wanted = (snapshot.backends(), snapshot.l4_services(l4_listen));
        drop(snapshot);
        // TCP-mode clients may arrive on any interface; checked on every round because Docker
        // may connect the container to more networks at any time.
        if auto
            && !wanted.1.is_empty()
            && let Ok(mut dp) = data_plane.lock()
        {
            attach_everywhere(&mut dp, &mut refused);
        }
        // Before replicas enter a ring, so that their first flows can take the fast path.
        warmer
            .warm_up(wanted.1.iter().flat_map(|s| s.replicas.iter().copied()))
            .await;
        if wanted != counted {
            let result = data_plane
                .lock()
                .map_err(|_| "lock poisoned".to_owned())
                .and_then(|mut dp| {
                    if auto {
                        attach_routes_to(&mut dp, &wanted.0);
                    }
                    dp.sync_backends(&wanted.0, &wanted.1)
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(()) => {
                    tracing::info!(
                        backends = wanted.0.len(),
                        tcp_services = wanted.1.len(),
                        "data plane backends updated"
                    );
                    counted = wanted;
                }
                Err(e) => tracing::warn!(error = %e, "updating the counted backends failed"),
            }
        }
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(BACKEND_SYNC_FALLBACK) => {}
        }
    }
}

/// Sweeps ended, idle and drained fast-path flows every `every`.
async fn sweep_flows(data_plane: Arc<Mutex<DataPlane>>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let dp = Arc::clone(&data_plane);
        let swept = tokio::task::spawn_blocking(move || match dp.lock() {
            Ok(mut dp) => dp.sweep_flows().map_err(|e| e.to_string()),
            Err(_) => Err("lock poisoned".to_owned()),
        })
        .await;
        match swept {
            Ok(Ok(report)) if report.expired + report.drained > 0 => {
                tracing::debug!(?report, "fast-path flows swept")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "sweeping fast-path flows failed"),
            Err(e) => tracing::warn!(error = %e, "the sweep task failed"),
        }
    }
}

/// Attaches to every interface a client's SYN or a replica's reply can arrive on
/// (`--interface auto` with TCP-mode services): on Swarm that is the host-port
/// (`docker_gwbridge`) interface as well as the overlay ones. An interface that cannot take
/// the programs is said once, not retried.
fn attach_everywhere(data_plane: &mut DataPlane, refused: &mut BTreeSet<String>) {
    for interface in up_ethernet_interfaces() {
        if refused.contains(&interface) {
            continue;
        }
        if let Err(e) = data_plane.attach(&interface) {
            tracing::warn!(%interface, error = %e, "not attaching the data plane to this interface");
            refused.insert(interface);
        }
    }
}

/// Attaches to the interfaces the kernel routes `backends` through (`--interface auto`).
fn attach_routes_to(data_plane: &mut DataPlane, backends: &[Backend]) {
    for backend in backends {
        let IpAddr::V4(ip) = backend.addr.ip() else {
            continue;
        };
        let Some(interface) = live_interface_for(ip) else {
            continue;
        };
        if let Err(e) = data_plane.attach(&interface) {
            tracing::warn!(%interface, error = %e, "could not attach to the interface of a replica");
        }
    }
}

/// Starts the data plane when interfaces are given. Missing BPF rights are not fatal: the proxy
/// runs with user-space metrics only, and says so once.
fn start_data_plane(args: &RunArgs, pin_dir: PathBuf) -> anyhow::Result<Option<DataPlane>> {
    if args.no_ebpf {
        tracing::warn!("--no-ebpf: running without the eBPF data plane");
        return Ok(None);
    }
    if args.interfaces.is_empty() {
        tracing::info!("no --interface given: nothing to attach the data plane to");
        return Ok(None);
    }
    let config = DataPlaneConfig {
        // With `auto`, interfaces are attached as replicas are discovered.
        interfaces: if args.auto_interfaces() {
            Vec::new()
        } else {
            args.interfaces.clone()
        },
        pin_dir,
        fastpath: args.fastpath(),
    };
    match DataPlane::start(&config) {
        Ok(data_plane) => {
            tracing::info!(pins = %data_plane.pin_dir().display(), "data plane running");
            Ok(Some(data_plane))
        }
        Err(e @ DataPlaneError::NoPrivilege { .. }) => {
            tracing::warn!("{e}; continuing without the data plane (user-space metrics only)");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

/// How services and replicas are discovered, in words, for the status page.
fn discovery_summary(args: &ClusterArgs) -> String {
    let docker = match args.docker_discovery() {
        Ok(true) => format!(
            "Docker labels (com.df.*) from {}",
            args.docker_socket.display()
        ),
        _ => "no Docker label discovery".to_owned(),
    };
    format!("{docker}; replicas from DNS (tasks.<service>)")
}

/// The global basic-auth users: `--users`/`USERS`, else DFP's secret `dfp_users`.
fn global_credentials(args: &RunArgs) -> anyhow::Result<Credentials> {
    let from_secret = || {
        let path = args.secrets_dir.join("dfp_users");
        std::fs::read_to_string(&path).ok().inspect(|_| {
            tracing::info!(file = %path.display(), "global users read from the Docker secret");
        })
    };
    let users = args.users.clone().or_else(from_secret);
    let credentials = Credentials::new(
        users.as_deref(),
        args.users_pass_encrypted,
        args.secrets_dir.clone(),
    )?;
    if credentials.has_global() {
        tracing::info!("every service without its own users requires the global users (USERS)");
    }
    Ok(credentials)
}
