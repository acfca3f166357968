//! The changes the API refused lately (4xx on reconfigure, remove and cert), kept for the
//! status page: an operator sees why the Swarm Listener's or a script's change did not take
//! without reading the log.
use std::{collections::VecDeque, net::IpAddr, sync::Mutex};

/// How many refusals are kept (the oldest go first).
const KEPT: usize = 50;

/// One refused change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Who asked.
    pub client: IpAddr,
    /// The endpoint.
    pub path: String,
    /// The `serviceName` it was about, if any.
    pub service: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The reason given.
    pub reason: String,
}

/// The last [`KEPT`] refused changes.
#[derive(Debug, Default)]
pub struct RecentRefusals {
    kept: Mutex<VecDeque<Refused>>,
}

impl RecentRefusals {
    /// Notes a refusal now.
    pub fn record(
        &self,
        client: IpAddr,
        path: &str,
        service: Option<&str>,
        status: u16,
        reason: &str,
    ) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(Refused {
            client,
            path: path.to_owned(),
            service: service.map(str::to_owned),
            status,
            reason: reason.to_owned(),
        });
    }

    /// The refusals kept, newest first.
    pub fn newest_first(&self) -> Vec<Refused> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_are_kept_and_listed_first() {
        let r = RecentRefusals::default();
        let client: IpAddr = "198.18.0.1".parse().unwrap();
        for i in 0..KEPT + 3 {
            r.record(
                client,
                "/v1/docker-flow-proxy/reconfigure",
                Some(&format!("s{i}")),
                400,
                "bad",
            );
        }
        let list = r.newest_first();
        assert_eq!(list.len(), KEPT);
        assert_eq!(
            list[0].service.as_deref(),
            Some(format!("s{}", KEPT + 2).as_str())
        );
        assert_eq!(list[KEPT - 1].service.as_deref(), Some("s3"));
    }
}
