//! One certificate: parsed from PEM (chain and key in one bundle, as DFP and HAProxy keep them),
//! checked (it parses, the key matches, it has not expired), and described for the API.
use std::sync::Arc;

use rustls::{crypto::CryptoProvider, sign::CertifiedKey};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use serde::Serialize;
use x509_parser::{extensions::GeneralName, prelude::FromDer as _};

/// Why a certificate was refused. Each message says which check failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    /// Nothing was sent.
    #[error("certificate {name}: the body is empty; send the PEM chain and private key")]
    Empty {
        /// The certificate's name.
        name: String,
    },
    /// No `CERTIFICATE` block.
    #[error("certificate {name}: no PEM CERTIFICATE block found")]
    NoCertificate {
        /// The certificate's name.
        name: String,
    },
    /// No private key block.
    #[error("certificate {name}: no PEM private key found; append the key to the chain")]
    NoKey {
        /// The certificate's name.
        name: String,
    },
    /// A block that does not parse.
    #[error("certificate {name}: it does not parse: {reason}")]
    Unparsable {
        /// The certificate's name.
        name: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("certificate {name}: the private key does not match the certificate")]
    KeyMismatch {
        /// The certificate's name.
        name: String,
    },
    /// Past its not-after date.
    #[error("certificate {name}: expired on {not_after} (unix time {not_after_unix})")]
    Expired {
        /// The certificate's name.
        name: String,
        /// When it expired, readable.
        not_after: String,
        /// When it expired, unix seconds.
        not_after_unix: i64,
    },
}

/// What the API lists about a certificate (never the key).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    /// The name it was stored under.
    #[serde(rename = "Name")]
    pub name: String,
    /// The DNS names it serves (SANs, else the subject CN).
    #[serde(rename = "SANs")]
    pub sans: Vec<String>,
    /// The issuer's distinguished name.
    #[serde(rename = "Issuer")]
    pub issuer: String,
    /// Not-after, unix seconds.
    #[serde(rename = "NotAfter")]
    pub not_after: i64,
    /// Where it came from: `file`, `secret`, `api` or `self-signed`.
    #[serde(rename = "Source")]
    pub source: String,
}

/// A checked certificate, ready to serve.
#[derive(Clone)]
pub struct Certificate {
    /// What the API shows.
    pub info: CertInfo,
    /// The chain and signing key rustls serves.
    pub key: Arc<CertifiedKey>,
    /// The PEM it was made from (for persistence).
    pub pem: Vec<u8>,
}

/// Parses and checks a PEM bundle named `name` from `source`, as of `now` (unix seconds).
pub fn parse_certificate(
    name: &str,
    pem: &[u8],
    source: &str,
    now: i64,
    provider: &CryptoProvider,
) -> Result<Certificate, CertError> {
    let name_owned = || name.to_owned();
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Err(CertError::Empty { name: name_owned() });
    }
    let unparsable = |reason: String| CertError::Unparsable {
        name: name_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| unparsable(e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::NoCertificate { name: name_owned() });
    };
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => CertError::NoKey { name: name_owned() },
        other => unparsable(other.to_string()),
    })?;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(leaf)
        .map_err(|e| unparsable(e.to_string()))?;
    let not_after = parsed.validity().not_after;
    if not_after.timestamp() < now {
        return Err(CertError::Expired {
            name: name_owned(),
            not_after: not_after.to_string(),
            not_after_unix: not_after.timestamp(),
        });
    }
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| unparsable(e.to_string()))?;
    let certified = CertifiedKey::new(chain.clone(), signing_key);
    if certified.keys_match().is_err() {
        return Err(CertError::KeyMismatch { name: name_owned() });
    }
    let mut sans: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if sans.is_empty() {
        sans = parsed
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_ascii_lowercase))
            .collect();
    }
    Ok(Certificate {
        info: CertInfo {
            name: name.to_owned(),
            sans,
            issuer: parsed.issuer().to_string(),
            not_after: not_after.timestamp(),
            source: source.to_owned(),
        },
        key: Arc::new(certified),
        pem: pem.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn self_signed(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let c = rcgen::generate_simple_self_signed(names).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn a_bundle_parses_with_its_names() {
        let (cert, key) = self_signed(&["a.example.com", "*.b.example.com"]);
        let bundle = format!("{cert}{key}");
        let c = parse_certificate("a", bundle.as_bytes(), "api", now(), &provider()).unwrap();
        assert_eq!(c.info.sans, ["a.example.com", "*.b.example.com"]);
        assert!(c.info.not_after > now());
    }

    #[test]
    fn each_bad_input_says_what_is_wrong() {
        let p = provider();
        let (cert, key) = self_signed(&["a.example.com"]);
        let (_, other_key) = self_signed(&["x"]);
        let err = |pem: &str| {
            parse_certificate("n", pem.as_bytes(), "api", now(), &p)
                .err()
                .unwrap()
        };
        assert!(matches!(err(""), CertError::Empty { .. }));
        assert!(matches!(err(&key), CertError::NoCertificate { .. }));
        assert!(matches!(err(&cert), CertError::NoKey { .. }));
        assert!(matches!(
            err(&format!("{cert}{other_key}")),
            CertError::KeyMismatch { .. }
        ));
        let garbage =
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            err(&format!("{garbage}{key}")),
            CertError::Unparsable { .. }
        ));
        // rcgen certificates are valid until 4096: judge them in the year 5138.
        let later = 100_000_000_000;
        let expired = parse_certificate("n", format!("{cert}{key}").as_bytes(), "api", later, &p);
        assert!(matches!(expired.err().unwrap(), CertError::Expired { .. }));
    }
}
