//! TLS for tests: a CA made in the test (rcgen) that issues certificates, and a rustls client
//! that tells which certificate the proxy served and can keep its connection open.
use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned, pki_types::ServerName};

/// A certificate authority that exists only for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM (for `curl --cacert`).
    pub pem: String,
    der: Vec<u8>,
}

/// An issued certificate.
#[derive(Clone)]
pub struct Issued {
    /// Chain and key in one PEM bundle, as flowproxy takes them.
    pub bundle: String,
    /// The leaf certificate, DER: what a client sees.
    pub der: Vec<u8>,
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "flowproxy test CA");
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A certificate for `names`, valid now.
    pub fn issue(&self, names: &[&str]) -> anyhow::Result<Issued> {
        self.issue_with(names, |_| {})
    }

    /// A certificate for `names` that expired in 2001.
    pub fn issue_expired(&self, names: &[&str]) -> anyhow::Result<Issued> {
        self.issue_with(names, |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
    }

    fn issue_with(
        &self,
        names: &[&str],
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> anyhow::Result<Issued> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        tweak(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            bundle: format!("{}{}{}", cert.pem(), self.pem, key.serialize_pem()),
            der: cert.der().to_vec(),
        })
    }

    /// Writes the CA certificate to `path` (for curl).
    pub fn write_pem(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, &self.pem)?;
        Ok(())
    }
}

/// A TLS connection to the proxy, kept open between requests.
pub struct TlsClient {
    stream: BufReader<StreamOwned<ClientConnection, TcpStream>>,
    host: String,
}

impl TlsClient {
    /// Connects to `addr` with SNI `server_name`, trusting only `ca`.
    pub fn connect(addr: SocketAddr, server_name: &str, ca: &TestCa) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der.clone().into())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::handshake(addr, server_name, config)
    }

    /// Connects with SNI `server_name` accepting any certificate, to see which one the proxy
    /// picks for a name none of its certificates covers.
    pub fn connect_any(addr: SocketAddr, server_name: &str) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        Self::handshake(addr, server_name, config)
    }

    fn handshake(
        addr: SocketAddr,
        server_name: &str,
        config: ClientConfig,
    ) -> anyhow::Result<Self> {
        let name = ServerName::try_from(server_name.to_owned())?;
        let conn = ClientConnection::new(Arc::new(config), name)?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .context("TLS handshake")?;
        }
        Ok(Self {
            stream: BufReader::new(stream),
            host: server_name.to_owned(),
        })
    }

    /// Waits, sending nothing, until the proxy closes the connection, at most `within`;
    /// returns how long that took.
    pub fn closed_within(&mut self, within: Duration) -> anyhow::Result<Duration> {
        Ok(self.wait_closed(within)?.0)
    }

    /// Like [`TlsClient::closed_within`], and the proxy must have said close_notify first.
    pub fn closed_with_notify_within(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let (took, notified) = self.wait_closed(within)?;
        anyhow::ensure!(notified, "closed after {took:?} without a close_notify");
        Ok(took)
    }

    /// How long until the proxy closed, and whether it said close_notify.
    fn wait_closed(&mut self, within: Duration) -> anyhow::Result<(Duration, bool)> {
        let started = std::time::Instant::now();
        self.stream.get_mut().sock.set_read_timeout(Some(within))?;
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            // rustls reads 0 bytes only after a close_notify.
            Ok(0) => Ok((started.elapsed(), true)),
            Ok(_) => anyhow::bail!("the proxy sent data to an idle connection"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                anyhow::bail!("still open after {within:?}")
            }
            // A close without close_notify, or a reset: closed all the same.
            Err(_) => Ok((started.elapsed(), false)),
        }
    }

    /// Sends a TLS 1.3 key update and nothing else: bytes on the wire that carry no request.
    pub fn send_key_update(&mut self) -> anyhow::Result<()> {
        let stream = self.stream.get_mut();
        stream.conn.refresh_traffic_keys()?;
        while stream.conn.wants_write() {
            stream.conn.write_tls(&mut stream.sock)?;
        }
        Ok(())
    }

    /// The leaf certificate the proxy presented, DER.
    pub fn peer_certificate(&self) -> anyhow::Result<Vec<u8>> {
        let certs = self
            .stream
            .get_ref()
            .conn
            .peer_certificates()
            .context("no certificate")?;
        Ok(certs.first().context("empty chain")?.to_vec())
    }

    /// `GET path` over this connection (HTTP/1.1, keep-alive): status and body.
    pub fn get(&mut self, path: &str) -> anyhow::Result<(u16, String)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.get_mut().write_all(request.as_bytes())?;
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let Some(length) = length else {
            bail!("the test client needs a Content-Length");
        };
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Accepts every certificate (but still checks handshake signatures): tests only.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
