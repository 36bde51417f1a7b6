//! Cache prefetch hints for the batched lookups.
//!
//! The one piece of `unsafe` outside the port backends: the CPU's prefetch
//! instruction, which the standard library exposes only as an unsafe
//! intrinsic. It is a hint: it never faults, never reads memory
//! architecturally and has no effect on program state.
#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line holding `value` into L1.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; the
    // pointer comes from a reference, and a prefetch does not dereference
    // it in any case (it cannot fault or change memory).
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
