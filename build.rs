//! Compiles src/cxx/operators.cc, the bodies of C++'s operator new/delete
//! (see src/cxx.rs for why they are C++ and how they are exported), when the
//! library exports the unprefixed names (the `export` feature) on x86-64
//! Linux. `cargo test --no-default-features` needs no C++ compiler.
//!
//! No C++ standard library is linked (`cpp_link_stdlib(None)`): the object
//! refers to libstdc++ only through weak symbols, so libgoheap.so gets no
//! DT_NEEDED on it and C programs never load it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cxx/operators.cc");
    println!("cargo:rerun-if-changed=include/goheap.h");
    let export = std::env::var_os("CARGO_FEATURE_EXPORT").is_some();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if !export || os != "linux" || arch != "x86_64" {
        return;
    }
    cc::Build::new()
        .cpp(true)
        .cpp_link_stdlib(None)
        .file("src/cxx/operators.cc")
        .include("include")
        .std("c++17")
        // unwind tables and EH for every frame (the default, made explicit)
        .flag("-fexceptions")
        .flag("-fvisibility=hidden")
        // no frame pointer: the delete bodies end in a tail call
        .force_frame_pointer(false)
        .warnings(true)
        .extra_warnings(true)
        .compile("goheap_cxx");
}
