// C++'s replaceable allocation functions, served by goheap: the bodies of
// the twenty forms of operator new/delete (plain, array, nothrow, sized,
// and the C++17 std::align_val_t forms), except the common paths of
// operator new(size_t), operator delete(void*) and operator delete(void*,
// size_t), which src/cxx.rs sends straight to goheap's Rust bodies.
//
// Why C++ and not Rust: operator new must call the program's new_handler
// and throw std::bad_alloc, and the exception has to unwind from here to the
// program's catch. goheap's Rust code is built with panic = "abort", so no
// Rust frame may be on the stack while it unwinds. This file is compiled
// with -fexceptions (unwind tables for every frame here) by build.rs; the
// exported names (_Znwm, _ZdlPvm, ...) are defined in src/cxx.rs as naked
// Rust functions that jump into the bodies below, because a Rust cdylib
// exports only the crate's own #[no_mangle]/#[export_name] items (see
// src/cxx.rs). A jump leaves no frame, so the unwinder goes straight from
// these bodies to the caller (operator new's stub calls goheap's malloc
// first, and jumps here only after popping what it pushed).
//
// No dependency on libstdc++: every symbol of the C++ runtime used here
// (std::get_new_handler, __cxa_throw, std::bad_alloc's typeinfo, the
// personality routine, ...) is a weak reference, so libgoheap.so has no
// DT_NEEDED on libstdc++ and a C program that preloads it never loads one.
// In a C++ program the runtime is there and the references resolve. A C
// program that later loads C++ code (a plugin, with dlopen) has them null
// for good (they are bound at load), yet that code's operator new calls
// reach goheap's: there the new_handler and the throw are looked up with
// dlsym when they are needed (`runtime_symbol`, `throw_bad_alloc`). A
// program with no C++ runtime at all that calls these functions (through
// dlsym) gets a message and abort() where a C++ program would get bad_alloc.
//
// Semantics are the standard's ([new.delete]): operator new loops calling
// the current new_handler while allocation fails and throws bad_alloc when
// there is none; the nothrow forms return null instead (and also when the
// handler throws); new(0) returns a unique pointer; the align_val_t forms
// take any power of two; delete(nullptr) does nothing. The forms whose
// default behaviour the standard defines as a call of another form
// (new[] calls new, the nothrow forms the throwing ones, sized delete the
// unsized one, delete[] delete, ...) do exactly that when the program has
// replaced that other form, so a program that replaces only operator
// new(size_t) and operator delete(void*) still gets all its memory from
// them; otherwise they go straight to goheap, passing the size on for
// sized delete (goheap_free_sized checks it in GOHEAP_DEBUG=1 mode).

#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include <new>

#include "goheap.h"

// ---- the C++ runtime, referenced weakly ----

namespace std {
new_handler get_new_handler() noexcept __attribute__((weak));
}

extern "C" {
void *__cxa_allocate_exception(size_t) noexcept __attribute__((weak));
[[noreturn]] void __cxa_throw(void *, void *, void (*)(void *)) __attribute__((weak));
// std::bad_alloc's typeinfo and vtable, under a name of their own so their
// addresses can be tested here (a throw expression refers to them too).
extern const char goheap_cxx_bad_alloc_typeinfo[] __asm__("_ZTISt9bad_alloc") __attribute__((weak));
extern const char goheap_cxx_bad_alloc_vtable[] __asm__("_ZTVSt9bad_alloc") __attribute__((weak));
void goheap_cxx_bad_alloc_dtor(void *) __asm__("_ZNSt9bad_allocD1Ev") __attribute__((weak));
}

// The personality routine of the frames here that catch (C++ only).
extern "C" int __gxx_personality_v0() __attribute__((weak));

// The symbols the compiler itself refers to for `throw` and `catch`: weak
// too. (`nm` on the object, or `make check-symbols` on the libraries, shows
// that no undefined C++ symbol is left strong.)
__asm__(".weak __cxa_begin_catch\n\t"
        ".weak __cxa_end_catch\n\t"
        ".weak __gxx_personality_v0\n\t"
        ".weak _Unwind_Resume\n\t"
        ".weak _ZTISt9bad_alloc\n\t"
        ".weak _ZTVSt9bad_alloc\n\t"
        ".weak _ZNSt9bad_allocD1Ev");

namespace {

// A symbol of a C++ runtime loaded after goheap, or null: in the global
// scope, or in a runtime library already loaded (a plugin dlopened without
// RTLD_GLOBAL brings its libstdc++ in, but not into the global scope).
// RTLD_NOLOAD loads nothing; the handle only keeps a library its loader
// holds anyway.
void *late_symbol(const char *name) {
    if (void *p = dlsym(RTLD_DEFAULT, name)) return p;
    static const char *const runtimes[] = {"libstdc++.so.6", "libc++abi.so.1", "libc++.so.1"};
    for (const char *lib : runtimes) {
        void *h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
        if (h == nullptr) continue;
        void *p = dlsym(h, name);
        dlclose(h);
        if (p != nullptr) return p;
    }
    return nullptr;
}

// A C++ runtime function: the weak reference, or if that is null (no
// runtime when goheap was loaded), the one a later dlopen brought, if any.
template <class F>
F runtime_symbol(F weak, const char *name) {
    return weak != nullptr ? weak : reinterpret_cast<F>(late_symbol(name));
}

std::new_handler current_handler() {
    auto get = runtime_symbol(&std::get_new_handler, "_ZSt15get_new_handlerv");
    return get != nullptr ? get() : nullptr;
}

[[noreturn]] void cannot_throw(const char *msg, size_t len) {
    ssize_t r = write(2, msg, len);
    (void)r;
    abort();
}

// std::bad_alloc is a vtable pointer alone (std::exception has no data).
static_assert(sizeof(std::bad_alloc) == sizeof(void *), "std::bad_alloc is not just a vtable pointer");

// Throw std::bad_alloc with a C++ runtime loaded after goheap (dlopen): the
// throw expression's references are null, so build the exception as the
// compiler would, with what dlsym finds.
[[noreturn]] void throw_bad_alloc_late() {
    using alloc_fn = void *(*)(size_t);
    using throw_fn = void (*)(void *, void *, void (*)(void *));
    auto alloc = reinterpret_cast<alloc_fn>(late_symbol("__cxa_allocate_exception"));
    auto raise = reinterpret_cast<throw_fn>(late_symbol("__cxa_throw"));
    void *typeinfo = late_symbol("_ZTISt9bad_alloc");
    char *vtable = static_cast<char *>(late_symbol("_ZTVSt9bad_alloc"));
    auto dtor = reinterpret_cast<void (*)(void *)>(late_symbol("_ZNSt9bad_allocD1Ev"));
    if (alloc == nullptr || raise == nullptr || typeinfo == nullptr || vtable == nullptr || dtor == nullptr) {
        static const char msg[] =
            "goheap: operator new: out of memory, and std::bad_alloc cannot be thrown "
            "(no C++ runtime is loaded)\n";
        cannot_throw(msg, sizeof msg - 1);
    }
    void *e = alloc(sizeof(std::bad_alloc));
    // The object's vtable pointer points past the vtable's offset-to-top
    // and typeinfo words (Itanium C++ ABI), as its constructor would set.
    *static_cast<void **>(e) = vtable + 2 * sizeof(void *);
    raise(e, typeinfo, dtor);
    __builtin_unreachable();
}

[[noreturn]] __attribute__((cold, noinline)) void throw_bad_alloc() {
    if (&__cxa_allocate_exception == nullptr || &__cxa_throw == nullptr) throw_bad_alloc_late();
    if (goheap_cxx_bad_alloc_typeinfo == nullptr || goheap_cxx_bad_alloc_vtable == nullptr ||
        &goheap_cxx_bad_alloc_dtor == nullptr) {
        // A fully static link (-static) in which nothing else refers to
        // std::bad_alloc: a weak reference does not pull it out of libstdc++.a.
        static const char msg[] =
            "goheap: operator new: out of memory, and std::bad_alloc is not linked in "
            "(static link: add -Wl,-u,_ZTISt9bad_alloc)\n";
        cannot_throw(msg, sizeof msg - 1);
    }
    throw std::bad_alloc();
}

// One attempt; align 0 means operator new's default alignment.
inline void *attempt(size_t n, size_t align) {
    return align == 0 ? goheap_malloc(n) : goheap_aligned_alloc(align, n);
}

}  // namespace

// operator new's loop after a failed first attempt. Hidden C names, and not
// cloned, so src/cxx.rs can give the profiler their addresses (a sampled
// allocation's stack starts below goheap's frames).
extern "C" __attribute__((visibility("hidden"), cold, noinline, noclone)) void *goheap_cxx_retry(size_t n, size_t align) {
    for (;;) {
        std::new_handler h = current_handler();
        if (h == nullptr) throw_bad_alloc();
        h();
        if (void *p = attempt(n, align)) return p;
    }
}

// The nothrow forms' loop: null where operator new would throw, and null
// if the handler throws (the standard's "calls operator new; if the call
// does not return normally, returns a null pointer"). Only with a runtime
// bound at load: with one loaded later, this frame's personality routine
// is bound to nothing, so the catch below could not catch, and a handler
// that throws would end the process; the nothrow forms then return null
// without calling the handler.
extern "C" __attribute__((visibility("hidden"), cold, noinline, noclone)) void *goheap_cxx_retry_nothrow(size_t n,
                                                                                                     size_t align) noexcept {
    if (&std::get_new_handler == nullptr || &__gxx_personality_v0 == nullptr) return nullptr;
    for (;;) {
        std::new_handler h = current_handler();
        if (h == nullptr) return nullptr;
        try {
            h();
        } catch (...) {
            return nullptr;
        }
        if (void *p = attempt(n, align)) return p;
    }
}

namespace {

inline void *allocate(size_t n, size_t align) {
    void *p = attempt(n, align);
    if (__builtin_expect(p != nullptr, 1)) return p;
    return goheap_cxx_retry(n, align);
}

inline void *allocate_nothrow(size_t n, size_t align) noexcept {
    void *p = attempt(n, align);
    if (__builtin_expect(p != nullptr, 1)) return p;
    return goheap_cxx_retry_nothrow(n, align);
}

}  // namespace

// ---- did the program replace a form? ----
//
// `::operator delete` below is the symbol as the dynamic linker (or, in a
// static link, the linker) resolved it: a program's own definition wins
// over goheap's. src/cxx.rs puts a hidden label `<body>_sym` on each of
// goheap's exported definitions, which always means goheap's.

extern "C" {
#define GOHEAP_CXX_SYM(body) void body##_sym() __attribute__((visibility("hidden")));
GOHEAP_CXX_SYM(goheap_cxx_new)
GOHEAP_CXX_SYM(goheap_cxx_new_array)
GOHEAP_CXX_SYM(goheap_cxx_new_aligned)
GOHEAP_CXX_SYM(goheap_cxx_new_array_aligned)
GOHEAP_CXX_SYM(goheap_cxx_delete)
GOHEAP_CXX_SYM(goheap_cxx_delete_array)
GOHEAP_CXX_SYM(goheap_cxx_delete_aligned)
GOHEAP_CXX_SYM(goheap_cxx_delete_array_aligned)
#undef GOHEAP_CXX_SYM
}

namespace {

template <class F>
inline bool is_goheap(F resolved, void (*own)()) {
    return reinterpret_cast<void *>(resolved) == reinterpret_cast<void *>(own);
}

inline bool own_new() {
    return is_goheap(static_cast<void *(*)(size_t)>(::operator new), goheap_cxx_new_sym);
}
inline bool own_new_array() {
    return own_new() && is_goheap(static_cast<void *(*)(size_t)>(::operator new[]), goheap_cxx_new_array_sym);
}
inline bool own_new_aligned() {
    return is_goheap(static_cast<void *(*)(size_t, std::align_val_t)>(::operator new), goheap_cxx_new_aligned_sym);
}
inline bool own_new_array_aligned() {
    return own_new_aligned() &&
           is_goheap(static_cast<void *(*)(size_t, std::align_val_t)>(::operator new[]), goheap_cxx_new_array_aligned_sym);
}
inline bool own_delete() {
    return is_goheap(static_cast<void (*)(void *) noexcept>(::operator delete), goheap_cxx_delete_sym);
}
inline bool own_delete_array() {
    return own_delete() && is_goheap(static_cast<void (*)(void *) noexcept>(::operator delete[]), goheap_cxx_delete_array_sym);
}
inline bool own_delete_aligned() {
    return is_goheap(static_cast<void (*)(void *, std::align_val_t) noexcept>(::operator delete), goheap_cxx_delete_aligned_sym);
}
inline bool own_delete_array_aligned() {
    return own_delete_aligned() &&
           is_goheap(static_cast<void (*)(void *, std::align_val_t) noexcept>(::operator delete[]),
                     goheap_cxx_delete_array_aligned_sym);
}

inline size_t al(std::align_val_t a) { return static_cast<size_t>(a); }

}  // namespace

// ---- the bodies (hidden; the names in comments are the exported forms) ----

#define GOHEAP_CXX_BODY extern "C" __attribute__((visibility("hidden")))

// The delete bodies are not declared noexcept although the operators are:
// goheap_free cannot throw (it is Rust built with panic = "abort"), and a
// noexcept body calling a C function the compiler must assume can throw
// would keep a frame to call std::terminate instead of tail-calling it.

// operator new(size_t) after its first attempt failed: src/cxx.rs makes
// that attempt itself (goheap_malloc's body) and jumps here.
GOHEAP_CXX_BODY void *goheap_cxx_new_retry(size_t n) { return goheap_cxx_retry(n, 0); }

// operator new[](size_t): calls operator new(size_t)
GOHEAP_CXX_BODY void *goheap_cxx_new_array(size_t n) {
    if (own_new()) return allocate(n, 0);
    return ::operator new(n);
}

// operator new(size_t, const std::nothrow_t&): calls operator new(size_t)
GOHEAP_CXX_BODY void *goheap_cxx_new_nothrow(size_t n, const std::nothrow_t &) noexcept {
    if (own_new()) return allocate_nothrow(n, 0);
    try {
        return ::operator new(n);
    } catch (...) {
        return nullptr;
    }
}

// operator new[](size_t, const std::nothrow_t&): calls operator new[](size_t)
GOHEAP_CXX_BODY void *goheap_cxx_new_array_nothrow(size_t n, const std::nothrow_t &) noexcept {
    if (own_new_array()) return allocate_nothrow(n, 0);
    try {
        return ::operator new[](n);
    } catch (...) {
        return nullptr;
    }
}

// operator new(size_t, std::align_val_t)
GOHEAP_CXX_BODY void *goheap_cxx_new_aligned(size_t n, std::align_val_t a) { return allocate(n, al(a)); }

// operator new[](size_t, std::align_val_t): calls operator new(size_t, align_val_t)
GOHEAP_CXX_BODY void *goheap_cxx_new_array_aligned(size_t n, std::align_val_t a) {
    if (own_new_aligned()) return allocate(n, al(a));
    return ::operator new(n, a);
}

// operator new(size_t, std::align_val_t, const std::nothrow_t&)
GOHEAP_CXX_BODY void *goheap_cxx_new_aligned_nothrow(size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
    if (own_new_aligned()) return allocate_nothrow(n, al(a));
    try {
        return ::operator new(n, a);
    } catch (...) {
        return nullptr;
    }
}

// operator new[](size_t, std::align_val_t, const std::nothrow_t&)
GOHEAP_CXX_BODY void *goheap_cxx_new_array_aligned_nothrow(size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
    if (own_new_array_aligned()) return allocate_nothrow(n, al(a));
    try {
        return ::operator new[](n, a);
    } catch (...) {
        return nullptr;
    }
}

// operator delete(void*) is goheap_free's body, reached from src/cxx.rs.

// operator delete(void*, size_t): calls operator delete(void*). src/cxx.rs
// comes here only when the program replaced operator delete(void*) (and
// goes straight to goheap_free_sized's body otherwise); the test stays so
// the body is right whoever calls it.
GOHEAP_CXX_BODY void goheap_cxx_delete_sized(void *p, size_t n) {
    if (own_delete()) return goheap_free_sized(p, n);
    ::operator delete(p);
}

// operator delete(void*, const std::nothrow_t&): calls operator delete(void*)
GOHEAP_CXX_BODY void goheap_cxx_delete_nothrow(void *p, const std::nothrow_t &) {
    if (own_delete()) return goheap_free(p);
    ::operator delete(p);
}

// operator delete[](void*): calls operator delete(void*)
GOHEAP_CXX_BODY void goheap_cxx_delete_array(void *p) {
    if (own_delete()) return goheap_free(p);
    ::operator delete(p);
}

// operator delete[](void*, size_t): calls operator delete[](void*)
GOHEAP_CXX_BODY void goheap_cxx_delete_array_sized(void *p, size_t n) {
    if (own_delete_array()) return goheap_free_sized(p, n);
    ::operator delete[](p);
}

// operator delete[](void*, const std::nothrow_t&): calls operator delete[](void*)
GOHEAP_CXX_BODY void goheap_cxx_delete_array_nothrow(void *p, const std::nothrow_t &) {
    if (own_delete_array()) return goheap_free(p);
    ::operator delete[](p);
}

// operator delete(void*, std::align_val_t)
GOHEAP_CXX_BODY void goheap_cxx_delete_aligned(void *p, std::align_val_t) { goheap_free(p); }

// operator delete(void*, size_t, std::align_val_t): calls operator delete(void*, align_val_t)
GOHEAP_CXX_BODY void goheap_cxx_delete_sized_aligned(void *p, size_t n, std::align_val_t a) {
    if (own_delete_aligned()) return goheap_free_aligned_sized(p, al(a), n);
    ::operator delete(p, a);
}

// operator delete(void*, std::align_val_t, const std::nothrow_t&): calls operator delete(void*, align_val_t)
GOHEAP_CXX_BODY void goheap_cxx_delete_aligned_nothrow(void *p, std::align_val_t a, const std::nothrow_t &) {
    if (own_delete_aligned()) return goheap_free(p);
    ::operator delete(p, a);
}

// operator delete[](void*, std::align_val_t): calls operator delete(void*, align_val_t)
GOHEAP_CXX_BODY void goheap_cxx_delete_array_aligned(void *p, std::align_val_t a) {
    if (own_delete_aligned()) return goheap_free(p);
    ::operator delete(p, a);
}

// operator delete[](void*, size_t, std::align_val_t): calls operator delete[](void*, align_val_t)
GOHEAP_CXX_BODY void goheap_cxx_delete_array_sized_aligned(void *p, size_t n, std::align_val_t a) {
    if (own_delete_array_aligned()) return goheap_free_aligned_sized(p, al(a), n);
    ::operator delete[](p, a);
}

// operator delete[](void*, std::align_val_t, const std::nothrow_t&): calls operator delete[](void*, align_val_t)
GOHEAP_CXX_BODY void goheap_cxx_delete_array_aligned_nothrow(void *p, std::align_val_t a, const std::nothrow_t &) {
    if (own_delete_array_aligned()) return goheap_free(p);
    ::operator delete[](p, a);
}
