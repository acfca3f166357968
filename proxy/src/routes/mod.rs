//! Routing model for flowproxy: DFP reconfigure parameters in, an immutable
//! route table and its HAProxy-style rendering out.
//!
//! Everything here is pure (no I/O, no clock), so the API layer can parse and
//! validate a request, build a new [`RouteTable`], and only then swap it in.

mod error;
mod haproxy;
mod json;
mod params;
mod service;
mod table;
mod values;

pub use error::{MAX_VALUE_LEN, RouteError};
pub use haproxy::render_haproxy;
pub use params::{distribute_requested, parse_params, parse_reconfigure};
pub use service::{
    BasicUser, DEFAULT_HTTPS_REDIRECT_CODE, DEFAULT_TIMEOUT_SERVER, DEFAULT_TIMEOUT_TUNNEL,
    Destination, DomainPattern, PathType, ReqMode, Service,
};
pub use table::{RouteMatch, RouteTable};
