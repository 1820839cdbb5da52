//! Writing the profile in gperftools' heap-profile text format
//! (`heap_v2/<rate>`, which pprof reads and unsamples), then the process's
//! memory map, with raw system calls (never cancellation points) and a
//! stack buffer.

use super::tables::PROF;
use super::{busy, on, owner};
use crate::platform::os;
use crate::platform::out::Out;
use crate::settings;
use core::ffi::c_int;
use core::sync::atomic::Ordering;

/// Profiles are written through a 4 KiB buffer.
type Writer = Out<4096>;

/// One line in gperftools' format: in-use, then allocated, objects: bytes.
fn counts_line(w: &mut Writer, inuse: (u64, u64), alloc: (u64, u64)) {
    w.n(inuse.0, 6).s(b": ").n(inuse.1, 8).s(b" [").n(alloc.0, 6).s(b": ").n(alloc.1, 8).s(b"] @");
}

fn write_profile(w: &mut Writer) {
    let t = PROF.lock();
    let (mut ao, mut ab, mut fo, mut fb) = (0u64, 0u64, 0u64, 0u64);
    for id in 1..=t.nbuckets as u32 {
        // SAFETY: live bucket.
        let b = unsafe { &*t.bucket(id) };
        ao += b.alloc_objs;
        ab += b.alloc_bytes;
        fo += b.free_objs;
        fb += b.free_bytes;
    }
    w.s(b"heap profile: ");
    counts_line(w, (ao - fo, ab - fb), (ao, ab));
    w.s(b" heap_v2/").n(settings::PROFILE_RATE.load(Ordering::Relaxed) as u64, 0).s(b"\n");
    for id in 1..=t.nbuckets as u32 {
        // SAFETY: live bucket.
        let b = unsafe { &*t.bucket(id) };
        if b.alloc_objs == 0 {
            continue;
        }
        counts_line(w, (b.alloc_objs - b.free_objs, b.alloc_bytes - b.free_bytes), (b.alloc_objs, b.alloc_bytes));
        for &pc in b.frames() {
            w.s(b" ").hex(pc);
        }
        w.s(b"\n");
    }
    drop(t);
    w.s(b"\nMAPPED_LIBRARIES:\n");
    let maps = os::sys_open(c"/proc/self/maps", libc::O_RDONLY | libc::O_CLOEXEC, 0);
    if maps < 0 {
        return;
    }
    w.copy_from(|buf| loop {
        let n = os::sys_read(maps, buf);
        if n < 0 && os::errno() == libc::EINTR {
            continue;
        }
        return n;
    });
    os::sys_close(maps);
}

/// Write the profile to `path` (None: the `GOHEAP_PROFILE` path).
/// Ok, or Err(errno).
pub fn dump(path: Option<&[u8]>) -> Result<(), c_int> {
    if !on() {
        return Err(libc::EINVAL);
    }
    let template = path.or_else(|| settings::PROFILE_PATH.get()).unwrap_or(b"");
    // Whatever this thread allocates while writing (nothing, normally) is
    // not sampled: the table lock is held.
    let was_busy = busy::get();
    busy::set(1);
    let r = match os::create_file(template) {
        Err(e) => Err(e),
        Ok(fd) => {
            let mut w = Writer::new(fd);
            write_profile(&mut w);
            w.flush();
            let closed = os::sys_close(fd) == 0;
            if let Some(e) = w.error() {
                Err(e)
            } else if !closed {
                Err(os::errno())
            } else {
                Ok(())
            }
        }
    };
    busy::set(was_busy);
    r
}

/// At exit: write the profile, in the process that enabled it only (a fork
/// child that exits must not overwrite its parent's profile).
pub fn at_exit() {
    if on() && owner() {
        let e = os::errno();
        if let Err(err) = dump(None) {
            os::set_errno(err);
            os::write_stderr(b"goheap: could not write the heap profile (GOHEAP_PROFILE)\n");
        }
        os::set_errno(e);
    }
}
