//! The certificates added through the API, as files `NAME.pem` in `--state-dir/certs`: which
//! names are allowed, and reading them back. Shared by the API (uploads) and replication
//! (certificates travel between replicas as files' content).
use std::{collections::BTreeMap, fs, path::Path};

/// Whether `name` may name a certificate file: letters, digits, `.`, `-`, `_`, at most 128
/// bytes, not starting with `.` (so it can never leave the certificate directory).
pub fn valid_cert_name(name: &str) -> bool {
    name.len() <= 128
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !name.starts_with('.')
}

/// Seconds since the epoch (what certificate validity is checked against).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The API certificates on disk (`NAME.pem` in `dir`), by name; temporary files are skipped.
pub fn read_api_certs(dir: &Path) -> BTreeMap<String, String> {
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
    fn api_certificates_are_read_by_name_and_temporary_files_skipped() {
        let dir = std::env::temp_dir().join(format!("flowproxy-api-certs-{}", std::process::id()));
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

    #[test]
    fn names_cannot_leave_the_directory() {
        assert!(valid_cert_name("shop.example.com"));
        assert!(!valid_cert_name("../x"));
        assert!(!valid_cert_name(".hidden"));
        assert!(!valid_cert_name(""));
    }
}
