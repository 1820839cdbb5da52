//! The background scavenger's thread (process life): started the first
//! time the heap asks for it (`heap::scavenge::note_free_memory`) at a
//! point where the asking thread holds no goheap lock, it wakes every
//! fifth of the release delay, folds other threads' frees into the heap,
//! and releases memory that stayed free for the whole delay (see
//! `heap/scavenge.rs` for the policy). `GOHEAP_BACKGROUND=0` disables it;
//! in a fork child it does not exist until the child needs one.

use crate::cache;
use crate::central;
use crate::heap::{self, scavenge};
use crate::pagealloc::PAGE_SIZE;
use crate::platform::{os, Os, SYS};
use crate::settings;
use core::sync::atomic::{AtomicU64, Ordering};

/// Let the heap start the thread when it wants one (library constructor).
pub fn install() {
    scavenge::set_start_hook(start);
}

/// After a failed start, no new try before this time (`os::nanotime`):
/// the heap asks again at every free of a span, and under an address-space
/// limit each try is a failed mmap of the thread's stack.
static RETRY_AT_NS: AtomicU64 = AtomicU64::new(0);
/// Wait after a failed start.
const RETRY_NS: u64 = 1_000_000_000;

fn start() {
    scavenge::WANTED.store(false, Ordering::Relaxed);
    if !settings::BACKGROUND.load(Ordering::Relaxed) {
        return;
    }
    let retry_at = RETRY_AT_NS.load(Ordering::Relaxed);
    if retry_at != 0 && os::nanotime() < retry_at {
        return;
    }
    if scavenge::WORKER.compare_exchange(scavenge::NOT_STARTED, scavenge::STARTED, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return;
    }
    if !SYS.spawn_thread(worker, c"goheap-scavenge") {
        RETRY_AT_NS.store(os::nanotime() + RETRY_NS, Ordering::Relaxed);
        scavenge::WORKER.store(scavenge::NOT_STARTED, Ordering::Release);
    }
}

/// Fork: the child has no scavenger thread; during the child handler none
/// may be started.
pub fn suppress_in_fork_child() {
    scavenge::WORKER.store(scavenge::SUPPRESSED, Ordering::Relaxed);
}

/// Fork child, at the end of the handler: a thread starts again when needed.
pub fn allow_after_fork_child() {
    scavenge::WANTED.store(false, Ordering::Relaxed);
    scavenge::WORKER.store(scavenge::NOT_STARTED, Ordering::Relaxed);
}

extern "C" fn worker(_: *mut libc::c_void) -> *mut libc::c_void {
    let delay = settings::RELEASE_DELAY_MS.load(Ordering::Relaxed);
    let tick = (delay / 5).clamp(10, 1000);
    let mut pacer = scavenge::Pacer::new((delay / tick) as usize);
    loop {
        SYS.sleep_ms(tick);
        if os::only_own_threads_left() {
            // The program's threads are gone (its main thread called
            // pthread_exit): leave, so that glibc ends the process.
            scavenge::WORKER.store(scavenge::SUPPRESSED, Ordering::Relaxed);
            os::own_thread_exits();
            return core::ptr::null_mut();
        }
        // Spans emptied by other threads' frees go back to the heap first,
        // and so do empty spans mcentral kept but nobody took for a tick.
        // Empty spans thread caches kept but did not use for a whole tick
        // go to mcentral too (so a thread that freed and went to sleep
        // gives them back), and age there with the rest.
        central::drain_all();
        cache::reclaim_empties(Some(central::tick().wrapping_sub(1)));
        central::tick_empties();
        let target = {
            let mut h = heap::lock();
            let lw = h.take_low_water();
            pacer.tick(lw, h.free_unscavenged_bytes(), h.in_use_bytes(), settings::RETAIN_PERCENT.load(Ordering::Relaxed))
        };
        if target >= PAGE_SIZE {
            let r = scavenge::release(target);
            pacer.released(r);
        }
    }
}
