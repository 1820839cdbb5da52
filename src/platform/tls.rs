//! Thread-local words that never allocate.
//!
//! goheap keeps its per-thread state in a few machine words with no
//! destructor: a `thread_local!` with a destructor makes glibc call calloc
//! (`__cxa_thread_atexit_impl`), which would re-enter the allocator. On
//! x86-64 Linux each word is an 8-byte `.tbss` slot read with the
//! initial-exec model (one `%fs`-relative load, no `__tls_get_addr` call);
//! stable Rust cannot choose the TLS model of a `thread_local!`. On other
//! Linux targets a const-initialised `thread_local!` without Drop registers
//! no destructor and so never allocates either.
//!
//! On macOS a `thread_local!` (a `__thread` variable) is reached through
//! dyld's `tlv_get_addr`, which on a thread's first access to the image's
//! TLS allocates the block with malloc: inside malloc, a recursion. So each
//! word there is a pthread key (a slot of the thread's TSD array, which
//! never allocates): read with `pthread_getspecific`, a few instructions
//! in libsystem_pthread. The key is made on the first `set` (the first
//! malloc may come from another image's initialiser, before goheap's
//! constructor); until then every thread's word reads 0. Two threads racing
//! to make it keep the first key and delete the other. mimalloc instead
//! writes a TSD slot it assumes Apple leaves unused; a key is the public way.
//! Keys have no destructor: a word stays readable while the registry's own
//! key destructor runs at thread exit.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
macro_rules! tls_word {
    ($(#[$doc:meta])* $m:ident, $sym:literal) => {
        $(#[$doc])*
        pub mod $m {
            core::arch::global_asm!(
                ".pushsection .tbss,\"awT\",@nobits",
                ".p2align 3",
                concat!(".globl ", $sym),
                concat!(".hidden ", $sym),
                concat!(".type ", $sym, ",@object"),
                concat!(".size ", $sym, ",8"),
                concat!($sym, ":"),
                ".zero 8",
                ".popsection",
            );

            #[inline(always)]
            pub fn get() -> usize {
                let v: usize;
                // SAFETY: reads this thread's slot through its initial-exec TP offset.
                unsafe {
                    core::arch::asm!(
                        concat!("mov {v}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov {v}, qword ptr fs:[{v}]",
                        v = out(reg) v,
                        options(nostack, readonly, preserves_flags)
                    );
                }
                v
            }

            #[inline(always)]
            pub fn set(val: usize) {
                // SAFETY: writes this thread's slot through its initial-exec TP offset.
                unsafe {
                    core::arch::asm!(
                        concat!("mov {t}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov qword ptr fs:[{t}], {v}",
                        t = out(reg) _,
                        v = in(reg) val,
                        options(nostack, preserves_flags)
                    );
                }
            }
        }
    };
}

#[cfg(target_os = "macos")]
macro_rules! tls_word {
    ($(#[$doc:meta])* $m:ident, $sym:literal) => {
        $(#[$doc])*
        pub mod $m {
            use core::sync::atomic::{AtomicUsize, Ordering};

            /// The pthread key plus one; 0 until the first `set` makes it.
            static KEY: AtomicUsize = AtomicUsize::new(0);

            #[inline(always)]
            pub fn get() -> usize {
                let k = KEY.load(Ordering::Acquire);
                if k == 0 {
                    return 0;
                }
                // SAFETY: k - 1 is a live key (never deleted once published).
                unsafe { libc::pthread_getspecific((k - 1) as libc::pthread_key_t) as usize }
            }

            #[inline(always)]
            pub fn set(v: usize) {
                let mut k = KEY.load(Ordering::Acquire);
                if k == 0 {
                    k = super::make_key(&KEY);
                }
                // SAFETY: as in get; setting a key's value only writes this thread's slot.
                unsafe { libc::pthread_setspecific((k - 1) as libc::pthread_key_t, v as *const libc::c_void) };
            }
        }
    };
}

/// Make the pthread key of a word on macOS (see the module comment):
/// returns it plus one. A key cannot be had only when all of the process's
/// keys are taken: nothing is left to do then but stop.
#[cfg(target_os = "macos")]
#[cold]
fn make_key(slot: &core::sync::atomic::AtomicUsize) -> usize {
    use core::sync::atomic::Ordering;
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: pthread_key_create writes the new key; no destructor.
    if unsafe { libc::pthread_key_create(&mut key, None) } != 0 {
        super::os::write_stderr(b"goheap: no pthread key left for a thread-local word\n");
        super::os::abort();
    }
    match slot.compare_exchange(0, key as usize + 1, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => key as usize + 1,
        Err(won) => {
            // SAFETY: our key, never published, so nobody else uses it.
            unsafe { libc::pthread_key_delete(key) };
            won
        }
    }
}

#[cfg(not(any(all(target_arch = "x86_64", target_os = "linux"), target_os = "macos")))]
macro_rules! tls_word {
    ($(#[$doc:meta])* $m:ident, $sym:literal) => {
        $(#[$doc])*
        pub mod $m {
            use core::cell::Cell;
            std::thread_local! { static SLOT: Cell<usize> = const { Cell::new(0) }; }

            #[inline(always)]
            pub fn get() -> usize {
                SLOT.with(|s| s.get())
            }

            #[inline(always)]
            pub fn set(v: usize) {
                SLOT.with(|s| s.set(v))
            }
        }
    };
}

tls_word!(
    /// The thread's cache word (see `cache`): a sentinel or the cache's address.
    cache,
    "__goheap_tls_cache"
);
tls_word!(
    /// Bytes left until this thread's next profile sample (signed).
    prof_next,
    "__goheap_tls_prof_next"
);
tls_word!(
    /// The profiler's xorshift64* state; 0 = no countdown drawn yet.
    prof_rng,
    "__goheap_tls_prof_rng"
);
tls_word!(
    /// Non-zero while this thread is taking a profile sample (re-entrancy guard).
    prof_busy,
    "__goheap_tls_prof_busy"
);
tls_word!(
    /// This thread's lock id (`lock::thread_id`); 0 = none drawn yet.
    lock_id,
    "__goheap_tls_lockid"
);
