//! The API token (`--api-token`, `--api-token-file`): required on everything that reads or
//! changes the configuration, as a bearer header or a `token` query parameter, never kept as
//! a route parameter; health checks and metrics stay open.
use flowproxy_tests::{Flowproxy, curl, proxy::temp_state_dir};

const TOKEN: &str = "api-s3cret";
const GO_DEMO: &str = "serviceName=go-demo&servicePath=/demo&port=8080";

fn json(body: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(body).map_err(|e| anyhow::anyhow!("not JSON ({e}): {body}"))
}

#[test]
fn the_api_token_is_required_when_set() -> anyhow::Result<()> {
    let token_file = temp_state_dir().with_extension("token");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    let proxy = Flowproxy::new()
        .arg("--no-ebpf")
        .arg("--api-token-file")
        .arg(token_file.to_string_lossy())
        .start()?;
    std::fs::remove_file(&token_file)?;
    let reconfigure = proxy.api_url(&format!("/v1/docker-flow-proxy/reconfigure?{GO_DEMO}"));

    let missing = curl(&[&reconfigure])?;
    assert_eq!(missing.status, 401);
    assert!(
        missing.body.contains("Authorization: Bearer"),
        "{}",
        missing.body
    );
    assert!(missing.header("www-authenticate").is_some());
    let wrong = curl(&["-H", "Authorization: Bearer nope", &reconfigure])?;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("wrong"), "{}", wrong.body);
    let bearer = format!("Authorization: Bearer {TOKEN}");
    assert_eq!(
        curl(&["-H", &bearer, &proxy.api_url("/v1/flowproxy/config")])?.status,
        200
    );
    assert_eq!(curl(&[&proxy.api_url("/v1/flowproxy/config")])?.status, 401);
    assert_eq!(
        curl(&[&proxy.api_url("/v1/docker-flow-proxy/config")])?.status,
        401
    );

    // With the token as a query parameter; it is never kept as a route parameter.
    let ok = curl(&[&format!("{reconfigure}&token={TOKEN}")])?;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let exported = curl(&["-H", &bearer, &proxy.api_url("/v1/flowproxy/config")])?.body;
    let exported = json(&exported)?;
    let params = &exported["Services"]["go-demo"]["Value"];
    assert_eq!(params["serviceName"], "go-demo");
    assert!(params.get("token").is_none(), "{exported}");
    assert!(!exported.to_string().contains(TOKEN));

    // Health checks and metrics stay open.
    for open in [
        "/v1/docker-flow-proxy/ping",
        "/v1/docker-flow-proxy/successfulinitreload",
        "/metrics",
    ] {
        assert_eq!(curl(&[&proxy.api_url(open)])?.status, 200, "{open}");
    }
    Ok(())
}
