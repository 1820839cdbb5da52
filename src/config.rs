//! Settings from `GOHEAP_*` environment variables, read once at start-up
//! straight from `environ` (no allocation, no `std::env`). An unknown or
//! malformed setting is reported on stderr once and ignored, never fatal.
//!
//! | variable                  | meaning                                            | default |
//! |---------------------------|----------------------------------------------------|---------|
//! | `GOHEAP_BACKGROUND`       | 0 disables the background scavenger thread         | 1       |
//! | `GOHEAP_RELEASE_DELAY_MS` | free memory idle this long is returned to the OS   | 500     |
//! | `GOHEAP_RETAIN_PERCENT`   | free memory kept beyond heap in use, in percent    | 10      |
//! | `GOHEAP_MEMORY_LIMIT`     | soft limit on retained memory (K/M/G suffixes)     | none    |
//! | `GOHEAP_STATS`            | 1 prints heap statistics to stderr at exit         | 0       |
//! | `GOHEAP_ON_ERROR`         | `abort` or `warn`: what misuse does (error.rs)     | abort   |
//! | `GOHEAP_DEBUG`            | 1: headers, canaries, quarantine (debug.rs)        | 0       |
//! | `GOHEAP_PROFILE`          | heap profile written to this file at exit (%p=pid) | none    |
//! | `GOHEAP_PROFILE_RATE`     | mean bytes between samples (K/M suffixes; 1 = all) | 512K    |
//! | `GOHEAP_STATS_INTERVAL`   | write a statistics line this often (ms or s suffix)| none    |
//! | `GOHEAP_STATS_FILE`       | where those lines go (`%p` = pid)                  | `goheap-stats.%p.tsv` |

use crate::os;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub static BACKGROUND: AtomicBool = AtomicBool::new(true);
pub static RELEASE_DELAY_MS: AtomicU64 = AtomicU64::new(500);
pub static RETAIN_PERCENT: AtomicUsize = AtomicUsize::new(10);
/// 0 = no limit.
pub static MEMORY_LIMIT: AtomicUsize = AtomicUsize::new(0);
/// Print statistics at exit (stats.rs).
pub static STATS: AtomicBool = AtomicBool::new(false);

extern "C" {
    static environ: *const *const libc::c_char;
}

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

fn warn(what: &[u8], entry: &[u8]) {
    os::write_stderr(b"goheap: ignoring ");
    os::write_stderr(what);
    os::write_stderr(b" setting ");
    os::write_stderr(entry);
    os::write_stderr(b"\n");
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
            b"1" | b"true" | b"on" => {
                STATS.store(true, Ordering::Relaxed);
                crate::stats::keep_exit_output();
            }
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_ON_ERROR" => match value {
            b"abort" => crate::error::WARN.store(false, Ordering::Relaxed),
            b"warn" => crate::error::WARN.store(true, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_DEBUG" => match value {
            b"0" | b"false" | b"off" => crate::debug::set_enabled(false),
            b"1" | b"true" | b"on" => crate::debug::set_enabled(true),
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
        b"GOHEAP_MEMORY_LIMIT" => match parse_size(value) {
            Some(v) => MEMORY_LIMIT.store(v, Ordering::Relaxed),
            None => return Err(b"malformed"),
        },
        b"GOHEAP_PROFILE" => {
            if !crate::profile::enable(value) {
                return Err(b"malformed");
            }
        }
        b"GOHEAP_PROFILE_RATE" => match parse_size(value) {
            Some(v) if v > 0 => crate::profile::RATE.store(v, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_STATS_INTERVAL" => match parse_duration_ms(value) {
            Some(v) if v > 0 => crate::series::INTERVAL_MS.store(v, Ordering::Relaxed),
            _ => return Err(b"malformed"),
        },
        b"GOHEAP_STATS_FILE" => {
            if !crate::series::set_path(value) {
                return Err(b"malformed");
            }
        }
        _ => return Err(b"unknown"),
    }
    Ok(())
}

static LOADED: AtomicBool = AtomicBool::new(false);

/// Read every `GOHEAP_*` variable, once. The first malloc can come before
/// the C library has set `environ` up; then this is a no-op and the library
/// constructor calls it again.
pub fn load() {
    if LOADED.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: environ is the C library's environment array, NULL-terminated,
    // and nothing modifies it while the process starts up.
    let mut e = unsafe { environ };
    if e.is_null() || LOADED.swap(true, Ordering::AcqRel) {
        return;
    }
    loop {
        // SAFETY: e points into the NULL-terminated environ array.
        let entry = unsafe { *e };
        if entry.is_null() {
            break;
        }
        // SAFETY: each environ entry is a NUL-terminated C string.
        let bytes = unsafe { core::ffi::CStr::from_ptr(entry) }.to_bytes();
        if bytes.starts_with(b"GOHEAP_") {
            let eq = bytes.iter().position(|&c| c == b'=').unwrap_or(bytes.len());
            let value = if eq < bytes.len() { &bytes[eq + 1..] } else { &[][..] };
            if let Err(why) = apply(&bytes[..eq], value) {
                warn(why, bytes);
            }
        }
        // SAFETY: still inside the array (we stop at its NULL).
        e = unsafe { e.add(1) };
    }
    crate::hooks::refresh();
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
        assert!(apply(b"GOHEAP_RETAIN_PERCENT", b"25").is_ok());
        assert_eq!(RETAIN_PERCENT.load(Ordering::Relaxed), 25);
        RETAIN_PERCENT.store(10, Ordering::Relaxed);
    }
}
