//! A service's header rules (`addReqHeader`, `setResHeader`, `delReqHeader`, ...), applied
//! to the request before it goes to the replica and to the response before it goes back.
use hyper::{
    HeaderMap,
    header::{HeaderName, HeaderValue},
};

use crate::routes::HeaderRules;

/// Deletes, then sets, then adds, so that `del` + `add` of one name replaces it and a
/// `set` is never undone by an `add`'s duplicate. Names and values were validated when the
/// service was configured; one that still does not convert is skipped.
pub fn apply(headers: &mut HeaderMap, rules: &HeaderRules) {
    if rules.is_empty() {
        return;
    }
    for name in &rules.del {
        headers.remove(name.as_str());
    }
    for (name, value) in &rules.set {
        if let Some((name, value)) = convert(name, value) {
            headers.insert(name, value);
        }
    }
    for (name, value) in &rules.add {
        if let Some((name, value)) = convert(name, value) {
            headers.append(name, value);
        }
    }
}

fn convert(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_bytes(name.as_bytes()).ok()?,
        HeaderValue::from_str(value).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_delete_set_and_add() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("old"));
        h.insert("x-secret", HeaderValue::from_static("s"));
        h.insert("x-b", HeaderValue::from_static("one"));
        let rules = HeaderRules {
            add: vec![("X-B".into(), "two".into())],
            set: vec![("X-A".into(), "new".into())],
            del: vec!["X-Secret".into()],
        };
        apply(&mut h, &rules);
        assert_eq!(h["x-a"], "new");
        assert!(!h.contains_key("x-secret"));
        let b: Vec<_> = h.get_all("x-b").iter().collect();
        assert_eq!(b, ["one", "two"]);
    }
}
