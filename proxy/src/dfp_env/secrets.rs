//! DFP's variables given as Docker secrets: DFP reads `/run/secrets/dfp_<lowercase name>`
//! before the variable itself (so `USERS` can stay out of `docker inspect`). flowproxy does
//! the same for every variable of [`DFP_ENV`](super::DFP_ENV), before its flags are read, so a
//! secret goes through the same flag, check and refusal as the variable would.
use std::{io, path::Path};

use super::{DFP_ENV, EnvError};

/// The secret that holds the variable `name`: `dfp_<lowercase name>`.
pub fn secret_name(name: &str) -> String {
    format!("dfp_{}", name.to_ascii_lowercase())
}

/// The `(variable, value)` pairs the secrets in `dir` give, trailing new lines removed as DFP
/// does. A secret that exists but cannot be read is an error naming it (the variable it holds
/// would otherwise silently fall back to its default).
pub fn variables_from_secrets(dir: &Path) -> Result<Vec<(String, String)>, EnvError> {
    let mut found = Vec::new();
    for var in DFP_ENV.iter().filter(|v| !v.name.ends_with('*')) {
        let path = dir.join(secret_name(var.name));
        match std::fs::read_to_string(&path) {
            Ok(text) => found.push((
                var.name.to_owned(),
                text.trim_end_matches(['\n', '\r']).to_owned(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(EnvError {
                    name: var.name.to_owned(),
                    reason: format!("its secret {} cannot be read ({e})", path.display()),
                });
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_read_by_dfps_names() {
        let dir =
            std::env::temp_dir().join(format!("flowproxy-dfp-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("dfp_timeout_server"), "42\n").unwrap();
        std::fs::write(dir.join("dfp_users"), "a:b\n").unwrap();
        std::fs::write(dir.join("cert-x.pem"), "not a variable").unwrap();
        let found = variables_from_secrets(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let mut found = found.unwrap();
        found.sort();
        assert_eq!(
            found,
            [
                ("TIMEOUT_SERVER".to_owned(), "42".to_owned()),
                ("USERS".to_owned(), "a:b".to_owned())
            ]
        );
        assert!(
            variables_from_secrets(&dir.join("none"))
                .unwrap()
                .is_empty()
        );
    }
}
