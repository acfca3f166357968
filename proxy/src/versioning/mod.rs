//! Versions of what replicas share, so that they merge instead of replacing each other:
//! - the hybrid logical clock that stamps every change where it is made (`hlc.rs`);
//! - the pure per-entry merge with tombstones (`merge.rs`);
//! - every entry's stamp and the digest replicas compare (`table.rs`).
mod hlc;
mod merge;
mod table;

pub use hlc::{Hlc, Version};
pub use merge::{Entries, Entry, changes_from};
pub use table::{Kind, Stamp, Versions};
