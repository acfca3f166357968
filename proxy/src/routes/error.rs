//! Errors raised while turning reconfigure parameters into routes.
//!
//! Every variant maps to the HTTP status DFP would answer with, and every
//! message names the offending parameter so the person who wrote the service
//! labels can fix them without reading our source.

/// Values longer than this many bytes are rejected, whatever the parameter.
///
/// DFP has no limit; ours keeps one request from compiling a huge regex or
/// persisting megabytes of labels.
pub const MAX_VALUE_LEN: usize = 1024;

/// Why a reconfigure request or a route table was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// `serviceName` is absent or empty (DFP rule 1).
    #[error("serviceName parameter is mandatory.")]
    MissingServiceName,

    /// An http destination has neither `servicePath` nor `serviceDomain`.
    ///
    /// DFP answers 409 here and the Swarm Listener treats 409 as success, so
    /// services that carry only some labels are not retried forever.
    #[error("When using reqMode http, servicePath or serviceDomain are mandatory")]
    MissingPathOrDomain,

    /// A destination has no `port` (DFP rule 4; the text is DFP's own).
    #[error("When MODE is set to \"service\" or \"swarm\", the port query is mandatory")]
    MissingPort,

    /// A tcp destination lacks `srcPort` or `port` (DFP rule 3).
    #[error("When NOT using reqMode http (e.g. tcp), srcPort and port parameters are mandatory.")]
    TcpNeedsPorts,

    /// A parameter is present but its value cannot be used.
    #[error("{param}={value:?} is invalid: {reason}")]
    InvalidValue {
        /// The parameter as it was given, with its `.N` suffix if any.
        param: String,
        /// The offending value (or the offending list item).
        value: String,
        /// What is wrong and what to write instead.
        reason: String,
    },

    /// A parameter that neither DFP nor flowproxy knows (a typo, or another tool's label).
    #[error(
        "{param} is not a Docker Flow Proxy parameter; check its spelling (names are case-sensitive) or remove it"
    )]
    UnknownParam {
        /// The parameter as it was given.
        param: String,
    },

    /// A DFP parameter that flowproxy does not honour: accepting it would change nothing.
    #[error("{param} is refused: {reason}")]
    Refused {
        /// The parameter as it was given.
        param: String,
        /// Why, and what to use instead.
        reason: &'static str,
    },

    /// A parameter value exceeds [`MAX_VALUE_LEN`] bytes.
    #[error("{param} is longer than 1024 bytes; shorten it")]
    TooLong {
        /// The parameter as it was given.
        param: String,
    },

    /// A regular expression (`servicePath` with `pathType=path_reg`, or
    /// `reqPathSearchReplace`) does not compile.
    #[error("{param} is not a valid regular expression: {reason}; fix the pattern")]
    BadRegex {
        /// The parameter as it was given.
        param: String,
        /// The regex compiler's explanation.
        reason: String,
    },

    /// Another service already owns this route.
    #[error(
        "{route} is already routed to service {owner}; remove {owner} first or give {service} another path or domain"
    )]
    Conflict {
        /// The contested route, e.g. `path_beg /demo on any host`.
        route: String,
        /// The service that already has it.
        owner: String,
        /// The service that asked for it.
        service: String,
    },
}

impl RouteError {
    /// HTTP status for DFP's response envelope: 409 for conflicts and the
    /// label-only case DFP itself answers with 409, 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            RouteError::MissingPathOrDomain | RouteError::Conflict { .. } => 409,
            _ => 400,
        }
    }

    /// Shorthand for [`RouteError::InvalidValue`].
    pub(super) fn invalid(param: &str, value: &str, reason: impl Into<String>) -> RouteError {
        RouteError::InvalidValue {
            param: param.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dfp_messages_are_verbatim() {
        assert_eq!(
            RouteError::MissingServiceName.to_string(),
            "serviceName parameter is mandatory."
        );
        assert_eq!(
            RouteError::MissingPort.to_string(),
            r#"When MODE is set to "service" or "swarm", the port query is mandatory"#
        );
    }

    #[test]
    fn statuses_follow_dfp() {
        assert_eq!(RouteError::MissingServiceName.status(), 400);
        assert_eq!(RouteError::MissingPathOrDomain.status(), 409);
        assert_eq!(RouteError::TcpNeedsPorts.status(), 400);
        assert_eq!(RouteError::TooLong { param: "x".into() }.status(), 400);
        let conflict = RouteError::Conflict {
            route: "path_beg /demo on any host".into(),
            owner: "a".into(),
            service: "b".into(),
        };
        assert_eq!(conflict.status(), 409);
        assert!(conflict.to_string().contains("service a"));
    }

    #[test]
    fn invalid_value_escapes_control_characters() {
        let err = RouteError::invalid("port", "80\n80", "must be a number");
        let msg = err.to_string();
        assert!(msg.starts_with("port=\"80\\n80\""), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
