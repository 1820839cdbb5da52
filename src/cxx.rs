//! C++'s `operator new`/`operator delete` (all twenty replaceable forms),
//! exported under their mangled names (x86-64 Linux: `size_t` is `unsigned
//! long`, `m`). The bodies are C++, in `src/cxx/operators.cc` (compiled by
//! build.rs), which says what they do and why they are C++.
//!
//! Why the names are defined here: a Rust cdylib exports only the crate's
//! own `#[no_mangle]`/`#[export_name]` items (rustc links it with a version
//! script that lists them and makes every other symbol local), so a symbol
//! defined in the C++ object would be linked into libgoheap.so but not
//! exported. Each name is therefore a naked function here whose whole body
//! is a `jmp` to its C++ body: rustc exports it like any other item, and the
//! jump leaves no frame of its own, so when the C++ code throws
//! `std::bad_alloc` the unwinder goes from the C++ frame straight to the
//! caller and never meets a Rust frame (this crate is built with
//! `panic = "abort"`). In libgoheap.a the names are in the crate's object,
//! whose other symbols (malloc, ...) make the linker take it, so a program
//! linked with libgoheap.a gets goheap's operators whenever it gets goheap.
//!
//! Each function also carries a hidden label `<body>_sym`: the C++ code
//! compares it with the address the name resolved to, to tell goheap's
//! definition from a program's own replacement of the same form.

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
    "_Znwm" => goheap_cxx_new;
    "_Znam" => goheap_cxx_new_array;
    "_ZnwmRKSt9nothrow_t" => goheap_cxx_new_nothrow;
    "_ZnamRKSt9nothrow_t" => goheap_cxx_new_array_nothrow;
    "_ZnwmSt11align_val_t" => goheap_cxx_new_aligned;
    "_ZnamSt11align_val_t" => goheap_cxx_new_array_aligned;
    "_ZnwmSt11align_val_tRKSt9nothrow_t" => goheap_cxx_new_aligned_nothrow;
    "_ZnamSt11align_val_tRKSt9nothrow_t" => goheap_cxx_new_array_aligned_nothrow;
    "_ZdlPv" => goheap_cxx_delete;
    "_ZdlPvm" => goheap_cxx_delete_sized;
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
