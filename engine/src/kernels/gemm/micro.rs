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
    /// Whether products with at most 16 columns go to the AVX-512 skinny kernel.
    const SKINNY: bool = false;
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

    /// Whether [`MicroKernel::run_rows`] can read B in place (row-major, any row stride).
    const DIRECT_B: bool = false;
    /// The most rows of A for which B is read in place (when [`MicroKernel::DIRECT_B`]): every
    /// panel of A rows reads all of B again, and past this many panels packed (contiguous) B
    /// panels pay for their copy.
    const DIRECT_B_ROWS: usize = usize::MAX;

    /// Computes the first `rows` (≤ MR) rows of a tile straight into C, with B's rows `ldb` apart
    /// (`NR` for a packed panel; a row-major B's row stride when read in place, for kernels with
    /// [`MicroKernel::DIRECT_B`]). Returns false, doing nothing, when the kernel has no such
    /// variant; the caller then goes through a scratch tile instead.
    ///
    /// # Safety
    /// As [`MicroKernel::run`], with only the first `rows` rows of the C tile accessed and B read
    /// at `b + p·ldb + j` for p < kc, j < NR.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_rows(
        _rows: usize,
        _kc: usize,
        _alpha: f32,
        _a: *const f32,
        _b: (*const f32, usize),
        _beta: f32,
        _c: *mut f32,
        _rsc: usize,
    ) -> bool {
        false
    }

    /// Whether [`MicroKernel::run_rows_a`] exists.
    const DIRECT_A: bool = false;
    /// Whether a row-major A is read in place whatever the product's width and A's row stride
    /// (when [`MicroKernel::DIRECT_A`]), rather than only where `a_in_place_pays`.
    const DIRECT_A_ALWAYS: bool = false;

    /// [`MicroKernel::run_rows`] with A read in place from a row-major matrix instead of a packed
    /// panel: `a = (first, lda, next)` reads `A[i][p]` at `first + i·lda + p`, and `next` (or
    /// null) is the start of the following panel of rows, fetched into cache meanwhile. Returns
    /// false, doing nothing, when the kernel has no such variant.
    ///
    /// # Safety
    /// As [`MicroKernel::run_rows`], with `first + i·lda + p` readable for i < `rows`, p < kc.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_rows_a(
        _rows: usize,
        _kc: usize,
        _alpha: f32,
        _a: (*const f32, usize, *const f32),
        _b: (*const f32, usize),
        _beta: f32,
        _c: *mut f32,
        _rsc: usize,
    ) -> bool {
        false
    }
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
pub(crate) use x86::{avx512_skinny, Avx2Fma, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::MicroKernel;

    /// `$call` with the const `$R` equal to `$rows` (1 to 12, the row counts of a 12-row tile);
    /// `return false` from the enclosing function for any other count.
    #[rustfmt::skip]
    macro_rules! with_rows {
        ($rows:expr, $R:ident => $call:expr) => {
            match $rows {
                1 => { const $R: usize = 1; $call }
                2 => { const $R: usize = 2; $call }
                3 => { const $R: usize = 3; $call }
                4 => { const $R: usize = 4; $call }
                5 => { const $R: usize = 5; $call }
                6 => { const $R: usize = 6; $call }
                7 => { const $R: usize = 7; $call }
                8 => { const $R: usize = 8; $call }
                9 => { const $R: usize = 9; $call }
                10 => { const $R: usize = 10; $call }
                11 => { const $R: usize = 11; $call }
                12 => { const $R: usize = 12; $call }
                _ => return false,
            }
        };
    }

    /// AVX-512F: a 12×32 tile in 24 zmm accumulators.
    pub(crate) struct Avx512;

    impl MicroKernel for Avx512 {
        const MR: usize = 12;
        const NR: usize = 32;
        const SKINNY: bool = true;
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
            unsafe { avx512_tile::<12>(kc, alpha, a, b, beta, c, rsc) }
        }

        const DIRECT_B: bool = true;

        unsafe fn run_rows(
            rows: usize,
            kc: usize,
            alpha: f32,
            a: *const f32,
            b: (*const f32, usize),
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) -> bool {
            // SAFETY: forwarded contract, each variant touching only its first `rows` rows of C;
            // selected only when the CPU reports avx512f.
            let a = (a, 12, std::ptr::null());
            unsafe {
                with_rows!(rows, R => avx512_tile_b::<R, false>(kc, alpha, a, b, beta, c, rsc));
            }
            true
        }

        const DIRECT_A: bool = true;

        unsafe fn run_rows_a(
            rows: usize,
            kc: usize,
            alpha: f32,
            a: (*const f32, usize, *const f32),
            b: (*const f32, usize),
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) -> bool {
            // SAFETY: forwarded contract, each variant touching only its first `rows` rows of C;
            // selected only when the CPU reports avx512f.
            unsafe {
                with_rows!(rows, R => avx512_tile_a::<R>(kc, alpha, a, b, beta, c, rsc));
            }
            true
        }
    }

    /// The first `R` rows of a 12×32 tile (the panel of A keeps its 12-float stride per k):
    /// `R = 12` is the main kernel, smaller `R` finish a C whose height is not a multiple of 12
    /// without a scratch tile (and without the wasted multiply-adds of the padding rows).
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_tile<const R: usize>(
        kc: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        // SAFETY: forwarded contract, with packed panels (A's columns 12 floats apart, B's rows 32).
        unsafe {
            avx512_tile_b::<R, false>(kc, alpha, (a, 12, std::ptr::null()), (b, 32), beta, c, rsc)
        }
    }

    /// [`avx512_tile_b`] with A read in place, `A[i][p]` at `a + i·lda + p` (a row-major A: its
    /// panels need no transposing copy), and the rows of the next panel fetched meanwhile.
    ///
    /// # Safety
    /// As [`MicroKernel::run_rows_a`].
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_tile_a<const R: usize>(
        kc: usize,
        alpha: f32,
        a: (*const f32, usize, *const f32),
        b: (*const f32, usize),
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        // SAFETY: forwarded contract.
        unsafe { avx512_tile_b::<R, true>(kc, alpha, a, b, beta, c, rsc) }
    }

    /// [`avx512_tile`] with B's rows `ldb` apart: 32 for a packed panel, or a row-major B read in
    /// place (a product with a single panel of A rows uses each B element once, so packing B
    /// would only copy it). `A_IN_PLACE` picks A's layout: a packed panel (`A[i][p]` at
    /// `a + p·12 + i`) or a row-major A (`a + i·lda + p`), whose next panel `next` (unless null) is
    /// prefetched, one cache line of each row per 16 steps of k.
    ///
    /// # Safety
    /// As [`MicroKernel::run`], with B read at `b + p·ldb + j` for p < kc, j < 32, and A at the
    /// addresses above for i < R.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_tile_b<const R: usize, const A_IN_PLACE: bool>(
        kc: usize,
        alpha: f32,
        (a, lda, next): (*const f32, usize, *const f32),
        (b, ldb): (*const f32, usize),
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        // Start loading the C tile now: it is read (or written) only after the loop, and a tile of
        // a large C is rarely in cache. The hint cannot fault, so it is fine when beta is 0.
        for i in 0..R {
            // SAFETY: address arithmetic inside the caller's tile; prefetches do not fault.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * rsc).cast());
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * rsc + 31).cast());
            }
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        // A's rows, for the in-place layout.
        let rows: [*const f32; R] = std::array::from_fn(|i| a.wrapping_add(i * lda));
        // The next panel's rows, as an offset from this panel's.
        let next_offset = (next as usize).wrapping_sub(a as usize) / 4;
        // One step of k: two vectors of B, R broadcasts of A, 2·R fused multiply-adds.
        let step = |acc: &mut [[__m512; 2]; R], p: usize| {
            // SAFETY: callers pass p < kc, so the 32 floats of B (row p, `ldb` apart) and the R of
            // A read here are inside the panels.
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(p * ldb));
                let b1 = _mm512_loadu_ps(b.add(p * ldb + 16));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(if A_IN_PLACE {
                        *rows[i].add(p)
                    } else {
                        *a.add(p * 12 + i)
                    });
                    row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
                }
            }
        };
        let mut p = 0;
        if A_IN_PLACE {
            // Sixteen steps of k at a time (a cache line of each row), fetching the next panel's
            // lines meanwhile.
            let prefetch_next = !next.is_null();
            while p < kc {
                let steps = 16.min(kc - p);
                if prefetch_next {
                    for &row in &rows {
                        // A hint, which cannot fault.
                        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(next_offset + p).cast());
                    }
                }
                if R == 12 {
                    let acc: &mut [[__m512; 2]; 12] = (&mut acc[..]).try_into().expect("R is 12");
                    // SAFETY: rows 0..12 of A are readable from column p for `steps` values, B's
                    // rows p..p + steps hold 32 floats each (the caller's contract).
                    unsafe {
                        avx512_12x32_in_place_steps(acc, a.add(p), lda, b.add(p * ldb), ldb, steps)
                    };
                    p += steps;
                } else {
                    // The last rows of a C: not unrolled (unrolled, LLVM gathers each row's four
                    // consecutive values ahead of their multiply-adds and spills the broadcasts).
                    for _ in 0..steps {
                        step(&mut acc, p);
                        p += 1;
                    }
                }
            }
        }
        // Unrolled by four, so that the loop's own bookkeeping rarely takes an FMA port's slot.
        while p + 4 <= kc {
            step(&mut acc, p);
            step(&mut acc, p + 1);
            step(&mut acc, p + 2);
            step(&mut acc, p + 3);
            p += 4;
        }
        while p < kc {
            step(&mut acc, p);
            p += 1;
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

    /// `steps` (≥ 1) steps of k of the 12×32 tile with A read in place: `acc[i][h] += A[i][p] ·
    /// B[p][16h..16h + 16]` for p < steps, A's row i at `a + i·lda`, B's row p at `b + p·ldb`.
    ///
    /// In assembly because LLVM does not keep this loop lean: with twelve row addresses it either
    /// chains twelve additions per step (the loop then issues about 60 instructions per 24
    /// multiply-adds, more than the front end sustains) or, unrolled, gathers each row's
    /// consecutive values ahead of their multiply-adds and spills the broadcasts to the stack.
    /// Here two base pointers and three multiples of `lda` address all twelve rows
    /// (`base + {0, 1, 2, 4}·lda`, `base + 3·lda`, `base + 5·lda`), so a step is 2 loads of B,
    /// 12 broadcasts, 24 multiply-adds and 4 integer instructions.
    ///
    /// # Safety
    /// `a + i·lda + p` readable for i < 12, p < steps; `b + p·ldb + j` for p < steps, j < 32;
    /// `steps ≥ 1`; the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_12x32_in_place_steps(
        acc: &mut [[__m512; 2]; 12],
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        steps: usize,
    ) {
        debug_assert!(steps >= 1);
        let lda_bytes = lda * 4;
        // SAFETY: the loop reads A and B only at the addresses the caller vouched for, runs
        // `steps` times (≥ 1), and touches no memory otherwise; the registers it uses besides
        // its operands are declared clobbered.
        unsafe {
            std::arch::asm!(
                "2:",
                "vmovups zmm24, [{b}]",
                "vmovups zmm25, [{b} + 64]",
                "add {b}, {ldb}",
                "vbroadcastss zmm26, dword ptr [{a0}]",
                "vfmadd231ps zmm0, zmm26, zmm24",
                "vfmadd231ps zmm1, zmm26, zmm25",
                "vbroadcastss zmm27, dword ptr [{a0} + {l1}]",
                "vfmadd231ps zmm2, zmm27, zmm24",
                "vfmadd231ps zmm3, zmm27, zmm25",
                "vbroadcastss zmm26, dword ptr [{a0} + {l1}*2]",
                "vfmadd231ps zmm4, zmm26, zmm24",
                "vfmadd231ps zmm5, zmm26, zmm25",
                "vbroadcastss zmm27, dword ptr [{a0} + {l3}]",
                "vfmadd231ps zmm6, zmm27, zmm24",
                "vfmadd231ps zmm7, zmm27, zmm25",
                "vbroadcastss zmm26, dword ptr [{a0} + {l1}*4]",
                "vfmadd231ps zmm8, zmm26, zmm24",
                "vfmadd231ps zmm9, zmm26, zmm25",
                "vbroadcastss zmm27, dword ptr [{a0} + {l5}]",
                "vfmadd231ps zmm10, zmm27, zmm24",
                "vfmadd231ps zmm11, zmm27, zmm25",
                "vbroadcastss zmm26, dword ptr [{a6}]",
                "vfmadd231ps zmm12, zmm26, zmm24",
                "vfmadd231ps zmm13, zmm26, zmm25",
                "vbroadcastss zmm27, dword ptr [{a6} + {l1}]",
                "vfmadd231ps zmm14, zmm27, zmm24",
                "vfmadd231ps zmm15, zmm27, zmm25",
                "vbroadcastss zmm26, dword ptr [{a6} + {l1}*2]",
                "vfmadd231ps zmm16, zmm26, zmm24",
                "vfmadd231ps zmm17, zmm26, zmm25",
                "vbroadcastss zmm27, dword ptr [{a6} + {l3}]",
                "vfmadd231ps zmm18, zmm27, zmm24",
                "vfmadd231ps zmm19, zmm27, zmm25",
                "vbroadcastss zmm26, dword ptr [{a6} + {l1}*4]",
                "vfmadd231ps zmm20, zmm26, zmm24",
                "vfmadd231ps zmm21, zmm26, zmm25",
                "vbroadcastss zmm27, dword ptr [{a6} + {l5}]",
                "vfmadd231ps zmm22, zmm27, zmm24",
                "vfmadd231ps zmm23, zmm27, zmm25",
                "add {a0}, 4",
                "add {a6}, 4",
                "dec {k}",
                "jnz 2b",
                a0 = inout(reg) a => _,
                a6 = inout(reg) a.add(6 * lda) => _,
                l1 = in(reg) lda_bytes,
                l3 = in(reg) 3 * lda_bytes,
                l5 = in(reg) 5 * lda_bytes,
                b = inout(reg) b => _,
                ldb = in(reg) ldb * 4,
                k = inout(reg) steps => _,
                inout("zmm0") acc[0][0],
                inout("zmm1") acc[0][1],
                inout("zmm2") acc[1][0],
                inout("zmm3") acc[1][1],
                inout("zmm4") acc[2][0],
                inout("zmm5") acc[2][1],
                inout("zmm6") acc[3][0],
                inout("zmm7") acc[3][1],
                inout("zmm8") acc[4][0],
                inout("zmm9") acc[4][1],
                inout("zmm10") acc[5][0],
                inout("zmm11") acc[5][1],
                inout("zmm12") acc[6][0],
                inout("zmm13") acc[6][1],
                inout("zmm14") acc[7][0],
                inout("zmm15") acc[7][1],
                inout("zmm16") acc[8][0],
                inout("zmm17") acc[8][1],
                inout("zmm18") acc[9][0],
                inout("zmm19") acc[9][1],
                inout("zmm20") acc[10][0],
                inout("zmm21") acc[10][1],
                inout("zmm22") acc[11][0],
                inout("zmm23") acc[11][1],
                out("zmm24") _,
                out("zmm25") _,
                out("zmm26") _,
                out("zmm27") _,
                options(nostack, readonly),
            );
        }
    }

    /// The skinny-product kernel (AVX-512F): `R` rows of C, each at most 16 columns wide, so one
    /// zmm register per row holds a whole row of the result,
    ///
    /// `C[i][j] = alpha · Σ_p A[i·rsa + p·csa] · B[p·16 + j] + beta · C[i][j]`  (j < n)
    ///
    /// A is read in place through its strides (each element is used exactly once, so packing it
    /// would cost as much as the product); B is packed as `kc` rows of 16 floats, zero beyond `n`.
    /// Two sets of accumulators (even and odd k) keep 2·R independent FMA chains in flight, enough
    /// to cover the FMA latency at R = 8. The last `16 - n` lanes are masked off in the C update.
    ///
    /// # Safety
    /// `a + i·rsa + p·csa` must be readable for i < R, p < kc; `b` must point to `kc·16` floats;
    /// `c + i·rsc + j` must be writable for i < R, j < n (read too when `beta != 0`); `n ≤ 16`; the
    /// CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn avx512_skinny<const R: usize>(
        kc: usize,
        alpha: f32,
        (a, rsa, csa): (*const f32, usize, usize),
        b: *const f32,
        beta: f32,
        (c, rsc): (*mut f32, usize),
        n: usize,
    ) {
        let mut even = [_mm512_setzero_ps(); R];
        let mut odd = [_mm512_setzero_ps(); R];
        let mut p = 0;
        while p + 2 <= kc {
            // SAFETY: p + 1 < kc: the reads lie inside the ranges the caller vouched for.
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(p * 16));
                let b1 = _mm512_loadu_ps(b.add(p * 16 + 16));
                for i in 0..R {
                    let row = a.add(i * rsa + p * csa);
                    even[i] = _mm512_fmadd_ps(_mm512_set1_ps(*row), b0, even[i]);
                    odd[i] = _mm512_fmadd_ps(_mm512_set1_ps(*row.add(csa)), b1, odd[i]);
                }
            }
            p += 2;
        }
        if p < kc {
            // SAFETY: p < kc, as above.
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(p * 16));
                for (i, acc) in even.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(i * rsa + p * csa)), b0, *acc);
                }
            }
        }
        let mask: __mmask16 = ((1u32 << n) - 1) as u16;
        let (va, vb) = (_mm512_set1_ps(alpha), _mm512_set1_ps(beta));
        for i in 0..R {
            let mut r = _mm512_mul_ps(_mm512_add_ps(even[i], odd[i]), va);
            // SAFETY: the masked lanes j < n of row i are inside C; masked-off lanes are neither
            // read nor written and cannot fault.
            unsafe {
                let dst = c.add(i * rsc);
                if beta != 0.0 {
                    r = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, dst), vb, r);
                }
                _mm512_mask_storeu_ps(dst, mask, r);
            }
        }
    }

    /// AVX2 with FMA: a 6×16 tile in 12 ymm accumulators.
    pub(crate) struct Avx2Fma;

    impl MicroKernel for Avx2Fma {
        const MR: usize = 6;
        const NR: usize = 16;
        // B in place for products of up to 256 rows (see `b_in_place_pays`); past that, the
        // contiguous packed panels stream faster from Zen 1's L2 than rows 0.5–1 KiB apart.
        const DIRECT_B: bool = true;
        const DIRECT_B_ROWS: usize = 256;
        // A in place for every product: on Zen 1 packing A costs more than reading it in place
        // loses, even for wide products and rows 4 KiB apart (see `a_in_place_pays`).
        const DIRECT_A_ALWAYS: bool = true;
        unsafe fn run(
            kc: usize,
            alpha: f32,
            a: *const f32,
            b: *const f32,
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) {
            // SAFETY: forwarded contract, with packed panels (A's columns 6 floats apart, B's rows
            // 16); selected only when the CPU reports avx2 and fma.
            unsafe {
                avx2_tile::<6, false>(kc, alpha, (a, 6, std::ptr::null()), (b, 16), beta, c, rsc)
            }
        }

        unsafe fn run_rows(
            rows: usize,
            kc: usize,
            alpha: f32,
            a: *const f32,
            b: (*const f32, usize),
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) -> bool {
            if rows > 6 {
                return false;
            }
            // SAFETY: forwarded contract, each variant touching only its first `rows` rows of C;
            // selected only when the CPU reports avx2 and fma.
            let a = (a, 6, std::ptr::null());
            unsafe {
                with_rows!(rows, R => avx2_tile::<R, false>(kc, alpha, a, b, beta, c, rsc));
            }
            true
        }

        const DIRECT_A: bool = true;

        unsafe fn run_rows_a(
            rows: usize,
            kc: usize,
            alpha: f32,
            a: (*const f32, usize, *const f32),
            b: (*const f32, usize),
            beta: f32,
            c: *mut f32,
            rsc: usize,
        ) -> bool {
            if rows > 6 {
                return false;
            }
            // SAFETY: forwarded contract, each variant touching only its first `rows` rows of C;
            // selected only when the CPU reports avx2 and fma.
            unsafe {
                with_rows!(rows, R => avx2_tile::<R, true>(kc, alpha, a, b, beta, c, rsc));
            }
            true
        }
    }

    /// The first `R` (≤ 6) rows of a 6×16 tile (`R = 6` is the main kernel), with B's rows `ldb` apart and A either a packed
    /// panel (`A[i][p]` at `a + p·6 + i`) or, when `A_IN_PLACE`, a row-major A (`a + i·lda + p`:
    /// no transposing copy for products narrow enough that A is read only a few times) whose next
    /// panel `next` (unless null) is fetched meanwhile, a cache line of each row per 16 steps of k.
    /// With `R < 6` it finishes a C whose height is not a multiple of 6 in place, without a
    /// scratch tile.
    ///
    /// # Safety
    /// As [`MicroKernel::run_rows_a`] (or [`MicroKernel::run_rows`] for a packed A), for `R` rows.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_tile<const R: usize, const A_IN_PLACE: bool>(
        kc: usize,
        alpha: f32,
        (a, lda, next): (*const f32, usize, *const f32),
        (b, ldb): (*const f32, usize),
        beta: f32,
        c: *mut f32,
        rsc: usize,
    ) {
        for i in 0..R {
            // SAFETY: address arithmetic inside the caller's tile; prefetches do not fault.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * rsc).cast());
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * rsc + 15).cast());
            }
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let next_offset = (next as usize).wrapping_sub(a as usize) / 4;
        let mut p = 0;
        while p < kc {
            let steps = 16.min(kc - p);
            if A_IN_PLACE && !next.is_null() {
                for i in 0..R {
                    // A hint for the next panel's row i, which cannot fault.
                    _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(i * lda + next_offset + p).cast());
                }
            }
            for q in p..p + steps {
                // SAFETY: q < kc, so the 16 floats of B (row q, `ldb` apart) and the R values of
                // A read here are inside the operands (the caller's contract).
                unsafe {
                    let b0 = _mm256_loadu_ps(b.add(q * ldb));
                    let b1 = _mm256_loadu_ps(b.add(q * ldb + 8));
                    for (i, row) in acc.iter_mut().enumerate() {
                        let ai = _mm256_set1_ps(if A_IN_PLACE {
                            *a.add(i * lda + q)
                        } else {
                            *a.add(q * 6 + i)
                        });
                        row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                        row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                    }
                }
            }
            p += steps;
        }
        let va = _mm256_set1_ps(alpha);
        let vb = _mm256_set1_ps(beta);
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row i < R of the tile holds 16 writable floats at c + i·rsc (readable when
            // beta ≠ 0); C is not read when beta is 0.
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
