//! What Docker label discovery last did, for the status page: written by the discovery loop,
//! read by the API. A configuration summary cannot tell an operator that the socket is not
//! mounted or that this node is a worker; this can.
use std::sync::Mutex;

/// The state of Docker label discovery on this replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerState {
    /// Unix time of the last complete read of the Swarm services.
    pub last_read: Option<i64>,
    /// How many services carried the notify label at that read (routed or not).
    pub labelled: usize,
    /// What stops reads now, and since when (unix time); `None` once a read succeeds.
    pub problem: Option<(i64, String)>,
}

/// Shared between the discovery loop and the API; `None` inside when discovery is off.
#[derive(Debug, Default)]
pub struct DiscoveryStatus {
    docker: Mutex<Option<DockerState>>,
}

impl DiscoveryStatus {
    /// A status for a replica that runs Docker label discovery (`docker_on`) or not.
    pub fn new(docker_on: bool) -> Self {
        Self {
            docker: Mutex::new(docker_on.then(DockerState::default)),
        }
    }

    /// Docker discovery's state, `None` when it is off.
    pub fn docker(&self) -> Option<DockerState> {
        self.lock().clone()
    }

    /// A read of the services at `now` found `labelled` of them.
    pub fn read(&self, now: i64, labelled: usize) {
        if let Some(state) = self.lock().as_mut() {
            state.last_read = Some(now);
            state.labelled = labelled;
            state.problem = None;
        }
    }

    /// Reads fail at `now` because of `message`; the first time of a run of the same message
    /// is kept, so the page says how long it has lasted.
    pub fn failed(&self, now: i64, message: &str) {
        if let Some(state) = self.lock().as_mut() {
            match &state.problem {
                Some((_, same)) if same == message => {}
                _ => state.problem = Some((now, message.to_owned())),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<DockerState>> {
        // A panic elsewhere leaves the state as it was: still worth showing.
        self.docker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_stays_off() {
        let status = DiscoveryStatus::new(false);
        status.read(5, 2);
        status.failed(6, "x");
        assert_eq!(status.docker(), None);
    }

    #[test]
    fn a_problem_keeps_its_start_until_a_read_succeeds() {
        let status = DiscoveryStatus::new(true);
        assert_eq!(status.docker(), Some(DockerState::default()));
        status.failed(10, "socket missing");
        status.failed(20, "socket missing");
        assert_eq!(
            status.docker().unwrap().problem,
            Some((10, "socket missing".to_owned()))
        );
        status.failed(30, "not a manager");
        assert_eq!(status.docker().unwrap().problem.unwrap().0, 30);
        status.read(40, 3);
        let state = status.docker().unwrap();
        assert_eq!(
            (state.last_read, state.labelled, state.problem),
            (Some(40), 3, None)
        );
    }
}
