//! The response body every HTTP handler returns (the proxy's, the API's, the error pages'),
//! and a fixed text body of that type. Shared by `l7`, `api` and `wire` so none of them has
//! to reach into another for it.
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};

/// Response body type of every handler.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A complete body of `text`.
pub fn text_body(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}
