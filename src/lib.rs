//! goheap: a malloc for C and C++ programs built on the Go runtime's
//! allocator design. See `README.md` for use and `docs/DESIGN.md` for the
//! design. Each layer is one module (a file or a folder), and imports only
//! the layers above it in this table (bottom first); a lower layer signals
//! an upper one through a flag the upper one reads or a function pointer
//! installed at start-up, never an import.
//!
//! | layer            | module       | Go runtime        | role                                        |
//! |------------------|--------------|-------------------|---------------------------------------------|
//! | platform         | `platform`   | mem_linux.go      | `Os` trait, locks, TLS words, output        |
//! | settings         | `settings`   | —                 | typed `GOHEAP_*` values (a leaf)            |
//! |                  | `error`      | —                 | misuse reports and fatal errors             |
//! | pages            | `pagealloc`  | mpagealloc.go     | radix tree of page summaries, first fit     |
//! |                  | `fixalloc`   | mfixalloc.go      | off-heap metadata records                   |
//! |                  | `sizeclass`  | sizeclasses.go    | size classes and divMagic                   |
//! | spans            | `span`       | mspan             | a run of pages: alloc bits, alloc cache     |
//! |                  | `arena`      | mheap.go arenas   | 64 MiB arenas, address → span map           |
//! | heap             | `heap`       | mheap.go, mgcscavenge.go | spans and large objects from pages; growth; releasing pages |
//! | central          | `central`    | mcentral.go       | per-class lists of spans no cache holds     |
//! | thread cache     | `cache`      | mcache.go         | per-thread spans; the thread registry       |
//! | malloc/free      | `malloc`     | malloc.go         | routing requests; free and its checks; trim |
//! |                  | `semantics`  | —                 | C's rules: errno, overflow, alignment       |
//! | observers        | `debug`      | —                 | GOHEAP_DEBUG: headers, canaries, quarantine |
//! |                  | `profile`    | mprof.go          | sampled heap profile (GOHEAP_PROFILE)       |
//! |                  | `stats`      | mstats.go         | heap statistics, the exit summary           |
//! |                  | `series`     | —                 | statistics over time (GOHEAP_STATS_INTERVAL) |
//! |                  | `check`      | —                 | goheap_check's invariant walk               |
//! |                  | `hooks`      | —                 | dispatch to side mode, debug mode and the profiler |
//! | C face, life     | `ffi`        | —                 | the C symbols only                          |
//! |                  | `zone`       | —                 | macOS: the malloc zone, dyld interposing    |
//! |                  | `cxx`        | —                 | C++'s operator new/delete (`cxx/operators.cc`) |
//! |                  | `background` | bgscavenge        | the background scavenger's thread           |
//! |                  | `sigfork`    | —                 | fork from a signal handler: side mode       |
//! |                  | `init`       | —                 | start-up, fork, exit                        |
#![allow(clippy::missing_safety_doc)]
// The shipped libraries (the `export` feature) are built without Rust's
// standard library: goheap uses none of it, and linking it brought its
// panic and backtrace machinery along, about 180 KiB of code that every
// program preloading goheap mapped and partly paged in. Tests and the fuzz
// targets (no `export`) keep std for their harnesses. Where the thread-local
// words need std's `thread_local!` (Linux other than x86-64), std stays.
#![cfg_attr(all(feature = "export", not(test), any(all(target_os = "linux", target_arch = "x86_64"), target_os = "macos")), no_std)]

#[cfg(all(feature = "export", not(test), any(all(target_os = "linux", target_arch = "x86_64"), target_os = "macos")))]
mod no_std_items {
    /// A panic is a bug in goheap: say where, then abort (the profile
    /// builds with `panic = "abort"` anyway).
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let mut line = crate::platform::out::Line::stderr();
        line.s(b"goheap: fatal error: internal panic");
        if let Some(at) = info.location() {
            line.s(b" at ").s(at.file().as_bytes()).s(b":").n(at.line() as u64, 0);
        }
        line.s(b"\n").flush();
        crate::platform::os::abort()
    }

    // `core` is compiled to unwind, so its objects name the personality
    // routine, which std would define; with panic = "abort" it never runs.
    // Hidden: other Rust libraries in the process have their own.
    #[cfg(target_os = "linux")]
    core::arch::global_asm!(".globl rust_eh_personality", ".hidden rust_eh_personality");
    #[cfg(target_os = "macos")]
    core::arch::global_asm!(".private_extern _rust_eh_personality");
    #[no_mangle]
    extern "C" fn rust_eh_personality() {}
}

pub mod arena;
pub mod background;
pub mod cache;
pub mod central;
pub mod check;
#[cfg(all(feature = "export", target_os = "linux", target_arch = "x86_64"))]
mod cxx;
pub mod debug;
pub mod error;
pub mod ffi;
pub mod fixalloc;
pub mod heap;
pub mod hooks;
pub mod init;
pub mod malloc;
pub mod pagealloc;
pub mod platform;
pub mod profile;
pub mod semantics;
pub mod series;
pub mod settings;
pub mod sigfork;
pub mod sizeclass;
pub mod span;
pub mod stats;
#[cfg(target_os = "macos")]
pub mod zone;

/// Rust-side allocations inside the library (none on allocation paths; a
/// dependency might make some) must never reach the exported malloc: they
/// get whole pages straight from the OS.
#[cfg(feature = "export")]
mod internal_alloc {
    use crate::platform::os;
    use core::alloc::{GlobalAlloc, Layout};

    struct OsPages;

    const fn pages(l: &Layout) -> usize {
        (l.size() + l.align() + os::OS_PAGE - 1) & !(os::OS_PAGE - 1)
    }

    // SAFETY: every block is its own mapping, page aligned, large enough for size + align.
    unsafe impl GlobalAlloc for OsPages {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            if l.align() > os::OS_PAGE {
                return core::ptr::null_mut();
            }
            os::alloc(pages(&l)).unwrap_or(0) as *mut u8
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            os::free(p as usize, pages(&l));
        }
    }

    #[global_allocator]
    static GLOBAL: OsPages = OsPages;
}
