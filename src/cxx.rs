//! C++'s `operator new`/`operator delete` (all twenty replaceable forms),
//! exported under their mangled names (x86-64 Linux: `size_t` is `unsigned
//! long`, `m`). The bodies are C++, in `src/cxx/operators.cc` (compiled by
//! build.rs), which says what they do and why they are C++.
//!
//! Why the names are defined here: a Rust cdylib exports only the crate's
//! own `#[no_mangle]`/`#[export_name]` items (rustc links it with a version
//! script that lists them and makes every other symbol local), so a symbol
//! defined in the C++ object would be linked into libgoheap.so but not
//! exported. Each name is therefore a naked function here, most of them a
//! single `jmp` to the C++ body (three forms differ, see below): rustc
//! exports it like any other item, and the jump leaves no frame of its
//! own, so when the C++ code throws `std::bad_alloc` the unwinder goes from
//! the C++ frame straight to the caller and never meets a Rust frame (this
//! crate is built with `panic = "abort"`). In libgoheap.a the names are in the crate's object,
//! whose other symbols (malloc, ...) make the linker take it, so a program
//! linked with libgoheap.a gets goheap's operators whenever it gets goheap.
//!
//! Each function also carries a hidden label `<body>_sym`: the C++ code
//! compares it with the address the name resolved to, to tell goheap's
//! definition from a program's own replacement of the same form.
//!
//! Three forms, the ones nearly every C++ program calls, skip their C++
//! body on the common path (at the end of this file): `operator new(size_t)`
//! calls goheap_malloc's body directly and jumps to the C++ new_handler loop
//! only if that fails; `operator delete(void*)` and `operator
//! delete(void*, size_t)` jump straight to goheap_free's and
//! goheap_free_sized's bodies (`ffi::for_cxx`, not exported, so no PLT).
//! That saves 4 instructions and two indirect jumps per new+delete. The
//! profiler counts operator new's stub and the allocating C++ bodies as
//! goheap's own frames (`entry_points`), so a sampled `new` is charged to
//! the code that wrote it.

macro_rules! operators {
    ($($export:literal => $body:ident;)*) => {
        mod bodies {
            extern "C" {
                $(pub(super) fn $body();)*
            }
        }
        $(
            #[unsafe(naked)]
            #[export_name = $export]
            unsafe extern "C" fn $body() {
                core::arch::naked_asm!(
                    // unwind information for the one instruction, for
                    // debuggers and profilers that stop on it
                    ".cfi_startproc",
                    concat!(".globl ", stringify!($body), "_sym"),
                    concat!(".hidden ", stringify!($body), "_sym"),
                    concat!(stringify!($body), "_sym:"),
                    "jmp {}",
                    ".cfi_endproc",
                    sym bodies::$body,
                )
            }
        )*
    };
}

operators! {
    "_Znam" => goheap_cxx_new_array;
    "_ZnwmRKSt9nothrow_t" => goheap_cxx_new_nothrow;
    "_ZnamRKSt9nothrow_t" => goheap_cxx_new_array_nothrow;
    "_ZnwmSt11align_val_t" => goheap_cxx_new_aligned;
    "_ZnamSt11align_val_t" => goheap_cxx_new_array_aligned;
    "_ZnwmSt11align_val_tRKSt9nothrow_t" => goheap_cxx_new_aligned_nothrow;
    "_ZnamSt11align_val_tRKSt9nothrow_t" => goheap_cxx_new_array_aligned_nothrow;
    "_ZdlPvRKSt9nothrow_t" => goheap_cxx_delete_nothrow;
    "_ZdaPv" => goheap_cxx_delete_array;
    "_ZdaPvm" => goheap_cxx_delete_array_sized;
    "_ZdaPvRKSt9nothrow_t" => goheap_cxx_delete_array_nothrow;
    "_ZdlPvSt11align_val_t" => goheap_cxx_delete_aligned;
    "_ZdlPvmSt11align_val_t" => goheap_cxx_delete_sized_aligned;
    "_ZdlPvSt11align_val_tRKSt9nothrow_t" => goheap_cxx_delete_aligned_nothrow;
    "_ZdaPvSt11align_val_t" => goheap_cxx_delete_array_aligned;
    "_ZdaPvmSt11align_val_t" => goheap_cxx_delete_array_sized_aligned;
    "_ZdaPvSt11align_val_tRKSt9nothrow_t" => goheap_cxx_delete_array_aligned_nothrow;
}

// The three forms nearly every C++ program calls, without the C++ body or
// the PLT on their common path (the others jump to their C++ bodies as
// above). Each keeps the hidden label that names goheap's definition.

mod slow_bodies {
    extern "C" {
        /// operator new's new_handler loop after a failed attempt (C++).
        pub(super) fn goheap_cxx_new_retry();
        /// operator delete(void*, size_t) when the program replaced
        /// operator delete(void*) (C++: it calls the replacement).
        pub(super) fn goheap_cxx_delete_sized();
        /// The new_handler loops every allocating C++ body ends in after a
        /// failed attempt (for `entry_points`).
        pub(super) fn goheap_cxx_retry();
        pub(super) fn goheap_cxx_retry_nothrow();
    }
}

/// `operator new(size_t)`: one attempt in Rust (goheap_malloc's body, a
/// direct call); if it fails, a jump to the C++ loop that calls the
/// new_handler and throws `std::bad_alloc`. The jump happens after this
/// stub popped what it pushed, so the C++ frame unwinds straight to the
/// caller; the call's own frame is described for unwinders and profilers.
#[unsafe(naked)]
#[export_name = "_Znwm"]
unsafe extern "C" fn goheap_cxx_new() {
    core::arch::naked_asm!(
        ".cfi_startproc",
        ".globl goheap_cxx_new_sym",
        ".hidden goheap_cxx_new_sym",
        "goheap_cxx_new_sym:",
        // Keeps the size for the retry and aligns the stack for the call.
        "push rdi",
        ".cfi_adjust_cfa_offset 8",
        "call {attempt}",
        "pop rdi",
        ".cfi_adjust_cfa_offset -8",
        "test rax, rax",
        "jz {retry}",
        "ret",
        ".cfi_endproc",
        attempt = sym crate::ffi::for_cxx::new_attempt,
        retry = sym slow_bodies::goheap_cxx_new_retry,
    )
}

/// `operator delete(void*)`: goheap_free's body, one direct jump away.
#[unsafe(naked)]
#[export_name = "_ZdlPv"]
unsafe extern "C" fn goheap_cxx_delete() {
    core::arch::naked_asm!(
        ".cfi_startproc",
        ".globl goheap_cxx_delete_sym",
        ".hidden goheap_cxx_delete_sym",
        "goheap_cxx_delete_sym:",
        "jmp {delete}",
        ".cfi_endproc",
        delete = sym crate::ffi::for_cxx::delete,
    )
}

/// `operator delete(void*, size_t)`: the standard's default calls
/// `operator delete(void*)`, so if the name resolved to something other
/// than goheap's (the program replaced it), the C++ body calls that;
/// otherwise goheap_free_sized's body, one direct jump away. The address
/// `_ZdlPv` resolved to is read from the GOT, as the C++ body reads it.
#[unsafe(naked)]
#[export_name = "_ZdlPvm"]
unsafe extern "C" fn goheap_cxx_delete_sized() {
    core::arch::naked_asm!(
        ".cfi_startproc",
        ".globl goheap_cxx_delete_sized_sym",
        ".hidden goheap_cxx_delete_sized_sym",
        "goheap_cxx_delete_sized_sym:",
        "mov rax, qword ptr [rip + _ZdlPv@GOTPCREL]",
        "lea rcx, [rip + goheap_cxx_delete_sym]",
        "cmp rax, rcx",
        "jne {replaced}",
        "jmp {delete_sized}",
        ".cfi_endproc",
        replaced = sym slow_bodies::goheap_cxx_delete_sized,
        delete_sized = sym crate::ffi::for_cxx::delete_sized,
    )
}

/// The functions a sampled allocation's stack should not show
/// (profile/stack.rs keeps a stack from below the last of them): the one
/// stub that has a frame of its own (operator new's), the C++ bodies that
/// allocate and the new_handler loops they end in. With them the stack of
/// a `new` starts at the caller, as a `malloc`'s does.
pub(crate) fn entry_points() -> [usize; 11] {
    [
        goheap_cxx_new as *const () as usize,
        slow_bodies::goheap_cxx_new_retry as *const () as usize,
        slow_bodies::goheap_cxx_retry as *const () as usize,
        slow_bodies::goheap_cxx_retry_nothrow as *const () as usize,
        bodies::goheap_cxx_new_array as *const () as usize,
        bodies::goheap_cxx_new_nothrow as *const () as usize,
        bodies::goheap_cxx_new_array_nothrow as *const () as usize,
        bodies::goheap_cxx_new_aligned as *const () as usize,
        bodies::goheap_cxx_new_array_aligned as *const () as usize,
        bodies::goheap_cxx_new_aligned_nothrow as *const () as usize,
        bodies::goheap_cxx_new_array_aligned_nothrow as *const () as usize,
    ]
}
