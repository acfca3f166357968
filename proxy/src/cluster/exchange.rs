//! What replicas exchange: every entry (service, API certificate) with its version, removed
//! ones as tombstones, and the digest that tells two replicas whether they hold the same
//! entries. `GET /v1/flowproxy/config/version` answers the digest alone; a full exchange
//! (`GET /v1/flowproxy/config`) happens only when digests differ, and is merged (`apply.rs`).
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use rustls::crypto::CryptoProvider;
use serde::{Deserialize, Serialize};

use crate::{
    changes::Changes,
    tls::{CertStore, read_api_certs},
    versioning::{Entries, Entry, Kind, Version, Versions},
    wire::REQUEST_PARAMS,
};

/// A service's reconfigure parameters.
pub type Params = BTreeMap<String, String>;

/// The digest of a replica's entries (`GET /v1/flowproxy/config/version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDigest {
    /// XOR of one SHA-256 per entry, lowercase hex: equal exactly when the entries are.
    #[serde(rename = "Digest")]
    pub digest: String,
    /// How many entries (tombstones included) it covers.
    #[serde(rename = "Entries", default)]
    pub entries: usize,
}

/// Every entry of a replica (`GET /v1/flowproxy/config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// The digest of these entries.
    #[serde(rename = "Version")]
    pub version: ConfigDigest,
    /// Services by name: reconfigure parameters, or `null` for a removed one.
    #[serde(rename = "Services")]
    pub services: Entries<Params>,
    /// API certificates by name: the PEM bundle (chain and key), or `null` once removed.
    #[serde(rename = "Certs")]
    pub certs: Entries<String>,
}

/// An entry a peer has and this replica refused (reported in `/v1/flowproxy/peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// `service` or `cert`.
    #[serde(rename = "Kind")]
    pub kind: &'static str,
    /// The entry's name.
    #[serde(rename = "Name")]
    pub name: String,
    /// The refused version.
    #[serde(rename = "Version")]
    pub version: Version,
    /// The peer it came from.
    #[serde(rename = "Peer")]
    pub peer: String,
    /// Why.
    #[serde(rename = "Error")]
    pub error: String,
}

/// This replica's entries, to export and to merge into.
pub struct LocalConfig {
    /// The routes.
    pub changes: Arc<Changes>,
    /// The served certificates.
    pub certs: Arc<CertStore>,
    /// The crypto provider certificates are parsed with.
    pub provider: Arc<CryptoProvider>,
    /// Where certificates added through the API are kept.
    pub api_certs_dir: PathBuf,
    /// Peers' entries refused here, by kind and name.
    pub(super) refused: Mutex<BTreeMap<(&'static str, String), Refusal>>,
}

impl LocalConfig {
    /// This replica's configuration, with nothing refused yet.
    pub fn new(
        changes: Arc<Changes>,
        certs: Arc<CertStore>,
        provider: Arc<CryptoProvider>,
        api_certs_dir: PathBuf,
    ) -> Self {
        Self {
            changes,
            certs,
            provider,
            api_certs_dir,
            refused: Mutex::default(),
        }
    }

    /// The digest of the entries now: computed when they changed, not here.
    pub fn digest(&self) -> ConfigDigest {
        digest_of(&self.changes.control.snapshot().versions)
    }

    /// Every entry, with its content.
    pub fn export(&self) -> ClusterConfig {
        let snapshot = self.changes.control.snapshot_full();
        ClusterConfig {
            version: digest_of(&snapshot.versions),
            services: self.service_entries(),
            certs: self.cert_entries(),
        }
    }

    /// The services as entries: live ones with their parameters, removed ones as tombstones.
    pub(super) fn service_entries(&self) -> Entries<Params> {
        let snapshot = self.changes.control.snapshot_full();
        snapshot
            .versions
            .entries(Kind::Service)
            .map(|(name, stamp)| {
                let params = stamp
                    .live
                    .then(|| snapshot.routes.services().get(name))
                    .flatten()
                    .map(|s| without_request_params(&s.params));
                (
                    name.clone(),
                    Entry {
                        version: stamp.version,
                        value: params,
                    },
                )
            })
            .collect()
    }

    /// The API certificates as entries (content from their files).
    pub(super) fn cert_entries(&self) -> Entries<String> {
        let files = read_api_certs(&self.api_certs_dir);
        let snapshot = self.changes.control.snapshot();
        snapshot
            .versions
            .entries(Kind::Cert)
            .map(|(name, stamp)| {
                let pem = if stamp.live {
                    files.get(name).cloned()
                } else {
                    None
                };
                let entry = Entry {
                    version: stamp.version,
                    value: pem,
                };
                (name.clone(), entry)
            })
            .collect()
    }

    /// The entries refused here, oldest name first.
    pub fn refusals(&self) -> Vec<Refusal> {
        super::apply::lock(&self.refused)
            .values()
            .cloned()
            .collect()
    }
}

fn digest_of(versions: &Versions) -> ConfigDigest {
    ConfigDigest {
        digest: versions.digest(),
        entries: versions.entries(Kind::Service).count() + versions.entries(Kind::Cert).count(),
    }
}

/// `params` without those that steer a request (`distribute`, `token`).
pub fn without_request_params(params: &Params) -> Params {
    params
        .iter()
        .filter(|(k, _)| !REQUEST_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
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
    fn a_tombstone_travels_as_null() {
        let version = Version {
            ms: 1,
            counter: 0,
            replica: 2,
        };
        let config = ClusterConfig {
            version: ConfigDigest {
                digest: "00".into(),
                entries: 1,
            },
            services: BTreeMap::from([(
                "gone".to_owned(),
                Entry {
                    version,
                    value: None,
                },
            )]),
            certs: BTreeMap::new(),
        };
        let json = serde_json::to_value(&config).unwrap();
        assert!(json["Services"]["gone"]["Value"].is_null(), "{json}");
        let back: ClusterConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back.services, config.services);
    }
}
