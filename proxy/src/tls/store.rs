//! The certificates being served, as an immutable set swapped whole: a handshake reads the set
//! once, so a replaced certificate takes effect for the next handshake while open connections
//! keep the one they negotiated.
use std::{collections::BTreeMap, fmt, sync::Arc};

use arc_swap::ArcSwap;
use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::cert::{CertInfo, Certificate};

/// Every certificate, and which one answers which SNI name.
#[derive(Default)]
struct CertSet {
    by_name: BTreeMap<String, Certificate>,
    exact: BTreeMap<String, Arc<CertifiedKey>>,
    /// `(".example.com", key)` for `*.example.com`.
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    default: Option<Arc<CertifiedKey>>,
}

/// The served certificates; resolves SNI: exact names first, then wildcards, then the default.
pub struct CertStore {
    current: ArcSwap<CertSet>,
    fallback: Certificate,
    default_name: Option<String>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field(
                "certs",
                &self.current.load().by_name.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CertStore {
    /// A store serving `fallback` (the self-signed certificate) until others are added.
    /// `default_name` picks the certificate for unknown SNI names (else the first by name).
    pub fn new(fallback: Certificate, default_name: Option<String>) -> Self {
        Self {
            current: ArcSwap::from_pointee(CertSet::default()),
            fallback,
            default_name,
        }
    }

    /// Adds or replaces certificates (by name) in one swap.
    pub fn insert(&self, certs: impl IntoIterator<Item = Certificate>) {
        let mut by_name = self.current.load().by_name.clone();
        for cert in certs {
            by_name.insert(cert.info.name.clone(), cert);
        }
        self.current.store(Arc::new(self.index(by_name)));
    }

    /// Stops serving the API-added certificates called `names` (a certificate of that name
    /// from a file or a secret stays).
    pub fn remove_api(&self, names: &[String]) {
        let mut by_name = self.current.load().by_name.clone();
        by_name.retain(|name, cert| !(cert.info.source == "api" && names.contains(name)));
        self.current.store(Arc::new(self.index(by_name)));
    }

    /// What is served, for the API (the self-signed fallback only while nothing else is).
    pub fn list(&self) -> Vec<CertInfo> {
        let set = self.current.load();
        if set.by_name.is_empty() {
            return vec![self.fallback.info.clone()];
        }
        set.by_name.values().map(|c| c.info.clone()).collect()
    }

    /// True while only the self-signed fallback is served.
    pub fn is_empty(&self) -> bool {
        self.current.load().by_name.is_empty()
    }

    fn index(&self, by_name: BTreeMap<String, Certificate>) -> CertSet {
        let mut exact = BTreeMap::new();
        let mut wildcard = Vec::new();
        for cert in by_name.values() {
            for san in &cert.info.sans {
                match san.strip_prefix('*') {
                    Some(suffix) if suffix.starts_with('.') => {
                        wildcard.push((suffix.to_owned(), Arc::clone(&cert.key)));
                    }
                    _ => {
                        exact
                            .entry(san.clone())
                            .or_insert_with(|| Arc::clone(&cert.key));
                    }
                }
            }
        }
        // Longer suffixes are more specific.
        wildcard.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        let default = self
            .default_name
            .as_ref()
            .and_then(|name| by_name.get(name))
            .or_else(|| by_name.values().next())
            .map(|c| Arc::clone(&c.key));
        CertSet {
            by_name,
            exact,
            wildcard,
            default,
        }
    }

    /// The key for SNI `name` (`None`: no SNI).
    pub fn select(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let set = self.current.load();
        let name = name.map(str::to_ascii_lowercase);
        name.as_deref()
            .and_then(|n| {
                set.exact.get(n).cloned().or_else(|| {
                    let dot = n.find('.')?;
                    let suffix = &n[dot..];
                    set.wildcard
                        .iter()
                        .find(|(s, _)| s == suffix)
                        .map(|(_, key)| Arc::clone(key))
                })
            })
            .or_else(|| set.default.clone())
            .unwrap_or_else(|| Arc::clone(&self.fallback.key))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.select(client_hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::parse_certificate;

    fn cert(name: &str, sans: &[&str]) -> Certificate {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let c = rcgen::generate_simple_self_signed(names).unwrap();
        let pem = format!("{}{}", c.cert.pem(), c.signing_key.serialize_pem());
        parse_certificate(
            name,
            pem.as_bytes(),
            "test",
            0,
            &rustls::crypto::ring::default_provider(),
        )
        .unwrap()
    }

    #[test]
    fn exact_beats_wildcard_beats_default() {
        let fallback = cert("self", &["localhost"]);
        let store = CertStore::new(fallback.clone(), Some("b".into()));
        assert!(
            Arc::ptr_eq(&store.select(Some("x")), &fallback.key),
            "nothing else yet"
        );
        let a = cert("a", &["a.example.com"]);
        let wild = cert("w", &["*.example.com"]);
        let b = cert("b", &["b.test"]);
        store.insert([a.clone(), wild.clone(), b.clone()]);
        assert!(Arc::ptr_eq(&store.select(Some("A.example.com")), &a.key));
        assert!(Arc::ptr_eq(&store.select(Some("z.example.com")), &wild.key));
        assert!(
            Arc::ptr_eq(&store.select(Some("example.com")), &b.key),
            "default"
        );
        assert!(Arc::ptr_eq(&store.select(None), &b.key));
        assert_eq!(store.list().len(), 3);
    }

    #[test]
    fn replacing_a_certificate_swaps_it_by_name() {
        let store = CertStore::new(cert("self", &["localhost"]), None);
        store.insert([cert("a", &["a.example.com"])]);
        let newer = cert("a", &["a.example.com"]);
        store.insert([newer.clone()]);
        assert!(Arc::ptr_eq(
            &store.select(Some("a.example.com")),
            &newer.key
        ));
        assert_eq!(store.list().len(), 1);
    }
}
