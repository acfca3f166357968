//! Per-service rules beyond routing: header rewrites (`addReqHeader`, `setResHeader`, ...)
//! and method filters (`allowedMethods`, `deniedMethods`), parsed from DFP's spellings.

use super::error::RouteError;
use super::values::list_items;

/// Header rewrites for one direction (request to the replica, or response to the client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// `add*Header`: appended, keeping any existing value.
    pub add: Vec<(String, String)>,
    /// `set*Header`: replace every existing value.
    pub set: Vec<(String, String)>,
    /// `del*Header`: removed.
    pub del: Vec<String>,
}

impl HeaderRules {
    /// True when there is nothing to do (the common case, checked on every request).
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.set.is_empty() && self.del.is_empty()
    }
}

/// Whether `name` is an HTTP token (RFC 9110 `tchar`s), i.e. a valid header or method name.
pub(super) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses DFP's `Name value,Name2 value2` list (`addReqHeader`, `setResHeader`, ...).
///
/// HAProxy expressions (`%[...]`) cannot be evaluated here, so they are refused rather than
/// sent literally.
pub(super) fn parse_header_pairs(
    param: &str,
    value: &str,
    separator: &str,
) -> Result<Vec<(String, String)>, RouteError> {
    list_items(value, separator)
        .map(|item| {
            let (name, val) = item
                .split_once([' ', ':'])
                .map(|(n, v)| (n.trim(), v.trim()))
                .unwrap_or((item, ""));
            if !is_token(name) {
                return Err(RouteError::invalid(
                    param,
                    item,
                    "write each header as 'Name value' with a valid header name, separated by commas",
                ));
            }
            if val.contains("%[") {
                return Err(RouteError::invalid(
                    param,
                    item,
                    "HAProxy expressions (%[...]) are not supported; give a literal value",
                ));
            }
            if val.chars().any(|c| c.is_control()) {
                return Err(RouteError::invalid(
                    param,
                    item,
                    "header values must not contain control characters",
                ));
            }
            Ok((name.to_owned(), val.to_owned()))
        })
        .collect()
}

/// Splits a comma-separated list of HTTP tokens, refusing an item that is not one.
fn parse_tokens(
    param: &str,
    value: &str,
    separator: &str,
    reason: &str,
) -> Result<Vec<String>, RouteError> {
    list_items(value, separator)
        .map(|item| {
            if is_token(item) {
                Ok(item.to_owned())
            } else {
                Err(RouteError::invalid(param, item, reason))
            }
        })
        .collect()
}

/// Parses `delReqHeader`/`delResHeader`: header names separated by commas.
pub(super) fn parse_header_names(
    param: &str,
    value: &str,
    separator: &str,
) -> Result<Vec<String>, RouteError> {
    parse_tokens(
        param,
        value,
        separator,
        "must be header names separated by commas",
    )
}

/// Parses `allowedMethods`/`deniedMethods`: method names, compared case-sensitively as HTTP
/// does, so they are upper-cased here (HAProxy's `method` ACL is case-insensitive too).
pub(super) fn parse_methods(
    param: &str,
    value: &str,
    separator: &str,
) -> Result<Vec<String>, RouteError> {
    let methods = parse_tokens(
        param,
        value,
        separator,
        "must be HTTP methods separated by commas, e.g. GET,HEAD",
    )?;
    Ok(methods
        .into_iter()
        .map(|m| m.to_ascii_uppercase())
        .collect())
}

/// Whether a destination admits `method`: not denied, and allowed when an allow-list is set.
pub fn method_admitted(allowed: &[String], denied: &[String], method: &str) -> bool {
    let listed = |list: &[String]| list.iter().any(|m| m.eq_ignore_ascii_case(method));
    !listed(denied) && (allowed.is_empty() || listed(allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_pairs_take_dfp_spelling() {
        let pairs =
            parse_header_pairs("addReqHeader", "X-Env prod, X-Team  web team", ",").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("X-Env".to_owned(), "prod".to_owned()),
                ("X-Team".to_owned(), "web team".to_owned())
            ]
        );
        let colon = parse_header_pairs("setHeader", "X-A: b", ",").unwrap();
        assert_eq!(colon, vec![("X-A".to_owned(), "b".to_owned())]);
    }

    #[test]
    fn bad_header_rules_are_refused_by_name() {
        for bad in ["Bad(Name) x", "X-A %[src]", "X-A a\u{7}b"] {
            let err = parse_header_pairs("addResHeader", bad, ",").unwrap_err();
            assert!(err.to_string().starts_with("addResHeader="), "{err}");
        }
        assert!(parse_header_names("delReqHeader", "X-A,Bad Name", ",").is_err());
        assert_eq!(
            parse_header_names("delReqHeader", "X-A, X-B", ",").unwrap(),
            vec!["X-A", "X-B"]
        );
    }

    #[test]
    fn methods_are_filtered() {
        let allowed = parse_methods("allowedMethods", "get,HEAD", ",").unwrap();
        assert_eq!(allowed, vec!["GET", "HEAD"]);
        assert!(method_admitted(&allowed, &[], "GET"));
        assert!(!method_admitted(&allowed, &[], "POST"));
        let denied = parse_methods("deniedMethods", "DELETE", ",").unwrap();
        assert!(!method_admitted(&[], &denied, "DELETE"));
        assert!(method_admitted(&[], &denied, "PUT"));
        assert!(parse_methods("deniedMethods", "GE T", ",").is_err());
    }
}
