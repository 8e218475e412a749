//! A cache hint: start loading the memory behind a slice before it is needed.
//!
//! Word2Vec's inner loop reads rows of a large matrix at random (the noise words): each read
//! misses the cache, and issuing the loads for the next rows early hides that latency.

/// Asks the CPU to bring the cache lines holding `data` towards L1. Has no effect on the
/// program's meaning; a no-op on targets other than x86-64 and under Miri.
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(data);
        let start = data.as_ptr().cast::<i8>();
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: `start + offset` lies inside `data` (offset < its size in bytes), and a
            // prefetch never faults, reads into the program or changes memory: it is a hint.
            // SSE (which `prefetcht0` belongs to) is part of the x86-64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
            offset += 64;
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = data;
}
