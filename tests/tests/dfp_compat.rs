//! A Docker Flow Proxy stack moved to flowproxy: every parameter and variable of the README's
//! migration table gets its class from the running binary, and each honoured behaviour works
//! end to end (access control, header rules, exclusions, redirects, `replicas=0`), with curl
//! as the client and the go-demo replicas as the service.
use flowproxy_tests::{CurlResponse, Flowproxy, GoDemo, RunningProxy, curl, proxy::TempDir};

/// The rows of a README table between `<!-- marker -->` and `<!-- /marker -->`: the first
/// cell without backticks, and the `class_cell`th cell.
fn table(marker: &str, class_cell: usize) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README is readable");
    let body = readme
        .split(&format!("<!-- {marker} -->"))
        .nth(1)
        .and_then(|t| t.split(&format!("<!-- /{marker} -->")).next())
        .expect("the README has the table")
        .to_owned();
    body.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_owned(), (*cells.get(class_cell)?).to_owned()))
        })
        .collect()
}

fn reconfigure(proxy: &RunningProxy, query: &str) -> anyhow::Result<CurlResponse> {
    proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{query}"))
}

/// A service of its own name and path that reaches go-demo's `/demo/...`.
fn service_query(name: &str, extra: &str) -> String {
    format!(
        "serviceName={name}&servicePath=/{name}&port=8080\
         &reqPathSearchReplace=%5E/{name},/demo{extra}"
    )
}

/// A value that honours a parameter without breaking the service it is added to.
fn honoured_value(param: &str) -> Option<&'static str> {
    Some(match param {
        // Part of every query already.
        "serviceName" | "servicePath" | "port" | "outboundHostname" | "reqPathSearchReplace" => {
            return None;
        }
        "aclName" => "zz-acl",
        "distribute" => "false",
        "replicas" => "2",
        "users" => "u:p",
        "usersSecret" => "team",
        "usersPassEncrypted" => "false",
        "reqPathSearch" => "x",
        "reqPathReplace" => "y",
        "addReqHeader" | "addHeader" | "setReqHeader" | "setHeader" | "addResHeader"
        | "setResHeader" => "X-Walk yes",
        "delReqHeader" | "delResHeader" => "X-Walk",
        "proxyInstanceName" => "docker-flow",
        "discoveredFrom" => "api-test",
        "serviceDomain" => "walk.example",
        "reqMode" => "http",
        "pathType" => "path_beg",
        "httpsRedirectCode" => "301",
        "timeoutServer" | "timeoutTunnel" | "timeoutClient" => "30",
        "servicePathExclude" => "/nothing-here",
        "allowedMethods" | "deniedMethods" => "TRACE",
        "serviceDomainAlgo" => "hdr_dom(host)",
        "serviceHeader" => "X-Walk:yes",
        "userAgent" => "walker",
        // Covered by their own tests (they need a TCP mode, a session type, a certificate
        // or a serviceDomain).
        "srcPort" | "sessionCookie" | "serviceCert" | "redirectFromDomain" => "",
        "sessionType" => "sticky-server",
        _ => "false",
    })
}

#[test]
fn every_parameter_of_the_migration_table_gets_its_class() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let secrets = TempDir::new("secrets")?;
    std::fs::write(secrets.0.join("dfp_users_team"), "alice:a1\n")?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--secrets-dir")
        .arg(secrets.0.to_string_lossy())
        .start()?;
    let rows = table("dfp-params", 3);
    assert!(
        rows.len() > 60,
        "the table lists DFP's parameters: {rows:?}"
    );
    for (i, (param, class)) in rows.iter().enumerate() {
        let name = format!("walk{i}");
        let (value, status) = match class.as_str() {
            "honoured" => match honoured_value(param) {
                Some("") | None => continue,
                Some(v) => (v, 200),
            },
            "refused" => ("true", 400),
            "harmless" => ("x", 200),
            other => panic!("{param}: unknown class {other}"),
        };
        let query = service_query(&name, &format!("&{param}={}", urlencode(value)));
        let resp = reconfigure(&proxy, &query)?;
        assert_eq!(resp.status, status, "{param} ({class}): {}", resp.body);
        match class.as_str() {
            "refused" => {
                assert!(resp.body.contains(param.as_str()), "{param}: {}", resp.body);
                let json = proxy.api("/v1/docker-flow-proxy/config?type=json")?.body;
                assert!(
                    !json.contains(&format!("\"{name}\"")),
                    "{param} was applied"
                );
            }
            "harmless" => {
                let message = serde_json::from_str::<serde_json::Value>(&resp.body)?["Message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                assert!(message.contains(param.as_str()), "{param}: {message}");
            }
            _ => {}
        }
    }
    // Unknown names are refused as well.
    let resp = reconfigure(&proxy, &service_query("typo", "&servicepath=/x"))?;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.contains("servicepath"), "{}", resp.body);
    Ok(())
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn every_dfp_variable_gets_its_class_at_start() -> anyhow::Result<()> {
    let rows = table("dfp-env", 2);
    assert!(rows.len() > 40, "{rows:?}");
    let concrete = |name: &str| name.replace('*', "_X");
    let mut harmless = Flowproxy::new().arg("--no-ebpf");
    let mut harmless_names = Vec::new();
    for (name, class) in &rows {
        let var = concrete(name);
        match class.split(' ').next() {
            Some("refused") => {
                let out = Flowproxy::new()
                    .arg("--no-ebpf")
                    .env(&var, "1")
                    .run_to_exit()?;
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "{var} was accepted");
                assert!(stderr.contains(&var), "{var}: {stderr}");
            }
            Some("harmless") => {
                harmless = harmless.env(&var, "1");
                harmless_names.push(var);
            }
            Some("honoured") if class.contains("only as") => {
                let out = Flowproxy::new()
                    .arg("--no-ebpf")
                    .env(&var, "surely-not")
                    .run_to_exit()?;
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    !out.status.success() && stderr.contains(&var),
                    "{var}: {stderr}"
                );
            }
            Some("honoured") => {}
            other => panic!("{name}: unknown class {other:?}"),
        }
    }
    let proxy = harmless.start()?;
    let log = proxy.log();
    for var in harmless_names {
        assert!(log.contains(&var), "{var} is not named in the log:\n{log}");
    }
    Ok(())
}

#[test]
fn a_migrated_stacks_environment_is_honoured() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .without_default("--api-addr")
        .env("IP", "127.0.0.1")
        .env("PORT", &port.to_string())
        .env("USERS", "admin:pw")
        .env("HTTPS_ONLY", "F")
        .env("RELOAD_INTERVAL", "5000")
        .env("CONNECTION_MODE", "http-server-close")
        .env("ENABLE_H2", "true")
        .env("TIMEOUT_SERVER", "1")
        .start()?;
    assert_eq!(
        proxy.api_addr.port(),
        port,
        "IP and PORT name the API address"
    );
    assert_eq!(
        reconfigure(&proxy, "serviceName=go-demo&servicePath=/demo&port=8080")?.status,
        200
    );
    // USERS protects every service without its own users.
    assert_eq!(curl(&[&proxy.url("/demo/hello")])?.status, 401);
    let ok = curl(&["-u", "admin:pw", &proxy.url("/demo/headers")])?;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(
        !ok.body.to_ascii_lowercase().contains("authorization"),
        "the credentials reached the replica: {}",
        ok.body
    );
    // TIMEOUT_SERVER is the default of services without timeoutServer.
    let slow = curl(&["-u", "admin:pw", &proxy.url("/demo/slow?ms=3000")])?;
    assert_eq!(slow.status, 504, "{}", slow.body);
    drop(proxy);
    // A variable that is set but not honoured stops the start, naming it.
    let out = demo
        .flowproxy()
        .arg("--no-ebpf")
        .env("BIND_PORTS", "8081")
        .run_to_exit()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("BIND_PORTS"),
        "{stderr}"
    );
    let out = demo
        .flowproxy()
        .arg("--no-ebpf")
        .env("HTTPS_ONLY", "yes")
        .run_to_exit()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("true or false"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_query_that_is_not_utf8_is_refused_by_name() -> anyhow::Result<()> {
    let proxy = Flowproxy::new().arg("--no-ebpf").start()?;
    for (query, param) in [
        (
            "serviceName=go%FFdemo&servicePath=/demo&port=8080",
            "serviceName",
        ),
        (
            "serviceName=go-demo&servicePath=/demo&port=8080&users=u:%FF",
            "users",
        ),
    ] {
        let resp = reconfigure(&proxy, query)?;
        assert_eq!(resp.status, 400, "{query}: {}", resp.body);
        assert!(
            resp.body.contains(param) && resp.body.contains("UTF-8"),
            "{}",
            resp.body
        );
    }
    let json = proxy.api("/v1/docker-flow-proxy/config?type=json")?.body;
    assert!(!json.contains("go-demo"), "nothing was configured: {json}");
    Ok(())
}
