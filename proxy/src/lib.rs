//! flowproxy as a library: every module of the proxy, for the `flowproxy` binary (`main.rs`)
//! and for the fuzz targets in `fuzz/`, which call the parsers and the route table directly.
pub mod api;
pub mod app;
pub mod bind;
pub mod changes;
pub mod cli;
pub mod cluster;
pub mod control;
pub mod credentials;
pub mod dataplane;
pub mod dfp_env;
pub mod discovery;
pub mod health_cmd;
pub mod http_body;
pub mod io_relay;
pub mod l4;
pub mod l7;
pub mod local_api;
pub mod logging;
pub mod metrics;
pub mod routes;
pub mod state;
pub mod stats_cmd;
pub mod tls;
pub mod upstream;
pub mod versioning;
pub mod wire;
