//! The macOS face: goheap as libSystem's default malloc zone, and dyld
//! interposing of the malloc family (the C face's macOS half; `ffi.rs`
//! holds the functions both systems share).
//!
//! * **The zone** (`malloc_zone_t`, version 10, as Apple's
//!   `<malloc/malloc.h>` lays it out, with the full introspection table) is
//!   registered by the library constructor (`install`, from `init`) and
//!   made the default one: registering appends it to libSystem's zone list,
//!   and unregistering a zone moves the last one into its slot, so the old
//!   default is unregistered and registered again (and the purgeable zone
//!   after it, which must not come before the default). That is what
//!   mimalloc and jemalloc do. From then on every `malloc`, `malloc_zone_*`
//!   and CoreFoundation allocation that reaches libSystem comes to goheap,
//!   in a static link too.
//! * **Interposing** (`__DATA,__interpose`, only with the `export`
//!   feature): (replacement, original) pairs that dyld applies to every
//!   image when the library is loaded with `DYLD_INSERT_LIBRARIES`, without
//!   a flat namespace. The replacements are goheap's own `goheap_*` names:
//!   on macOS the library must not define `malloc` itself, or the
//!   "original" half of each pair would bind to it. Interposing works before
//!   the constructor has registered the zone, so the C functions that take
//!   a block are interposed (`reallocarray` and `reallocarrayf` too, which
//!   libSystem would send to its zone, ignorant of goheap's blocks then);
//!   only the `malloc_zone_*` calls on the default zone (and `vfree`) are
//!   left to libSystem in that window. The zone is not registered from the
//!   first malloc instead: that may come from libSystem's own start-up.
//! * **Blocks goheap does not own** — made before goheap was loaded, or
//!   by a zone a program created — are handed to the zone that owns them
//!   (`malloc_zone_from_ptr`): freed there, or, for realloc, moved into
//!   goheap and freed there. `size` answers 0 for them, which is how
//!   libSystem finds the owner. Whether goheap claims a pointer is one look
//!   at the arena map (plus, in a fork child's side mode, its table), and
//!   is asked first: libSystem is consulted only for pointers goheap does
//!   not claim, and a zone that would hand the pointer back to goheap (its
//!   own, or the virtual default zone forwarding to it) is never called,
//!   so a pointer nobody owns ends in goheap's report, not in a recursion.
//!
//! macOS's own semantics where they differ from glibc's: `realloc(p, 0)`
//! returns a new minimum-size block (glibc's frees and returns NULL).
//! There is no `malloc_usable_size`, `malloc_trim`, `mallinfo` or
//! `malloc_stats` on macOS: `malloc_size`, `malloc_zone_pressure_relief`
//! and `malloc_zone_statistics` / `malloc_zone_print` are their
//! counterparts here.

use crate::arena::{self, FREED_SPAN, PAGES_PER_ARENA};
use crate::pagealloc::{PAGE_SHIFT, PAGE_SIZE};
use crate::sizeclass::{self, CLASSES, MAX_SMALL_SIZE};
use crate::span::{STATE_LARGE, STATE_SMALL};
use crate::{debug, ffi, hooks, profile, stats};
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_uint, c_void};
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicPtr, Ordering};
use libc::{boolean_t, kern_return_t, task_t, vm_address_t, vm_size_t};

/// `memory_reader_t`: map `size` bytes at `remote` of `task` into this process.
type MemoryReader = unsafe extern "C" fn(task_t, vm_address_t, vm_size_t, *mut *mut c_void) -> kern_return_t;
/// `vm_range_recorder_t`: receive `count` ranges of type `kind`.
type RangeRecorder = unsafe extern "C" fn(task_t, *mut c_void, c_uint, *mut VmRange, c_uint);

#[repr(C)]
struct VmRange {
    address: vm_address_t,
    size: vm_size_t,
}

/// `malloc_statistics_t`.
#[repr(C)]
struct Statistics {
    blocks_in_use: c_uint,
    size_in_use: usize,
    max_size_in_use: usize,
    size_allocated: usize,
}

/// `malloc_zone_t`, field for field (the version each field needs in the
/// comments). Other zones are read through it too: `size`, `free` and
/// `realloc` are present in every zone, the rest may be null.
#[repr(C)]
struct MallocZone {
    reserved1: *mut c_void,
    reserved2: *mut c_void,
    size: unsafe extern "C" fn(*mut MallocZone, *const c_void) -> usize,
    malloc: unsafe extern "C" fn(*mut MallocZone, usize) -> *mut c_void,
    calloc: unsafe extern "C" fn(*mut MallocZone, usize, usize) -> *mut c_void,
    valloc: unsafe extern "C" fn(*mut MallocZone, usize) -> *mut c_void,
    free: unsafe extern "C" fn(*mut MallocZone, *mut c_void),
    realloc: unsafe extern "C" fn(*mut MallocZone, *mut c_void, usize) -> *mut c_void,
    destroy: unsafe extern "C" fn(*mut MallocZone),
    zone_name: *const c_char,
    batch_malloc: Option<unsafe extern "C" fn(*mut MallocZone, usize, *mut *mut c_void, c_uint) -> c_uint>,
    batch_free: Option<unsafe extern "C" fn(*mut MallocZone, *mut *mut c_void, c_uint)>,
    introspect: *const Introspection,
    version: c_uint,
    /// version 5
    memalign: Option<unsafe extern "C" fn(*mut MallocZone, usize, usize) -> *mut c_void>,
    /// version 6
    free_definite_size: Option<unsafe extern "C" fn(*mut MallocZone, *mut c_void, usize)>,
    /// version 8
    pressure_relief: Option<unsafe extern "C" fn(*mut MallocZone, usize) -> usize>,
    /// version 10
    claimed_address: Option<unsafe extern "C" fn(*mut MallocZone, *mut c_void) -> boolean_t>,
    /// version 13 (not claimed: goheap's zone is version 10)
    try_free_default: Option<unsafe extern "C" fn(*mut MallocZone, *mut c_void)>,
}

/// `malloc_introspection_t`, field for field.
#[repr(C)]
struct Introspection {
    enumerator: Option<
        unsafe extern "C" fn(task_t, *mut c_void, c_uint, vm_address_t, Option<MemoryReader>, Option<RangeRecorder>) -> kern_return_t,
    >,
    good_size: Option<unsafe extern "C" fn(*mut MallocZone, usize) -> usize>,
    check: Option<unsafe extern "C" fn(*mut MallocZone) -> boolean_t>,
    print: Option<unsafe extern "C" fn(*mut MallocZone, boolean_t)>,
    log: Option<unsafe extern "C" fn(*mut MallocZone, *mut c_void)>,
    force_lock: Option<unsafe extern "C" fn(*mut MallocZone)>,
    force_unlock: Option<unsafe extern "C" fn(*mut MallocZone)>,
    statistics: Option<unsafe extern "C" fn(*mut MallocZone, *mut Statistics)>,
    zone_locked: Option<unsafe extern "C" fn(*mut MallocZone) -> boolean_t>,
    /// version 7: discharge checking (optional, not provided)
    enable_discharge_checking: Option<unsafe extern "C" fn(*mut MallocZone) -> boolean_t>,
    disable_discharge_checking: Option<unsafe extern "C" fn(*mut MallocZone)>,
    discharge: Option<unsafe extern "C" fn(*mut MallocZone, *mut c_void)>,
    /// a block (`void (^)(void *, void *)`) where the header has blocks
    enumerate_discharged_pointers: *mut c_void,
    /// version 9
    reinit_lock: Option<unsafe extern "C" fn(*mut MallocZone)>,
    /// version 11 and 12 (out-of-process tools; not provided)
    print_task: *mut c_void,
    task_statistics: *mut c_void,
}

// The layouts of Apple's header, on both 64-bit targets.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(MallocZone, zone_name) == 9 * 8);
    assert!(offset_of!(MallocZone, version) == 13 * 8);
    assert!(offset_of!(MallocZone, memalign) == 14 * 8);
    assert!(offset_of!(MallocZone, claimed_address) == 17 * 8);
    assert!(size_of::<MallocZone>() == 19 * 8);
    assert!(offset_of!(Introspection, zone_locked) == 8 * 8);
    assert!(offset_of!(Introspection, reinit_lock) == 13 * 8);
    assert!(size_of::<Introspection>() == 16 * 8);
    assert!(size_of::<Statistics>() == 4 * 8);
};

extern "C" {
    fn malloc_zone_register(zone: *mut MallocZone);
    fn malloc_zone_unregister(zone: *mut MallocZone);
    fn malloc_default_zone() -> *mut MallocZone;
    fn malloc_default_purgeable_zone() -> *mut MallocZone;
    fn malloc_zone_from_ptr(p: *const c_void) -> *mut MallocZone;
    fn malloc_get_all_zones(
        task: task_t,
        reader: Option<MemoryReader>,
        addresses: *mut *mut vm_address_t,
        count: *mut c_uint,
    ) -> kern_return_t;
}

/// `MALLOC_PTR_IN_USE_RANGE_TYPE`, `MALLOC_PTR_REGION_RANGE_TYPE`.
const IN_USE_RANGE: c_uint = 1;
const REGION_RANGE: c_uint = 2;

/// The zone lives in writable memory at a fixed address: libSystem keeps
/// its address, and `malloc_set_zone_name` writes into it.
struct ZoneCell(UnsafeCell<MallocZone>);
// SAFETY: written only by libSystem under its zone lock (a name); goheap only reads.
unsafe impl Sync for ZoneCell {}

struct IntrospectionCell(Introspection);
// SAFETY: constant function pointers, never written.
unsafe impl Sync for IntrospectionCell {}

static INTROSPECT: IntrospectionCell = IntrospectionCell(Introspection {
    enumerator: Some(intro_enumerator),
    good_size: Some(intro_good_size),
    check: Some(intro_check),
    print: Some(intro_print),
    log: Some(intro_log),
    force_lock: Some(intro_force_lock),
    force_unlock: Some(intro_force_unlock),
    statistics: Some(intro_statistics),
    zone_locked: Some(intro_zone_locked),
    enable_discharge_checking: None,
    disable_discharge_checking: None,
    discharge: None,
    enumerate_discharged_pointers: null_mut(),
    reinit_lock: Some(intro_reinit_lock),
    print_task: null_mut(),
    task_statistics: null_mut(),
});

/// goheap's zone (`goheap_malloc_zone` for `nm`, and for programs that
/// want to name it).
#[no_mangle]
#[allow(non_upper_case_globals)]
static goheap_malloc_zone: ZoneCell = ZoneCell(UnsafeCell::new(MallocZone {
    reserved1: null_mut(),
    reserved2: null_mut(),
    size: zone_size,
    malloc: zone_malloc,
    calloc: zone_calloc,
    valloc: zone_valloc,
    free: zone_free,
    realloc: zone_realloc,
    destroy: zone_destroy,
    zone_name: c"goheap".as_ptr(),
    batch_malloc: Some(zone_batch_malloc),
    batch_free: Some(zone_batch_free),
    introspect: &INTROSPECT.0,
    version: 10,
    memalign: Some(zone_memalign),
    free_definite_size: Some(zone_free_definite_size),
    pressure_relief: Some(zone_pressure_relief),
    claimed_address: Some(zone_claimed_address),
    try_free_default: None,
}));

fn zone() -> *mut MallocZone {
    goheap_malloc_zone.0.get()
}

/// `init`'s fork handlers and lock query, which the zone's introspection
/// calls (libSystem's fork calls `force_lock` before, `force_unlock` in
/// the parent and `reinit_lock` in the child after).
pub struct Fork {
    pub prepare: extern "C" fn(),
    pub parent: extern "C" fn(),
    pub child: extern "C" fn(),
    pub locked: fn() -> bool,
}

static FORK: AtomicPtr<Fork> = AtomicPtr::new(null_mut());
struct ForkCell(UnsafeCell<Fork>);
// SAFETY: written once by `install`, before FORK publishes it.
unsafe impl Sync for ForkCell {}
extern "C" fn nothing() {}
fn unlocked() -> bool {
    false
}
static FORK_FNS: ForkCell = ForkCell(UnsafeCell::new(Fork { prepare: nothing, parent: nothing, child: nothing, locked: unlocked }));

/// The handlers `install` kept (do-nothing ones before it ran).
fn fork() -> &'static Fork {
    let p = FORK.load(Ordering::Acquire);
    let p = if p.is_null() { FORK_FNS.0.get() as *const Fork } else { p as *const Fork };
    // SAFETY: FORK_FNS, written only before FORK published it (or still its initial value).
    unsafe { &*p }
}

/// Library constructor (`init`): keep the fork handlers, let the profiler
/// know this face's entry points, and make goheap the default zone.
pub fn install(f: Fork) {
    if !FORK.load(Ordering::Acquire).is_null() {
        return;
    }
    // SAFETY: nothing reads FORK_FNS until FORK is published below.
    unsafe { *FORK_FNS.0.get() = f };
    FORK.store(FORK_FNS.0.get(), Ordering::Release);
    profile::add_entry_points(&[
        goheap_mac_free as *const () as usize,
        goheap_mac_realloc as *const () as usize,
        goheap_mac_reallocf as *const () as usize,
        goheap_mac_reallocarray as *const () as usize,
        goheap_mac_reallocarrayf as *const () as usize,
        zone_malloc as *const () as usize,
        zone_calloc as *const () as usize,
        zone_valloc as *const () as usize,
        zone_realloc as *const () as usize,
        zone_memalign as *const () as usize,
        zone_batch_malloc as *const () as usize,
    ]);
    make_default();
}

/// The zone libSystem's `malloc` uses now: the first registered zone
/// (`malloc_default_zone()` returns a forwarding wrapper on recent macOS,
/// not the zone itself).
fn default_zone() -> *mut MallocZone {
    let mut zones: *mut vm_address_t = null_mut();
    let mut n: c_uint = 0;
    // SAFETY: task 0 with no reader reads this process; libSystem writes both out-parameters.
    if unsafe { malloc_get_all_zones(0, None, &mut zones, &mut n) } == 0 && n > 0 && !zones.is_null() {
        // SAFETY: n > 0 entries.
        return unsafe { *zones } as *mut MallocZone;
    }
    // SAFETY: no preconditions.
    unsafe { malloc_default_zone() }
}

/// Register goheap's zone and move it to the front.
///
/// A race, as in mimalloc and jemalloc, which do the same: from the moment
/// the old default zone (or the purgeable zone) is unregistered until it
/// is registered again, no registered zone owns its blocks. A thread that
/// frees, reallocs or sizes one of them in that window (through libSystem,
/// or through goheap's `free`, which asks `malloc_zone_from_ptr`) finds no
/// owner: libSystem reports "pointer being freed was not allocated" and
/// aborts, goheap reports an invalid pointer. libSystem has no call that
/// reorders its zones in one step. The window is a few calls long, and the
/// constructor runs before the program's own code in the usual case (the
/// injected library's initialisers run before the program's; a static
/// link's with the executable's, after its libraries' initialisers), so a
/// second thread is rarely there to hit it.
fn make_default() {
    // SAFETY: libSystem's zone registry calls on zones that stay alive for
    // the process (goheap's is static; the others are libSystem's own).
    unsafe {
        // Make the purgeable zone exist now, so it is not created later in
        // front of goheap's.
        let purgeable = malloc_default_purgeable_zone();
        malloc_zone_register(zone());
        for _ in 0..8 {
            let d = default_zone();
            if d == zone() || d.is_null() {
                break;
            }
            // Unregistering moves the last zone (goheap's) into its slot;
            // registering it again keeps its blocks freeable.
            malloc_zone_unregister(d);
            malloc_zone_register(d);
            if !purgeable.is_null() {
                malloc_zone_unregister(purgeable);
                malloc_zone_register(purgeable);
            }
        }
    }
}

// ---- ownership --------------------------------------------------------

/// Whether `p` may be goheap's (false positives allowed: a freed block, a
/// page not in use; false negatives not).
#[inline(always)]
fn claims(p: *const c_void) -> bool {
    arena::registered(p as usize) || side_block(p)
}

/// A fork child's side block (`sigfork`), outside the arenas.
#[inline]
fn side_block(p: *const c_void) -> bool {
    hooks::any() && hooks::side_owns(p as *mut c_void)
}

/// Usable size of `p` if it is a live goheap block, else 0 — never the
/// misuse report goheap's own `malloc_usable_size` makes (debug mode's
/// included), since libSystem asks every zone about pointers that are not
/// theirs (`malloc_zone_from_ptr`, `free` of another zone's block).
fn owned_size(p: *const c_void) -> usize {
    let a = p as usize;
    if arena::registered(a) {
        if debug::on() {
            // Debug mode's blocks start after a header: ask it first.
            if let Some(n) = debug::live_size(a) {
                return n;
            }
        }
        return block_size(a);
    }
    if side_block(p) {
        // SAFETY: a live side block.
        return unsafe { hooks::usable_size(p as *mut c_void) };
    }
    0
}

/// The size of the block starting at `a` in goheap's heap, 0 if none does.
fn block_size(a: usize) -> usize {
    let s = arena::span_of(a);
    if s.is_null() || s == FREED_SPAN {
        return 0;
    }
    // SAFETY: span records in the page map are never unmapped.
    let sp = unsafe { &*s };
    match sp.state.load(Ordering::Acquire) {
        STATE_SMALL => match sp.slot_of(a) {
            Some(i) if sp.is_allocated(i) && !sp.is_freed_remotely(i) => sp.elemsize as usize,
            _ => 0,
        },
        STATE_LARGE if a == sp.base => sp.bytes(),
        _ => 0,
    }
}

/// The zone that owns `p`, a pointer goheap does not claim, or null: none
/// does, or the one libSystem names would hand `p` back to goheap, which
/// would ask libSystem again, without end.
#[cold]
fn other_zone(p: *const c_void) -> *mut MallocZone {
    // SAFETY: asks each registered zone's `size`.
    let z = unsafe { malloc_zone_from_ptr(p) };
    if z.is_null() || forwards_to_goheap(z, p) {
        null_mut()
    } else {
        z
    }
}

/// Whether zone `z` would hand `p` (not claimed by goheap) to goheap:
/// goheap's zone, a zone whose `free` is goheap's (a copy of its record),
/// or libSystem's virtual default zone (`malloc_default_zone()`, which
/// `malloc_zone_from_ptr` may return) while it forwards to goheap's. That
/// one forwards every call to the default zone (the first registered, or
/// MallocStackLogging's lite zone): when that is goheap's, the forwarded
/// `size` is goheap's, which answers 0 for `p`.
fn forwards_to_goheap(z: *mut MallocZone, p: *const c_void) -> bool {
    // SAFETY: z is a registered zone (or libSystem's virtual one), which stays alive; `free` is in every zone.
    if z == zone() || ptr::eq(unsafe { (*z).free } as *const (), zone_free as *const ()) {
        return true;
    }
    // SAFETY: no preconditions.
    if z != unsafe { malloc_default_zone() } {
        return false;
    }
    // SAFETY: `size` is in every zone; goheap's, if that is where it goes, asks nobody else.
    unsafe { ((*z).size)(z, p) == 0 }
}

/// malloc_good_size: what a request of `n` bytes really gets.
fn good_size(n: usize) -> usize {
    if n <= MAX_SMALL_SIZE {
        CLASSES[sizeclass::size_to_class(n)].size as usize
    } else {
        n.checked_add(PAGE_SIZE - 1).map_or(n, |m| m & !(PAGE_SIZE - 1))
    }
}

// ---- the interposed functions ----------------------------------------

/// free: goheap's blocks to goheap, others to their zone.
///
/// # Safety
/// `p` is NULL or a live block of some zone.
#[no_mangle]
unsafe extern "C" fn goheap_mac_free(p: *mut c_void) {
    if p.is_null() || claims(p) {
        // SAFETY: forwarded contract.
        return unsafe { ffi::goheap_free(p) };
    }
    // SAFETY: forwarded contract.
    unsafe { free_elsewhere(p) }
}

/// free of a pointer goheap does not claim: to the zone that owns it.
#[cold]
unsafe fn free_elsewhere(p: *mut c_void) {
    let z = other_zone(p);
    if z.is_null() {
        // Nobody's: goheap's free reports it.
        // SAFETY: forwarded contract.
        unsafe { ffi::goheap_free(p) }
    } else {
        // SAFETY: z owns p.
        unsafe { ((*z).free)(z, p) }
    }
}

/// realloc, with Apple's `realloc(p, 0)` (a new minimum-size block).
///
/// # Safety
/// `p` is NULL or a live block of some zone.
#[no_mangle]
unsafe extern "C" fn goheap_mac_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    let size = if size == 0 && !p.is_null() { 1 } else { size };
    if p.is_null() || claims(p) {
        // SAFETY: forwarded contract.
        return unsafe { ffi::goheap_realloc(p, size) };
    }
    // SAFETY: forwarded contract.
    unsafe { realloc_elsewhere(p, size) }
}

/// realloc of a block goheap does not claim: another zone's moves into
/// goheap (and is freed in its zone); nobody's is goheap's to report.
#[cold]
unsafe fn realloc_elsewhere(p: *mut c_void, size: usize) -> *mut c_void {
    let z = other_zone(p);
    if z.is_null() {
        // SAFETY: forwarded contract.
        return unsafe { ffi::goheap_realloc(p, size) };
    }
    let q = ffi::goheap_malloc(size);
    if q.is_null() {
        return q; // ENOMEM set; p untouched
    }
    // SAFETY: z owns p, which has `old` bytes; q has at least `size`.
    unsafe {
        let old = ((*z).size)(z, p);
        ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, old.min(size));
        ((*z).free)(z, p);
    }
    q
}

/// reallocf: realloc that frees `p` when it fails.
///
/// # Safety
/// `p` is NULL or a live block of some zone.
#[no_mangle]
unsafe extern "C" fn goheap_mac_reallocf(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    let q = unsafe { goheap_mac_realloc(p, size) };
    if q.is_null() && !p.is_null() {
        let e = crate::platform::os::errno();
        // SAFETY: the realloc failed, so p is still live.
        unsafe { goheap_mac_free(p) };
        crate::platform::os::set_errno(e);
    }
    q
}

/// reallocarray: realloc of `n * size` bytes (Apple's realloc, as
/// `goheap_mac_realloc`); when the product overflows, NULL with ENOMEM and
/// `p` untouched, as libSystem's.
///
/// # Safety
/// `p` is NULL or a live block of some zone.
///
/// cbindgen:ignore
// (Not in goheap.h: an interpose replacement, reached through dyld only.)
#[no_mangle]
unsafe extern "C" fn goheap_mac_reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        crate::platform::os::set_errno(libc::ENOMEM);
        return null_mut();
    };
    // SAFETY: forwarded contract.
    unsafe { goheap_mac_realloc(p, total) }
}

/// reallocarrayf: reallocf of `n * size` bytes. When the product
/// overflows, NULL with ENOMEM and `p` not freed, as libSystem's, which
/// checks the product before it calls reallocf (a caller that expects `p`
/// freed then leaks it, and never uses a freed block).
///
/// # Safety
/// `p` is NULL or a live block of some zone.
///
/// cbindgen:ignore
// (Not in goheap.h: an interpose replacement, reached through dyld only.)
#[no_mangle]
unsafe extern "C" fn goheap_mac_reallocarrayf(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        crate::platform::os::set_errno(libc::ENOMEM);
        return null_mut();
    };
    // SAFETY: forwarded contract.
    unsafe { goheap_mac_reallocf(p, total) }
}

/// malloc_size: a block's usable size, whichever zone owns it; 0 for a
/// pointer no zone owns.
#[no_mangle]
extern "C" fn goheap_mac_malloc_size(p: *const c_void) -> usize {
    let n = owned_size(p);
    if n != 0 || p.is_null() || claims(p) {
        return n;
    }
    let z = other_zone(p);
    if z.is_null() {
        0
    } else {
        // SAFETY: z owns p.
        unsafe { ((*z).size)(z, p) }
    }
}

#[no_mangle]
extern "C" fn goheap_mac_malloc_good_size(n: usize) -> usize {
    good_size(n)
}

/// cbindgen:ignore
// (libSystem's declarations and the tuples: nothing for goheap.h.)
#[cfg(feature = "export")]
mod interpose {
    use super::*;

    // The originals, as libSystem exports them.
    extern "C" {
        fn malloc(size: usize) -> *mut c_void;
        fn calloc(n: usize, size: usize) -> *mut c_void;
        fn realloc(p: *mut c_void, size: usize) -> *mut c_void;
        fn free(p: *mut c_void);
        fn valloc(size: usize) -> *mut c_void;
        fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> libc::c_int;
        fn aligned_alloc(align: usize, size: usize) -> *mut c_void;
        fn malloc_size(p: *const c_void) -> usize;
        fn malloc_good_size(n: usize) -> usize;
        fn reallocf(p: *mut c_void, size: usize) -> *mut c_void;
        // Apple's headers declare these with `__DARWIN_EXTSN`: the only
        // names libSystem exports for them, and the ones programs bind.
        #[link_name = "reallocarray$DARWIN_EXTSN"]
        fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void;
        #[link_name = "reallocarrayf$DARWIN_EXTSN"]
        fn reallocarrayf(p: *mut c_void, n: usize, size: usize) -> *mut c_void;
    }

    /// One `__interpose` tuple: dyld binds every image's reference to
    /// `original` to `replacement` instead (both of one type, so the
    /// signatures are checked).
    #[repr(C)]
    struct Pair<F> {
        replacement: F,
        original: F,
    }

    /// The tuples, as one `#[repr(C)]` block of pointer pairs.
    #[repr(C)]
    struct Table {
        malloc: Pair<unsafe extern "C" fn(usize) -> *mut c_void>,
        calloc: Pair<unsafe extern "C" fn(usize, usize) -> *mut c_void>,
        realloc: Pair<unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void>,
        free: Pair<unsafe extern "C" fn(*mut c_void)>,
        valloc: Pair<unsafe extern "C" fn(usize) -> *mut c_void>,
        posix_memalign: Pair<unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> libc::c_int>,
        aligned_alloc: Pair<unsafe extern "C" fn(usize, usize) -> *mut c_void>,
        malloc_size: Pair<unsafe extern "C" fn(*const c_void) -> usize>,
        malloc_good_size: Pair<unsafe extern "C" fn(usize) -> usize>,
        reallocf: Pair<unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void>,
        reallocarray: Pair<unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void>,
        reallocarrayf: Pair<unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void>,
    }

    // Twelve tuples of two pointers: what `scripts/check-apple` expects in the section.
    const _: () = assert!(core::mem::size_of::<Table>() == 12 * 2 * core::mem::size_of::<usize>());

    #[used]
    #[link_section = "__DATA,__interpose"]
    static INTERPOSE: Table = Table {
        malloc: Pair { replacement: ffi::goheap_malloc, original: malloc },
        calloc: Pair { replacement: ffi::goheap_calloc, original: calloc },
        realloc: Pair { replacement: goheap_mac_realloc, original: realloc },
        free: Pair { replacement: goheap_mac_free, original: free },
        valloc: Pair { replacement: ffi::goheap_valloc, original: valloc },
        posix_memalign: Pair { replacement: ffi::goheap_posix_memalign, original: posix_memalign },
        aligned_alloc: Pair { replacement: ffi::goheap_aligned_alloc, original: aligned_alloc },
        malloc_size: Pair { replacement: goheap_mac_malloc_size, original: malloc_size },
        malloc_good_size: Pair { replacement: goheap_mac_malloc_good_size, original: malloc_good_size },
        reallocf: Pair { replacement: goheap_mac_reallocf, original: reallocf },
        reallocarray: Pair { replacement: goheap_mac_reallocarray, original: reallocarray },
        reallocarrayf: Pair { replacement: goheap_mac_reallocarrayf, original: reallocarrayf },
    };
}

// ---- the zone's functions ---------------------------------------------

unsafe extern "C" fn zone_size(_: *mut MallocZone, p: *const c_void) -> usize {
    owned_size(p)
}

unsafe extern "C" fn zone_malloc(_: *mut MallocZone, size: usize) -> *mut c_void {
    ffi::goheap_malloc(size)
}

unsafe extern "C" fn zone_calloc(_: *mut MallocZone, n: usize, size: usize) -> *mut c_void {
    ffi::goheap_calloc(n, size)
}

/// Page aligned, not zeroed: `<malloc/malloc.h>`'s comments say a zone's
/// valloc clears the block, but libSystem's own zones do not (szone_valloc
/// is a page-aligned memalign or an uncleared large block; only programs
/// linked against Mac OS X 10.5 or earlier got zeroing), nor does
/// `valloc(3)` promise it.
unsafe extern "C" fn zone_valloc(_: *mut MallocZone, size: usize) -> *mut c_void {
    ffi::goheap_valloc(size)
}

unsafe extern "C" fn zone_free(_: *mut MallocZone, p: *mut c_void) {
    // SAFETY: libSystem passes a block it found to be ours (or a caller's own).
    unsafe { goheap_mac_free(p) }
}

unsafe extern "C" fn zone_realloc(_: *mut MallocZone, p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: as zone_free.
    unsafe { goheap_mac_realloc(p, size) }
}

/// The default zone is never destroyed: nothing to do.
unsafe extern "C" fn zone_destroy(_: *mut MallocZone) {}

unsafe extern "C" fn zone_batch_malloc(_: *mut MallocZone, size: usize, out: *mut *mut c_void, n: c_uint) -> c_uint {
    for i in 0..n {
        let p = ffi::goheap_malloc(size);
        if p.is_null() {
            return i;
        }
        // SAFETY: the caller's array has room for n pointers.
        unsafe { *out.add(i as usize) = p };
    }
    n
}

unsafe extern "C" fn zone_batch_free(_: *mut MallocZone, ps: *mut *mut c_void, n: c_uint) {
    for i in 0..n as usize {
        // SAFETY: the caller's array holds n blocks to free.
        unsafe {
            goheap_mac_free(*ps.add(i));
            *ps.add(i) = null_mut();
        }
    }
}

unsafe extern "C" fn zone_memalign(_: *mut MallocZone, align: usize, size: usize) -> *mut c_void {
    ffi::goheap_memalign(align, size)
}

unsafe extern "C" fn zone_free_definite_size(_: *mut MallocZone, p: *mut c_void, size: usize) {
    if arena::registered(p as usize) {
        // SAFETY: a goheap block of `size` bytes, as the caller promises.
        return unsafe { ffi::goheap_free_sized(p, size) };
    }
    // SAFETY: as zone_free.
    unsafe { goheap_mac_free(p) }
}

/// Memory pressure: release every free page now; the bytes released.
unsafe extern "C" fn zone_pressure_relief(_: *mut MallocZone, _goal: usize) -> usize {
    hooks::trim(0)
}

unsafe extern "C" fn zone_claimed_address(_: *mut MallocZone, p: *mut c_void) -> boolean_t {
    claims(p) as boolean_t
}

// ---- introspection ----------------------------------------------------

/// Ranges for the recorder: in-process only (goheap's tables are read in
/// place; a tool reading another task through `reader` gets nothing).
/// Regions are the arenas' mapped heap; blocks in use are each live
/// small object and each large object.
unsafe extern "C" fn intro_enumerator(
    task: task_t,
    ctx: *mut c_void,
    mask: c_uint,
    zone_address: vm_address_t,
    reader: Option<MemoryReader>,
    recorder: Option<RangeRecorder>,
) -> kern_return_t {
    let Some(record) = recorder else { return 0 };
    if let Some(read) = reader {
        let mut local: *mut c_void = null_mut();
        // SAFETY: asks the reader to map the zone record; it writes `local`.
        let ok = unsafe { read(task, zone_address, core::mem::size_of::<MallocZone>(), &mut local) } == 0;
        if !ok || local as usize != zone_address {
            return 0;
        }
    }
    let mut batch = Batch { ranges: [const { VmRange { address: 0, size: 0 } }; 64], n: 0, kind: 0, task, ctx, record };
    if mask & REGION_RANGE != 0 {
        batch.kind = REGION_RANGE;
        arena::for_each_arena(|base, _| batch.push(base, arena::ARENA_BYTES));
        batch.flush();
    }
    if mask & IN_USE_RANGE != 0 {
        batch.kind = IN_USE_RANGE;
        arena::for_each_arena(|base, a| {
            for page in 0..PAGES_PER_ARENA {
                let s = a.spans[page].load(Ordering::Acquire);
                let addr = base + (page << PAGE_SHIFT);
                if s.is_null() || s == FREED_SPAN {
                    continue;
                }
                // SAFETY: span records in the page map are never unmapped.
                let sp = unsafe { &*s };
                if sp.base != addr {
                    continue; // not the span's first page
                }
                match sp.state.load(Ordering::Acquire) {
                    STATE_LARGE => batch.push(addr, sp.bytes()),
                    STATE_SMALL => {
                        for i in 0..sp.nelems as usize {
                            if sp.is_allocated(i) && !sp.is_freed_remotely(i) {
                                batch.push(addr + i * sp.elemsize as usize, sp.elemsize as usize);
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
        batch.flush();
    }
    0
}

struct Batch {
    ranges: [VmRange; 64],
    n: usize,
    kind: c_uint,
    task: task_t,
    ctx: *mut c_void,
    record: RangeRecorder,
}

impl Batch {
    fn push(&mut self, address: usize, size: usize) {
        self.ranges[self.n] = VmRange { address, size };
        self.n += 1;
        if self.n == self.ranges.len() {
            self.flush();
        }
    }
    fn flush(&mut self) {
        if self.n != 0 {
            // SAFETY: the recorder reads n ranges from our array.
            unsafe { (self.record)(self.task, self.ctx, self.kind, self.ranges.as_mut_ptr(), self.n as c_uint) };
            self.n = 0;
        }
    }
}

unsafe extern "C" fn intro_good_size(_: *mut MallocZone, n: usize) -> usize {
    good_size(n)
}

unsafe extern "C" fn intro_check(_: *mut MallocZone) -> boolean_t {
    (ffi::goheap_check() == 0) as boolean_t
}

/// The statistics summary on stderr (as `malloc_stats` on Linux).
unsafe extern "C" fn intro_print(_: *mut MallocZone, _verbose: boolean_t) {
    hooks::report_stats();
}

/// Apple's per-address malloc logging: goheap has none (its profiler is
/// GOHEAP_PROFILE).
unsafe extern "C" fn intro_log(_: *mut MallocZone, _: *mut c_void) {}

unsafe extern "C" fn intro_force_lock(_: *mut MallocZone) {
    (fork().prepare)()
}

unsafe extern "C" fn intro_force_unlock(_: *mut MallocZone) {
    (fork().parent)()
}

unsafe extern "C" fn intro_reinit_lock(_: *mut MallocZone) {
    (fork().child)()
}

unsafe extern "C" fn intro_zone_locked(_: *mut MallocZone) -> boolean_t {
    (fork().locked)() as boolean_t
}

/// goheap's statistics in the zone's terms: blocks and bytes in use, the
/// peak of span memory, and the memory the heap holds (mapped, not released).
unsafe extern "C" fn intro_statistics(_: *mut MallocZone, out: *mut Statistics) {
    if out.is_null() {
        return;
    }
    let mut st = stats::goheap_stats::zeroed();
    hooks::collect_stats(&mut st);
    let blocks: u64 = st.class_objects_in_use.iter().skip(1).sum::<u64>() + st.large_objects;
    // SAFETY: the caller passes a writable malloc_statistics_t.
    unsafe {
        *out = Statistics {
            blocks_in_use: blocks.min(c_uint::MAX as u64) as c_uint,
            size_in_use: st.bytes_in_use,
            max_size_in_use: st.peak_bytes_in_spans,
            size_allocated: st.bytes_mapped.saturating_sub(st.bytes_released),
        };
    }
}
