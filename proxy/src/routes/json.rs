//! The DFP-shaped JSON view of a [`Service`].
//!
//! DFP embeds its `proxy.Service` in every API reply, so clients expect
//! `ServiceName`, `ServiceDest[].Port` and friends. Compiled regexes are not
//! serde types, hence a hand-built view instead of a derive on the model.

use serde::Serialize;

use super::service::{Destination, Service};
use super::values::haproxy_subst;

/// DFP's JSON view of a service, flattened into its response envelope.
#[derive(Serialize)]
struct ServiceView<'a> {
    #[serde(rename = "ServiceName")]
    service_name: &'a str,
    #[serde(rename = "AclName")]
    acl_name: &'a str,
    #[serde(rename = "ServiceDest")]
    service_dest: Vec<DestView<'a>>,
    #[serde(rename = "Users")]
    users: Vec<UserView<'a>>,
    #[serde(rename = "Replicas")]
    replicas: u32,
    #[serde(rename = "UsersSecret", skip_serializing_if = "Option::is_none")]
    users_secret: Option<&'a str>,
    #[serde(rename = "RedirectWhenHttpProto")]
    redirect_when_http_proto: bool,
    #[serde(rename = "AddReqHeader")]
    add_req_header: Vec<String>,
    #[serde(rename = "SetReqHeader")]
    set_req_header: Vec<String>,
    #[serde(rename = "DelReqHeader")]
    del_req_header: &'a [String],
    #[serde(rename = "AddResHeader")]
    add_res_header: Vec<String>,
    #[serde(rename = "SetResHeader")]
    set_res_header: Vec<String>,
    #[serde(rename = "DelResHeader")]
    del_res_header: &'a [String],
}

/// DFP's `Name value` spelling of header rules.
fn pairs(rules: &[(String, String)]) -> Vec<String> {
    rules.iter().map(|(n, v)| format!("{n} {v}")).collect()
}

#[derive(Serialize)]
struct DestView<'a> {
    #[serde(rename = "Index")]
    index: usize,
    // DFP keeps ports as strings, clients compare them as such.
    #[serde(rename = "Port")]
    port: String,
    #[serde(rename = "ServicePath")]
    service_path: &'a [String],
    #[serde(rename = "ServiceDomain")]
    service_domain: Vec<String>,
    #[serde(rename = "ReqMode")]
    req_mode: &'static str,
    #[serde(rename = "PathType")]
    path_type: &'static str,
    #[serde(rename = "SrcPort")]
    src_port: u16,
    #[serde(rename = "ReqPathSearchReplaceFormatted")]
    rewrites: Vec<String>,
    #[serde(rename = "TimeoutServer")]
    timeout_server: String,
    #[serde(rename = "TimeoutTunnel")]
    timeout_tunnel: String,
    #[serde(rename = "OutboundHostname")]
    outbound_hostname: &'a str,
    #[serde(rename = "HttpsOnly")]
    https_only: bool,
    #[serde(rename = "HttpsRedirectCode")]
    https_redirect_code: String,
    #[serde(rename = "ServicePathExclude")]
    service_path_exclude: &'a [String],
    #[serde(rename = "AllowedMethods")]
    allowed_methods: &'a [String],
    #[serde(rename = "DeniedMethods")]
    denied_methods: &'a [String],
    #[serde(rename = "DenyHttp")]
    deny_http: bool,
    #[serde(rename = "IgnoreAuthorization")]
    ignore_authorization: bool,
}

#[derive(Serialize)]
struct UserView<'a> {
    #[serde(rename = "Username")]
    username: &'a str,
}

impl Serialize for Service {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = ServiceView {
            service_name: &self.name,
            acl_name: &self.acl_name,
            service_dest: self.destinations.iter().map(DestView::from).collect(),
            // Passwords stay out: this JSON is served unauthenticated.
            users: self
                .users
                .iter()
                .map(|u| UserView { username: &u.user })
                .collect(),
            replicas: self.replicas().unwrap_or(0),
            users_secret: self.users_secret.as_deref(),
            redirect_when_http_proto: self.redirect_when_http_proto,
            add_req_header: pairs(&self.request_headers.add),
            set_req_header: pairs(&self.request_headers.set),
            del_req_header: &self.request_headers.del,
            add_res_header: pairs(&self.response_headers.add),
            set_res_header: pairs(&self.response_headers.set),
            del_res_header: &self.response_headers.del,
        };
        view.serialize(serializer)
    }
}

impl<'a> From<&'a Destination> for DestView<'a> {
    fn from(d: &'a Destination) -> Self {
        DestView {
            index: d.index,
            port: d.port.to_string(),
            service_path: &d.paths,
            service_domain: d.domains.iter().map(ToString::to_string).collect(),
            req_mode: d.req_mode.as_str(),
            path_type: d.path_type.as_str(),
            src_port: d.src_port.unwrap_or(0),
            rewrites: d
                .path_rewrites
                .iter()
                .map(|(re, repl)| format!("{},{}", re.as_str(), haproxy_subst(repl)))
                .collect(),
            timeout_server: d.timeout_server.as_secs().to_string(),
            timeout_tunnel: d.timeout_tunnel.as_secs().to_string(),
            outbound_hostname: d.outbound_hostname.as_deref().unwrap_or(""),
            https_only: d.https_only,
            https_redirect_code: d.https_redirect_code.to_string(),
            service_path_exclude: &d.path_excludes,
            allowed_methods: &d.access.allowed_methods,
            denied_methods: &d.access.denied_methods,
            deny_http: d.access.deny_http,
            ignore_authorization: d.access.ignore_authorization,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::routes::params::parse_reconfigure;

    #[test]
    fn json_view_is_dfp_shaped_and_hides_passwords() {
        let query: Vec<(String, String)> = [
            ("serviceName", "go-demo"),
            ("servicePath", "/demo"),
            ("port", "8080"),
            ("replicas", "3"),
            ("users", "admin:s3cret"),
            ("serviceDomain.2", "*.example.com"),
            ("port.2", "9090"),
            ("servicePath.1", "/demo"),
            ("port.1", "8080"),
            ("reqPathSearchReplace.2", "^/x/(.*),/\\1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let json = serde_json::to_value(parse_reconfigure(&query).unwrap()).unwrap();
        assert_eq!(json["ServiceName"], "go-demo");
        assert_eq!(json["AclName"], "go-demo");
        assert_eq!(json["Replicas"], 3);
        let first = &json["ServiceDest"][0];
        assert_eq!(first["Port"], "8080");
        assert_eq!(first["ServicePath"][0], "/demo");
        assert_eq!(first["PathType"], "path_beg");
        assert_eq!(first["ReqMode"], "http");
        assert_eq!(first["Index"], 1);
        let second = &json["ServiceDest"][1];
        assert_eq!(second["ServiceDomain"][0], "*.example.com");
        // The unsuffixed servicePath is the default for index 2 as well.
        assert_eq!(second["ServicePath"][0], "/demo");
        assert_eq!(second["ReqPathSearchReplaceFormatted"][0], "^/x/(.*),/\\1");
        assert_eq!(json["Users"][0]["Username"], "admin");
        let text = json.to_string();
        assert!(!text.contains("s3cret"), "{text}");
    }
}
