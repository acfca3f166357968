//! HTTP basic authentication for services configured with `users=`.
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hyper::{HeaderMap, header};

use crate::routes::BasicUser;

/// True when `users` is empty or the request carries the credentials of one of them.
pub fn allowed(users: &[BasicUser], headers: &HeaderMap) -> bool {
    if users.is_empty() {
        return true;
    }
    let Some(credentials) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, b64)| b64)
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
    else {
        return false;
    };
    let Some((user, password)) = credentials.split_once(':') else {
        return false;
    };
    users
        .iter()
        .any(|u| u.user == user && u.password == password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn only_listed_credentials_pass() {
        let users = vec![BasicUser {
            user: "admin".into(),
            password: "s3cret".into(),
        }];
        let good = format!("Basic {}", STANDARD.encode("admin:s3cret"));
        let bad = format!("Basic {}", STANDARD.encode("admin:wrong"));
        assert!(allowed(&users, &headers(&good)));
        assert!(!allowed(&users, &headers(&bad)));
        assert!(!allowed(&users, &HeaderMap::new()));
        assert!(allowed(&[], &HeaderMap::new()));
    }
}
