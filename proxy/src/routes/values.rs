//! Parsers for single parameter values (ports, booleans, domains, regexes).
//!
//! Each takes the parameter name as given (`port.2`) so its error points at
//! exactly what the user wrote.

use std::time::Duration;

use regex::{Regex, RegexBuilder};

use super::domain::{DomainAlgo, DomainPattern};
use super::error::RouteError;

/// Upper bound for one compiled regex; the 1 KiB input limit keeps normal
/// patterns far below it, this stops `(a{100}){100}`-style blow-ups.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Longest timeout we accept: a year, so callers can add it to an `Instant`
/// without overflow.
const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// Rejects whitespace and control characters, which never belong in names,
/// paths or host names and would corrupt the rendered config.
pub(super) fn check_token(param: &str, value: &str) -> Result<(), RouteError> {
    match value.chars().find(|c| c.is_control() || c.is_whitespace()) {
        Some(c) => Err(RouteError::invalid(
            param,
            value,
            format!("contains {c:?}; remove whitespace and control characters"),
        )),
        None => Ok(()),
    }
}

/// Docker's rule for service names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 63 characters.
/// A name is a DNS label, a metric label and part of the rendered configuration, so
/// nothing else is taken (quotes, braces, markup or `%FF` decoded to U+FFFD).
pub(super) fn check_name(param: &str, value: &str) -> Result<(), RouteError> {
    let valid = value.len() <= 63
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(RouteError::invalid(
            param,
            value,
            "must be a Docker service name: letters, digits, '_', '.' and '-', starting with a letter or digit, at most 63 characters",
        ))
    }
}

/// A path prefix as a request can carry it: no `.` or `..` segment (clients and replicas
/// normalise those away, so such a route would protect or expose something else), and ASCII
/// only (non-ASCII arrives percent-encoded).
pub(super) fn check_path(param: &str, value: &str) -> Result<(), RouteError> {
    check_token(param, value)?;
    if !value.is_ascii() {
        return Err(RouteError::invalid(
            param,
            value,
            "percent-encode non-ASCII characters, as requests carry them",
        ));
    }
    if value.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(RouteError::invalid(
            param,
            value,
            "must not contain '.' or '..' segments",
        ));
    }
    Ok(())
}

/// The items of a list value (`a, b,,c`): split on `separator`, trimmed, empty ones dropped,
/// as the header, method and routing-condition lists are read.
pub(super) fn list_items<'a>(value: &'a str, separator: &'a str) -> impl Iterator<Item = &'a str> {
    value
        .split(separator)
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Whether `s` is a plain unsigned number; Rust's integer parsing would also
/// take a leading `+`, which no DFP client sends.
pub(super) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a TCP port in `1..=65535`.
pub(super) fn parse_port(param: &str, value: &str) -> Result<u16, RouteError> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 && is_digits(value) => Ok(port),
        _ => Err(RouteError::invalid(
            param,
            value,
            "must be a number from 1 to 65535",
        )),
    }
}

/// Parses a boolean the way Go's `strconv.ParseBool` does, since DFP and its
/// users rely on that spelling (`1`, `t`, `TRUE`, `True`, ...).
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// [`parse_go_bool`] with an error naming the parameter.
pub(super) fn parse_bool(param: &str, value: &str) -> Result<bool, RouteError> {
    parse_go_bool(value).ok_or_else(|| RouteError::invalid(param, value, "must be true or false"))
}

/// Parses a timeout given in whole seconds, as DFP's `timeoutServer` is.
pub(super) fn parse_secs(param: &str, value: &str) -> Result<Duration, RouteError> {
    match value.parse::<u64>() {
        Ok(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) && is_digits(value) => {
            Ok(Duration::from_secs(secs))
        }
        _ => Err(RouteError::invalid(
            param,
            value,
            format!("must be a whole number of seconds from 1 to {MAX_TIMEOUT_SECS}"),
        )),
    }
}

/// Parses one `serviceDomain` item into a lower-cased pattern.
pub(super) fn parse_domain(
    param: &str,
    value: &str,
    algo: DomainAlgo,
) -> Result<DomainPattern, RouteError> {
    check_token(param, value)?;
    let lower = value.to_ascii_lowercase();
    // A trailing dot is the fully-qualified spelling of the same host.
    let host = lower.strip_suffix('.').unwrap_or(&lower);
    if host.contains([':', '/']) {
        return Err(RouteError::invalid(
            param,
            value,
            "give a bare host name such as example.com, without scheme, port or path",
        ));
    }
    // DFP: a leading `*` makes the rest an hdr_end match (`*.example.com` the subdomains,
    // `*example.com` any host ending so), whatever serviceDomainAlgo says.
    let (suffix, rest) = match host.strip_prefix('*') {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let body = if suffix {
        rest.strip_prefix('.').unwrap_or(rest)
    } else {
        rest
    };
    if body.is_empty() || body.contains('*') || body.starts_with('.') {
        return Err(RouteError::invalid(
            param,
            value,
            "use a host name such as example.com, or *.example.com for its subdomains (*example.com: every host ending in example.com)",
        ));
    }
    Ok(if suffix {
        DomainPattern::Suffix(rest.to_owned())
    } else {
        algo.pattern(rest.to_owned())
    })
}

/// Compiles a user-supplied regex with a bounded size.
pub(super) fn compile_regex(param: &str, pattern: &str) -> Result<Regex, RouteError> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| RouteError::BadRegex {
            param: param.to_owned(),
            // The regex crate's message spans several lines; one is enough here.
            reason: e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        })
}

/// Parses `reqPathSearchReplace`: `regex,replacement[:regex,replacement]`.
///
/// HAProxy's `\1` back-references become `${1}` and a literal `$` becomes `$$`,
/// so the stored replacement can go straight to `Regex::replace`.
pub(super) fn parse_rewrites(param: &str, value: &str) -> Result<Vec<(Regex, String)>, RouteError> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(RouteError::invalid(
            param,
            value,
            format!("contains {c:?}; remove control characters"),
        ));
    }
    value
        .split(':')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let parts: Vec<&str> = pair.split(',').collect();
            match parts.as_slice() {
                [search, replace] if !search.is_empty() => {
                    Ok((compile_regex(param, search)?, regex_subst(replace)))
                }
                _ => Err(RouteError::invalid(
                    param,
                    pair,
                    "write each rewrite as regex,replacement and separate rewrites with ':' (regsub flags are not supported)",
                )),
            }
        })
        .collect()
}

/// Converts HAProxy `regsub` replacement syntax into `regex` syntax.
fn regex_subst(haproxy: &str) -> String {
    let mut out = String::with_capacity(haproxy.len());
    let mut chars = haproxy.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                out.extend(chars.next());
                out.push('}');
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// Converts a `regex` replacement (`${1}`, `$$`) back into HAProxy's
/// `regsub` syntax (`\1`, `$`), so that what we show matches what was sent.
pub(super) fn haproxy_subst(repl: &str) -> String {
    let mut out = String::with_capacity(repl.len());
    let mut rest = repl;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some((group, after)) = rest.strip_prefix("${").and_then(|r| r.split_once('}'))
        {
            out.push('\\');
            out.push_str(group);
            rest = after;
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(err: RouteError) -> String {
        err.to_string()
    }

    #[test]
    fn ports_must_be_plain_numbers_in_range() {
        assert_eq!(parse_port("port", "8080"), Ok(8080));
        assert_eq!(parse_port("port", "65535"), Ok(65535));
        for bad in ["0", "65536", "+80", "-1", "80a", "", " 80"] {
            let err = parse_port("port.2", bad).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(reason(err).starts_with("port.2="), "{bad}");
        }
    }

    #[test]
    fn booleans_follow_go() {
        assert_eq!(parse_go_bool("True"), Some(true));
        assert_eq!(parse_go_bool("0"), Some(false));
        assert_eq!(parse_go_bool("yes"), None);
        assert!(reason(parse_bool("httpsOnly", "yes").unwrap_err()).contains("httpsOnly"));
    }

    #[test]
    fn timeouts_are_whole_seconds() {
        assert_eq!(
            parse_secs("timeoutServer", "60"),
            Ok(Duration::from_secs(60))
        );
        for bad in ["0", "1.5", "-3", "+3", "60s", "99999999999"] {
            assert!(parse_secs("timeoutServer", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domains_are_normalised_and_validated() {
        assert_eq!(
            parse_domain("serviceDomain", "Example.COM.", DomainAlgo::Hdr),
            Ok(DomainPattern::Exact("example.com".into()))
        );
        assert_eq!(
            parse_domain("serviceDomain", "*.Example.com", DomainAlgo::HdrBeg),
            Ok(DomainPattern::Suffix(".example.com".into()))
        );
        assert_eq!(
            parse_domain("serviceDomain", "*example.com", DomainAlgo::Hdr),
            Ok(DomainPattern::Suffix("example.com".into()))
        );
        assert_eq!(
            parse_domain("serviceDomain", "api.", DomainAlgo::HdrBeg),
            Ok(DomainPattern::Prefix("api".into()))
        );
        for bad in [
            "a b.com",
            "example.com:80",
            "http://x",
            "*",
            "*.",
            "a.*.com",
            "**.com",
            "*..com",
            "\u{7}x",
        ] {
            let err = parse_domain("serviceDomain.1", bad, DomainAlgo::Hdr).unwrap_err();
            assert!(reason(err).contains("serviceDomain.1"), "{bad}");
        }
    }

    #[test]
    fn names_follow_docker() {
        for good in ["go-demo", "proxy_proxy", "a", "web.1", &"x".repeat(63)] {
            assert!(check_name("serviceName", good).is_ok(), "{good}");
        }
        for bad in [
            "a\"b",
            "<script>x</script>",
            "a{b",
            "\u{fffd}",
            "-a",
            "",
            "a b",
            &"x".repeat(64),
        ] {
            let err = check_name("serviceName", bad).unwrap_err();
            assert!(err.to_string().contains("Docker service name"), "{bad}");
        }
    }

    #[test]
    fn tokens_reject_whitespace_and_control() {
        assert!(check_token("servicePath", "/ok").is_ok());
        assert!(check_token("servicePath", "/a b").is_err());
        assert!(check_token("servicePath", "/a\tb").is_err());
        assert!(check_token("serviceName", "x\u{0}").is_err());
    }

    #[test]
    fn rewrites_convert_backreferences() {
        let rw = parse_rewrites("reqPathSearchReplace", "/api/(.*),/\\1:^/v1,/v2$").unwrap();
        assert_eq!(rw.len(), 2);
        assert_eq!(rw[0].0.as_str(), "/api/(.*)");
        assert_eq!(rw[0].1, "/${1}");
        assert_eq!(rw[1].1, "/v2$$");
        assert_eq!(rw[0].0.replace("/api/users", rw[0].1.as_str()), "/users");
    }

    #[test]
    fn rewrites_reject_bad_shapes_and_regexes() {
        let err = parse_rewrites("reqPathSearchReplace", "/a").unwrap_err();
        assert!(reason(err).contains("regex,replacement"));
        let err = parse_rewrites("reqPathSearchReplace", "/a,/b,g").unwrap_err();
        assert!(matches!(err, RouteError::InvalidValue { .. }));
        let err = parse_rewrites("reqPathSearchReplace.2", "(,x").unwrap_err();
        assert!(
            matches!(&err, RouteError::BadRegex { param, .. } if param == "reqPathSearchReplace.2")
        );
        assert!(!reason(err).contains('\n'));
    }

    #[test]
    fn subst_converts_back_to_haproxy_syntax() {
        assert_eq!(haproxy_subst("/v2${1}/x"), "/v2\\1/x");
        assert_eq!(haproxy_subst("cost$$"), "cost$");
        assert_eq!(haproxy_subst("plain"), "plain");
        assert_eq!(haproxy_subst(&regex_subst("/a\\1$b")), "/a\\1$b");
    }

    #[test]
    fn huge_regexes_are_refused() {
        let err = compile_regex("servicePath", "(a{1000}){1000}").unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
