//! Which allocations are sampled: as Go's mcache.nextSample, each thread
//! counts down the bytes until its next sample, a draw from an exponential
//! distribution with mean `GOHEAP_PROFILE_RATE`, kept with the thread's
//! PRNG state in TLS words of their own.

use crate::platform::os;
use crate::platform::tls::{prof_next as next_sample, prof_rng as rng};
use crate::settings;
use core::sync::atomic::Ordering;

fn next_random() -> u64 {
    let mut x = rng::get() as u64;
    if x == 0 {
        // Seed from the clock and this thread's stack address.
        let local = 0u8;
        x = os::nanotime() ^ ((&local as *const u8 as u64).rotate_left(32)) ^ 0x9e37_79b9_7f4a_7c15;
        if x == 0 {
            x = 1;
        }
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng::set(x as usize);
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

const LN2: f64 = core::f64::consts::LN_2;
const RANDOM_BITS: u32 = 26;

/// -ln(q / 2^26) for q in 1..=2^26, without libm: ln(q) = e·ln2 + ln(m) with
/// m = q / 2^e in [1, 2), and ln(m) = 2·atanh(t), t = (m-1)/(m+1) <= 1/3,
/// from its series to t^9 (error below 2e-5).
fn neg_ln_unit(q: u64) -> f64 {
    let e = 63 - q.leading_zeros();
    let m = q as f64 / (1u64 << e) as f64;
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let ln_m = 2.0 * t * (1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 / 9.0))));
    (RANDOM_BITS - e) as f64 * LN2 - ln_m
}

/// An exponentially distributed byte count with mean `rate` (Go's fastexprand).
fn draw_countdown(rate: usize) -> i64 {
    let q = (next_random() >> (64 - RANDOM_BITS)) + 1;
    let rate = rate.min(1 << 40) as f64;
    (neg_ln_unit(q) * rate) as i64 + 1
}

/// Count `size` bytes against this thread's countdown: true if this
/// allocation is to be sampled.
#[inline(always)]
pub(super) fn should_sample(size: usize) -> bool {
    let left = next_sample::get() as i64;
    let size = size.min(i64::MAX as usize / 2) as i64;
    if left > size {
        next_sample::set((left - size) as usize);
        return false;
    }
    sample_due(size)
}

#[cold]
fn sample_due(size: i64) -> bool {
    let rate = settings::PROFILE_RATE.load(Ordering::Relaxed);
    if rate <= 1 {
        return true;
    }
    if rng::get() == 0 {
        // This thread's first allocation: draw its countdown and apply it.
        let left = draw_countdown(rate);
        if left > size {
            next_sample::set((left - size) as usize);
            return false;
        }
    }
    next_sample::set(draw_countdown(rate) as usize);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neg_ln_matches_std() {
        for q in [1u64, 2, 3, 7, 1000, 12345, 1 << 20, (1 << 26) - 1, 1 << 26] {
            let want = -((q as f64) / (1u64 << 26) as f64).ln();
            let got = neg_ln_unit(q);
            assert!((got - want).abs() < 1e-4, "q={q}: {got} vs {want}");
        }
    }

    #[test]
    fn countdowns_have_the_requested_mean() {
        let n = 200_000;
        let rate = 4096;
        let sum: i64 = (0..n).map(|_| draw_countdown(rate)).sum();
        let mean = sum as f64 / n as f64;
        assert!((mean / rate as f64 - 1.0).abs() < 0.02, "mean {mean}");
    }
}
