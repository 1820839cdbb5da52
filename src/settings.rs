//! Settings from `GOHEAP_*` environment variables, read once at start-up
//! straight from `environ` (no allocation, no `std::env`). An unknown or
//! malformed setting is reported on stderr once and ignored, never fatal;
//! past the first five, one line counts the rest.
//!
//! This module only parses and stores typed values; reading one has no side
//! effect. Whoever owns a setting applies it: the memory layers read their
//! values here directly, and `init` hands the others (debug mode, the
//! profiler, the time series, the exit summary) to their modules after
//! `load`.
//!
//! | variable                  | meaning                                            | default |
//! |---------------------------|----------------------------------------------------|---------|
//! | `GOHEAP_BACKGROUND`       | 0 disables the background scavenger thread         | 1       |
//! | `GOHEAP_RELEASE_DELAY_MS` | free memory idle this long is returned to the OS   | 500     |
//! | `GOHEAP_RETAIN_PERCENT`   | free memory kept beyond heap in use, in percent    | 10      |
//! | `GOHEAP_MEMORY_LIMIT`     | soft limit on retained memory (K/M/G/T suffixes); 0 = none | none |
//! | `GOHEAP_STATS`            | 1 prints heap statistics to stderr at exit         | 0       |
//! | `GOHEAP_ON_ERROR`         | `abort` or `warn`: what misuse does (error.rs)       | abort   |
//! | `GOHEAP_DEBUG`            | 1: headers, canaries, quarantine (debug.rs)          | 0       |
//! | `GOHEAP_PROFILE`          | heap profile written to this file at exit (%p=pid) | none    |
//! | `GOHEAP_PROFILE_RATE`     | mean bytes between samples (K/M suffixes; 1 = all) | 512K    |
//! | `GOHEAP_STATS_INTERVAL`   | write a statistics line this often (ms or s suffix)| none    |
//! | `GOHEAP_STATS_FILE`       | where those lines go (`%p` = pid)                  | `goheap-stats.%p.tsv` |

use crate::platform::out::Line;
use crate::platform::{os, Os, SYS};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub static BACKGROUND: AtomicBool = AtomicBool::new(true);
pub static RELEASE_DELAY_MS: AtomicU64 = AtomicU64::new(500);
pub static RETAIN_PERCENT: AtomicUsize = AtomicUsize::new(10);
/// 0 = no limit.
pub static MEMORY_LIMIT: AtomicUsize = AtomicUsize::new(0);
/// Print statistics at exit.
pub static STATS: AtomicBool = AtomicBool::new(false);
/// `GOHEAP_ON_ERROR=warn`: report misuse and keep running.
pub static ON_ERROR_WARN: AtomicBool = AtomicBool::new(false);
/// `GOHEAP_DEBUG=1`.
pub static DEBUG: AtomicBool = AtomicBool::new(false);
/// Mean bytes between profile samples (Go's MemProfileRate; 1 = all).
pub static PROFILE_RATE: AtomicUsize = AtomicUsize::new(512 * 1024);
/// Time-series interval in milliseconds; 0 = no time series.
pub static STATS_INTERVAL_MS: AtomicU64 = AtomicU64::new(0);

/// The longest path a setting may name, NUL included.
pub const PATH_MAX: usize = 4096;

/// A path setting: stored while settings are read, before any thread
/// other than the loading one can look at it, and never changed after.
pub struct PathSetting {
    buf: core::cell::UnsafeCell<[u8; PATH_MAX]>,
    len: AtomicUsize,
}

// SAFETY: the buffer is written only by `load`, once, before `len` is
// published with Release; readers read `len` with Acquire first.
unsafe impl Sync for PathSetting {}

impl PathSetting {
    const fn new() -> Self {
        PathSetting { buf: core::cell::UnsafeCell::new([0; PATH_MAX]), len: AtomicUsize::new(0) }
    }

    /// The path, or None when the setting was not given.
    pub fn get(&self) -> Option<&[u8]> {
        let n = self.len.load(Ordering::Acquire);
        // SAFETY: the first n bytes were written before len was published.
        (n != 0).then(|| unsafe { &(&*self.buf.get())[..n] })
    }

    /// False if the path is empty or too long.
    fn set(&self, path: &[u8]) -> bool {
        if path.is_empty() || path.len() >= PATH_MAX {
            return false;
        }
        // SAFETY: only `load` writes, once, before publishing len (see Sync).
        unsafe { (&mut *self.buf.get())[..path.len()].copy_from_slice(path) };
        self.len.store(path.len(), Ordering::Release);
        true
    }
}

/// `GOHEAP_PROFILE`: where the heap profile goes (`%p` = pid).
pub static PROFILE_PATH: PathSetting = PathSetting::new();
/// `GOHEAP_STATS_FILE`: where the time series goes (`%p` = pid).
pub static STATS_FILE: PathSetting = PathSetting::new();
/// Parse a decimal number with an optional K/M/G/T suffix (powers of 1024,
/// an optional trailing 'B' or 'iB' allowed).
pub fn parse_size(s: &[u8]) -> Option<usize> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut n: usize = 0;
    for &c in &s[..digits] {
        n = n.checked_mul(10)?.checked_add((c - b'0') as usize)?;
    }
    let shift = match &s[digits..] {
        b"" | b"B" | b"b" => 0,
        b"K" | b"k" | b"KB" | b"KiB" | b"kB" => 10,
        b"M" | b"m" | b"MB" | b"MiB" => 20,
        b"G" | b"g" | b"GB" | b"GiB" => 30,
        b"T" | b"t" | b"TB" | b"TiB" => 40,
        _ => return None,
    };
    n.checked_mul(1usize << shift)
}

/// A duration in milliseconds: a number with an optional `ms` or `s` suffix
/// (no suffix: milliseconds).
pub fn parse_duration_ms(s: &[u8]) -> Option<u64> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = parse_u64(&s[..digits])?;
    match &s[digits..] {
        b"" | b"ms" => Some(n),
        b"s" => n.checked_mul(1000),
        _ => None,
    }
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(|c| c.is_ascii_digit()) || s.len() > 18 {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &c| n * 10 + (c - b'0') as u64))
}

/// Settings reported one per line; past these, one line counts the rest
/// (an environment full of stray GOHEAP_ variables must not flood stderr).
const MAX_WARNINGS: usize = 5;

fn warn(what: &[u8], entry: &[u8]) {
    os::write_stderr(b"goheap: ignoring ");
    os::write_stderr(what);
    os::write_stderr(b" setting ");
    os::write_stderr(entry);
    os::write_stderr(b"\n");
}

fn warn_rest(n: usize) {
    Line::stderr().s(b"goheap: ignoring ").n(n as u64, 0).s(b" more GOHEAP_* settings (unknown or malformed)\n").flush();
}

/// Apply one `NAME=value` entry; false if the name is unknown or the value
/// malformed.
fn apply(name: &[u8], value: &[u8]) -> Result<(), &'static [u8]> {
    match name {
        b"GOHEAP_BACKGROUND" => match value {
            b"0" | b"false" | b"off" => BACKGROUND.store(false, Ordering::Relaxed),
            b"1" | b"true" | b"on" => BACKGROUND.store(true, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_STATS" => match value {
            b"0" | b"false" | b"off" => STATS.store(false, Ordering::Relaxed),
            b"1" | b"true" | b"on" => STATS.store(true, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_ON_ERROR" => match value {
            b"abort" => ON_ERROR_WARN.store(false, Ordering::Relaxed),
            b"warn" => ON_ERROR_WARN.store(true, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_DEBUG" => match value {
            b"0" | b"false" | b"off" => DEBUG.store(false, Ordering::Relaxed),
            b"1" | b"true" | b"on" => DEBUG.store(true, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_RELEASE_DELAY_MS" => match parse_u64(value) {
            Some(v) => RELEASE_DELAY_MS.store(v, Ordering::Relaxed),
            None => return Err(b"malformed"),
        },
        b"GOHEAP_RETAIN_PERCENT" => match parse_u64(value) {
            Some(v) if v <= 10_000 => RETAIN_PERCENT.store(v as usize, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        // 0 is accepted and means no limit (as when the variable is unset).
        b"GOHEAP_MEMORY_LIMIT" => match parse_size(value) {
            Some(v) => MEMORY_LIMIT.store(v, Ordering::Relaxed),
            None => return Err(b"malformed"),
        },
        b"GOHEAP_PROFILE" => {
            if !PROFILE_PATH.set(value) {
                return Err(b"malformed");
            }
        }
        b"GOHEAP_PROFILE_RATE" => match parse_size(value) {
            Some(v) if v > 0 => PROFILE_RATE.store(v, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_STATS_INTERVAL" => match parse_duration_ms(value) {
            Some(v) if v > 0 => STATS_INTERVAL_MS.store(v, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_STATS_FILE" => {
            if !STATS_FILE.set(value) {
                return Err(b"malformed");
            }
        }
        _ => return Err(b"unknown"),
    }
    Ok(())
}

static LOADED: AtomicBool = AtomicBool::new(false);

/// Read every `GOHEAP_*` variable, once (later calls do nothing). Before
/// the C library has set `environ` up this is a no-op, so that a later call
/// still reads them.
pub fn load() {
    if LOADED.load(Ordering::Acquire) {
        return;
    }
    // Decided at the first entry: whether this call is the one that reads.
    let mut mine: Option<bool> = None;
    let mut rejected = 0;
    SYS.for_each_env(&mut |entry: &[u8]| {
        if !*mine.get_or_insert_with(|| !LOADED.swap(true, Ordering::AcqRel)) {
            return;
        }
        if entry.starts_with(b"GOHEAP_") {
            let eq = entry.iter().position(|&c| c == b'=').unwrap_or(entry.len());
            let value = if eq < entry.len() { &entry[eq + 1..] } else { &[][..] };
            if let Err(why) = apply(&entry[..eq], value) {
                rejected += 1;
                if rejected <= MAX_WARNINGS {
                    warn(why, entry);
                }
            }
        }
    });
    if rejected > MAX_WARNINGS {
        warn_rest(rejected - MAX_WARNINGS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size(b"512M"), Some(512 << 20));
        assert_eq!(parse_size(b"1G"), Some(1 << 30));
        assert_eq!(parse_size(b"64KiB"), Some(64 << 10));
        assert_eq!(parse_size(b"1000"), Some(1000));
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"12X"), None);
        assert_eq!(parse_size(b"M"), None);
        assert_eq!(parse_size(b"99999999999999999999999"), None);
    }

    #[test]
    fn durations_parse_with_suffixes() {
        assert_eq!(parse_duration_ms(b"100ms"), Some(100));
        assert_eq!(parse_duration_ms(b"250"), Some(250));
        assert_eq!(parse_duration_ms(b"2s"), Some(2000));
        assert_eq!(parse_duration_ms(b"ms"), None);
        assert_eq!(parse_duration_ms(b"1h"), None);
        assert_eq!(parse_duration_ms(b""), None);
    }

    #[test]
    fn unknown_and_malformed_settings_are_rejected() {
        assert!(apply(b"GOHEAP_NOPE", b"1").is_err());
        assert!(apply(b"GOHEAP_RELEASE_DELAY_MS", b"soon").is_err());
        assert!(apply(b"GOHEAP_BACKGROUND", b"maybe").is_err());
        assert!(apply(b"GOHEAP_STATS", b"yes please").is_err());
        assert!(apply(b"GOHEAP_PROFILE_RATE", b"0").is_err());
        assert!(apply(b"GOHEAP_PROFILE_RATE", b"fast").is_err());
        assert!(apply(b"GOHEAP_STATS_INTERVAL", b"0").is_err());
        assert!(apply(b"GOHEAP_STATS_INTERVAL", b"soon").is_err());
        assert!(apply(b"GOHEAP_PROFILE", b"").is_err());
        assert!(apply(b"GOHEAP_STATS", b"0").is_ok());
        assert!(apply(b"GOHEAP_ON_ERROR", b"ignore").is_err());
        assert!(apply(b"GOHEAP_ON_ERROR", b"abort").is_ok());
        assert!(apply(b"GOHEAP_DEBUG", b"2").is_err());
        assert!(apply(b"GOHEAP_MEMORY_LIMIT", b"0").is_ok());
        assert_eq!(MEMORY_LIMIT.load(Ordering::Relaxed), 0);
        assert!(apply(b"GOHEAP_MEMORY_LIMIT", b"-1").is_err());
        assert!(apply(b"GOHEAP_RETAIN_PERCENT", b"25").is_ok());
        assert_eq!(RETAIN_PERCENT.load(Ordering::Relaxed), 25);
        RETAIN_PERCENT.store(10, Ordering::Relaxed);
    }
}
