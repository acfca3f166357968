//! Our own limits on a request's head: the whole head (`--max-header-bytes`) and any one
//! header value (`--max-header-value-bytes`). hyper's own limits are only a ceiling for its
//! buffers; checking here lets the 431 say which limit was hit, the same way for HTTP/1.1
//! and HTTP/2.
use hyper::{HeaderMap, Method, Uri};

/// The head limits, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// The whole head: request line and every field, counted as on the HTTP/1.1 wire.
    pub head_bytes: usize,
    /// One header value.
    pub value_bytes: usize,
}

impl HeaderLimits {
    /// What hyper's parsers may buffer (`max_buf_size`, HTTP/2 `max_header_list_size`): room
    /// above our limit, so a head somewhat over it still reaches the check below and gets a
    /// 431 that names the limit; beyond that hyper answers 431 itself (without a body) and
    /// no connection buffers more.
    pub fn parser_ceiling(&self) -> usize {
        // hyper refuses a max_buf_size under 8 KiB.
        (self.head_bytes.max(self.value_bytes) * 4).max(16 * 1024)
    }
}

/// The limit a head broke (answered with 431).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderTooLarge {
    /// The whole head.
    #[error("the request head is {size} bytes; the limit is {limit} (--max-header-bytes)")]
    Head {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// One header's value.
    #[error(
        "the request header {name} is {size} bytes; the limit is {limit} (--max-header-value-bytes)"
    )]
    Value {
        /// The header's name.
        name: String,
        /// Its value's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Checks a request's head against `limits`.
pub fn check_head(
    limits: &HeaderLimits,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), HeaderTooLarge> {
    // `METHOD SP target SP HTTP/1.1 CRLF`, then `name: value CRLF` per field, then CRLF.
    let target = uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    let mut size = method.as_str().len() + target + 12 + 2;
    for (name, value) in headers {
        if value.len() > limits.value_bytes {
            return Err(HeaderTooLarge::Value {
                name: name.as_str().to_owned(),
                size: value.len(),
                limit: limits.value_bytes,
            });
        }
        size += name.as_str().len() + value.len() + 4;
    }
    if size > limits.head_bytes {
        return Err(HeaderTooLarge::Head {
            size,
            limit: limits.head_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hyper::header::{HeaderName, HeaderValue};

    use super::*;

    const LIMITS: HeaderLimits = HeaderLimits {
        head_bytes: 200,
        value_bytes: 50,
    };

    fn head(fields: &[(&str, usize)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, len) in fields {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&"v".repeat(*len)).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_head_within_limits_passes_and_each_limit_is_named() {
        let uri: Uri = "/demo/hello".parse().unwrap();
        let ok = head(&[("host", 10), ("x-a", 50)]);
        assert_eq!(check_head(&LIMITS, &Method::GET, &uri, &ok), Ok(()));
        let one_big = head(&[("host", 10), ("x-big", 51)]);
        assert_eq!(
            check_head(&LIMITS, &Method::GET, &uri, &one_big),
            Err(HeaderTooLarge::Value {
                name: "x-big".into(),
                size: 51,
                limit: 50
            })
        );
        // GET(3) + target(11) + 14, then 4 fields of 3 + 40 + 4: 28 + 188 = 216 > 200.
        let many = head(&[("x-a", 40), ("x-b", 40), ("x-c", 40), ("x-d", 40)]);
        let err = check_head(&LIMITS, &Method::GET, &uri, &many).unwrap_err();
        assert_eq!(
            err,
            HeaderTooLarge::Head {
                size: 216,
                limit: 200
            }
        );
        assert!(err.to_string().contains("--max-header-bytes"), "{err}");
    }

    #[test]
    fn the_parser_ceiling_leaves_room_above_the_limits() {
        let limits = HeaderLimits {
            head_bytes: 32 * 1024,
            value_bytes: 8 * 1024,
        };
        assert_eq!(limits.parser_ceiling(), 128 * 1024);
        assert_eq!(LIMITS.parser_ceiling(), 16 * 1024);
    }
}
