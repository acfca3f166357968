use std::sync::Arc;

use http_body_util::{BodyExt as _, Full};
use serde_json::{Map, Value};

use super::*;
use crate::{
    http_body::text_body,
    logging::capture::{filtered_json_lines, json_lines},
    metrics::Metrics,
};

fn metrics() -> Arc<Metrics> {
    let provider = crate::tls::install_provider();
    let fallback = crate::tls::self_signed(&provider).unwrap();
    Metrics::new(None, Arc::new(crate::tls::CertStore::new(fallback, None)))
}

fn peer() -> Peer {
    Peer {
        addr: "198.18.0.7:40000".parse().unwrap(),
        tls: false,
        ip: HeaderValue::from_static("198.18.0.7"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The access lines among `lines`.
fn access(lines: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    lines
        .into_iter()
        .filter(|l| l["target"] == "access")
        .collect()
}

#[test]
fn the_query_token_is_redacted_and_the_rest_kept() {
    let cases = [
        ("a=1&b=2", "a=1&b=2"),
        ("token=s3cret", "token=REDACTED"),
        ("a=1&token=s3cret&b=2", "a=1&token=REDACTED&b=2"),
        ("Token=x&TOKEN=y", "Token=REDACTED&TOKEN=REDACTED"),
        ("%74oken=s3cret", "%74oken=REDACTED"),
        ("token", "token=REDACTED"),
        ("tokens=1&mytoken=2&a=token", "tokens=1&mytoken=2&a=token"),
        ("q=%20&x=1", "q=%20&x=1"),
        ("", ""),
    ];
    for (query, logged) in cases {
        assert_eq!(redact_query(query), logged, "{query}");
    }
    assert!(matches!(redact_query("a=1&b=2"), Cow::Borrowed(_)));
    assert!(matches!(redact_query("a=token"), Cow::Borrowed(_)));
}

#[test]
fn the_line_is_kept_only_when_the_access_target_is_on() {
    // The proxy builds no Record (and so formats nothing) when this is false.
    assert!(filtered_json_lines("info", enabled).0);
    assert!(!filtered_json_lines("info,access=off", enabled).0);
    assert!(!filtered_json_lines("warn", enabled).0);
    assert!(filtered_json_lines("warn,access=info", enabled).0);
}

#[test]
fn protocols_are_named_as_the_metrics_name_them() {
    assert_eq!(protocol(Version::HTTP_10), "http/1.0");
    assert_eq!(protocol(Version::HTTP_11), "http/1.1");
    assert_eq!(protocol(Version::HTTP_2), "h2");
}

#[test]
fn a_line_has_every_field_once_the_body_is_sent() {
    let metrics = metrics();
    let started = Instant::now() - Duration::from_millis(3);
    let req = Request::builder()
        .method("POST")
        .uri("/demo/echo?a=1&token=s3cret")
        .header("host", "go-demo.test")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-for", "198.18.0.1")
        .header("user-agent", "curl/8.0 \"quoted\"")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Full::new(Bytes::from_static(b"upload")))
        .unwrap();
    let id = HeaderValue::from_static("req-1");
    let record = Record::new(&req, &peer(), &id, started);
    let ((), captured) = json_lines(|| {
        runtime().block_on(async {
            let (upload, watch) = crate::l7::body::watch(req.into_body(), Duration::from_secs(5));
            upload.collect().await.unwrap();
            let forwarded = Forwarded {
                service: metrics.service("go-demo"),
                replica: Some("198.18.0.2:8080".parse().unwrap()),
                upstream: Some(Duration::from_micros(1500)),
                request_body: Some(watch.relayed()),
            };
            let response = Response::new(text_body("0123456789"));
            let response = record.finish(response, forwarded);
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"0123456789");
        });
    });
    let lines = access(captured.lines());
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    let expected = [
        ("client", Value::from("198.18.0.7")),
        ("x_forwarded_for", "203.0.113.9, 198.18.0.1".into()),
        ("method", "POST".into()),
        ("host", "go-demo.test".into()),
        ("path", "/demo/echo".into()),
        ("query", "a=1&token=REDACTED".into()),
        ("protocol", "http/1.1".into()),
        ("status", 200.into()),
        ("bytes_in", 6.into()),
        ("bytes_out", 10.into()),
        ("service", "go-demo".into()),
        ("replica", "198.18.0.2:8080".into()),
        ("upstream_us", 1500.into()),
        ("user_agent", "curl/8.0 \"quoted\"".into()),
        ("request_id", "req-1".into()),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        ),
    ];
    for (name, value) in expected {
        assert_eq!(line.get(name), Some(&value), "{name} in {line:?}");
    }
    let duration = line["duration_us"].as_u64().expect("an integer");
    assert!((3_000..10_000_000).contains(&duration), "{duration}");
    assert!(!line.to_string_lossy().contains("s3cret"));
}

#[test]
fn a_line_without_route_or_headers_says_so_and_counts_what_was_sent_before_the_client_left() {
    let metrics = metrics();
    let req = Request::builder()
        .version(Version::HTTP_2)
        .uri("http://other.test/nowhere")
        .body(())
        .unwrap();
    let id = HeaderValue::from_static("req-2");
    let record = Record::new(&req, &peer(), &id, Instant::now());
    let ((), captured) = json_lines(|| {
        runtime().block_on(async {
            let forwarded = Forwarded {
                service: metrics.service("-"),
                replica: None,
                upstream: None,
                request_body: None,
            };
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(2);
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|frame| (frame, rx))
            });
            let body = http_body_util::StreamBody::new(Box::pin(stream)).boxed();
            let mut response = record.finish(Response::new(body), forwarded);
            tx.send(Ok(Frame::data(Bytes::from_static(b"half"))))
                .await
                .unwrap();
            let frame = response.body_mut().frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "half");
            // The client goes away: hyper drops the body before its end.
            drop(response);
        });
    });
    let lines = access(captured.lines());
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    for (name, value) in [
        ("host", Value::from("other.test")),
        ("path", "/nowhere".into()),
        ("query", "-".into()),
        ("protocol", "h2".into()),
        ("x_forwarded_for", "-".into()),
        ("user_agent", "-".into()),
        ("traceparent", "-".into()),
        ("service", "-".into()),
        ("replica", "-".into()),
        ("bytes_in", 0.into()),
        ("bytes_out", 4.into()),
        ("request_id", "req-2".into()),
    ] {
        assert_eq!(line.get(name), Some(&value), "{name} in {line:?}");
    }
    assert!(
        !line.contains_key("upstream_us"),
        "no replica answered: {line:?}"
    );
}

#[test]
fn a_request_dropped_before_its_answer_is_logged_as_client_closed() {
    let req = Request::builder()
        .uri("/demo/slow?ms=5000")
        .header("host", "go-demo.test")
        .body(())
        .unwrap();
    let id = HeaderValue::from_static("req-3");
    let ((), captured) = json_lines(|| {
        let flight = InFlight::new(Record::new(&req, &peer(), &id, Instant::now()));
        drop(flight);
        // Answered, it writes nothing itself: the body does.
        let answered = InFlight::new(Record::new(&req, &peer(), &id, Instant::now()));
        drop(answered.answered());
    });
    let lines = access(captured.lines());
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    for (name, value) in [
        ("status", Value::from(499)),
        ("path", "/demo/slow".into()),
        ("query", "ms=5000".into()),
        ("service", "-".into()),
        ("replica", "-".into()),
        ("bytes_out", 0.into()),
        ("request_id", "req-3".into()),
    ] {
        assert_eq!(line.get(name), Some(&value), "{name} in {line:?}");
    }
}

/// A line's fields as text, for "this secret appears nowhere".
trait Lossy {
    fn to_string_lossy(&self) -> String;
}

impl Lossy for Map<String, Value> {
    fn to_string_lossy(&self) -> String {
        Value::Object(self.clone()).to_string()
    }
}
