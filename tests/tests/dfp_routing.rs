//! DFP's routing extras seen from curl: `serviceDomainAlgo` (and `SERVICE_DOMAIN_ALGO` as its
//! default), `*suffix` domains, `serviceDomainMatchAll`, `serviceHeader` and `userAgent`
//! conditions, and services sharing one path in aclName order.
use flowproxy_tests::{CurlResponse, GoDemo, RunningProxy, curl};

fn reconfigure(proxy: &RunningProxy, query: &str) -> anyhow::Result<CurlResponse> {
    proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{query}"))
}

/// Registers `name` on go-demo's replicas (published as `tasks.<name>`), answering with an
/// `X-Served-By: <name>` header so that a request shows which service took it.
fn add(proxy: &RunningProxy, demo: &GoDemo, name: &str, extra: &str) -> anyhow::Result<()> {
    let addrs: Vec<_> = demo.replicas.iter().map(|r| r.link.host_addr).collect();
    demo.dns.set(&format!("tasks.{name}"), &addrs)?;
    let query = format!("serviceName={name}&port=8080&setResHeader=X-Served-By%20{name}{extra}");
    let resp = reconfigure(proxy, &query)?;
    anyhow::ensure!(resp.status == 200, "{name}: {}", resp.body);
    Ok(())
}

/// The service that answers `/demo/hello` with these extra curl arguments, or the status
/// when none does.
fn served_by(proxy: &RunningProxy, args: &[&str]) -> anyhow::Result<String> {
    let url = proxy.url("/demo/hello");
    let mut all: Vec<&str> = args.to_vec();
    all.push(&url);
    let resp = curl(&all)?;
    Ok(match resp.header("x-served-by") {
        Some(name) if resp.status == 200 => name.to_owned(),
        _ => resp.status.to_string(),
    })
}

fn for_host(proxy: &RunningProxy, host: &str) -> anyhow::Result<String> {
    served_by(proxy, &["-H", &format!("Host: {host}")])
}

fn config(proxy: &RunningProxy) -> anyhow::Result<(String, String)> {
    let text = proxy.api("/v1/docker-flow-proxy/config")?.body;
    let json = proxy.api("/v1/docker-flow-proxy/config?type=json")?.body;
    Ok((text, json))
}

#[test]
fn each_domain_algorithm_star_domains_and_match_all() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    add(&proxy, &demo, "exact", "&serviceDomain=exact.test")?;
    add(
        &proxy,
        &demo,
        "exact2",
        "&serviceDomain=exact2.test&serviceDomainAlgo=hdr(host)",
    )?;
    add(
        &proxy,
        &demo,
        "beg",
        "&serviceDomain=beg&serviceDomainAlgo=hdr_beg",
    )?;
    add(
        &proxy,
        &demo,
        "end",
        "&serviceDomain=end.test&serviceDomainAlgo=hdr_end(host)",
    )?;
    add(
        &proxy,
        &demo,
        "dom",
        "&serviceDomain=dom.test&serviceDomainAlgo=hdr_dom",
    )?;
    add(&proxy, &demo, "star", "&serviceDomain=*star.test")?;
    add(&proxy, &demo, "sub", "&serviceDomain=*.sub.test")?;
    add(
        &proxy,
        &demo,
        "all",
        "&serviceDomain=all.test&serviceDomainMatchAll=true",
    )?;
    for (host, want) in [
        ("exact.test", "exact"),
        ("EXACT.test:8080", "exact"),
        ("www.exact.test", "404"),
        ("exact2.test", "exact2"),
        ("exact2.test.org", "404"),
        ("beg.example.org", "beg"),
        ("Beg-site.net", "beg"),
        ("www.beg.org", "404"),
        ("end.test", "end"),
        ("www.end.test", "end"),
        ("myend.test", "end"),
        ("end.test.org", "404"),
        ("dom.test", "dom"),
        ("www.dom.test", "dom"),
        ("dom.test.au", "dom"),
        ("mydom.test", "404"),
        ("star.test", "star"),
        ("www.star.test", "star"),
        ("mystar.test", "star"),
        ("star.test.org", "404"),
        ("a.sub.test", "sub"),
        ("sub.test", "404"),
        ("mysub.test", "404"),
        ("all.test", "all"),
        ("www.all.test:80", "all"),
        ("all.test.au", "all"),
        ("myall.test", "404"),
    ] {
        assert_eq!(for_host(&proxy, host)?, want, "Host: {host}");
    }
    // /config writes each domain with the fetch DFP would.
    let (text, _) = config(&proxy)?;
    for line in [
        "acl domain_exact8080_0 hdr(host) -i exact.test",
        "acl domain_beg8080_0 hdr_beg(host) -i beg",
        "acl domain_end8080_0 hdr_end(host) -i end.test",
        "acl domain_dom8080_0 hdr_dom(host) -i dom.test",
        "acl domain_star8080_0 hdr_end(host) -i star.test",
        "acl domain_sub8080_0 hdr_end(host) -i .sub.test",
        "acl domain_all8080_0 hdr_dom(host) -i all.test",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    Ok(())
}

#[test]
fn service_domain_algo_from_the_environment_is_the_default() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .env("SERVICE_DOMAIN_ALGO", "hdr_beg(host)")
        .start()?;
    add(&proxy, &demo, "site", "&serviceDomain=site.test")?;
    add(
        &proxy,
        &demo,
        "own",
        "&serviceDomain=own.test&serviceDomainAlgo=hdr",
    )?;
    assert_eq!(for_host(&proxy, "site.test")?, "site");
    assert_eq!(for_host(&proxy, "site.test.example.org")?, "site");
    assert_eq!(for_host(&proxy, "own.test")?, "own");
    assert_eq!(for_host(&proxy, "own.test.example.org")?, "404");
    assert!(
        config(&proxy)?.0.contains("hdr_beg(host) -i site.test"),
        "{}",
        config(&proxy)?.0
    );
    // A value that is no algorithm stops the start and names the variable.
    let out = demo
        .flowproxy()
        .arg("--no-ebpf")
        .env("SERVICE_DOMAIN_ALGO", "req.ssl_sni")
        .run_to_exit()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SERVICE_DOMAIN_ALGO"), "{stderr}");
    assert!(
        stderr.contains("hdr_beg"),
        "the choices are named: {stderr}"
    );
    Ok(())
}

#[test]
fn service_headers_and_user_agents_choose_between_services_on_one_path() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    add(
        &proxy,
        &demo,
        "api-v1",
        "&servicePath=/demo&serviceHeader=X-Version:1",
    )?;
    add(
        &proxy,
        &demo,
        "api-v2",
        "&servicePath=/demo&serviceHeader=X-Version:2,X-Beta:yes",
    )?;
    add(
        &proxy,
        &demo,
        "mobile",
        "&servicePath=/demo&userAgent=iPhone,Android",
    )?;
    let v1 = ["-H", "X-Version: 1"];
    let v2 = ["-H", "X-Version: 2", "-H", "X-Beta: yes"];
    let iphone = ["-A", "Mozilla/5.0 (IPHONE; CPU iPhone OS 17_0)"];
    assert_eq!(served_by(&proxy, &v1)?, "api-v1");
    assert_eq!(served_by(&proxy, &v2)?, "api-v2");
    assert_eq!(
        served_by(&proxy, &["-H", "X-Version: 2"])?,
        "404",
        "every serviceHeader must match"
    );
    assert_eq!(served_by(&proxy, &iphone)?, "mobile");
    assert_eq!(served_by(&proxy, &["-A", "curl/8"])?, "404");
    // A catch-all on the same path (sorting after the others) takes the rest.
    add(&proxy, &demo, "zz-site", "&servicePath=/demo")?;
    assert_eq!(served_by(&proxy, &["-A", "curl/8"])?, "zz-site");
    assert_eq!(served_by(&proxy, &v1)?, "api-v1");
    assert_eq!(served_by(&proxy, &iphone)?, "mobile");
    // DFP's layout: one destination per agent, the last one without userAgent.
    add(
        &proxy,
        &demo,
        "web",
        "&servicePath.1=/web&port.1=8080&userAgent.1=googlebot\
         &reqPathSearchReplace.1=%5E/web,/demo/hello\
         &servicePath.2=/web&port.2=8080&reqPathSearchReplace.2=%5E/web,/demo/headers",
    )?;
    let web = proxy.url("/web");
    let bot = curl(&["-A", "Mozilla/5.0 (compatible; Googlebot/2.1)", &web])?;
    assert_eq!((bot.status, bot.body.as_str()), (200, "hello, world!\n"));
    let person = curl(&["-A", "Firefox/120", &web])?;
    assert_eq!(person.status, 200, "{}", person.body);
    assert!(
        person.body.to_ascii_lowercase().contains("firefox/120"),
        "the catch-all destination shows the headers: {}",
        person.body
    );
    let (text, _) = config(&proxy)?;
    for line in [
        "acl hdr_api-v28080_0_1 hdr(x-version) 2",
        "acl hdr_api-v28080_0_2 hdr(x-beta) yes",
        "use_backend api-v2-be8080_0 if url_api-v28080_0 hdr_api-v28080_0_1 hdr_api-v28080_0_2",
        "acl user_agent_mobile8080_0 hdr_sub(User-Agent) -i iphone android",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    Ok(())
}

#[test]
fn services_sharing_a_path_are_tried_in_acl_name_order() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    add(
        &proxy,
        &demo,
        "alpha",
        "&servicePath=/demo&aclName=20-alpha",
    )?;
    add(&proxy, &demo, "beta", "&servicePath=/demo&aclName=10-beta")?;
    let (text, json) = config(&proxy)?;
    assert!(
        json.contains("alpha") && json.contains("beta"),
        "both are kept: {json}"
    );
    let beta_at = text
        .find("use_backend 10-beta-be8080_0")
        .expect("beta routed");
    let alpha_at = text
        .find("use_backend 20-alpha-be8080_0")
        .expect("alpha routed");
    assert!(beta_at < alpha_at, "{text}");
    for _ in 0..3 {
        assert_eq!(served_by(&proxy, &[])?, "beta");
    }
    // Without beta, alpha takes the path.
    let removed = proxy.api("/v1/docker-flow-proxy/remove?serviceName=beta")?;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(served_by(&proxy, &[])?, "alpha");
    Ok(())
}

#[test]
fn bad_routing_values_are_refused_and_change_nothing() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    add(
        &proxy,
        &demo,
        "site",
        "&servicePath=/demo&serviceDomain=site.test",
    )?;
    let before = config(&proxy)?;
    let base = "serviceName=site&servicePath=/demo&port=8080&serviceDomain=other.test";
    for (extra, names) in [
        ("&serviceDomainAlgo=req.ssl_sni", "serviceDomainAlgo"),
        ("&serviceDomainAlgo=hdr_sub(host)", "serviceDomainAlgo"),
        ("&serviceDomainMatchAll=maybe", "serviceDomainMatchAll"),
        (
            "&serviceDomainMatchAll=true&serviceDomainAlgo=hdr_beg",
            "serviceDomainMatchAll",
        ),
        ("&serviceHeader=X-Version", "serviceHeader"),
        ("&serviceHeader=Bad%20Name:1", "serviceHeader"),
        (
            "&serviceHeader.1=X(A):1&servicePath.1=/x&port.1=1",
            "serviceHeader.1",
        ),
        ("&userAgent=bot%07", "userAgent"),
    ] {
        let resp = reconfigure(&proxy, &format!("{base}{extra}"))?;
        assert_eq!(resp.status, 400, "{extra}: {}", resp.body);
        assert!(
            resp.body.contains(names),
            "{extra}: should name {names}: {}",
            resp.body
        );
        assert_eq!(config(&proxy)?, before, "{extra} changed the configuration");
    }
    assert_eq!(for_host(&proxy, "site.test")?, "site");
    Ok(())
}
