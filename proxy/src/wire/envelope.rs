//! DFP's JSON envelope: `{"Status":"OK"|"NOK","Message":…,"ServiceName":…}`, with the service's
//! fields flattened in where there is a service.
use hyper::{Response, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::{
    http_body::{Body, text_body},
    routes::Service,
};

/// An envelope not yet turned into a response, so that a distributed call can add what its
/// peers answered.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The JSON object.
    pub body: Map<String, Value>,
}

impl Reply {
    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The HTTP response.
    pub fn into_response(self) -> Response<Body> {
        json_response(self.status, &Value::Object(self.body))
    }
}

/// A JSON response with `status`.
pub fn json_response(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(text_body(format!("{body}\n")))
        .expect("static headers are valid")
}

/// `{"Status":"OK","Message":message, …service fields}` with 200.
pub fn ok(message: &str, service: Option<&Service>) -> Reply {
    let mut body = service_fields(service);
    body.insert("Status".into(), json!("OK"));
    body.insert("Message".into(), json!(message));
    Reply { status: 200, body }
}

/// `{"Status":"NOK","Message":message,"ServiceName":…}` with `status`.
pub fn error(status: u16, message: &str, service_name: Option<&str>) -> Reply {
    let mut body = Map::new();
    body.insert("Status".into(), json!("NOK"));
    body.insert("Message".into(), json!(message));
    if let Some(name) = service_name {
        body.insert("ServiceName".into(), json!(name));
    }
    Reply { status, body }
}

fn service_fields(service: Option<&Service>) -> Map<String, Value> {
    match service.map(serde_json::to_value) {
        Some(Ok(Value::Object(fields))) => fields,
        _ => Map::new(),
    }
}
