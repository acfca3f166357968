//! DFP's static services (`DFP_SERVICE_*`), parsed at start (a bad one stops the start) and
//! applied once the replica's bootstrap is over, like any other change: versioned, saved and
//! replicated. They are asserted again at every start; removing the variables does not remove
//! a service already configured (`remove` does).
use crate::{
    changes::Applied,
    cluster::Cluster,
    dfp_env,
    routes::{Service, catalog, parse_params},
};

/// A static service and the variables' prefix it came from (`DFP_SERVICE_2`).
#[derive(Debug, Clone)]
pub struct StaticService {
    /// `DFP_SERVICE` or `DFP_SERVICE_<n>`, for messages.
    pub prefix: String,
    /// The parsed service.
    pub service: Service,
}

impl StaticService {
    /// Parses the services the environment spells, as reconfigure calls are parsed; the
    /// first that does not parse is the error (it names the variables' prefix), since
    /// starting without it would silently drop its routes.
    pub fn parse_all(services: &[dfp_env::StaticService]) -> Result<Vec<Self>, String> {
        services
            .iter()
            .map(|s| {
                let service = parse_params(s.params.clone()).map_err(|e| {
                    format!(
                        "{}_*: {e}; fix or remove the static service's variables",
                        s.prefix
                    )
                })?;
                let harmless = catalog::check(&service.params).unwrap_or_default();
                if !harmless.is_empty() {
                    let message = catalog::harmless_message(&harmless);
                    tracing::warn!(service = %service.name, from = s.prefix, "{message}");
                }
                Ok(Self {
                    prefix: s.prefix.clone(),
                    service,
                })
            })
            .collect()
    }
}

/// Applies every static service; one that cannot be applied (a taken TCP port, a user without
/// password) is logged with its prefix and does not stop the others.
pub async fn apply(cluster: &Cluster, services: &[StaticService]) {
    for entry in services {
        let name = entry.service.name.clone();
        match cluster
            .local
            .changes
            .reconfigure(entry.service.clone())
            .await
        {
            Ok(Applied::Configured) => {
                tracing::info!(
                    service = name,
                    from = entry.prefix,
                    "static service configured"
                );
            }
            Ok(Applied::Removed(_)) => {
                tracing::info!(
                    service = name,
                    from = entry.prefix,
                    "static service has replicas=0: removed"
                );
            }
            Ok(Applied::Filtered(why)) => {
                tracing::info!(service = name, from = entry.prefix, "static service {why}");
            }
            Err(e) => tracing::error!(
                service = name,
                from = entry.prefix,
                "static service not configured: {e}; fix its {}_* variables",
                entry.prefix
            ),
        }
    }
}
