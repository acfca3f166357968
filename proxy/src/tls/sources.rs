//! Where certificates come from at start: PEM files in `--certs-dir` (a bundle `NAME.pem`, or
//! `NAME.crt` with `NAME.key`), Docker secrets `/run/secrets/cert-*`/`cert_*`, and those added
//! through the API, which are kept in `--state-dir/certs/`. A bad file is skipped with a
//! warning naming it: one broken secret must not keep every other site down.
use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
};

use rustls::crypto::CryptoProvider;

use super::cert::{Certificate, parse_certificate};

/// The directories certificates are read from.
#[derive(Debug, Clone)]
pub struct CertSources {
    /// `--certs-dir`.
    pub certs_dir: PathBuf,
    /// Docker secrets (`/run/secrets`).
    pub secrets_dir: PathBuf,
    /// Certificates added through the API.
    pub api_dir: PathBuf,
}

/// Reads every certificate of every source.
pub fn load_all(sources: &CertSources, now: i64, provider: &CryptoProvider) -> Vec<Certificate> {
    let mut certs = Vec::new();
    for (dir, source) in [
        (&sources.certs_dir, "file"),
        (&sources.secrets_dir, "secret"),
        (&sources.api_dir, "api"),
    ] {
        for (name, pem, path) in read_dir(dir, source == "secret") {
            match parse_certificate(&name, &pem, source, now, provider) {
                Ok(cert) => {
                    tracing::info!(name, file = %path.display(), sans = ?cert.info.sans, "certificate loaded");
                    certs.push(cert);
                }
                Err(e) => tracing::warn!(file = %path.display(), "skipping certificate: {e}"),
            }
        }
    }
    certs
}

/// `(name, pem, path)` of each certificate in `dir`.
fn read_dir(dir: &Path, secrets: bool) -> Vec<(String, Vec<u8>, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in &paths {
        let file = path.file_name().and_then(OsStr::to_str).unwrap_or_default();
        if secrets && !(file.starts_with("cert-") || file.starts_with("cert_")) {
            continue;
        }
        let ext = path.extension().and_then(OsStr::to_str);
        let name = path
            .file_stem()
            .and_then(OsStr::to_str)
            .unwrap_or(file)
            .to_owned();
        let pem = match ext {
            // `NAME.key` is read with its `NAME.crt`.
            Some("key") => continue,
            Some("crt") => {
                let mut pem = fs::read(path).unwrap_or_default();
                pem.extend(fs::read(path.with_extension("key")).unwrap_or_default());
                pem
            }
            _ => fs::read(path).unwrap_or_default(),
        };
        out.push((name, pem, path.clone()));
    }
    out
}

/// Saves an API certificate so it survives a restart (write, fsync, rename).
pub fn save_api_cert(api_dir: &Path, cert: &Certificate) -> std::io::Result<()> {
    fs::create_dir_all(api_dir)?;
    crate::state::write_atomic(&api_dir.join(format!("{}.pem", cert.info.name)), &cert.pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_and_crt_key_pairs_are_read_and_secrets_filtered() {
        let dir = std::env::temp_dir().join(format!("flowproxy-certs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a.pem"), "A").unwrap();
        fs::write(dir.join("b.crt"), "B1").unwrap();
        fs::write(dir.join("b.key"), "B2").unwrap();
        fs::write(dir.join("cert-c"), "C").unwrap();
        let names: Vec<_> = read_dir(&dir, false)
            .into_iter()
            .map(|(n, p, _)| (n, p))
            .collect();
        assert_eq!(
            names,
            [
                ("a".into(), b"A".to_vec()),
                ("b".into(), b"B1B2".to_vec()),
                ("cert-c".into(), b"C".to_vec())
            ]
        );
        let secrets: Vec<_> = read_dir(&dir, true)
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        assert_eq!(secrets, ["cert-c"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
