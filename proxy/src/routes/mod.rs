//! Routing model for flowproxy: DFP reconfigure parameters in, an immutable
//! route table and its HAProxy-style rendering out.
//!
//! Everything here is pure (no I/O, no clock), so the API layer can parse and
//! validate a request, build a new [`RouteTable`], and only then swap it in.

pub mod catalog;
mod conditions;
mod domain;
mod error;
mod haproxy;
mod json;
mod params;
mod rules;
mod service;
mod table;
mod values;

pub use domain::{ALGO_CHOICES as DOMAIN_ALGO_CHOICES, DomainAlgo, set_default_domain_algo};
pub use error::RouteError;
pub use haproxy::render_haproxy;
pub use params::{distribute_requested, parse_params, parse_reconfigure, set_separator};
pub use rules::HeaderRules;
pub use service::{DefaultTimeouts, Destination, ReqMode, Service, set_default_timeouts};
/// The slow model the route index is checked against (tests and fuzz targets only).
#[cfg(any(test, fuzzing))]
pub use table::reference;
pub use table::{RouteMatch, RouteTable};
pub use values::parse_go_bool;
