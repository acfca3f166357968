use std::time::Duration;

use super::*;
use crate::{
    l7::{body::BodyFailure, host::HostError, limits::HeaderTooLarge},
    metrics::ClientErrorReason,
};

#[test]
fn rejections_are_counted_by_reason_and_answers_are_not() {
    let too_large = ProxyError::HeaderTooLarge(HeaderTooLarge::Head { size: 2, limit: 1 });
    let cases = [
        (too_large, Some(ClientErrorReason::HeaderTooLarge)),
        (
            ProxyError::BadHost(HostError::Missing),
            Some(ClientErrorReason::BadHost),
        ),
        (
            ProxyError::Body(BodyFailure::Idle(Duration::from_secs(1))),
            Some(ClientErrorReason::TimeoutBody),
        ),
        (
            ProxyError::Body(BodyFailure::Client("bad chunk".into())),
            Some(ClientErrorReason::BadFraming),
        ),
        (ProxyError::NoRoute, None),
        (ProxyError::Unauthorized, None),
        (
            ProxyError::Timeout {
                service: "a".into(),
            },
            None,
        ),
    ];
    for (error, reason) in cases {
        assert_eq!(client_error_reason(&error), reason, "{error:?}");
    }
}
