//! The API's log line (target `api`): one per request, written after the answer, naming the
//! caller, the service it was about and, for a refusal, the reason it was given (the envelope's
//! `Message`), so an operator reading the log alone learns why a reconfigure did not take.
use std::{net::IpAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{Method, Request, Response, body::Body as _};
use serde_json::Value;

use super::refusals::RecentRefusals;
use crate::http_body::{Body, text_body};

/// The largest error body read back for its reason; envelopes are a few hundred bytes.
const MAX_REASON_BODY: u64 = 16 * 1024;

/// What the line says about the request, taken before the request is consumed.
pub struct Asked {
    client: IpAddr,
    method: Method,
    path: String,
    service_name: Option<String>,
    refusals: Option<Arc<RecentRefusals>>,
}

impl Asked {
    /// Notes `req`, from `client`.
    pub fn new<B>(req: &Request<B>, client: IpAddr) -> Self {
        let service_name = req.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, v)| k == "serviceName" && !v.is_empty())
                .map(|(_, v)| v.into_owned())
        });
        Self {
            client,
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            service_name,
            refusals: None,
        }
    }

    /// Also keeps a refused change (4xx on a changing endpoint) in `refusals`.
    pub fn keeping_refusals(mut self, refusals: Arc<RecentRefusals>) -> Self {
        self.refusals = Some(refusals);
        self
    }

    /// Logs the answer and hands it back. An error's body is read (it is a small buffer,
    /// already complete) for its reason and put back unchanged.
    pub async fn answered(self, response: Response<Body>) -> Response<Body> {
        let status = response.status().as_u16();
        let small = response
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= MAX_REASON_BODY);
        if status < 400 || !small {
            self.write(status, None);
            return response;
        }
        let (parts, body) = response.into_parts();
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                self.write(
                    status,
                    Some(&format!("(the answer could not be read: {e})")),
                );
                return Response::from_parts(parts, text_body(""));
            }
        };
        let reason = reason(&bytes);
        self.write(status, Some(&reason));
        let path = self.path.trim_end_matches('/');
        if let Some(refusals) = &self.refusals
            && (400..500).contains(&status)
            && super::CHANGES.contains(&path)
        {
            refusals.record(
                self.client,
                path,
                self.service_name.as_deref(),
                status,
                &reason,
            );
        }
        Response::from_parts(parts, text_body(bytes))
    }

    fn write(&self, status: u16, reason: Option<&str>) {
        tracing::info!(
            target: "api",
            client = %self.client,
            method = self.method.as_str(),
            path = self.path.as_str(),
            "serviceName" = self.service_name.as_deref(),
            status,
            reason,
        );
    }
}

/// The reason an error body gives: the envelope's `Message`, else the body as text.
pub fn reason(body: &Bytes) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(envelope)) if envelope.get("Message").is_some_and(Value::is_string) => {
            envelope["Message"].as_str().unwrap_or_default().to_owned()
        }
        _ => String::from_utf8_lossy(body).trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{logging::capture::json_lines, wire::envelope};

    fn asked(uri: &str) -> Asked {
        let req = Request::builder().uri(uri).body(()).unwrap();
        Asked::new(&req, "198.18.0.9".parse().unwrap())
    }

    #[test]
    fn the_reason_is_the_envelopes_message_or_the_text() {
        let body = Bytes::from_static(br#"{"Status":"NOK","Message":"port is required"}"#);
        assert_eq!(reason(&body), "port is required");
        assert_eq!(reason(&Bytes::from_static(b"plain words\n")), "plain words");
        assert_eq!(
            reason(&Bytes::from_static(br#"{"Message":3}"#)),
            r#"{"Message":3}"#
        );
    }

    #[test]
    fn a_refusal_is_logged_with_client_service_status_and_reason_and_still_answered() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (body, captured) = json_lines(|| {
            runtime.block_on(async {
                let refused = envelope::error(400, "port is required", Some("go-demo"));
                let response =
                    asked("/v1/docker-flow-proxy/reconfigure?serviceName=go-demo&token=t")
                        .answered(refused.into_response())
                        .await;
                assert_eq!(response.status(), 400);
                let ok = envelope::ok("fine", None).into_response();
                asked("/v1/docker-flow-proxy/ping").answered(ok).await;
                response.into_body().collect().await.unwrap().to_bytes()
            })
        });
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["Message"], "port is required", "the body is put back");
        let lines = captured.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let refusal = &lines[0];
        assert_eq!(refusal["target"], "api");
        assert_eq!(refusal["client"], "198.18.0.9");
        assert_eq!(refusal["method"], "GET");
        assert_eq!(refusal["path"], "/v1/docker-flow-proxy/reconfigure");
        assert_eq!(refusal["serviceName"], "go-demo");
        assert_eq!(refusal["status"], 400);
        assert_eq!(refusal["reason"], "port is required");
        assert!(!Value::Object(refusal.clone()).to_string().contains("token"));
        let ok = &lines[1];
        assert_eq!(ok["status"], 200);
        assert!(
            !ok.contains_key("reason") && !ok.contains_key("serviceName"),
            "{ok:?}"
        );
    }
}
