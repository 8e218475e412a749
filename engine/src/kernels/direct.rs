//! Direct convolution kernels for layers with few input taps (LeNet's first layer: one channel,
//! 5×5), where an im2col column matrix would cost far more memory traffic than the arithmetic it
//! feeds.
//!
//! The trick that makes them simple: a stride-1 convolution of a plane `Hp×Wp` (already padded)
//! is a one-dimensional correlation of the plane read as one long row. Output `(oy, ox)` sits at
//! position `p = oy·Wp + ox` of a "wide" output with `Wp` columns per row, of which the last
//! `Wp − OW` are junk (they straddle two rows); kernel tap `(ky, kx)` reads position
//! `p + ky·Wp + kx`. So every tap is one contiguous run, and the kernels below are dot products
//! and axpys over runs, blocked so that accumulators stay in registers:
//!
//! - [`correlate`]: `out[r][p] = Σ_s Σ_t k[r][s·T + t] · src[s·stride + off_t + p]` — the forward
//!   pass (sources = input channels, rows = output channels), and the input gradient (sources =
//!   the output gradient's channels padded in front, rows = input channels, kernel flipped);
//! - [`correlate_grad`]: `dk[r][s·T + t] += Σ_p g[r][p] · src[s·stride + off_t + p]` — the
//!   weight gradient.
//!
//! With many sources (a 64-channel layer's forward pass), the sum over sources runs in passes
//! (`RowBlock::SOURCES` per pass on AVX2), each adding onto the last: one pass's source runs and
//! weights then stay in L1 while a block of rows sweeps the positions.
//!
//! The caller lays the planes out with enough slack that every run of a block is in bounds
//! (checked once per call); positions come in blocks of [`BLOCK`], so the wide length is a
//! multiple of it. Each kernel is one loop over blocks of rows, generic over the block's
//! implementation: AVX-512 or AVX2 intrinsics (`x86::Avx512`, `x86::Avx2`), or safe Rust for the
//! baseline, which the compiler vectorises (and would fuse the multiply-adds where there is FMA).

use super::madd;

/// Positions per block: the wide length of every call is a multiple of this.
pub const BLOCK: usize = 32;

/// Where the taps of one source plane are read: `offsets[t]` is tap `t`'s shift into the plane
/// (`ky·Wp + kx`), and source `s` starts at `s·stride` in the source buffer.
#[derive(Clone, Copy, Debug)]
pub struct Taps<'a> {
    pub offsets: &'a [usize],
    pub sources: usize,
    pub stride: usize,
}

impl Taps<'_> {
    /// The source length every call with wide length `len` reads up to.
    pub fn span(&self, len: usize) -> usize {
        let max_off = self.offsets.iter().copied().max().unwrap_or(0);
        (self.sources.max(1) - 1) * self.stride + max_off + len
    }
}

/// `out[r][p] = Σ_s Σ_t k[r][s·T + t] · src[s·stride + off_t + p]` for `rows` rows and `p` in
/// `0..len`; row `r` of `out` is `out[r·len..][..len]`, row `r` of `k` is `k[r·S·T..][..S·T]`.
///
/// # Panics
/// If `len` is not a multiple of [`BLOCK`], or a buffer is shorter than the shapes say
/// (`src` must hold [`Taps::span`]`(len)` floats).
pub fn correlate(src: &[f32], taps: Taps, k: &[f32], rows: usize, len: usize, out: &mut [f32]) {
    let st = taps.sources * taps.offsets.len();
    assert_eq!(
        len % BLOCK,
        0,
        "correlate: length {len} is not whole blocks"
    );
    assert!(src.len() >= taps.span(len), "correlate: source too short");
    assert!(k.len() >= rows * st, "correlate: kernel too short");
    assert!(out.len() >= rows * len, "correlate: output too short");
    correlate_isa(src, taps, k, rows, len, out)
}

/// `dk[r][s·T + t] += Σ_p g[r][p] · src[s·stride + off_t + p]` for `rows` rows of `g` (each
/// `len` long, row stride `len`) and `p` in `0..len`.
///
/// # Panics
/// As [`correlate`].
pub fn correlate_grad(src: &[f32], taps: Taps, g: &[f32], rows: usize, len: usize, dk: &mut [f32]) {
    let st = taps.sources * taps.offsets.len();
    assert_eq!(
        len % BLOCK,
        0,
        "correlate_grad: length {len} is not whole blocks"
    );
    assert!(
        src.len() >= taps.span(len),
        "correlate_grad: source too short"
    );
    assert!(g.len() >= rows * len, "correlate_grad: gradient too short");
    assert!(
        dk.len() >= rows * st,
        "correlate_grad: kernel gradient too short"
    );
    correlate_grad_isa(src, taps, g, rows, len, dk)
}

/// Up to [`RowBlock::MAX`] rows of [`correlate`] computed together, their accumulators kept in
/// registers while one source run is loaded per tap: the inner block, one implementation per
/// instruction set.
trait RowBlock {
    const MAX: usize;
    /// Sources per pass: with more, `correlate_body` splits the sum over sources into passes of
    /// this many, each adding onto the last, so that one pass's source runs and weights stay in
    /// L1.
    const SOURCES: usize = usize::MAX;
    /// `R` rows of `out` (row stride `len`) for the sources of `taps`; row `r`'s weights start at
    /// `k[r·ks]`. Overwrites `out`, or adds onto it when `add`.
    fn rows<const R: usize>(
        src: &[f32],
        taps: Taps,
        k: &[f32],
        ks: usize,
        len: usize,
        add: bool,
        out: &mut [f32],
    );
}

/// Safe Rust, vectorised by the compiler: 4 rows of `W` positions.
struct Runs<const W: usize, const FMA: bool>;

impl<const W: usize, const FMA: bool> RowBlock for Runs<W, FMA> {
    const MAX: usize = 4;
    #[inline(always)]
    fn rows<const R: usize>(
        src: &[f32],
        taps: Taps,
        k: &[f32],
        ks: usize,
        len: usize,
        add: bool,
        out: &mut [f32],
    ) {
        let t = taps.offsets.len();
        for p0 in (0..len).step_by(W) {
            let mut acc = [[0.0f32; W]; R];
            if add {
                for (r, acc) in acc.iter_mut().enumerate() {
                    acc.copy_from_slice(&out[r * len + p0..][..W]);
                }
            }
            for s in 0..taps.sources {
                let plane = &src[s * taps.stride + p0..];
                for (ti, &off) in taps.offsets.iter().enumerate() {
                    let run: &[f32; W] = plane[off..off + W].try_into().expect("W floats");
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let kv = k[r * ks + s * t + ti];
                        for (a, &x) in acc.iter_mut().zip(run) {
                            *a = madd::<FMA>(kv, x, *a);
                        }
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                out[r * len + p0..][..W].copy_from_slice(acc);
            }
        }
    }
}

#[inline(always)]
fn correlate_body<B: RowBlock>(
    src: &[f32],
    taps: Taps,
    k: &[f32],
    rows: usize,
    len: usize,
    out: &mut [f32],
) {
    let t = taps.offsets.len();
    let st = taps.sources * t;
    let per_pass = B::SOURCES.min(taps.sources).max(1);
    let mut r = 0;
    while r < rows {
        let n = (rows - r).min(B::MAX);
        let (k, out) = (&k[r * st..], &mut out[r * len..]);
        for s0 in (0..taps.sources.max(1)).step_by(per_pass) {
            let pass = Taps {
                sources: per_pass.min(taps.sources - s0),
                ..taps
            };
            let (src, k, add) = (&src[s0 * taps.stride..], &k[s0 * t..], s0 > 0);
            match n {
                1 => B::rows::<1>(src, pass, k, st, len, add, out),
                2 => B::rows::<2>(src, pass, k, st, len, add, out),
                3 => B::rows::<3>(src, pass, k, st, len, add, out),
                4 => B::rows::<4>(src, pass, k, st, len, add, out),
                5 => B::rows::<5>(src, pass, k, st, len, add, out),
                6 => B::rows::<6>(src, pass, k, st, len, add, out),
                7 => B::rows::<7>(src, pass, k, st, len, add, out),
                _ => B::rows::<8>(src, pass, k, st, len, add, out),
            }
        }
        r += n;
    }
}

/// Taps per block of the weight gradient: `R × TB` dot products accumulate together. A source's
/// taps are cut into blocks of `TB`, the last one padded with repeats of its last tap (computed,
/// not added): 3 fits a 3×3 kernel exactly (with 4 it computed 12 taps for 9), and wastes 2 of
/// 27 on a 5×5 one. See [`grad_taps_computed`].
const TB: usize = 3;

/// The dot products [`correlate_grad`] computes per source for `taps` taps: whole blocks of
/// [`TB`], some of them repeats. A caller choosing between it and a GEMM compares this with
/// `taps` (a 1×1 kernel costs three times its work here).
pub fn grad_taps_computed(taps: usize) -> usize {
    taps.next_multiple_of(TB)
}

/// The `R × TB` dot products of gradient rows `g[r·len..][..len]` with the source runs
/// `src[offs[t]..][..len]`: the inner block of [`correlate_grad`], one implementation per
/// instruction set.
trait GradBlock {
    /// The most rows one call takes (1 to 4).
    const ROWS: usize;
    fn dots<const R: usize>(
        src: &[f32],
        offs: &[usize; TB],
        g: &[f32],
        len: usize,
    ) -> [[f32; TB]; R];
}

/// Safe Rust, vectorised by the compiler with `W` lanes per accumulator.
struct Lanes<const W: usize, const FMA: bool>;

impl<const W: usize, const FMA: bool> GradBlock for Lanes<W, FMA> {
    const ROWS: usize = 4;
    #[inline(always)]
    fn dots<const R: usize>(
        src: &[f32],
        offs: &[usize; TB],
        g: &[f32],
        len: usize,
    ) -> [[f32; TB]; R] {
        let mut acc = [[[0.0f32; W]; TB]; R];
        for p0 in (0..len).step_by(W) {
            for (r, acc) in acc.iter_mut().enumerate() {
                let gr: &[f32; W] = g[r * len + p0..][..W].try_into().expect("W floats");
                for (a, &off) in acc.iter_mut().zip(offs) {
                    let run: &[f32; W] = src[off + p0..][..W].try_into().expect("W floats");
                    // Indexing over one length (not a three-way zip) lets LLVM vectorise this.
                    for i in 0..W {
                        a[i] = madd::<FMA>(gr[i], run[i], a[i]);
                    }
                }
            }
        }
        let mut sums = [[0.0f32; TB]; R];
        for (sum, acc) in sums.iter_mut().zip(&acc) {
            for (s, lanes) in sum.iter_mut().zip(acc) {
                *s = lanes.iter().sum();
            }
        }
        sums
    }
}

#[inline(always)]
fn correlate_grad_body<B: GradBlock>(
    src: &[f32],
    taps: Taps,
    g: &[f32],
    rows: usize,
    len: usize,
    dk: &mut [f32],
) {
    let t = taps.offsets.len();
    let st = taps.sources * t;
    let mut add = |r0: usize, s: usize, t0: usize, sums: &[[f32; TB]], used: usize| {
        for (r, row) in sums.iter().enumerate() {
            for (ti, &v) in row[..used].iter().enumerate() {
                dk[(r0 + r) * st + s * t + t0 + ti] += v;
            }
        }
    };
    for s in 0..taps.sources {
        let plane = &src[s * taps.stride..];
        for t0 in (0..t).step_by(TB) {
            let used = TB.min(t - t0);
            // A short last block repeats its last tap; the repeats are not added.
            let offs: [usize; TB] = std::array::from_fn(|i| taps.offsets[t0 + i.min(used - 1)]);
            let mut r = 0;
            while r < rows {
                let g = &g[r * len..];
                let n = (rows - r).min(B::ROWS);
                match n {
                    1 => add(r, s, t0, &B::dots::<1>(plane, &offs, g, len), used),
                    2 => add(r, s, t0, &B::dots::<2>(plane, &offs, g, len), used),
                    3 => add(r, s, t0, &B::dots::<3>(plane, &offs, g, len), used),
                    _ => add(r, s, t0, &B::dots::<4>(plane, &offs, g, len), used),
                }
                r += n;
            }
        }
    }
}

fn correlate_isa(src: &[f32], taps: Taps, k: &[f32], rows: usize, len: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::gemm::{current_isa, Isa};
        #[target_feature(enable = "avx512f,fma")]
        fn avx512(src: &[f32], taps: Taps, k: &[f32], rows: usize, len: usize, out: &mut [f32]) {
            correlate_body::<x86::Avx512>(src, taps, k, rows, len, out)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(src: &[f32], taps: Taps, k: &[f32], rows: usize, len: usize, out: &mut [f32]) {
            correlate_body::<x86::Avx2>(src, taps, k, rows, len, out)
        }
        match current_isa() {
            // SAFETY: `current_isa` is `Avx512` only when the CPU reports avx512f (which implies
            // fma), and `Avx2Fma` only when it reports avx2 and fma (`Isa::detected` checks, and
            // `with_isa` refuses to force an unsupported set): the features these copies were
            // compiled for. Their bodies are safe code apart from `x86::Avx512`'s and
            // `x86::Avx2`'s, whose intrinsics need exactly avx512f, and avx2 with fma.
            Isa::Avx512 => return unsafe { avx512(src, taps, k, rows, len, out) },
            Isa::Avx2Fma => return unsafe { avx2(src, taps, k, rows, len, out) },
            Isa::Portable => {}
        }
    }
    correlate_body::<Runs<8, false>>(src, taps, k, rows, len, out)
}

fn correlate_grad_isa(src: &[f32], taps: Taps, g: &[f32], rows: usize, len: usize, dk: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::gemm::{current_isa, Isa};
        #[target_feature(enable = "avx512f,fma")]
        fn avx512(src: &[f32], taps: Taps, g: &[f32], rows: usize, len: usize, dk: &mut [f32]) {
            correlate_grad_body::<x86::Avx512>(src, taps, g, rows, len, dk)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(src: &[f32], taps: Taps, g: &[f32], rows: usize, len: usize, dk: &mut [f32]) {
            correlate_grad_body::<x86::Avx2>(src, taps, g, rows, len, dk)
        }
        match current_isa() {
            // SAFETY: as in `correlate_isa`: the CPU has the features these copies were
            // compiled for.
            Isa::Avx512 => return unsafe { avx512(src, taps, g, rows, len, dk) },
            Isa::Avx2Fma => return unsafe { avx2(src, taps, g, rows, len, dk) },
            Isa::Portable => {}
        }
    }
    correlate_grad_body::<Lanes<4, false>>(src, taps, g, rows, len, dk)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{GradBlock, RowBlock, Taps, BLOCK, TB};
    use std::arch::x86_64::*;

    /// The vector operations of the forward blocks, for 16-lane (AVX-512) and 8-lane (AVX2)
    /// registers, so that one body ([`rows_in`]) serves both.
    trait Lanes: Copy {
        const N: usize;
        /// # Safety
        /// As for every method: the CPU has the register's instruction set (avx512f; avx2 and
        /// fma), and pointers are valid for `N` floats.
        unsafe fn zero() -> Self;
        unsafe fn load(p: *const f32) -> Self;
        unsafe fn store(self, p: *mut f32);
        unsafe fn splat(v: f32) -> Self;
        unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self;
    }

    impl Lanes for __m512 {
        const N: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self) }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            unsafe { _mm512_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
    }

    impl Lanes for __m256 {
        const N: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self) }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            unsafe { _mm256_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
    }

    /// [`RowBlock::rows`] in registers of `V`: `R` rows × two registers of positions, so one
    /// run (two loads) per tap feeds `2R` multiply-adds into accumulators that stay in registers.
    ///
    /// # Safety
    /// The CPU has `V`'s instruction set (see [`Lanes`]). Every access is bounds-checked here
    /// first (the asserts below); callers guarantee them, and a violation is a bug in this
    /// module, so panicking is right.
    #[inline(always)]
    unsafe fn rows_in<V: Lanes, const R: usize>(
        src: &[f32],
        taps: Taps,
        (k, ks): (&[f32], usize),
        len: usize,
        add: bool,
        out: &mut [f32],
    ) {
        let (w, t) = (2 * V::N, taps.offsets.len());
        debug_assert!(BLOCK.is_multiple_of(w));
        assert!(len.is_multiple_of(w));
        assert!(taps.sources * t <= ks && k.len() >= (R - 1) * ks + taps.sources * t);
        assert!(out.len() >= R * len && src.len() >= taps.span(len));
        let (sp, kp, op) = (src.as_ptr(), k.as_ptr(), out.as_mut_ptr());
        for p in (0..len).step_by(w) {
            // SAFETY: the instruction set is the caller's promise; loads read
            // src[s·stride + off + p..][..w] with p + w ≤ len, inside `taps.span(len)`; weights
            // are read at k[r·ks + s·t + ti] < (R − 1)·ks + S·T; the accumulators are loaded
            // (when adding) from and stored to out[r·len + p..][..w] < R·len (all asserted
            // above).
            unsafe {
                let mut acc = [[V::zero(); 2]; R];
                if add {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        acc[0] = V::load(op.add(r * len + p));
                        acc[1] = V::load(op.add(r * len + p + V::N));
                    }
                }
                for s in 0..taps.sources {
                    let plane = sp.add(s * taps.stride + p);
                    for (ti, &off) in taps.offsets.iter().enumerate() {
                        let x0 = V::load(plane.add(off));
                        let x1 = V::load(plane.add(off + V::N));
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let kv = V::splat(*kp.add(r * ks + s * t + ti));
                            acc[0] = V::fmadd(kv, x0, acc[0]);
                            acc[1] = V::fmadd(kv, x1, acc[1]);
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    acc[0].store(op.add(r * len + p));
                    acc[1].store(op.add(r * len + p + V::N));
                }
            }
        }
    }

    /// The blocks of both kernels in AVX-512 intrinsics. For [`correlate`](super::correlate): up
    /// to 8 rows at a time, so one run of 32 floats (two loads) feeds 16 multiply-adds into
    /// accumulators that stay in registers (the safe version manages 4 rows). For the weight
    /// gradient: `R × TB` accumulators of 16 lanes, which the compiler keeps in registers (the
    /// safe version's nested arrays were spilled to the stack).
    pub(super) struct Avx512;

    impl RowBlock for Avx512 {
        const MAX: usize = 8;
        #[inline(always)]
        fn rows<const R: usize>(
            src: &[f32],
            taps: Taps,
            k: &[f32],
            ks: usize,
            len: usize,
            add: bool,
            out: &mut [f32],
        ) {
            // SAFETY: only called from `correlate_isa`'s AVX-512 copy (avx512f present).
            unsafe { rows_in::<__m512, R>(src, taps, (k, ks), len, add, out) }
        }
    }

    impl GradBlock for Avx512 {
        const ROWS: usize = 4;
        #[inline(always)]
        fn dots<const R: usize>(
            src: &[f32],
            offs: &[usize; TB],
            g: &[f32],
            len: usize,
        ) -> [[f32; TB]; R] {
            // The bounds every load below stays within (callers guarantee them; a violation is a
            // bug in this module, so panicking is right).
            assert!(len.is_multiple_of(16) && g.len() >= R * len);
            assert!(offs.iter().all(|&o| o + len <= src.len()));
            // SAFETY: only called from `correlate_grad_isa`'s AVX-512 copy (avx512f present);
            // every load reads 16 floats at `off + p` (< `off + len` ≤ `src.len()`) or at
            // `r·len + p` (< `R·len` ≤ `g.len()`), as asserted above.
            unsafe {
                let mut acc = [[_mm512_setzero_ps(); TB]; R];
                let (s, gp) = (src.as_ptr(), g.as_ptr());
                for p in (0..len).step_by(16) {
                    let mut runs = [_mm512_setzero_ps(); TB];
                    for t in 0..TB {
                        runs[t] = _mm512_loadu_ps(s.add(offs[t] + p));
                    }
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let gv = _mm512_loadu_ps(gp.add(r * len + p));
                        for (a, &x) in acc.iter_mut().zip(&runs) {
                            *a = _mm512_fmadd_ps(gv, x, *a);
                        }
                    }
                }
                // Plain loops, not closures: a closure is a function of its own, without
                // avx512f, and the intrinsic would become a call per reduction.
                let mut sums = [[0.0f32; TB]; R];
                for r in 0..R {
                    for t in 0..TB {
                        sums[r][t] = _mm512_reduce_add_ps(acc[r][t]);
                    }
                }
                sums
            }
        }
    }

    /// The blocks of both kernels in AVX2 intrinsics, for 16 registers of 8 lanes. For
    /// [`correlate`](super::correlate): up to 6 rows of 16 positions, so one run (two loads)
    /// feeds 12 multiply-adds into 12 accumulators (the safe version's 4 rows of 16 ran LeNet's
    /// first layer, 48% of its training step on an AVX2 machine, at about half this speed). For
    /// the weight gradient: 3 rows × `TB` taps of 8 lanes (9 accumulators, three gradient loads
    /// and one source load per tap), where 4 rows would not fit the registers (measured: 4 rows
    /// spilled and ran the 64→64 layer's forward+backward 9% slower).
    ///
    /// Forward, 16 sources per pass: a 64→64 3×3 layer's 6-row block otherwise sweeps 64
    /// channels × 3 plane rows of source runs and 6 × 576 weights per position block, about 38
    /// KiB, more than a 32 KiB L1. Per pass it is 10 KiB, and forward went from 29.1–30.1 to
    /// 32.0–32.9 GFLOP/s on Zen 1 (16 and 32 per pass measured alike, 8 a little slower).
    pub(super) struct Avx2;

    impl RowBlock for Avx2 {
        const MAX: usize = 6;
        const SOURCES: usize = 16;
        #[inline(always)]
        fn rows<const R: usize>(
            src: &[f32],
            taps: Taps,
            k: &[f32],
            ks: usize,
            len: usize,
            add: bool,
            out: &mut [f32],
        ) {
            // SAFETY: only called from `correlate_isa`'s AVX2 copy (avx2 and fma present).
            unsafe { rows_in::<__m256, R>(src, taps, (k, ks), len, add, out) }
        }
    }

    impl GradBlock for Avx2 {
        const ROWS: usize = 3;
        #[inline(always)]
        fn dots<const R: usize>(
            src: &[f32],
            offs: &[usize; TB],
            g: &[f32],
            len: usize,
        ) -> [[f32; TB]; R] {
            // The bounds every load below stays within (callers guarantee them; a violation is a
            // bug in this module, so panicking is right).
            assert!(len.is_multiple_of(8) && g.len() >= R * len);
            assert!(offs.iter().all(|&o| o + len <= src.len()));
            // SAFETY: only called from `correlate_grad_isa`'s AVX2 copy (avx2 and fma present);
            // every load reads 8 floats at `off + p` (< `off + len` ≤ `src.len()`) or at
            // `r·len + p` (< `R·len` ≤ `g.len()`), as asserted above; the stores write the
            // 8-float local `lanes`.
            unsafe {
                let mut acc = [[_mm256_setzero_ps(); TB]; R];
                let (s, gp) = (src.as_ptr(), g.as_ptr());
                for p in (0..len).step_by(8) {
                    let mut gv = [_mm256_setzero_ps(); R];
                    for (r, gv) in gv.iter_mut().enumerate() {
                        *gv = _mm256_loadu_ps(gp.add(r * len + p));
                    }
                    for t in 0..TB {
                        let x = _mm256_loadu_ps(s.add(offs[t] + p));
                        for r in 0..R {
                            acc[r][t] = _mm256_fmadd_ps(gv[r], x, acc[r][t]);
                        }
                    }
                }
                // Plain loops, not closures (see `Avx512`'s).
                let mut sums = [[0.0f32; TB]; R];
                let mut lanes = [0.0f32; 8];
                for r in 0..R {
                    for t in 0..TB {
                        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][t]);
                        sums[r][t] = lanes.iter().sum();
                    }
                }
                sums
            }
        }
    }
}
