//! Merging a peer's entries into this replica's (`versioning::changes_from` decides which of
//! the peer's entries win). Each winning service goes through the validation a reconfigure
//! does (`routes::parse_params`, credentials, a TCP-mode port that can be bound, the route
//! table); one refused here is recorded and logged, and the others still apply. Winning API
//! certificates are written (or removed) as files, then served if they parse here.
use std::{
    fs,
    net::SocketAddr,
    sync::{Mutex, MutexGuard, PoisonError},
};

use super::exchange::{ClusterConfig, LocalConfig, Params, Refusal, without_request_params};
use crate::{
    routes::parse_params,
    tls::{parse_certificate, unix_now, valid_cert_name},
    versioning::{Entries, Entry, Kind, Version, changes_from},
};

/// What one merge did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MergeReport {
    /// Entries of the peer that won and were applied.
    pub applied: usize,
    /// Entries of the peer that won and were refused here.
    pub refused: usize,
}

impl LocalConfig {
    /// Merges `config`, from `peer`, into this replica.
    pub async fn merge(&self, peer: SocketAddr, config: ClusterConfig) -> MergeReport {
        let clock = self.changes.control.clock();
        let mut config = config;
        let mut report = MergeReport::default();
        // A version from a clock more than a day ahead would drag this clock along: refused.
        self.refuse_implausible("service", &mut config.services, peer, &mut report);
        self.refuse_implausible("cert", &mut config.certs, peer, &mut report);
        for entry in config.services.values() {
            clock.observe(entry.version);
        }
        for entry in config.certs.values() {
            clock.observe(entry.version);
        }
        let local = self.service_entries();
        for (name, entry) in changes_from(&local, &config.services) {
            match self.merge_service(name, entry).await {
                Ok(true) => report.applied += 1,
                Ok(false) => {}
                Err(error) => {
                    report.refused += 1;
                    self.refuse("service", name, entry.version, peer, error);
                }
            }
        }
        let local_certs = self.cert_entries();
        for (name, entry) in changes_from(&local_certs, &config.certs) {
            match self.merge_cert(name, entry).await {
                Ok(true) => report.applied += 1,
                Ok(false) => {}
                Err(error) => {
                    report.refused += 1;
                    self.refuse("cert", name, entry.version, peer, error);
                }
            }
        }
        self.forget_resolved_refusals();
        if report.applied > 0 {
            // New services' replicas, and replicas the peer already knew of (a service was
            // scaled), are looked up once for the whole merge.
            self.changes.control.refresh_all().await;
        }
        report
    }

    /// Drops (and records as refused) the entries whose version is implausibly far ahead.
    fn refuse_implausible<T>(
        &self,
        kind: &'static str,
        entries: &mut Entries<T>,
        peer: SocketAddr,
        report: &mut MergeReport,
    ) {
        let clock = self.changes.control.clock();
        let ahead: Vec<(String, Version)> = entries
            .iter()
            .filter(|(_, e)| !clock.plausible(e.version))
            .map(|(name, e)| (name.clone(), e.version))
            .collect();
        for (name, version) in ahead {
            entries.remove(&name);
            report.refused += 1;
            let error =
                "its version is more than a day ahead of this replica's clock; check the clocks"
                    .to_owned();
            self.refuse(kind, &name, version, peer, error);
        }
    }

    async fn merge_service(&self, name: &str, entry: &Entry<Params>) -> Result<bool, String> {
        let service = match &entry.value {
            None => None,
            Some(params) => {
                let service =
                    parse_params(without_request_params(params)).map_err(|e| e.to_string())?;
                if service.name != name {
                    return Err(format!("its serviceName is {:?}", service.name));
                }
                Some(service)
            }
        };
        self.changes
            .merge(name, service, entry.version)
            .await
            .map_err(|e| e.to_string())
    }

    /// Writes (or removes) the certificate's file, serves it if it parses here (one that does
    /// not is kept on disk, so the replicas still agree, and not served), then records its
    /// version.
    async fn merge_cert(&self, name: &str, entry: &Entry<String>) -> Result<bool, String> {
        if !valid_cert_name(name) {
            return Err("the name is not allowed for a certificate file".into());
        }
        let file = self.api_certs_dir.join(format!("{name}.pem"));
        match &entry.value {
            Some(pem) => {
                fs::create_dir_all(&self.api_certs_dir)
                    .and_then(|()| crate::state::write_atomic(&file, pem.as_bytes()))
                    .map_err(|e| format!("saving {}: {e}", file.display()))?;
                match parse_certificate(name, pem.as_bytes(), "api", unix_now(), &self.provider) {
                    Ok(cert) => self.certs.insert([cert]),
                    Err(e) => tracing::warn!("a peer's certificate is not served here: {e}"),
                }
            }
            None => {
                match fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("removing {}: {e}", file.display())),
                }
                self.certs.remove_api(&[name.to_owned()]);
            }
        }
        self.changes
            .control
            .merge_cert(name, entry.value.is_some(), entry.version)
            .await
            .map_err(|e| e.to_string())
    }

    /// Records (and logs, once per version) a refused entry.
    fn refuse(
        &self,
        kind: &'static str,
        name: &str,
        version: Version,
        peer: SocketAddr,
        error: String,
    ) {
        let refusal = Refusal {
            kind,
            name: name.to_owned(),
            version,
            peer: peer.to_string(),
            error,
        };
        let mut refused = lock(&self.refused);
        let key = (kind, name.to_owned());
        if refused.get(&key).is_none_or(|r| r.version != version) {
            tracing::error!(
                peer = %peer,
                kind,
                name,
                %version,
                "a peer's entry was refused here and is not applied: {}; fix it with a reconfigure",
                refusal.error
            );
        }
        refused.insert(key, refusal);
    }

    /// Drops refusals that a version at least as new here has since superseded.
    fn forget_resolved_refusals(&self) {
        let snapshot = self.changes.control.snapshot();
        lock(&self.refused).retain(|(kind, name), refusal| {
            let kind = if *kind == "cert" {
                Kind::Cert
            } else {
                Kind::Service
            };
            snapshot
                .versions
                .get(kind, name)
                .is_none_or(|here| here.version < refusal.version)
        });
    }
}

/// Locks `m`, whatever a panicking holder left.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
