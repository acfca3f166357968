//! Who may use a service: DFP's basic-auth rules. A service's own `users`, else the users of
//! its `usersSecret` file, else the global `USERS`; a user named without a password takes it
//! from the secret or `USERS`; passwords may be crypt hashes (`usersPassEncrypted`,
//! `USERS_PASS_ENCRYPTED`). Passwords are compared in constant time.
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hyper::{HeaderMap, header};

use crate::routes::{Destination, Service};

/// One user with a usable password.
#[derive(Clone)]
struct User {
    name: String,
    password: String,
    encrypted: bool,
}

/// Why a service's users cannot be worked out; the change is refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The `usersSecret` file cannot be read.
    #[error(
        "usersSecret={name:?}: {path} cannot be read ({source}); create the Docker secret dfp_users_{name} and attach it to the proxy service"
    )]
    SecretUnreadable {
        /// The `usersSecret` value.
        name: String,
        /// The file looked for.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A user was named without a password and none of the sources has one for it.
    #[error(
        "users: {user} has no password, and neither usersSecret nor USERS gives one; write {user}:password"
    )]
    NoPassword {
        /// The user's name.
        user: String,
    },
    /// `USERS` (or the `dfp_users` secret) has an entry that is not `user:password`.
    #[error("USERS: an entry is not user:password ({entry:?}); fix the variable")]
    BadGlobalUsers {
        /// The entry, cut at its colon so no password is shown.
        entry: String,
    },
}

/// The result of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No authentication applies to this destination.
    Open,
    /// Credentials were required and are right.
    Allowed,
    /// Credentials were required and are missing or wrong.
    Denied,
}

/// The global users and the secret files, shared by the API (validation) and the request
/// path (checks).
pub struct Credentials {
    global: Vec<User>,
    secrets_dir: PathBuf,
    /// Secret files read so far: Swarm never changes a mounted secret's content.
    secrets: Mutex<HashMap<String, Arc<Vec<User>>>>,
}

impl Credentials {
    /// From `USERS` (`user:password,...`), `USERS_PASS_ENCRYPTED` and `--secrets-dir`.
    pub fn new(
        global: Option<&str>,
        global_encrypted: bool,
        secrets_dir: PathBuf,
    ) -> Result<Self, CredentialError> {
        let mut users = Vec::new();
        for entry in split_entries(global.unwrap_or_default()) {
            match entry.split_once(':') {
                Some((name, password)) if !name.trim().is_empty() && !password.is_empty() => {
                    users.push(User {
                        name: name.trim().to_owned(),
                        password: password.trim().to_owned(),
                        encrypted: global_encrypted,
                    });
                }
                _ => {
                    return Err(CredentialError::BadGlobalUsers {
                        entry: entry.split(':').next().unwrap_or_default().to_owned(),
                    });
                }
            }
        }
        Ok(Self {
            global: users,
            secrets_dir,
            secrets: Mutex::new(HashMap::new()),
        })
    }

    /// Whether global users are set (every service without its own is protected).
    pub fn has_global(&self) -> bool {
        !self.global.is_empty()
    }

    /// Checks that `service`'s users can be worked out (its secret is readable, every user
    /// has a password), so that a change is refused rather than locking everyone out.
    pub fn validate(&self, service: &Service) -> Result<(), CredentialError> {
        self.users_of(service).map(|_| ())
    }

    /// Checks the request's basic-auth credentials against what applies to `dest`.
    pub fn check(&self, service: &Service, dest: &Destination, headers: &HeaderMap) -> Verdict {
        if dest.access.ignore_authorization {
            return Verdict::Open;
        }
        let users = match self.users_of(service) {
            Ok(users) => users,
            Err(e) => {
                // Validated at reconfigure; a secret gone since then locks the service.
                tracing::error!(service = %service.name, "authentication cannot be checked: {e}");
                return Verdict::Denied;
            }
        };
        if users.is_empty() {
            return Verdict::Open;
        }
        let Some((name, password)) = basic_credentials(headers) else {
            return Verdict::Denied;
        };
        // Every user is tried, so timing does not tell which names exist.
        let mut ok = false;
        for user in users.iter() {
            ok |= user.name == name && password_matches(user, &password);
        }
        if ok {
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    }

    /// The users that protect `service`, DFP's `mergeUsers` without its random lock-out user.
    fn users_of(&self, service: &Service) -> Result<Arc<Vec<User>>, CredentialError> {
        let secret = service
            .users_secret
            .as_deref()
            .map(|name| self.secret(name, service.users_encrypted))
            .transpose()?;
        if service.users.is_empty() {
            return Ok(match secret {
                Some(users) => users,
                None => Arc::new(self.global.clone()),
            });
        }
        let fill_from: &[User] = secret.as_deref().map_or(&self.global, |s| s.as_slice());
        service
            .users
            .iter()
            .map(|u| match &u.password {
                Some(password) => Ok(User {
                    name: u.user.clone(),
                    password: password.clone(),
                    encrypted: service.users_encrypted,
                }),
                None => fill_from
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(&u.user))
                    .map(|f| User {
                        name: u.user.clone(),
                        ..f.clone()
                    })
                    .ok_or_else(|| CredentialError::NoPassword {
                        user: u.user.clone(),
                    }),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Arc::new)
    }

    fn secret(&self, name: &str, encrypted: bool) -> Result<Arc<Vec<User>>, CredentialError> {
        let key = format!("{name}\0{encrypted}");
        if let Some(users) = lock(&self.secrets).get(&key) {
            return Ok(Arc::clone(users));
        }
        let path = self.secrets_dir.join(format!("dfp_users_{name}"));
        let text =
            std::fs::read_to_string(&path).map_err(|source| CredentialError::SecretUnreadable {
                name: name.to_owned(),
                path: path.display().to_string(),
                source,
            })?;
        // DFP skips entries without a password in secret files.
        let users: Vec<User> = split_entries(&text)
            .filter_map(|entry| entry.split_once(':'))
            .filter(|(n, p)| !n.trim().is_empty() && !p.trim().is_empty())
            .map(|(n, p)| User {
                name: n.trim().to_owned(),
                password: p.trim().to_owned(),
                encrypted,
            })
            .collect();
        let users = Arc::new(users);
        lock(&self.secrets).insert(key, Arc::clone(&users));
        Ok(users)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// DFP splits user lists on commas and newlines.
fn split_entries(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// The user and password of a `Basic` Authorization header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let raw = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, b64)| b64)?;
    let decoded = String::from_utf8(STANDARD.decode(raw.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn password_matches(user: &User, given: &str) -> bool {
    if user.encrypted {
        // pwhash reads the scheme from the hash ($1$ MD5, $5$ SHA-256, $6$ SHA-512) and
        // compares in constant time.
        pwhash::unix::verify(given, &user.password)
    } else {
        use subtle::ConstantTimeEq as _;
        bool::from(user.password.as_bytes().ct_eq(given.as_bytes()))
    }
}

#[cfg(test)]
mod tests;
