//! `goheap_check()`: walk the heap and verify every invariant that can be
//! checked without stopping other threads.
//!
//! * the page allocator: summaries at every level equal those recomputed
//!   from the chunk bitmaps, and its counters match;
//! * the arena map: every page attributed to a live span lies inside it and
//!   is allocated in the page allocator;
//! * mcentral: every span on a list is live, unowned, of the list's class,
//!   on the right list for its count (none on the empty list), and its
//!   count equals its alloc bits.
//!   (An empty span may sit on a partial list: queued or pinned when it was
//!   settled, see central.rs.)

use crate::central;
use crate::heap;
use crate::platform::out::Line;
use crate::span::{LIST_EMPTY, LIST_FULL, LIST_PARTIAL, STATE_SMALL, UNOWNED};
use core::sync::atomic::Ordering;

pub fn check() -> Result<(), &'static str> {
    heap::check()?;
    let mut err: Option<&'static str> = None;
    central::for_each_span(|class, s, list| {
        // SAFETY: spans on a central list are live while its lock is held (for_each_span holds it).
        let sp = unsafe { &*s };
        let e = if sp.state.load(Ordering::Relaxed) != STATE_SMALL {
            Some("central list holds a span that is not a live small span")
        } else if sp.class as usize != class {
            Some("central list holds a span of another class")
        } else if sp.owner.load(Ordering::SeqCst) != UNOWNED {
            Some("central list holds an owned span")
        } else if sp.cold().list != list {
            Some("span's list tag disagrees with its list")
        } else if list == LIST_EMPTY && (sp.alloc_count != 0 || sp.count_alloc_bits() != 0) {
            Some("span on the empty list has objects")
        } else if list == LIST_EMPTY {
            None
        } else if sp.alloc_count == 0 && list != LIST_PARTIAL {
            Some("empty span on the full list")
        } else if list == LIST_FULL && sp.worth_reusing() {
            Some("span on the full list has enough free slots for the partial list")
        } else if list == LIST_PARTIAL && !sp.worth_reusing() {
            Some("span on the partial list has too few free slots")
        } else if sp.count_alloc_bits() != sp.alloc_count {
            Some("span's alloc count disagrees with its alloc bits")
        } else {
            None
        };
        if err.is_none() {
            err = e;
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `check`, with what broke printed on stderr: 0 if the invariants hold,
/// else -1 (goheap_check).
pub fn check_and_report() -> core::ffi::c_int {
    match check() {
        Ok(()) => 0,
        Err(msg) => {
            Line::stderr().s(b"goheap: check failed: ").s(msg.as_bytes()).s(b"\n").flush();
            -1
        }
    }
}
