//! Logs that Loki or Elasticsearch can use (issue 17): with `--log-format json` every line is
//! one flat JSON object; the access line of each request carries its client, forwarded-for,
//! method, host, path, query (token redacted), protocol, status, bytes both ways, service,
//! replica, upstream time, duration in whole microseconds, user agent, request id and
//! traceparent; `X-Request-Id` is made when absent, kept when sane, replaced when hostile, and
//! reaches both the replica and the client; an API refusal names client, service, status and
//! reason.
use std::time::Duration;

use anyhow::{Context as _, ensure};
use flowproxy_tests::{CurlResponse, GoDemo, RunningProxy, curl, eventually, go_demo::RECONFIGURE};
use serde_json::{Map, Value};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

type Line = Map<String, Value>;

fn start() -> anyhow::Result<(GoDemo, RunningProxy)> {
    let demo = GoDemo::start(1)?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--log-format")
        .arg("json")
        .start()?;
    let resp = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    ensure!(resp.status == 200, "reconfigure: {resp:?}");
    Ok((demo, proxy))
}

/// Every line the proxy logged, each of which must be a JSON object.
fn lines(proxy: &RunningProxy) -> anyhow::Result<Vec<Line>> {
    proxy
        .log()
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(map)) => Ok(map),
            _ => anyhow::bail!("not a JSON object: {line:?}"),
        })
        .collect()
}

/// The one access line with this request id (written once the response body is sent, so it
/// may come a moment after the client has its answer).
fn access_line(proxy: &RunningProxy, request_id: &str) -> anyhow::Result<Line> {
    eventually(Duration::from_secs(5), || {
        let found: Vec<Line> = lines(proxy)?
            .into_iter()
            .filter(|l| l["target"] == "access" && l["request_id"] == request_id)
            .collect();
        ensure!(
            found.len() == 1,
            "{} access lines for {request_id}:\n{}",
            found.len(),
            proxy.log()
        );
        Ok(found.into_iter().next().expect("one"))
    })
}

/// The request id the client got back, which must be there.
fn returned_id(resp: &CurlResponse) -> anyhow::Result<String> {
    Ok(resp
        .header("x-request-id")
        .with_context(|| format!("no X-Request-Id returned: {resp:?}"))?
        .to_owned())
}

/// The `x-request-id` go-demo's `/demo/headers` says it received.
fn id_seen_by_replica(resp: &CurlResponse) -> Option<&str> {
    resp.body
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
}

fn is_uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
        && groups[2].starts_with('4')
}

fn assert_fields(line: &Line, expected: &[(&str, Value)]) {
    for (name, value) in expected {
        assert_eq!(line.get(*name), Some(value), "{name} in {line:?}");
    }
}

#[test]
fn access_lines_are_flat_json_with_every_field() -> anyhow::Result<()> {
    let (demo, proxy) = start()?;
    let replica = demo.replicas[0].backend.addr().to_string();
    let host = proxy.http_addr.to_string();

    // HTTP/1.1, a body both ways, no request id: one is made, returned, and logged.
    let upload = "0123456789abcdef";
    let posted = curl(&[
        "--data-binary",
        upload,
        "-H",
        "User-Agent: access-test/1.0",
        "-H",
        "X-Forwarded-For: 203.0.113.7, 198.18.0.1",
        "-H",
        &format!("traceparent: {TRACEPARENT}"),
        &proxy.url("/demo/echo?a=1&token=s3cret&b=2"),
    ])?;
    assert_eq!(posted.status, 200, "{posted:?}");
    assert_eq!(posted.body, upload);
    let id = returned_id(&posted)?;
    assert!(is_uuid_v4(&id), "a generated UUID v4: {id}");
    let line = access_line(&proxy, &id)?;
    assert_fields(
        &line,
        &[
            ("level", "INFO".into()),
            ("client", "127.0.0.1".into()),
            ("x_forwarded_for", "203.0.113.7, 198.18.0.1".into()),
            ("method", "POST".into()),
            ("host", host.clone().into()),
            ("path", "/demo/echo".into()),
            ("query", "a=1&token=REDACTED&b=2".into()),
            ("protocol", "http/1.1".into()),
            ("status", 200.into()),
            ("bytes_in", upload.len().into()),
            ("bytes_out", upload.len().into()),
            ("service", "go-demo".into()),
            ("replica", replica.clone().into()),
            ("user_agent", "access-test/1.0".into()),
            ("traceparent", TRACEPARENT.into()),
        ],
    );
    assert!(!line.contains_key("fields"), "flat: {line:?}");
    assert!(!line.contains_key("duration_ms"), "{line:?}");
    assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let duration = line["duration_us"]
        .as_u64()
        .context("duration_us is an integer")?;
    let upstream = line["upstream_us"]
        .as_u64()
        .context("upstream_us is an integer")?;
    assert!(
        upstream > 0 && upstream <= duration,
        "{upstream} <= {duration}"
    );
    assert!(duration < 5_000_000, "{duration} µs");

    // A sane client id is kept: the replica gets it, the client gets it back, the log has it.
    // traceparent goes to the replica unchanged.
    let kept = curl(&[
        "-H",
        "X-Request-Id: client-id.42",
        "-H",
        &format!("traceparent: {TRACEPARENT}"),
        &proxy.url("/demo/headers"),
    ])?;
    assert_eq!(kept.status, 200, "{kept:?}");
    assert_eq!(returned_id(&kept)?, "client-id.42");
    assert_eq!(
        id_seen_by_replica(&kept),
        Some("client-id.42"),
        "{}",
        kept.body
    );
    let traceparent_line = format!("traceparent: {TRACEPARENT}");
    assert!(
        kept.body.lines().any(|l| l == traceparent_line),
        "{}",
        kept.body
    );
    assert_fields(
        &access_line(&proxy, "client-id.42")?,
        &[
            ("method", "GET".into()),
            ("query", "-".into()),
            ("bytes_in", 0.into()),
            ("bytes_out", kept.body.len().into()),
            ("x_forwarded_for", "-".into()),
            ("traceparent", TRACEPARENT.into()),
        ],
    );

    // A hostile id (far too long) is replaced, everywhere alike.
    let hostile = "a".repeat(300);
    let replaced = curl(&[
        "-H",
        &format!("X-Request-Id: {hostile}"),
        &proxy.url("/demo/headers"),
    ])?;
    let new_id = returned_id(&replaced)?;
    assert!(is_uuid_v4(&new_id), "{new_id}");
    assert_eq!(
        id_seen_by_replica(&replaced),
        Some(new_id.as_str()),
        "{}",
        replaced.body
    );
    access_line(&proxy, &new_id)?;

    // HTTP/2 (h2c): the protocol says so; the generated id reaches the replica.
    let h2 = curl(&["--http2-prior-knowledge", &proxy.url("/demo/headers")])?;
    assert_eq!(h2.status, 200, "{h2:?}");
    assert!(h2.status_line.starts_with("HTTP/2"), "{}", h2.status_line);
    let h2_id = returned_id(&h2)?;
    assert_eq!(id_seen_by_replica(&h2), Some(h2_id.as_str()), "{}", h2.body);
    assert_fields(
        &access_line(&proxy, &h2_id)?,
        &[
            ("protocol", "h2".into()),
            ("host", host.into()),
            ("status", 200.into()),
        ],
    );

    // HTTP/1.0 is told apart.
    let old = curl(&["--http1.0", &proxy.url("/demo/hello")])?;
    assert_eq!(old.status, 200, "{old:?}");
    assert_fields(
        &access_line(&proxy, &returned_id(&old)?)?,
        &[("protocol", "http/1.0".into())],
    );

    // A request no route takes is logged too, with its id returned.
    let lost = curl(&[
        "-H",
        "X-Request-Id: lost-1",
        &proxy.url("/nowhere?token=abc"),
    ])?;
    assert_eq!(lost.status, 404, "{lost:?}");
    assert_eq!(returned_id(&lost)?, "lost-1");
    assert_fields(
        &access_line(&proxy, "lost-1")?,
        &[
            ("status", 404.into()),
            ("service", "-".into()),
            ("replica", "-".into()),
            ("query", "token=REDACTED".into()),
            ("bytes_out", lost.body.len().into()),
            ("traceparent", "-".into()),
            ("x_forwarded_for", "-".into()),
        ],
    );
    // A client that gives up before the answer is logged as 499, as nginx does.
    let gave_up = curl(&[
        "--max-time",
        "1",
        "-H",
        "X-Request-Id: gave-up-1",
        &proxy.url("/demo/slow?ms=4000"),
    ]);
    assert!(gave_up.is_err(), "curl should have timed out: {gave_up:?}");
    assert_fields(
        &access_line(&proxy, "gave-up-1")?,
        &[
            ("status", 499.into()),
            ("path", "/demo/slow".into()),
            ("bytes_out", 0.into()),
        ],
    );

    let log = proxy.log();
    assert!(
        !log.contains("s3cret") && !log.contains("token=abc"),
        "{log}"
    );
    Ok(())
}

#[test]
fn an_api_refusal_names_client_service_status_and_reason() -> anyhow::Result<()> {
    let (_demo, proxy) = start()?;
    let refused = proxy
        .api("/v1/docker-flow-proxy/reconfigure?serviceName=broken&servicePath=/b&port=notaport")?;
    assert!((400..500).contains(&refused.status), "{refused:?}");
    let envelope: Value = serde_json::from_str(&refused.body)?;
    let message = envelope["Message"].as_str().context("a Message")?;
    assert!(!message.is_empty());
    let line = eventually(Duration::from_secs(5), || {
        lines(&proxy)?
            .into_iter()
            .find(|l| l["target"] == "api" && l.get("serviceName") == Some(&"broken".into()))
            .with_context(|| format!("no API line for broken:\n{}", proxy.log()))
    })?;
    assert_fields(
        &line,
        &[
            ("client", "127.0.0.1".into()),
            ("method", "GET".into()),
            ("path", "/v1/docker-flow-proxy/reconfigure".into()),
            ("status", refused.status.into()),
            ("reason", message.into()),
        ],
    );
    assert!(!line.contains_key("fields"), "flat: {line:?}");
    // The accepted reconfigure of the start is logged without a reason.
    let accepted = lines(&proxy)?
        .into_iter()
        .find(|l| l["target"] == "api" && l.get("serviceName") == Some(&"go-demo".into()))
        .context("the start's reconfigure")?;
    assert_fields(&accepted, &[("status", 200.into())]);
    assert!(!accepted.contains_key("reason"), "{accepted:?}");
    Ok(())
}
