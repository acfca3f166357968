//! The integration-test harness: hosts made of network namespaces, a real `flowproxy` process,
//! demo backends (`go-demo` replicas), a real DNS server, and the tools a user or operator would
//! use (curl, an HTTP client, WebSockets, bpftool, ping, sockets). Tests read like the scenario:
//!
//! ```no_run
//! # use flowproxy_tests::*;
//! let client = Host::new("client")?;
//! let link = client.link_to_root()?;
//! let proxy = Flowproxy::new().interface(&link.root_if).start()?;
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Every resource is named after this process (`fp-<pid>-<n>`) and removed on drop; leftovers of
//! crashed runs, whose process is gone, are removed before the first new host is made.
pub mod backend;
pub mod bpftool;
pub mod cluster;
pub mod cmd;
pub mod dns;
pub mod fake_docker;
pub mod go_demo;
pub mod h2c;
pub mod http;
pub mod l4_checks;
pub mod l4_lab;
pub mod lan;
pub mod names;
pub mod netns;
pub mod program_rig;
pub mod prometheus;
pub mod proxy;
pub mod raw;
pub mod stub;
pub mod tls;
pub mod wait;

pub use backend::DemoBackend;
pub use cluster::ProxyCluster;
pub use dns::Dns;
pub use fake_docker::FakeDocker;
pub use go_demo::GoDemo;
pub use http::{CurlResponse, HttpClient, curl, curl_on, ws_echo};
pub use l4_lab::L4Lab;
pub use lan::Lan;
pub use names::Ids;
pub use netns::{Host, Link};
pub use proxy::{Flowproxy, RunningProxy};
pub use raw::{RawClient, RawResponse};
pub use stub::StubServer;
pub use tls::{TestCa, TlsClient};
pub use wait::eventually;
