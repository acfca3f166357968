//! The integration-test harness: hosts made of network namespaces, a real `flowproxy` process,
//! and the tools an operator would use (bpftool, ping, sockets). Tests read like the scenario:
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
pub mod bpftool;
pub mod cmd;
pub mod names;
pub mod netns;
pub mod proxy;
pub mod wait;

pub use names::Ids;
pub use netns::{Host, Link};
pub use proxy::{Flowproxy, RunningProxy};
pub use wait::eventually;
