//! What the API and the replicas both speak: DFP's JSON envelope (`envelope.rs`, which a
//! distributed call extends with its peers' results), the API token (`token.rs`, which peers
//! send each other), and the parameters that steer a request rather than describe a service.
//! A module of its own so that replication (`cluster/`) never depends on the API.
pub mod envelope;
pub mod token;

pub use envelope::Reply;
pub use token::ApiToken;

/// The header a distributed change carries to peers: the version the change got where it
/// was first applied (`MS.COUNTER@REPLICA`), which every peer then gives it too.
pub const VERSION_HEADER: &str = "x-flowproxy-version";

/// Parameters that steer a request rather than describe a service: never stored, so that a
/// distributed change leaves the same configuration on every replica.
pub const REQUEST_PARAMS: [&str; 2] = ["distribute", "token"];
