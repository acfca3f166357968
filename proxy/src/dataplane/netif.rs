//! Interface names and indexes of the current network namespace.
use std::ffi::{CStr, CString};

/// The index of interface `name`, or `None` if there is no such interface.
pub fn index_of(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    // Safety: `c_name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The name of interface `index`, or `None` if it no longer exists.
pub fn name_of(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // Safety: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let ptr = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if ptr.is_null() {
        return None;
    }
    // Safety: on success the buffer holds a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_round_trips() {
        let index = index_of("lo").expect("every namespace has lo");
        assert_eq!(name_of(index).as_deref(), Some("lo"));
    }

    #[test]
    fn unknown_names_have_no_index() {
        assert_eq!(index_of("flowproxy-nope0"), None);
        assert_eq!(index_of("bad\0name"), None);
    }
}
