//! Changes to the running configuration, made the same way whatever their source (the API,
//! a peer replica, Docker labels, the Swarm Listener): a TCP-mode service's port is reserved
//! before the change applies, the change goes through the control plane (validated, saved,
//! swapped in), and the TCP-mode listeners follow the routes.
use std::sync::Arc;

use crate::{
    control::{ControlError, ControlPlane, Dns},
    credentials::{CredentialError, Credentials},
    l4::{L4Error, L4Listeners},
    routes::{ReqMode, Service},
    versioning::Version,
};

/// Why a change was refused; nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Invalid, conflicting, or not saved.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A TCP-mode `srcPort` cannot be listened on.
    #[error(transparent)]
    Port(#[from] L4Error),
    /// The service's users cannot be worked out (a missing secret, a user without password).
    #[error(transparent)]
    Credentials(#[from] CredentialError),
}

impl ChangeError {
    /// The HTTP status DFP would answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Control(e) => e.status(),
            Self::Port(_) => 409,
            Self::Credentials(_) => 400,
        }
    }
}

/// Applies changes to the routes and keeps the TCP-mode listeners in step.
pub struct Changes {
    /// The routes.
    pub control: Arc<ControlPlane>,
    /// The TCP-mode listeners.
    pub l4: Arc<L4Listeners>,
    /// Basic-auth users, checked before a service is accepted.
    pub credentials: Arc<Credentials>,
    /// The version changes are made at: `None` for a new one from this replica's clock,
    /// else the one the replica that distributed the change gave it (see [`Changes::at`]).
    pub version: Option<Version>,
    /// With `FILTER_PROXY_INSTANCE_NAME=true`: this proxy's `PROXY_INSTANCE_NAME`; a service
    /// whose `proxyInstanceName` differs is left to the proxy it names, as in DFP.
    pub instance: Option<Arc<str>>,
}

/// What a reconfigure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The service was added or replaced.
    Configured,
    /// `replicas=0` on a replicated service: it was removed (DFP's rule), or was not
    /// configured (`false`).
    Removed(bool),
    /// Nothing changed: the service is for another proxy instance; the text says which.
    Filtered(String),
}

impl Changes {
    /// The same changes, made at `version` (a distributed change keeps the version it got
    /// where it was first applied, so every replica holds the same entry and digest).
    pub fn at(&self, version: Version) -> Self {
        self.control.clock().observe(version);
        Self {
            control: Arc::clone(&self.control),
            l4: Arc::clone(&self.l4),
            instance: self.instance.clone(),
            credentials: Arc::clone(&self.credentials),
            version: Some(version),
        }
    }

    /// Adds or replaces `service`; a replicated service scaled to 0 is removed, as in DFP.
    pub async fn reconfigure(&self, service: Service) -> Result<Applied, ChangeError> {
        if let Some(why) = self.filtered_out(&service) {
            return Ok(Applied::Filtered(why));
        }
        if service.replicas() == Some(0) {
            return Ok(Applied::Removed(self.remove(&service.name).await?));
        }
        // A TCP-mode service needs its port: a taken one refuses the change before it applies.
        self.admit(&service)?;
        let result = match self.version {
            None => self.control.reconfigure(service).await,
            Some(version) => {
                let name = service.name.clone();
                self.control
                    .merge_service(&name, Some(service), version, Dns::Wait)
                    .await
                    .map(drop)
            }
        };
        self.l4.sync();
        result?;
        Ok(Applied::Configured)
    }

    /// Why `service` is not for this proxy (`FILTER_PROXY_INSTANCE_NAME=true` and its
    /// `proxyInstanceName`, compared without case as DFP does, is not `PROXY_INSTANCE_NAME`).
    pub fn filtered_out(&self, service: &Service) -> Option<String> {
        let instance = self.instance.as_deref()?;
        let wanted = service
            .params
            .get("proxyInstanceName")
            .map_or("", String::as_str);
        (!wanted.eq_ignore_ascii_case(instance)).then(|| {
            format!(
                "not configured here: proxyInstanceName={wanted:?} is not this proxy's \
                 PROXY_INSTANCE_NAME ({instance}) and FILTER_PROXY_INSTANCE_NAME is true"
            )
        })
    }

    /// Removes the service `name`; returns whether it existed.
    pub async fn remove(&self, name: &str) -> Result<bool, ChangeError> {
        let result = match self.version {
            None => self.control.remove(name).await,
            Some(version) => {
                let existed = self.control.snapshot().routes.services().contains_key(name);
                self.control
                    .merge_service(name, None, version, Dns::Wait)
                    .await
                    .map(|_| existed)
            }
        };
        self.l4.sync();
        Ok(result?)
    }

    /// Applies a peer's entry for the service `name` at `version` (`None`: removed there),
    /// unless the one here is newer; validated as a reconfigure is (credentials, a TCP-mode
    /// port that can be bound, the route table). Returns whether it applied. New services'
    /// replicas are not waited for: the caller refreshes once after a batch.
    pub async fn merge(
        &self,
        name: &str,
        service: Option<Service>,
        version: Version,
    ) -> Result<bool, ChangeError> {
        if let Some(service) = &service {
            self.admit(service)?;
        }
        let result = self
            .control
            .merge_service(name, service, version, Dns::Later)
            .await;
        self.l4.sync();
        Ok(result?)
    }

    /// Checks what the control plane cannot: the service's users and its TCP-mode ports. A
    /// refusal here is counted as a rejected change, as the control plane counts its own.
    fn admit(&self, service: &Service) -> Result<(), ChangeError> {
        let admitted = self
            .credentials
            .validate(service)
            .map_err(ChangeError::from)
            .and_then(|()| self.reserve_ports(service).map_err(ChangeError::from));
        if admitted.is_err() {
            self.control.change_counters().rejected.inc();
        }
        admitted
    }

    /// Binds every TCP-mode `srcPort` of `service` (a taken one refuses the change).
    fn reserve_ports(&self, service: &Service) -> Result<(), L4Error> {
        for port in service
            .destinations
            .iter()
            .filter(|d| d.req_mode == ReqMode::Tcp)
            .filter_map(|d| d.src_port)
        {
            self.l4.reserve(port)?;
        }
        Ok(())
    }
}
