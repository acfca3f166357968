//! This replica's configuration as replicas exchange it: every service's parameters and the
//! certificates added through the API, with its version. Exported for peers, and adopted
//! whole from the newest peer.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::crypto::CryptoProvider;
use serde::{Deserialize, Serialize};

use super::version::{ConfigVersion, content_hash};
use crate::{
    api::{REQUEST_PARAMS, unix_now, valid_cert_name},
    changes::{ChangeError, Changes},
    routes::{RouteError, RouteTable, parse_params},
    tls::{CertStore, parse_certificate},
};

/// A whole configuration (`GET /v1/flowproxy/config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Its version.
    #[serde(rename = "Version")]
    pub version: ConfigVersion,
    /// Every service's reconfigure parameters.
    #[serde(rename = "Services")]
    pub services: Vec<BTreeMap<String, String>>,
    /// The certificates added through the API (chain and key, PEM).
    #[serde(rename = "Certs")]
    pub certs: Vec<ExportedCert>,
}

/// One certificate of a [`ClusterConfig`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportedCert {
    /// Its name (`certName`).
    #[serde(rename = "Name")]
    pub name: String,
    /// The PEM bundle.
    #[serde(rename = "Pem")]
    pub pem: String,
}

/// Why a peer's configuration was not adopted; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The content does not match its hash (a peer that hashes differently, or a damaged reply).
    #[error("its hash {claimed} does not match its content ({computed})")]
    HashMismatch {
        /// The hash the peer sent.
        claimed: String,
        /// The hash of what it sent.
        computed: String,
    },
    /// A service does not validate here.
    #[error("service {service} is invalid here: {error}")]
    InvalidService {
        /// The service's name.
        service: String,
        /// Why.
        error: RouteError,
    },
    /// The services conflict.
    #[error("{0}")]
    Conflict(RouteError),
    /// A certificate name that could not be a file name here.
    #[error("certificate name {0:?} is not allowed")]
    BadCertName(String),
    /// Applying failed.
    #[error(transparent)]
    Apply(#[from] ChangeError),
}

/// This replica's configuration, to export and to replace.
pub struct LocalConfig {
    /// The routes.
    pub changes: Arc<Changes>,
    /// The served certificates.
    pub certs: Arc<CertStore>,
    /// The crypto provider certificates are parsed with.
    pub provider: Arc<CryptoProvider>,
    /// Where certificates added through the API are kept.
    pub api_certs_dir: PathBuf,
}

impl LocalConfig {
    /// The whole configuration and its version.
    pub fn export(&self) -> ClusterConfig {
        let snapshot = self.changes.control.snapshot_full();
        let services: BTreeMap<String, BTreeMap<String, String>> = snapshot
            .routes
            .services()
            .iter()
            .map(|(name, s)| (name.clone(), without_request_params(&s.params)))
            .collect();
        let certs = read_api_certs(&self.api_certs_dir);
        ClusterConfig {
            version: ConfigVersion {
                changed_at_ms: snapshot.changed_at_ms,
                hash: content_hash(&services, &certs),
            },
            services: services.into_values().collect(),
            certs: certs
                .into_iter()
                .map(|(name, pem)| ExportedCert { name, pem })
                .collect(),
        }
    }

    /// The current version.
    pub fn version(&self) -> ConfigVersion {
        self.export().version
    }

    /// Replaces this replica's configuration with `config`, unless it changed since it was
    /// at `expected` (a local change made meanwhile is newer). Returns whether it adopted.
    pub async fn adopt(
        &self,
        config: ClusterConfig,
        expected: &ConfigVersion,
    ) -> Result<bool, AdoptError> {
        let services: BTreeMap<String, BTreeMap<String, String>> = config
            .services
            .iter()
            .map(|p| {
                let p = without_request_params(p);
                (p.get("serviceName").cloned().unwrap_or_default(), p)
            })
            .collect();
        let certs: BTreeMap<String, String> = config
            .certs
            .iter()
            .map(|c| (c.name.clone(), c.pem.clone()))
            .collect();
        let computed = content_hash(&services, &certs);
        if computed != config.version.hash {
            return Err(AdoptError::HashMismatch {
                claimed: config.version.hash,
                computed,
            });
        }
        if let Some(bad) = certs.keys().find(|n| !valid_cert_name(n)) {
            return Err(AdoptError::BadCertName(bad.clone()));
        }
        let mut parsed = BTreeMap::new();
        for (name, params) in services {
            let service = parse_params(params).map_err(|error| AdoptError::InvalidService {
                service: name.clone(),
                error,
            })?;
            parsed.insert(service.name.clone(), service);
        }
        let routes = RouteTable::build(parsed).map_err(AdoptError::Conflict)?;
        let adopted = self
            .changes
            .adopt(routes, config.version.changed_at_ms, expected.changed_at_ms)
            .await?;
        if adopted {
            self.replace_api_certs(&certs);
        }
        Ok(adopted)
    }

    /// Makes the API certificates exactly `wanted`: files first (they are what the hash
    /// covers), then what is served. One that does not parse here is kept on disk, so the
    /// replicas still agree, and not served (with a warning).
    fn replace_api_certs(&self, wanted: &BTreeMap<String, String>) {
        let current = read_api_certs(&self.api_certs_dir);
        let mut serve = Vec::new();
        for (name, pem) in wanted {
            if current.get(name) == Some(pem) {
                continue;
            }
            let file = self.api_certs_dir.join(format!("{name}.pem"));
            let written = fs::create_dir_all(&self.api_certs_dir)
                .and_then(|()| crate::state::write_atomic(&file, pem.as_bytes()));
            if let Err(e) = written {
                tracing::error!(file = %file.display(), "saving a peer's certificate failed: {e}");
                continue;
            }
            match parse_certificate(name, pem.as_bytes(), "api", unix_now(), &self.provider) {
                Ok(cert) => serve.push(cert),
                Err(e) => tracing::warn!("a peer's certificate is not served here: {e}"),
            }
        }
        let gone: Vec<String> = current
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .cloned()
            .collect();
        for name in &gone {
            let file = self.api_certs_dir.join(format!("{name}.pem"));
            if let Err(e) = fs::remove_file(&file) {
                tracing::error!(file = %file.display(), "removing a certificate failed: {e}");
            }
        }
        self.certs.insert(serve);
        self.certs.remove_api(&gone);
    }
}

fn without_request_params(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .filter(|(k, _)| !REQUEST_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The API certificates on disk (`NAME.pem` in `dir`), by name.
fn read_api_certs(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().into_string().ok()?;
            let name = file.strip_suffix(".pem")?;
            if !valid_cert_name(name) {
                return None;
            }
            let pem = fs::read_to_string(entry.path()).ok()?;
            Some((name.to_owned(), pem))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_params_never_reach_the_exchanged_configuration() {
        let params = BTreeMap::from([
            ("serviceName".to_owned(), "a".to_owned()),
            ("distribute".to_owned(), "true".to_owned()),
            ("token".to_owned(), "t".to_owned()),
        ]);
        assert_eq!(
            without_request_params(&params).keys().collect::<Vec<_>>(),
            ["serviceName"]
        );
    }

    #[test]
    fn api_certificates_are_read_by_name_and_temporary_files_skipped() {
        let dir = std::env::temp_dir().join(format!("flowproxy-export-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("site.pem"), "PEM").unwrap();
        fs::write(dir.join(".site.pem.123.tmp"), "half").unwrap();
        fs::write(dir.join("notes.txt"), "x").unwrap();
        assert_eq!(
            read_api_certs(&dir),
            BTreeMap::from([("site".to_owned(), "PEM".to_owned())])
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
