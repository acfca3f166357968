//! `X-Request-Id`: the id that ties the client's response, the replica's log and the access log
//! together. A client's (or a front load balancer's) id is kept when it is a sane token; any
//! other is replaced by a fresh UUID v4, so one request has exactly one id on every hop.
use hyper::{
    HeaderMap,
    header::{HeaderName, HeaderValue},
};

/// The header's name.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id kept. A UUID is 36 bytes, a ULID 26, an AWS trace id about 40;
/// anything far longer is more likely a way to bloat every log line than an id.
pub const MAX_LEN: usize = 128;

/// Makes sure `headers` carry exactly one acceptable `X-Request-Id`, and returns it.
///
/// One incoming id made only of visible ASCII other than `"` and `\` (so it never needs
/// escaping in a text or JSON log line) and at most [`MAX_LEN`] bytes long is kept as the
/// client sent it. Anything else (absent, empty, repeated, too long, or carrying spaces,
/// control or non-ASCII bytes) is replaced by a generated id: a hostile value must not reach
/// the replica's logs or ours.
pub fn ensure(headers: &mut HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(id), None) = (values.next(), values.next())
        && is_acceptable(id.as_bytes())
    {
        // Parsed header values share the connection's read buffer: this clone does not copy.
        return id.clone();
    }
    let id = generate();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

/// Whether an incoming id is kept (see [`ensure`]).
pub fn is_acceptable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A fresh UUID v4 from the thread's random generator (a ChaCha stream seeded once per thread
/// from the OS, so no system call per request), formatted on the stack.
pub fn generate() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ids: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for id in ids {
            h.append(&X_REQUEST_ID, HeaderValue::from_bytes(id).unwrap());
        }
        h
    }

    fn is_uuid_v4(id: &HeaderValue) -> bool {
        let parsed = uuid::Uuid::try_parse_ascii(id.as_bytes());
        parsed.is_ok_and(|u| u.get_version_num() == 4 && id.len() == 36)
    }

    #[test]
    fn a_sane_incoming_id_is_kept() {
        for id in [
            &b"4bf92f3577b34da6a3ce929d0e0e4736"[..],
            b"01ARZ3NDEKTSV4RRFFQ69G5FAV",
            b"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            b"x",
        ] {
            let mut h = headers(&[id]);
            let got = ensure(&mut h);
            assert_eq!(got.as_bytes(), id);
            assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);
            assert_eq!(h[&X_REQUEST_ID], got);
        }
        let longest = vec![b'a'; MAX_LEN];
        assert!(is_acceptable(&longest));
    }

    #[test]
    fn a_missing_or_hostile_id_is_replaced_by_a_uuid() {
        let too_long = vec![b'a'; MAX_LEN + 1];
        let cases: [&[&[u8]]; 7] = [
            &[],
            &[b""],
            &[&too_long],
            &[b"has space"],
            &[b"tab\there"],
            &[b"quote\"d", b"back\\slash"],
            &[b"one", b"two"],
        ];
        for ids in cases {
            let mut h = headers(ids);
            let got = ensure(&mut h);
            assert!(is_uuid_v4(&got), "{ids:?} -> {got:?}");
            let sent: Vec<_> = h.get_all(&X_REQUEST_ID).iter().collect();
            assert_eq!(sent, [&got], "{ids:?}: the replica gets the new id alone");
        }
        assert!(!is_acceptable("café".as_bytes()));
        assert!(!is_acceptable(b"quote\"d"));
        assert!(!is_acceptable(b"back\\slash"));
    }

    #[test]
    fn generated_ids_differ() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(is_uuid_v4));
    }
}
