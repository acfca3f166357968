//! Renders a route table as HAProxy configuration text in DFP's layout.
//!
//! flowproxy does not run HAProxy; this text is what `/config` shows, so
//! people and scripts used to DFP can read the routing they configured.
//! Names follow DFP (`url_<acl><port>_<idx>`, `<acl>-be<port>_<idx>`).

use std::fmt::{self, Write};

use super::service::{Destination, DomainPattern, ReqMode, Service, default_timeouts};
use super::table::RouteTable;
use super::values::haproxy_subst;

/// Renders `table` as DFP-style HAProxy text, deterministically ordered.
///
/// HTTP destinations are listed in DFP's order (`/.well-known` paths first,
/// root-only routes last, otherwise by `aclName`). flowproxy picks the most
/// specific route first; destinations that share a route are tried in this order.
pub fn render_haproxy(table: &RouteTable) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_config(&mut out, table);
    out
}

fn write_config(out: &mut String, table: &RouteTable) -> fmt::Result {
    let mut http: Vec<(&Service, &Destination)> = table
        .services()
        .values()
        .flat_map(|s| s.destinations.iter().map(move |d| (&**s, d)))
        .filter(|(_, d)| d.req_mode == ReqMode::Http)
        .collect();
    http.sort_by_key(|(s, d)| (d.dfp_group(), &s.acl_name, &s.name, d.index));
    let mut tcp: Vec<(&Service, &Destination)> = table.tcp_services().collect();
    tcp.sort_by_key(|(s, d)| (d.src_port, &s.name, d.index));

    writeln!(out, "frontend services")?;
    writeln!(out, "    bind *:80")?;
    writeln!(out, "    bind *:443")?;
    writeln!(out, "    mode http")?;
    writeln!(out, "    option  forwardfor")?;
    writeln!(out)?;
    if http.is_empty() {
        // DFP's placeholder, so the frontend is never empty.
        writeln!(out, "    acl url_dummy path_beg /dummy")?;
        writeln!(out, "    use_backend dummy-be if url_dummy")?;
    }
    for (svc, dest) in &http {
        write_http_acls(out, svc, dest)?;
    }
    for (svc, dest) in &tcp {
        writeln!(out)?;
        let port = dest.src_port.unwrap_or_default();
        writeln!(out, "frontend tcpFE_{port}")?;
        writeln!(out, "    bind *:{port}")?;
        writeln!(out, "    mode tcp")?;
        writeln!(out, "    default_backend {}", backend_name(svc, dest))?;
    }
    if http.is_empty() {
        writeln!(out)?;
        writeln!(out, "backend dummy-be")?;
        writeln!(out, "    server dummy 1.1.1.1:1111 check")?;
    }
    for (svc, dest) in &http {
        write_http_backend(out, svc, dest)?;
    }
    for (svc, dest) in &tcp {
        writeln!(out)?;
        writeln!(out, "backend {}", backend_name(svc, dest))?;
        writeln!(out, "    mode tcp")?;
        write_timeouts(out, dest)?;
        write_server(out, svc, dest)?;
    }
    let mut with_users: Vec<&Service> = table
        .services()
        .values()
        .filter(|s| !s.users.is_empty())
        .map(|s| &**s)
        .collect();
    with_users.sort_by_key(|s| (&s.acl_name, &s.name));
    for svc in with_users {
        writeln!(out)?;
        writeln!(out, "userlist {}Users", svc.acl_name)?;
        for user in &svc.users {
            // Passwords stay out: /config is served without authentication.
            writeln!(out, "    user {} insecure-password ********", user.user)?;
        }
    }
    Ok(())
}

fn suffix(svc: &Service, dest: &Destination) -> String {
    format!("{}{}_{}", svc.acl_name, dest.port, dest.index)
}

fn backend_name(svc: &Service, dest: &Destination) -> String {
    format!("{}-be{}_{}", svc.acl_name, dest.port, dest.index)
}

fn write_http_acls(out: &mut String, svc: &Service, dest: &Destination) -> fmt::Result {
    let id = suffix(svc, dest);
    writeln!(
        out,
        "    acl url_{id} {} {}",
        dest.path_type.as_str(),
        dest.paths.join(" ")
    )?;
    let mut condition = format!("url_{id}");
    if !dest.domains.is_empty() {
        // Acls sharing a name are ORed by HAProxy, so one name covers every kind.
        for fetch in [
            "hdr(host)",
            "hdr_beg(host)",
            "hdr_end(host)",
            "hdr_dom(host)",
        ] {
            let texts: Vec<&str> = dest
                .domains
                .iter()
                .filter(|d| d.fetch() == fetch)
                .map(DomainPattern::text)
                .collect();
            if !texts.is_empty() {
                writeln!(out, "    acl domain_{id} {fetch} -i {}", texts.join(" "))?;
            }
        }
        condition.push_str(&format!(" domain_{id}"));
    }
    // Acls on one line are ANDed: every serviceHeader must match.
    for (n, (name, value)) in dest.conditions.headers.iter().enumerate() {
        let acl = format!("hdr_{id}_{}", n + 1);
        writeln!(out, "    acl {acl} hdr({name}) {value}")?;
        condition.push_str(&format!(" {acl}"));
    }
    if !dest.conditions.user_agents.is_empty() {
        let acl = format!("user_agent_{id}");
        writeln!(
            out,
            "    acl {acl} hdr_sub(User-Agent) -i {}",
            dest.conditions.user_agents.join(" ")
        )?;
        condition.push_str(&format!(" {acl}"));
    }
    writeln!(
        out,
        "    use_backend {} if {condition}",
        backend_name(svc, dest)
    )
}

fn write_http_backend(out: &mut String, svc: &Service, dest: &Destination) -> fmt::Result {
    writeln!(out)?;
    writeln!(out, "backend {}", backend_name(svc, dest))?;
    writeln!(out, "    mode http")?;
    writeln!(
        out,
        "    http-request add-header X-Forwarded-Proto https if {{ ssl_fc }}"
    )?;
    if dest.https_only {
        writeln!(
            out,
            "    http-request redirect scheme https code {} if !{{ ssl_fc }}",
            dest.https_redirect_code
        )?;
    }
    for (re, repl) in &dest.path_rewrites {
        writeln!(
            out,
            "    http-request set-path %[path,regsub({},{})]",
            re.as_str(),
            haproxy_subst(repl)
        )?;
    }
    if !svc.users.is_empty() {
        let acl = &svc.acl_name;
        writeln!(out, "    acl {acl}UsersAcl http_auth({acl}Users)")?;
        writeln!(
            out,
            "    http-request auth realm {acl}Realm if !{acl}UsersAcl"
        )?;
    }
    write_timeouts(out, dest)?;
    write_server(out, svc, dest)
}

/// Like DFP, timeouts appear only when they differ from the global defaults.
fn write_timeouts(out: &mut String, dest: &Destination) -> fmt::Result {
    if dest.timeout_server != default_timeouts().server {
        writeln!(out, "    timeout server {}s", dest.timeout_server.as_secs())?;
    }
    if dest.timeout_tunnel != default_timeouts().tunnel {
        writeln!(out, "    timeout tunnel {}s", dest.timeout_tunnel.as_secs())?;
    }
    Ok(())
}

fn write_server(out: &mut String, svc: &Service, dest: &Destination) -> fmt::Result {
    writeln!(
        out,
        "    server {} {}:{}",
        svc.name,
        svc.upstream_host(dest),
        dest.port
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::params::parse_reconfigure;

    fn table(services: &[&[(&str, &str)]]) -> RouteTable {
        let mut t = RouteTable::default();
        for pairs in services {
            let q: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            t = t.with_service(parse_reconfigure(&q).unwrap()).unwrap();
        }
        t
    }

    #[test]
    fn article_service_renders_like_dfp() {
        let text = render_haproxy(&table(&[&[
            ("serviceName", "go-demo"),
            ("servicePath", "/demo"),
            ("port", "8080"),
        ]]));
        let expected = "\
frontend services
    bind *:80
    bind *:443
    mode http
    option  forwardfor

    acl url_go-demo8080_0 path_beg /demo
    use_backend go-demo-be8080_0 if url_go-demo8080_0

backend go-demo-be8080_0
    mode http
    http-request add-header X-Forwarded-Proto https if { ssl_fc }
    server go-demo go-demo:8080
";
        assert_eq!(text, expected);
    }

    #[test]
    fn empty_table_renders_dummy() {
        let text = render_haproxy(&RouteTable::default());
        assert!(text.contains("    acl url_dummy path_beg /dummy\n"));
        assert!(text.contains("    use_backend dummy-be if url_dummy\n"));
        assert!(text.contains("backend dummy-be\n"));
    }

    #[test]
    fn domains_types_and_options_are_rendered() {
        let text = render_haproxy(&table(&[&[
            ("serviceName", "shop"),
            ("aclName", "05-shop"),
            ("servicePath", "/cart"),
            ("pathType", "path"),
            ("serviceDomain", "shop.com,*.shop.com"),
            ("port", "80"),
            ("httpsOnly", "true"),
            ("reqPathSearchReplace", "^/cart/(.*),/\\1"),
            ("timeoutServer", "60"),
            ("outboundHostname", "10.0.0.9"),
            ("users", "admin:s3cret"),
        ]]));
        for line in [
            "    acl url_05-shop80_0 path /cart\n",
            "    acl domain_05-shop80_0 hdr(host) -i shop.com\n",
            "    acl domain_05-shop80_0 hdr_end(host) -i .shop.com\n",
            "    use_backend 05-shop-be80_0 if url_05-shop80_0 domain_05-shop80_0\n",
            "    http-request redirect scheme https code 302 if !{ ssl_fc }\n",
            "    http-request set-path %[path,regsub(^/cart/(.*),/\\1)]\n",
            "    timeout server 60s\n",
            "    server shop 10.0.0.9:80\n",
            "userlist 05-shopUsers\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("timeout tunnel"));
        assert!(!text.contains("s3cret"));
    }

    #[test]
    fn tcp_gets_its_own_frontend_and_order_is_stable() {
        let db: &[(&str, &str)] = &[
            ("serviceName", "db"),
            ("reqMode", "tcp"),
            ("srcPort", "5432"),
            ("port", "5433"),
        ];
        let root: &[(&str, &str)] = &[
            ("serviceName", "a-root"),
            ("servicePath", "/"),
            ("port", "80"),
        ];
        let api: &[(&str, &str)] = &[
            ("serviceName", "z-api"),
            ("servicePath", "/api"),
            ("port", "80"),
        ];
        let text = render_haproxy(&table(&[db, root, api]));
        assert!(text.contains(
            "frontend tcpFE_5432\n    bind *:5432\n    mode tcp\n    default_backend db-be5433_0\n"
        ));
        assert!(text.contains("backend db-be5433_0\n    mode tcp\n    server db db:5433\n"));
        assert!(!text.contains("url_dummy"));
        // DFP puts root-only routes last even though "a-root" sorts first.
        let api_at = text.find("use_backend z-api").unwrap();
        let root_at = text.find("use_backend a-root").unwrap();
        assert!(api_at < root_at, "{text}");
        assert_eq!(text, render_haproxy(&table(&[api, root, db])));
    }
}
