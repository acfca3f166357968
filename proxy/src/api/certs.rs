//! `PUT /v1/docker-flow-proxy/cert?certName=NAME` (a PEM chain and key) and
//! `GET /v1/docker-flow-proxy/certs`. A refused certificate never replaces a served one.
use bytes::Bytes;
use hyper::{Method, Response};
use serde_json::{Value, json};

use super::{
    ApiContext,
    envelope::{self, Reply},
};
use crate::{
    http_body::Body,
    tls::{parse_certificate, unix_now, valid_cert_name},
    versioning::Version,
};

/// Largest accepted certificate body: chains are a few KiB.
pub const MAX_BODY: usize = 1 << 20;

/// Validates, stores (persistently) and starts serving a certificate.
/// With `version` (a change distributed by a peer), the certificate gets that version.
pub async fn put(
    ctx: &ApiContext,
    name: Option<&str>,
    method: &Method,
    body: Bytes,
    version: Option<Version>,
) -> Reply {
    if method != Method::PUT {
        return envelope::error(405, "certificates are uploaded with PUT", None);
    }
    let Some(name) = name else {
        return envelope::error(400, "The certName query is mandatory", None);
    };
    if !valid_cert_name(name) {
        return envelope::error(
            400,
            "certName may only contain letters, digits, '.', '-' and '_' (at most 128, not starting with '.')",
            None,
        );
    }
    let cert = match parse_certificate(name, &body, "api", unix_now(), &ctx.provider) {
        Ok(cert) => cert,
        Err(e) => return envelope::error(400, &e.to_string(), None),
    };
    if let Err(e) = crate::tls::save_api_cert(&ctx.api_certs_dir, &cert) {
        return envelope::error(
            500,
            &format!("saving certificate {name} failed: {e}; it is not served"),
            None,
        );
    }
    tracing::info!(name, sans = ?cert.info.sans, "certificate added through the API");
    ctx.certs.insert([cert]);
    // Certificates are entries replicas merge: this one gets a new version.
    let recorded = match version {
        None => ctx.changes.control.cert_changed(name).await,
        Some(version) => {
            ctx.changes.control.clock().observe(version);
            ctx.changes
                .control
                .merge_cert(name, true, version)
                .await
                .map(drop)
        }
    };
    if let Err(e) = recorded {
        return envelope::error(
            500,
            &format!("certificate {name} is served, but recording the change failed: {e}"),
            None,
        );
    }
    let mut reply = envelope::ok("", None);
    reply.body.insert("Certs".into(), Value::Null);
    reply
}

/// Lists the served certificates: names, SANs, issuer, expiry; never keys.
pub fn list(ctx: &ApiContext) -> Response<Body> {
    envelope::json_response(
        200,
        &json!({"Status": "OK", "Message": "", "Certs": ctx.certs.list()}),
    )
}
