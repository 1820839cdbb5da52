//! Thread-local words that never allocate.
//!
//! goheap keeps its per-thread state in a few machine words with no
//! destructor: a `thread_local!` with a destructor makes glibc call calloc
//! (`__cxa_thread_atexit_impl`), which would re-enter the allocator. On
//! x86-64 Linux each word is an 8-byte `.tbss` slot read with the
//! initial-exec model (one `%fs`-relative load, no `__tls_get_addr` call);
//! stable Rust cannot choose the TLS model of a `thread_local!`. Elsewhere a
//! const-initialised `thread_local!` without Drop registers no destructor
//! and so never allocates either.

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

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
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
