//! The HTTP engine on `--http-addr`: HTTP/1.1 and h2c on one port, routing, forwarding to a
//! replica through the pooled client, WebSocket tunnels.
mod access;
mod body;
mod errors;
mod headers;
mod idle;
mod pipeline;
mod rewrite;
mod server;
mod tunnel;

pub use errors::text_body;
pub use idle::copy_bidirectional_idle;
pub use pipeline::{HttpsPolicy, Proxy};
pub use server::{Body, Listener, Peer, TlsListener, serve};
