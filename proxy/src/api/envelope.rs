//! DFP's JSON envelope: `{"Status":"OK"|"NOK","Message":…,"ServiceName":…}`, with the service's
//! fields flattened in where there is a service.
use hyper::{Response, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::{l7::Body, routes::Service};

/// A JSON response with `status`.
pub fn json_response(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(crate::l7::text_body(format!("{body}\n")))
        .expect("static headers are valid")
}

/// `{"Status":"OK","Message":message, …service fields}` with 200.
pub fn ok(message: &str, service: Option<&Service>) -> Response<Body> {
    let mut object = service_fields(service);
    object.insert("Status".into(), json!("OK"));
    object.insert("Message".into(), json!(message));
    json_response(200, &Value::Object(object))
}

/// `{"Status":"NOK","Message":message,"ServiceName":…}` with `status`.
pub fn error(status: u16, message: &str, service_name: Option<&str>) -> Response<Body> {
    let mut object = Map::new();
    object.insert("Status".into(), json!("NOK"));
    object.insert("Message".into(), json!(message));
    if let Some(name) = service_name {
        object.insert("ServiceName".into(), json!(name));
    }
    json_response(status, &Value::Object(object))
}

fn service_fields(service: Option<&Service>) -> Map<String, Value> {
    match service.map(serde_json::to_value) {
        Some(Ok(Value::Object(fields))) => fields,
        _ => Map::new(),
    }
}
