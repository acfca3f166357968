//! TLS on `--https-addr`: certificates from files, Docker secrets and the API, chosen by SNI,
//! swapped without dropping connections. One crypto provider (ring) is installed at start.
mod api_certs;
mod cert;
mod sources;
mod store;

use std::sync::Arc;

use rustls::{ServerConfig, crypto::CryptoProvider};
use tokio_rustls::TlsAcceptor;

pub use api_certs::{read_api_certs, unix_now, valid_cert_name};
pub use cert::{CertInfo, Certificate, parse_certificate};
pub use sources::{CertSources, load_all, save_api_cert};
pub use store::CertStore;

/// Installs ring as the process-wide provider. Idempotent.
pub fn install_provider() -> Arc<CryptoProvider> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .expect("a provider was just installed")
}

/// A certificate for `localhost` generated now, served when no other certificate exists so that
/// the HTTPS port still answers.
pub fn self_signed(provider: &CryptoProvider) -> anyhow::Result<Certificate> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let pem = format!(
        "{}{}",
        generated.cert.pem(),
        generated.signing_key.serialize_pem()
    );
    Ok(parse_certificate(
        "self-signed",
        pem.as_bytes(),
        "self-signed",
        0,
        provider,
    )?)
}

/// The acceptor for the HTTPS listener: certificates from `store`, ALPN h2 then http/1.1.
pub fn acceptor(
    store: Arc<CertStore>,
    provider: Arc<CryptoProvider>,
) -> Result<TlsAcceptor, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
