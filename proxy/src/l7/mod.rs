//! The HTTP engine on `--http-addr`: HTTP/1.1 and h2c on one port, routing, forwarding to a
//! replica through the pooled client, WebSocket tunnels.
mod access;
mod access_log;
mod body;
mod client_io;
mod conn;
mod drain;
mod errors;
mod header_rules;
pub mod headers;
mod host;
mod limits;
mod park;
mod pipeline;
mod protocol;
mod request_id;
mod rewrite;
mod server;
mod service;
mod settings;
mod tunnel;
mod upgrade;

pub use limits::HeaderLimits;
pub use pipeline::{HttpsPolicy, Proxy, RequestLimits, Trust};
pub use server::{Listener, TlsListener, serve};
pub use service::Peer;
pub use settings::ConnSettings;
pub use upgrade::{NeverAllowed, UpgradeAllowList};
