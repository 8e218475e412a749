//! Register-tiled micro-kernels: each computes one `MR`×`NR` tile of C from a packed panel of A
//! (`MR` values per k, contiguous) and a packed panel of B (`NR` values per k, contiguous):
//!
//! `C[i][j] = alpha · Σ_p A[p·MR + i] · B[p·NR + j] + beta · C[i][j]`
//!
//! The accumulators of a whole tile stay in vector registers for the length of the panel; each
//! step loads `NR` values of B as vectors, broadcasts `MR` values of A, and issues `MR·NR/lanes`
//! fused multiply-adds. The tile sizes are chosen so that accumulators + B vectors + one broadcast
//! fit the register file: AVX-512 has 32 zmm registers (12×2 accumulators + 2 + 1), AVX2 16 ymm
//! (6×2 + 2 + 1).

/// A micro-kernel and its tile size.
pub(crate) trait MicroKernel {
    /// Rows of the C tile.
    const MR: usize;
    /// Columns of the C tile.
    const NR: usize;
    /// Computes one tile.
    ///
    /// # Safety
    /// `a` must point to `kc·MR` readable floats, `b` to `kc·NR`, and `c` to an `MR`×`NR` tile with
    /// row stride `rsc` (`(MR - 1)·rsc + NR` writable floats). When `beta == 0` the tile is only
    /// written, never read. The CPU must support the kernel's instruction set.
    unsafe fn run(
        kc: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    );
}

/// The portable kernel: plain Rust arrays that LLVM vectorises for the baseline target.
pub(crate) struct Portable;

impl MicroKernel for Portable {
    const MR: usize = 4;
    const NR: usize = 8;
    unsafe fn run(
        kc: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        let mut acc = [[0.0f32; 8]; 4];
        // SAFETY: the caller guarantees kc·MR floats at `a` and kc·NR at `b`.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(a, kc * 4),
                std::slice::from_raw_parts(b, kc * 8),
            )
        };
        for p in 0..kc {
            let bp = &b[p * 8..p * 8 + 8];
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = a[p * 4 + i];
                for (r, &bv) in row.iter_mut().zip(bp) {
                    *r += ai * bv;
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                // SAFETY: (i, j) lies inside the MR×NR tile the caller vouched for.
                unsafe {
                    let cij = c.add(i * rsc + j);
                    *cij = if beta == 0.0 {
                        alpha * v
                    } else {
                        alpha * v + beta * *cij
                    };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2Fma, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::MicroKernel;

    /// AVX-512F: a 12×32 tile in 24 zmm accumulators.
    pub(crate) struct Avx512;

    impl MicroKernel for Avx512 {
        const MR: usize = 12;
        const NR: usize = 32;
        unsafe fn run(
            kc: usize,
            alpha: f32,
            a: *const f32,
            b: *const f32,
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) {
            // SAFETY: forwarded contract; the dispatcher only selects this kernel when the CPU
            // reports avx512f.
            unsafe { avx512_12x32(kc, alpha, a, b, beta, c, rsc) }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_12x32(
        kc: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; 12];
        for p in 0..kc {
            // SAFETY: p < kc, so the 32 floats of B and 12 of A read here are inside the panels.
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(p * 32));
                let b1 = _mm512_loadu_ps(b.add(p * 32 + 16));
                let ap = a.add(p * 12);
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*ap.add(i));
                    row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
                }
            }
        }
        let va = _mm512_set1_ps(alpha);
        let vb = _mm512_set1_ps(beta);
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row i of the tile holds 32 writable floats at c + i·rsc.
            unsafe {
                let ci = c.add(i * rsc);
                for (h, &v) in row.iter().enumerate() {
                    let dst = ci.add(16 * h);
                    let mut r = _mm512_mul_ps(v, va);
                    if beta != 0.0 {
                        r = _mm512_fmadd_ps(_mm512_loadu_ps(dst), vb, r);
                    }
                    _mm512_storeu_ps(dst, r);
                }
            }
        }
    }

    /// AVX2 with FMA: a 6×16 tile in 12 ymm accumulators.
    pub(crate) struct Avx2Fma;

    impl MicroKernel for Avx2Fma {
        const MR: usize = 6;
        const NR: usize = 16;
        unsafe fn run(
            kc: usize,
            alpha: f32,
            a: *const f32,
            b: *const f32,
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) {
            // SAFETY: forwarded contract; selected only when the CPU reports avx2 and fma.
            unsafe { avx2_6x16(kc, alpha, a, b, beta, c, rsc) }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_6x16(
        kc: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; 6];
        for p in 0..kc {
            // SAFETY: p < kc, so the 16 floats of B and 6 of A read here are inside the panels.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(p * 16));
                let b1 = _mm256_loadu_ps(b.add(p * 16 + 8));
                let ap = a.add(p * 6);
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm256_set1_ps(*ap.add(i));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
            }
        }
        let va = _mm256_set1_ps(alpha);
        let vb = _mm256_set1_ps(beta);
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row i of the tile holds 16 writable floats at c + i·rsc.
            unsafe {
                let ci = c.add(i * rsc);
                for (h, &v) in row.iter().enumerate() {
                    let dst = ci.add(8 * h);
                    let mut r = _mm256_mul_ps(v, va);
                    if beta != 0.0 {
                        r = _mm256_fmadd_ps(_mm256_loadu_ps(dst), vb, r);
                    }
                    _mm256_storeu_ps(dst, r);
                }
            }
        }
    }
}
