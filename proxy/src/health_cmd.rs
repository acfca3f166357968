//! `flowproxy healthcheck`: asks the local API's ping and turns the answer into an exit code
//! (0 ready, 1 not), as Docker's `HEALTHCHECK` wants it. The ping needs no API token (it is
//! one of the open paths), so none is read or sent.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use crate::{
    cli::HealthcheckArgs,
    local_api::{self, ApiAnswer},
};

/// The path asked: 200 once the proxy is ready, 503 while it bootstraps.
pub const PING_PATH: &str = "/v1/docker-flow-proxy/ping";

/// Checks the proxy whose API listens on `api_addr` (or at `--api-url`); `Ok` says what
/// answered, `Err` why the proxy is not healthy, in one line.
pub fn check(args: &HealthcheckArgs, api_addr: SocketAddr) -> Result<String, String> {
    let base = args.api_url.clone().unwrap_or_else(|| local_url(api_addr));
    let timeout = Duration::from_secs(args.timeout);
    let answer = local_api::get(&base, PING_PATH, timeout).map_err(|e| e.to_string())?;
    verdict(&base, &answer)
}

/// The URL of an API listening on `addr`, from this host: a wildcard address is asked on
/// loopback.
pub fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Healthy only on 200; anything else names the status and the API's reason.
fn verdict(base: &str, answer: &ApiAnswer) -> Result<String, String> {
    if answer.status == hyper::StatusCode::OK {
        return Ok(format!("{base}{PING_PATH} answered 200"));
    }
    let message = answer.message();
    let why = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    Err(format!(
        "{base}{PING_PATH} answered {}{why}",
        answer.status.as_u16()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[test]
    fn a_wildcard_api_address_is_asked_on_loopback() {
        let url = |s: &str| local_url(s.parse().unwrap());
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000");
        assert_eq!(url("198.18.0.5:8080"), "http://198.18.0.5:8080");
    }

    #[test]
    fn only_200_is_healthy_and_a_refusal_says_why() {
        let answer = |status, body: &str| ApiAnswer {
            status,
            body: body.to_owned(),
        };
        assert!(verdict("http://x", &answer(StatusCode::OK, "{}")).is_ok());
        let starting = verdict(
            "http://x",
            &answer(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"Status":"NOK","Message":"starting: merging"}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(
            starting,
            "http://x/v1/docker-flow-proxy/ping answered 503: starting: merging"
        );
        let empty = verdict("http://x", &answer(StatusCode::NOT_FOUND, "")).unwrap_err();
        assert!(empty.ends_with("answered 404"), "{empty}");
    }
}
