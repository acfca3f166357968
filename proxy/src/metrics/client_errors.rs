//! `flowproxy_client_errors_total{reason}`: requests and connections refused because of what
//! the client did (or did not) send. Kept apart from the request counters: many of these never
//! become a request (a silent socket, a head that does not parse).
use prometheus_client::{
    encoding::EncodeLabelSet, metrics::counter::Counter, metrics::family::Family,
};

/// Why a client was refused or cut off; the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientErrorReason {
    /// Nothing (or only part of the HTTP/2 preface) arrived within `--client-first-byte-timeout`.
    TimeoutFirstByte,
    /// The TLS handshake did not complete within `--client-first-byte-timeout`.
    TimeoutHandshake,
    /// A request head was started but not completed within the header read timeout.
    TimeoutHead,
    /// An open request body sent nothing for `--timeout-client`.
    TimeoutBody,
    /// The head or one header field was over its limit (431).
    HeaderTooLarge,
    /// Host missing (HTTP/1.1), repeated, invalid, or disagreeing with `:authority` (400).
    BadHost,
    /// The head or the body's framing did not parse (400), e.g. a bad chunk size.
    BadFraming,
    /// An `Upgrade` the allow-list does not name (the request went on without it).
    UpgradeRefused,
}

impl ClientErrorReason {
    /// Every reason, so each series exists (at zero) from the start.
    pub const ALL: [Self; 8] = [
        Self::TimeoutFirstByte,
        Self::TimeoutHandshake,
        Self::TimeoutHead,
        Self::TimeoutBody,
        Self::HeaderTooLarge,
        Self::BadHost,
        Self::BadFraming,
        Self::UpgradeRefused,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimeoutFirstByte => "timeout_first_byte",
            Self::TimeoutHandshake => "timeout_handshake",
            Self::TimeoutHead => "timeout_head",
            Self::TimeoutBody => "timeout_body",
            Self::HeaderTooLarge => "header_too_large",
            Self::BadHost => "bad_host",
            Self::BadFraming => "bad_framing",
            Self::UpgradeRefused => "upgrade_refused",
        }
    }
}

/// The label set of `flowproxy_client_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabel {
    reason: &'static str,
}

/// The counters by reason; cheap to clone, all clones count into the same series.
#[derive(Clone, Debug, Default)]
pub struct ClientErrors(pub(super) Family<ReasonLabel, Counter>);

impl ClientErrors {
    /// Counters with every reason's series created, so a scrape shows zeros before the first
    /// rejection (alerts on `rate()` need the series to exist).
    pub(super) fn with_all_reasons() -> Self {
        let errors = Self::default();
        for reason in ClientErrorReason::ALL {
            let _ = errors.counter(reason);
        }
        errors
    }

    /// Counts one rejection.
    pub fn count(&self, reason: ClientErrorReason) {
        self.counter(reason).inc();
    }

    /// The current count for `reason`.
    #[cfg(test)]
    pub fn get(&self, reason: ClientErrorReason) -> u64 {
        self.counter(reason).get()
    }

    fn counter(&self, reason: ClientErrorReason) -> Counter {
        self.0
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_count_into_one_series_per_reason() {
        let errors = ClientErrors::with_all_reasons();
        let clone = errors.clone();
        clone.count(ClientErrorReason::BadHost);
        clone.count(ClientErrorReason::BadHost);
        assert_eq!(errors.get(ClientErrorReason::BadHost), 2);
        assert_eq!(errors.get(ClientErrorReason::TimeoutBody), 0);
        let labels: std::collections::HashSet<_> =
            ClientErrorReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels.len(),
            ClientErrorReason::ALL.len(),
            "labels are distinct"
        );
    }
}
