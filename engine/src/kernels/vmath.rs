//! Vectorised elementwise maths: `exp`, the logistic function, `tanh`, GELU (exact, erf form), and
//! row-wise softmax, forward and backward.
//!
//! Each function body is written once, as a branch-free loop over a slice that the compiler turns
//! into SIMD code, and compiled three times: for AVX-512F, for AVX2+FMA, and for the baseline
//! target. [`Isa::detected`](super::gemm::Isa::detected) picks one at run time, so a default build
//! (no `-C target-cpu`) still runs 16 lanes wide on this machine. The standard library's `expf`
//! is a call per element that nothing can vectorise.
//!
//! Accuracy (tested against `f64` over the whole input range in `tests/vmath.rs`):
//! - `exp`: range reduction x = n·ln 2 + r with a two-part ln 2, Cephes' degree-6 polynomial on
//!   |r| ≤ ln 2 / 2 (evaluated by Estrin's scheme): relative error below 2e-7 wherever the result
//!   is a normal number (measured: 6.0e-8 with fused multiply-adds, 7.0e-8 without, about one
//!   ulp); 0 below −87.3 (where the true value is denormal or 0), +∞ above 88.72, NaN kept.
//! - `sigmoid`, `tanh`: built on `exp` with the forms that cannot overflow: absolute error below
//!   3e-7 (measured: 8.1e-8 and 8.4e-8).
//! - GELU: `x (1 + erf(x/√2)) / 2` with a rational erf (Eigen's, no exponential), absolute
//!   error below 4e-7·max(|x|, 1) (measured: 1.2e-7 fused, 1.6e-7 not). With its derivative
//!   (training), by Abramowitz & Stegun 7.1.26's erfc times `e^(−x²/2)`: the value within the
//!   same bound (measured: 1.4e-7 fused, 1.2e-7 not), the derivative's error below 1e-6
//!   (measured: 2.6e-7 fused, 2.7e-7 not). The two values differ by at most 3e-7·max(|x|, 1)
//!   (measured: 2.2e-7).
//!
//! The SIMD copies fuse the polynomials' multiply-adds ([`madd`](super::madd)); the portable one cannot
//! cheaply, so its results may differ from theirs in the last bit.
//!
//! Large slices are split across the engine's pool (not from inside a worker, which is busy
//! already); each element is computed the same way whoever computes it, so results do not depend
//! on the number of threads.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::gemm::Isa;
use super::madd;

/// Below this many elements a call stays on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_MIN: f32 = -87.33654;
const EXP_MAX: f32 = 88.72283;
/// 1.5 · 2²³: adding and subtracting it rounds an f32 of magnitude below 2²² to the nearest integer.
const ROUNDER: f32 = 12_582_912.0;

/// Cephes' coefficients of `e^r = 1 + r + r² P(r)` on |r| ≤ ln 2 / 2 (Cephes' `expf`).
const EXP_P: [f32; 6] = [
    0.5,
    1.666_666_5e-1,
    4.166_579_6e-2,
    8.333_452e-3,
    1.398_199_9e-3,
    1.987_569_1e-4,
];

/// The three first-level pairs of [`EXP_P`] by Estrin's scheme, `P_2k + P_2k+1·r`: both
/// exponentials below join them (differently).
#[inline(always)]
fn exp_p_pairs<const F: bool>(r: f32) -> [f32; 3] {
    [
        madd::<F>(EXP_P[1], r, EXP_P[0]),
        madd::<F>(EXP_P[3], r, EXP_P[2]),
        madd::<F>(EXP_P[5], r, EXP_P[4]),
    ]
}

/// The work every exponential here shares: for `c` in [EXP_MIN, EXP_MAX] (or NaN), the integer
/// `n` and the `r`, `q` with e^c = 2ⁿ (1 + r q).
#[inline(always)]
fn exp_parts<const F: bool>(c: f32) -> (i32, f32, f32) {
    let shifted = madd::<F>(c, LOG2E, ROUNDER);
    let n = shifted - ROUNDER;
    // The integer n sits in the low mantissa bits of `shifted` (exponent of 2²³, mantissa
    // 2²² + n): reading it there keeps the loop in vector registers, where `n as i32` (a
    // saturating conversion) would not.
    let ni = shifted.to_bits() as i32 - ROUNDER.to_bits() as i32;
    let r = madd::<F>(-n, LN2_LO, madd::<F>(-n, LN2_HI, c));
    // e^r = 1 + r (1 + r p(r)), p by Estrin's scheme: three short chains joined by r² and r⁴
    // instead of one chain of five multiply-adds. On Zen 1 these loops run far slower than their
    // instruction count allows (GELU: ~50 cycles per 8 lanes against llvm-mca's 33), and a
    // shorter chain is what helped (see `exp_nonpositive1`).
    let r2 = r * r;
    let [p01, p23, p45] = exp_p_pairs::<F>(r);
    let p = madd::<F>(madd::<F>(p45, r2, p23), r2, p01);
    (ni, r, madd::<F>(p, r, 1.0))
}

/// 2ⁿ for n in −126..=127.
#[inline(always)]
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// `e^x`, branch-free so that loops over it vectorise.
#[inline(always)]
fn exp1<const F: bool>(x: f32) -> f32 {
    let (ni, r, q) = exp_parts::<F>(x.clamp(EXP_MIN, EXP_MAX));
    // 2ⁿ (1 + r q) = s + (s r) q with s = 2ⁿ. But n = 128 (x just below EXP_MAX) would overflow
    // s's exponent, so s = 2^min(n, 127) and a last factor of 2 or 1.
    let ns = ni.min(127);
    let s = pow2(ns);
    let y = madd::<F>(s * r, q, s) * pow2(ni - ns);
    let y = if x < EXP_MIN { 0.0 } else { y };
    if x > EXP_MAX {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// `e^x` for `x ≤ 0` (or NaN), as [`exp1`] computes it but without the cases that cannot arise
/// there: softmax, the logistic function, tanh and erf call it with a non-positive argument.
/// Measured on Zen 1 (65,536 floats, 1 thread): GELU 3.05 → 2.5 ns per element with it (Estrin's
/// scheme in [`exp_parts`] had taken it from 3.33 to 3.05); GPT inference +4%.
#[inline(always)]
fn exp_nonpositive1<const F: bool>(x: f32) -> f32 {
    // Not `max`, which would drop a NaN: here it flows through `r` into the result.
    let c = if x < EXP_MIN { EXP_MIN } else { x };
    let (ni, r, q) = exp_parts::<F>(c);
    let s = pow2(ni);
    let y = madd::<F>(s * r, q, s);
    if x < EXP_MIN {
        0.0
    } else {
        y
    }
}

/// `1 / (1 + e^-x)` without overflow: `e^-|x|` is at most 1.
#[inline(always)]
fn sigmoid1<const F: bool>(x: f32) -> f32 {
    let e = exp_nonpositive1::<F>(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else {
        1.0 - s
    }
}

/// `tanh x = sign(x) (1 − e^{−2|x|}) / (1 + e^{−2|x|})`; for tiny |x| the odd Taylor series, which
/// the quotient would lose to cancellation.
#[inline(always)]
fn tanh1<const F: bool>(x: f32) -> f32 {
    let a = x.abs();
    let e = exp_nonpositive1::<F>(-2.0 * a);
    let t = (1.0 - e) / (1.0 + e);
    let x2 = x * x;
    let small = x * (1.0 - x2 * (1.0 / 3.0 - x2 * (2.0 / 15.0)));
    if a < 0.004 {
        small
    } else if x < 0.0 {
        -t
    } else {
        t
    }
}

/// The largest x² for which e^(−x²/2) is computed; above it the result is 0 (the true value is
/// below f32's smallest normal number).
const HALF_SQ_MAX: f32 = -2.0 * EXP_MIN;

/// `e^(−x²/2)` for GELU, on a shorter chain of dependent operations than [`exp_nonpositive1`].
/// On Zen 1 GELU's loop is bound by that chain's latency, not by its operation count (the
/// floating-point scheduler fills with operations waiting on it), so:
/// - the argument's scale folds into the rounding multiply-add: n = round(x² · (−log₂e / 2));
/// - one multiply-add reduces it, r = −x²/2 − n·ln 2, with ln 2 rounded to an f32 (not the
///   two-part constant). The error that adds, |n|·2e-9 relative, is absolute error
///   2ⁿ·|n|·2e-9 < 1e-9: GELU needs its exponential's absolute error to be small, not its
///   relative error in the far tail;
/// - the result is s (1 + r) + s r² P(r), s = 2ⁿ: the two terms are formed while P(r) is
///   evaluated, and joined by one multiply-add at the end (not two).
///
/// Measured (`tests/vmath.rs`): GELU's absolute error stays below 4e-7·max(|x|, 1), its
/// derivative's below 1e-6.
#[inline(always)]
fn exp_neg_half_sq<const F: bool>(x: f32) -> f32 {
    let x2 = x * x;
    // NaN stays NaN here (the comparison is false) and reaches GELU through `x` anyway.
    let h = if x2 > HALF_SQ_MAX { HALF_SQ_MAX } else { x2 };
    let shifted = madd::<F>(h, -0.5 * LOG2E, ROUNDER);
    let n = shifted - ROUNDER;
    let ni = shifted.to_bits() as i32 - ROUNDER.to_bits() as i32;
    let r = madd::<F>(-n, std::f32::consts::LN_2, -0.5 * h);
    let s = pow2(ni);
    let r2 = r * r;
    let r4 = r2 * r2;
    let [p01, p23, p45] = exp_p_pairs::<F>(r);
    let p = madd::<F>(r2, p23, p01) + r4 * p45;
    let y = madd::<F>(s * r2, p, madd::<F>(s, r, s));
    // 0, not e^EXP_MIN, so that the derivative at ±∞ is ∞·0 = NaN as in PyTorch.
    if x2 > HALF_SQ_MAX {
        0.0
    } else {
        y
    }
}

/// `erf(x/√2)` by the rational approximation `z P(z²) / Q(z²)`, z = x/√2 clamped to [−4, 4]
/// (beyond, erf is ±1 in f32), with Eigen's coefficients (`generic_fast_erf_float`, also XLA's
/// and TVM's), the result clamped to [−1, 1]. No exponential: GELU's value needs none.
#[inline(always)]
fn erf_of_scaled<const F: bool>(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    // Comparisons, not `clamp` (which checks its bounds, and whose NaN handling costs more):
    // NaN passes both, and reaches GELU through `x` anyway.
    #[allow(clippy::manual_clamp)]
    let z = if z > 4.0 {
        4.0
    } else if z < -4.0 {
        -4.0
    } else {
        z
    };
    let w = z * z;
    let w2 = w * w;
    let w4 = w2 * w2;
    // Both polynomials by Estrin's scheme (see `exp_parts`).
    let p01 = madd::<F>(-2.954_6e-3, w, -1.609_603_3e-2);
    let p23 = madd::<F>(-5.692_506_2e-5, w, -7.349_906_4e-4);
    let p45 = madd::<F>(2.770_681_5e-8, w, -2.101_024e-6);
    let p = madd::<F>(
        w4,
        madd::<F>(-2.726_142_4e-10, w2, p45),
        madd::<F>(w2, p23, p01),
    );
    let q01 = madd::<F>(-7.373_329_3e-3, w, -1.426_473_9e-2);
    let q23 = madd::<F>(-2.133_740_6e-4, w, -1.682_827e-3);
    let q = madd::<F>(w4, -1.456_607_2e-5, madd::<F>(w2, q23, q01));
    let erf = z * p / q;
    #[allow(clippy::manual_clamp)]
    if erf > 1.0 {
        1.0
    } else if erf < -1.0 {
        -1.0
    } else {
        erf
    }
}

/// A&S 7.1.26's p, over √2: its t = 1 / (1 + p|z|) with z = x/√2 is 1 / (1 + (p/√2)|x|).
const AS_P_OVER_SQRT_2: f32 = 0.327_591_1 * std::f32::consts::FRAC_1_SQRT_2;

/// `erfc(|x|/√2) · e^(x²/2)` by Abramowitz & Stegun 7.1.26: times `e^(−x²/2)`, that is
/// `1 − |erf(x/√2)|`, to within 1.5e-7. The exponential is left out: GELU's derivative needs it
/// too, and shares it.
#[inline(always)]
fn erfc_scaled<const F: bool>(x: f32) -> f32 {
    let t = 1.0 / madd::<F>(AS_P_OVER_SQRT_2, x.abs(), 1.0);
    // The polynomial by Estrin's scheme (see `exp_parts`).
    let t2 = t * t;
    let p01 = madd::<F>(-0.284_496_74, t, 0.254_829_6);
    let p23 = madd::<F>(-1.453_152_1, t, 1.421_413_8);
    let poly = madd::<F>(madd::<F>(1.061_405_4, t2, p23), t2, p01);
    poly * t
}

/// 1 / √(2π).
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// GELU alone, `x (1 + erf(x/√2)) / 2` by [`erf_of_scaled`]: no exponential. Inference and the
/// GEMM epilogue compute it; a training step computes [`gelu_and_grad1`], whose value differs
/// from this one by at most 3e-7·max(|x|, 1) (both are within 4e-7·max(|x|, 1) of the true
/// GELU, `tests/vmath.rs`).
///
/// Measured on Zen 1 (65,536 floats, 1 thread, best of 7, alternating): 2.2 ns per element by
/// `gelu_and_grad1`'s value, 1.8 by this; GPT inference, where GELU took 8% of the time, see the
/// commit. With the derivative, the exponential-free erf costs more than it saves (3.4 ns per
/// element against 2.5), so training keeps the erfc form.
#[inline(always)]
fn gelu1<const F: bool>(x: f32) -> f32 {
    let half_x = 0.5 * x;
    madd::<F>(half_x, erf_of_scaled::<F>(x), half_x)
}

/// GELU `x Φ(x)` and its derivative `Φ(x) + x φ(x)` together. With `c = erfc(|x|/√2)`,
/// Φ(x) is `c/2` for negative x and `1 − c/2` otherwise, and `c = m e` where `e = e^(−x²/2)`
/// ([`exp_neg_half_sq`]) and `m` is [`erfc_scaled`]. So Φ and the derivative are each one
/// multiply-add away from `e`, everything else formed while `e` is computed:
/// Φ = ±(m/2)·e + (0 or 1), and the derivative (±m/2 + x/√(2π))·e + (0 or 1), since the
/// Gaussian density is `e/√(2π)`. A training step computes this (the value alone is
/// [`gelu1`]). Measured on Zen 1 (65,536 floats, 1 thread, best of 7, with
/// [`exp_neg_half_sq`]): 2.7–3.0 → 2.3–2.5 ns per element (the derivative used to be formed
/// from Φ after `c = m e`, four dependent operations more).
#[inline(always)]
fn gelu_and_grad1<const F: bool>(x: f32) -> (f32, f32) {
    let e = exp_neg_half_sq::<F>(x);
    let (sign, step) = if x < 0.0 { (0.5, 0.0) } else { (-0.5, 1.0) };
    let slope = sign * erfc_scaled::<F>(x);
    let cdf = madd::<F>(slope, e, step);
    (
        x * cdf,
        madd::<F>(madd::<F>(x, INV_SQRT_2PI, slope), e, step),
    )
}

/// Compiles `$body` (a function of slices, `#[inline(always)]`) once per instruction set and
/// dispatches on [`current_isa`](super::gemm::current_isa).
macro_rules! dispatch {
    ($name:ident, ($($arg:ident: $ty:ty),*), $body:ident) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                match super::gemm::current_isa() {
                    // SAFETY: `current_isa` is `Avx512` only when the CPU reports avx512f, and
                    // `Avx2Fma` only when it reports avx2 and fma (`Isa::detected` checks, and
                    // `with_isa` refuses to force an unsupported set): the features these two
                    // copies were compiled for. Their bodies are safe code.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    Isa::Avx2Fma => return unsafe { avx2($($arg),*) },
                    Isa::Portable => {}
                }
            }
            $body($($arg),*)
        }
    };
    // A body generic over `const F: bool` (fused multiply-adds, see `madd`): fused in the copies
    // for AVX2+FMA and AVX-512, split in the portable one.
    (fma $name:ident, ($($arg:ident: $ty:ty),*), $body:ident) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                match super::gemm::current_isa() {
                    // SAFETY: `current_isa` is `Avx512` only when the CPU reports avx512f, and
                    // `Avx2Fma` only when it reports avx2 and fma (`Isa::detected` checks, and
                    // `with_isa` refuses to force an unsupported set): the features these two
                    // copies were compiled for. Their bodies are safe code.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    Isa::Avx2Fma => return unsafe { avx2($($arg),*) },
                    Isa::Portable => {}
                }
            }
            $body::<false>($($arg),*)
        }
    };
}

/// An output element the kernels write before anything reads it: the buffers they fill are not
/// zeroed first.
type Out = MaybeUninit<f32>;

/// Writes `f(x[i])` into every `y[i]` (the two are as long: [`fill`] relies on every element
/// being written).
#[inline(always)]
fn map_body(x: &[f32], y: &mut [MaybeUninit<f32>], f: impl Fn(f32) -> f32) {
    assert_eq!(x.len(), y.len(), "map: input and output differ in length");
    for (y, &x) in y.iter_mut().zip(x) {
        y.write(f(x));
    }
}

#[inline(always)]
fn exp_body<const F: bool>(x: &[f32], y: &mut [MaybeUninit<f32>]) {
    map_body(x, y, exp1::<F>)
}
#[inline(always)]
fn sigmoid_body<const F: bool>(x: &[f32], y: &mut [MaybeUninit<f32>]) {
    map_body(x, y, sigmoid1::<F>)
}
#[inline(always)]
fn tanh_body<const F: bool>(x: &[f32], y: &mut [MaybeUninit<f32>]) {
    map_body(x, y, tanh1::<F>)
}
#[inline(always)]
fn gelu_body<const F: bool>(x: &[f32], y: &mut [MaybeUninit<f32>]) {
    map_body(x, y, gelu1::<F>)
}
#[inline(always)]
fn gelu_and_grad_body<const F: bool>(x: &[f32], y: &mut [Out], d: &mut [Out]) {
    // Indexing over one length (rather than a three-way zip) lets LLVM vectorise the loop.
    // Every element of `y` and `d` is written.
    let n = x.len();
    assert!(
        y.len() == n && d.len() == n,
        "gelu_and_grad: lengths differ"
    );
    let (y, d) = (&mut y[..n], &mut d[..n]);
    for i in 0..n {
        let (v, dv) = gelu_and_grad1::<F>(x[i]);
        y[i].write(v);
        d[i].write(dv);
    }
}

dispatch!(fma exp_chunk, (x: &[f32], y: &mut [MaybeUninit<f32>]), exp_body);
dispatch!(fma sigmoid_chunk, (x: &[f32], y: &mut [MaybeUninit<f32>]), sigmoid_body);
dispatch!(fma tanh_chunk, (x: &[f32], y: &mut [MaybeUninit<f32>]), tanh_body);
dispatch!(fma gelu_chunk, (x: &[f32], y: &mut [MaybeUninit<f32>]), gelu_body);

#[inline(always)]
fn gelu_in_place_body<const F: bool>(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu1::<F>(*v);
    }
}
dispatch!(fma gelu_in_place_chunk, (x: &mut [f32]), gelu_in_place_body);

/// GELU of each element, in place (a GEMM epilogue's tile rows: short, already in cache, so
/// never split across the pool).
pub fn gelu_in_place(x: &mut [f32]) {
    gelu_in_place_chunk(x)
}
dispatch!(fma gelu_and_grad_chunk, (x: &[f32], y: &mut [Out], d: &mut [Out]), gelu_and_grad_body);

/// The piece length (whole blocks of `unit` elements) to split `len` elements into across the
/// pool, or `None` when they are too few to pay for it.
fn pieces(len: usize, unit: usize) -> Option<usize> {
    crate::threads::worth_splitting(len, PARALLEL_MIN).then(|| {
        let threads = crate::threads::num_threads();
        (len / unit)
            .div_ceil(threads * 4)
            .max(4096usize.div_ceil(unit))
            * unit
    })
}

/// A fresh buffer of `len` elements filled by `f(piece, range)`, where `piece` is
/// `out[range]` and ranges cover whole blocks of `unit` elements (rows): split across the pool
/// when large, in one call otherwise. Every element is computed the same way either way.
///
/// The buffer is not zeroed first: that pass over memory cost GELU's forward and backward on a
/// GPT training step about a tenth of their time.
///
/// # Safety
/// `f` must write every element of the piece it is given (the kernels here are loops over all
/// of their output), else the returned buffer holds uninitialised floats.
unsafe fn fill(
    len: usize,
    unit: usize,
    f: impl Fn(&mut [MaybeUninit<f32>], Range<usize>) + Sync,
) -> Vec<f32> {
    let mut buf = Vec::with_capacity(len);
    let out = &mut buf.spare_capacity_mut()[..len];
    if let Some(piece) = pieces(len, unit) {
        crate::threads::install(|| {
            out.par_chunks_mut(piece).enumerate().for_each(|(i, o)| {
                let start = i * piece;
                f(o, start..start + o.len())
            })
        });
    } else {
        f(out, 0..len);
    }
    // SAFETY: the pieces passed to `f` cover `out`, the first `len` elements of the capacity,
    // and `f` wrote every element of each (its contract above); had it panicked, we would not
    // be here.
    unsafe { buf.set_len(len) };
    buf
}

/// Runs the dispatched kernel `k` over `x`.
fn unary(x: &[f32], k: fn(&[f32], &mut [MaybeUninit<f32>])) -> Vec<f32> {
    // SAFETY: the unary kernels write every element of their output (`map_body`, which asserts
    // that output and input are as long).
    unsafe { fill(x.len(), 1, |y, r| k(&x[r], y)) }
}

/// `e^x` of each element.
pub fn exp(x: &[f32]) -> Vec<f32> {
    unary(x, exp_chunk)
}

/// The logistic function of each element.
pub fn sigmoid(x: &[f32]) -> Vec<f32> {
    unary(x, sigmoid_chunk)
}

/// `tanh` of each element.
pub fn tanh(x: &[f32]) -> Vec<f32> {
    unary(x, tanh_chunk)
}

/// GELU (`x Φ(x)`, erf form) of each element.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    unary(x, gelu_chunk)
}

/// GELU of each element and its derivative there, `(y, d)`: what a training step keeps for the
/// backward pass, which is then `g · d` (computing the derivative later would repeat the
/// forward pass's exponential and erf).
pub fn gelu_with_grad(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let len = x.len();
    let (mut y, mut d) = (Vec::with_capacity(len), Vec::with_capacity(len));
    let (yo, dout) = (
        &mut y.spare_capacity_mut()[..len],
        &mut d.spare_capacity_mut()[..len],
    );
    if let Some(piece) = pieces(len, 1) {
        crate::threads::install(|| {
            yo.par_chunks_mut(piece)
                .zip(dout.par_chunks_mut(piece))
                .zip(x.par_chunks(piece))
                .for_each(|((y, d), x)| gelu_and_grad_chunk(x, y, d))
        });
    } else {
        gelu_and_grad_chunk(x, yo, dout);
    }
    // SAFETY: `gelu_and_grad_body` wrote every element of each piece of both (it asserts the
    // pieces are as long as their input's), and the pieces cover the first `len`.
    unsafe {
        y.set_len(len);
        d.set_len(len);
    }
    (y, d)
}

/// `dx = y (g − Σ g y)` per contiguous row of length `n`.
#[inline(always)]
fn softmax_backward_rows_body(y: &[f32], g: &[f32], dx: &mut [MaybeUninit<f32>], n: usize) {
    // Every element of `dx` is written: its rows are as many as `y`'s and `g`'s.
    assert!(dx.len().is_multiple_of(n) && y.len() == dx.len() && g.len() == dx.len());
    for ((y, g), dx) in y
        .chunks_exact(n)
        .zip(g.chunks_exact(n))
        .zip(dx.chunks_exact_mut(n))
    {
        let mut acc = [0.0f32; 8];
        let split = n - n % 8;
        for (yc, gc) in y[..split].chunks_exact(8).zip(g[..split].chunks_exact(8)) {
            for k in 0..8 {
                acc[k] += yc[k] * gc[k];
            }
        }
        let mut dot: f32 = y[split..].iter().zip(&g[split..]).map(|(a, b)| a * b).sum();
        dot += acc.iter().sum::<f32>();
        for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
            d.write(y * (g - dot));
        }
    }
}

dispatch!(
    softmax_backward_rows_chunk,
    (y: &[f32], g: &[f32], dx: &mut [MaybeUninit<f32>], n: usize),
    softmax_backward_rows_body
);

/// `y = x − log Σ exp x` along each row of `n` (the maximum taken out first), every element of
/// `y` written. The sums run in 8 partial sums, a fixed order whatever the instruction set; the
/// one logarithm per row is the scalar `ln`.
#[inline(always)]
fn log_softmax_rows_body<const F: bool>(x: &[f32], y: &mut [Out], n: usize) {
    assert!(y.len() == x.len() && x.len().is_multiple_of(n));
    for (x, y) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        let split = n - n % 8;
        let mut m = [f32::NEG_INFINITY; 8];
        for c in x[..split].chunks_exact(8) {
            for k in 0..8 {
                m[k] = if c[k] > m[k] { c[k] } else { m[k] };
            }
        }
        let max = m
            .iter()
            .chain(&x[split..])
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut acc = [0.0f32; 8];
        for c in x[..split].chunks_exact(8) {
            for k in 0..8 {
                acc[k] += exp_nonpositive1::<F>(c[k] - max);
            }
        }
        let mut sum: f32 = x[split..]
            .iter()
            .map(|&v| exp_nonpositive1::<F>(v - max))
            .sum();
        sum += ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        let lse = max + sum.ln();
        for (y, &v) in y.iter_mut().zip(x) {
            y.write(v - lse);
        }
    }
}
dispatch!(
    fma log_softmax_rows_chunk,
    (x: &[f32], y: &mut [Out], n: usize),
    log_softmax_rows_body
);

/// Log-softmax along each contiguous row of length `n`: `x − log Σ exp x`, without forming the
/// softmax.
pub fn log_softmax_rows(x: &[f32], n: usize) -> Vec<f32> {
    assert!(
        n > 0 && x.len().is_multiple_of(n),
        "log_softmax_rows: {} is not a whole number of rows of {n}",
        x.len()
    );
    // SAFETY: `log_softmax_rows_body` writes every element of its piece (whole rows, as long as
    // their input).
    unsafe { fill(x.len(), n, |y, r| log_softmax_rows_chunk(&x[r], y, n)) }
}

/// Log-softmax's backward pass along each row of `n`, given its output `y`:
/// `dx = g − exp(y) Σ g`, the sums in 8 partial sums.
#[inline(always)]
fn log_softmax_backward_rows_body<const F: bool>(y: &[f32], g: &[f32], dx: &mut [Out], n: usize) {
    assert!(dx.len() == y.len() && g.len() == y.len() && y.len().is_multiple_of(n));
    for ((y, g), dx) in y
        .chunks_exact(n)
        .zip(g.chunks_exact(n))
        .zip(dx.chunks_exact_mut(n))
    {
        let split = n - n % 8;
        let mut acc = [0.0f32; 8];
        for c in g[..split].chunks_exact(8) {
            for k in 0..8 {
                acc[k] += c[k];
            }
        }
        let mut total: f32 = g[split..].iter().sum();
        total += ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        // A log-probability is ≤ 0 (or NaN), the exponential's domain here.
        for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
            d.write(g - exp_nonpositive1::<F>(y) * total);
        }
    }
}
dispatch!(
    fma log_softmax_backward_rows_chunk,
    (y: &[f32], g: &[f32], dx: &mut [Out], n: usize),
    log_softmax_backward_rows_body
);

/// [`log_softmax_rows`]' backward pass, given its output `y` and the output's gradient `g`.
pub fn log_softmax_backward_rows(y: &[f32], g: &[f32], n: usize) -> Vec<f32> {
    backward_rows(
        "log_softmax_backward_rows",
        y,
        g,
        n,
        log_softmax_backward_rows_chunk,
    )
}

/// A row-wise backward pass `k(y, g, dx, n)` over rows of `n`, into a fresh buffer, split
/// across the pool by whole rows when large. `k` must write every element of `dx` (the row
/// kernels here are loops over all of their output, as long as their input).
fn backward_rows(
    name: &str,
    y: &[f32],
    g: &[f32],
    n: usize,
    k: fn(&[f32], &[f32], &mut [Out], usize),
) -> Vec<f32> {
    assert!(
        n > 0 && y.len().is_multiple_of(n) && g.len() == y.len(),
        "{name}: bad lengths"
    );
    // SAFETY: the pieces are whole rows, and `k` writes every element of its piece.
    unsafe { fill(y.len(), n, |d, r| k(&y[r.clone()], &g[r], d, n)) }
}

/// Softmax along each contiguous row of length `n`.
pub fn softmax_rows(x: &[f32], n: usize) -> Vec<f32> {
    assert!(
        n > 0 && x.len().is_multiple_of(n),
        "softmax_rows: {} is not a whole number of rows of {n}",
        x.len()
    );
    let mut y = x.to_vec();
    softmax_rows_in_place(&mut y, n, 0);
    y
}

/// How many of the `n` entries of score row `row` are seen: all without a causal mask (`t == 0`),
/// else those of keys `0..=row % t` (row `row` is query `row % t` of a head of `t` queries).
#[inline(always)]
fn visible(n: usize, row: usize, t: usize) -> usize {
    if t == 0 {
        n
    } else {
        (row % t + 1).min(n)
    }
}

/// `visible` rounded up to a whole number of 8-lane vectors when that stays inside a row of `n`.
#[inline(always)]
fn padded(visible: usize, n: usize) -> usize {
    let up = visible.next_multiple_of(8);
    if up <= n {
        up
    } else {
        visible
    }
}

/// Writes 0 into the entries of each row of `y` (rows of `n`) that [`visible`] leaves out, and
/// returns `y` as floats.
///
/// # Safety
/// The entries [`visible`] keeps of each row must hold floats.
unsafe fn zero_masked(y: &mut [MaybeUninit<f32>], n: usize, t: usize) -> &mut [f32] {
    if t > 0 {
        for (i, row) in y.chunks_exact_mut(n).enumerate() {
            row[visible(n, i, t)..].fill(MaybeUninit::new(0.0));
        }
    }
    // SAFETY: the caller's promise for the entries kept; the others were written above (with
    // `t == 0` every entry is kept).
    unsafe { &mut *(y as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// [`softmax_rows_in_place`] (serial) over score rows of which only the entries each query sees
/// have been written: attention computes the scores of the blocks on or below the diagonal only,
/// into memory not zeroed first. Writes every entry (the unseen ones 0) and returns `y` as
/// floats.
///
/// # Safety
/// With `causal_t > 0`, entries `0..=r % causal_t` (at most `n`) of each row `r` must hold
/// floats; with `causal_t == 0`, every entry.
pub(crate) unsafe fn softmax_rows_uninit(
    y: &mut [MaybeUninit<f32>],
    n: usize,
    causal_t: usize,
) -> &mut [f32] {
    assert!(
        n > 0 && y.len().is_multiple_of(n),
        "softmax_rows_uninit: {} is not a whole number of rows of {n}",
        y.len()
    );
    // SAFETY: the caller's promise is `zero_masked`'s.
    let y = unsafe { zero_masked(y, n, causal_t) };
    softmax_rows_in_place_chunk(y, n, 0, causal_t);
    y
}

/// Softmax's backward pass in place, `g ← y (g − Σ g y)` along each row of `n`, for attention's
/// score rows (serial): with `causal_t > 0`, row `r` sees entries `0..=r % causal_t` only, where
/// `g` need not have been written (its entries there become 0, as `y` is 0 there). The sums run
/// over the seen entries, in 8 partial sums.
///
/// # Safety
/// As [`softmax_rows_uninit`], for `g`'s entries.
pub(crate) unsafe fn softmax_backward_rows_uninit(
    y: &[f32],
    g: &mut [MaybeUninit<f32>],
    n: usize,
    causal_t: usize,
) {
    assert!(
        n > 0 && g.len().is_multiple_of(n) && y.len() == g.len(),
        "softmax_backward_rows_uninit: bad lengths"
    );
    // SAFETY: the caller's promise is `zero_masked`'s.
    let g = unsafe { zero_masked(g, n, causal_t) };
    softmax_backward_seen_chunk(y, g, n, causal_t);
}

/// The seen part of each row of [`softmax_backward_rows_uninit`].
#[inline(always)]
fn softmax_backward_seen_body(y: &[f32], g: &mut [f32], n: usize, t: usize) {
    for (i, (y, g)) in y.chunks_exact(n).zip(g.chunks_exact_mut(n)).enumerate() {
        let seen = visible(n, i, t);
        let (y, g) = (&y[..seen], &mut g[..seen]);
        let split = seen - seen % 8;
        let mut acc = [0.0f32; 8];
        for (yc, gc) in y[..split].chunks_exact(8).zip(g[..split].chunks_exact(8)) {
            for k in 0..8 {
                acc[k] += yc[k] * gc[k];
            }
        }
        let mut dot: f32 = y[split..].iter().zip(&g[split..]).map(|(a, b)| a * b).sum();
        dot += acc.iter().sum::<f32>();
        for (g, &y) in g.iter_mut().zip(y) {
            *g = y * (*g - dot);
        }
    }
}
dispatch!(
    softmax_backward_seen_chunk,
    (y: &[f32], g: &mut [f32], n: usize, t: usize),
    softmax_backward_seen_body
);

/// Softmax in place along each contiguous row of length `n` of `y`, the first being row `first`;
/// with `t > 0`, row `r` is query `r % t` of causal attention and sees entries `0..=r % t` only
/// (the rest become 0, as the softmax of a masked score would). The sums run in 8 partial sums,
/// a fixed order whatever the instruction set.
#[inline(always)]
fn softmax_rows_in_place_body<const F: bool>(y: &mut [f32], n: usize, first: usize, t: usize) {
    for (i, row) in y.chunks_exact_mut(n).enumerate() {
        let visible = visible(n, first + i, t);
        // A causal row's first unseen entries, up to the next multiple of 8 inside the row, take
        // part as −∞ (whose exponential is 0): whole vectors instead of a scalar tail, which
        // cost short score rows more than their vectors did.
        let width = padded(visible, n);
        row[visible..width].fill(f32::NEG_INFINITY);
        let (row, masked) = row.split_at_mut(width);
        masked.fill(0.0);
        let split = width - width % 8;
        let mut m = [f32::NEG_INFINITY; 8];
        for c in row[..split].chunks_exact(8) {
            for k in 0..8 {
                m[k] = if c[k] > m[k] { c[k] } else { m[k] };
            }
        }
        let mut max = row[split..]
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for v in m {
            max = max.max(v);
        }
        for v in row.iter_mut() {
            *v = exp_nonpositive1::<F>(*v - max);
        }
        let mut acc = [0.0f32; 8];
        for c in row[..split].chunks_exact(8) {
            for k in 0..8 {
                acc[k] += c[k];
            }
        }
        let mut sum = row[split..].iter().sum::<f32>();
        sum += ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
        // Exactly 0 even in a row whose seen entries are all −∞ (NaN, as in PyTorch).
        row[visible..].fill(0.0);
    }
}
dispatch!(
    fma softmax_rows_in_place_chunk,
    (y: &mut [f32], n: usize, first: usize, t: usize),
    softmax_rows_in_place_body
);

/// Softmax of each contiguous row of length `n` of `y`, in place. With `causal_t > 0` the rows
/// are the score rows of causal attention, `causal_t` queries per head: row `r` keeps its first
/// `r % causal_t + 1` entries and the rest become 0 (they are neither read nor need masking
/// first). A row of -inf gives NaN, as in PyTorch.
pub fn softmax_rows_in_place(y: &mut [f32], n: usize, causal_t: usize) {
    assert!(
        n > 0 && y.len().is_multiple_of(n),
        "softmax_rows_in_place: {} is not a whole number of rows of {n}",
        y.len()
    );
    if crate::threads::worth_splitting(y.len(), PARALLEL_MIN) {
        let rows = (y.len() / n)
            .div_ceil(crate::threads::num_threads() * 4)
            .max(4096usize.div_ceil(n));
        crate::threads::install(|| {
            y.par_chunks_mut(rows * n)
                .enumerate()
                .for_each(|(i, piece)| softmax_rows_in_place_chunk(piece, n, i * rows, causal_t))
        });
    } else {
        softmax_rows_in_place_chunk(y, n, 0, causal_t);
    }
}

/// Softmax's backward pass along each contiguous row of length `n`, given its output `y`.
pub fn softmax_backward_rows(y: &[f32], g: &[f32], n: usize) -> Vec<f32> {
    backward_rows(
        "softmax_backward_rows",
        y,
        g,
        n,
        softmax_backward_rows_chunk,
    )
}

#[inline(always)]
fn add_rows_body(dst: &mut [f32], rows: &[f32]) {
    // Four rows per pass over `dst`, added pairwise first: a quarter of the loads and stores of
    // `dst` (on Zen 1 one 128-bit store a cycle: the stores were the bound, not reading `rows`).
    let n = dst.len();
    let mut blocks = rows.chunks_exact(4 * n);
    for block in &mut blocks {
        let (r01, r23) = block.split_at(2 * n);
        let (r0, r1) = r01.split_at(n);
        let (r2, r3) = r23.split_at(n);
        for ((((d, &a), &b), &c), &e) in dst.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
            *d += (a + b) + (c + e);
        }
    }
    for row in blocks.remainder().chunks_exact(n) {
        for (d, &s) in dst.iter_mut().zip(row) {
            *d += s;
        }
    }
}
dispatch!(add_rows_chunk, (dst: &mut [f32], rows: &[f32]), add_rows_body);

/// Adds each contiguous row of `rows` (rows as long as `dst`) into `dst`: a bias's gradient (the
/// column sums of the output gradient), or one gradient into another. The rows are taken four
/// at a time, added pairwise, then into `dst`, in order: a fixed order whatever the instruction
/// set or thread count.
pub fn add_rows(dst: &mut [f32], rows: &[f32]) {
    assert!(
        rows.is_empty() || (!dst.is_empty() && rows.len().is_multiple_of(dst.len())),
        "add_rows: {} is not a whole number of rows of {}",
        rows.len(),
        dst.len()
    );
    if !dst.is_empty() {
        add_rows_chunk(dst, rows)
    }
}

/// `Σ_j f(cols[0][j], …, cols[N-1][j])` over columns of equal length, in 16 interleaved partial
/// sums (one vector register under AVX-512) added pairwise at the end: a fixed order, whatever
/// the instruction set. The columns are taken 16 values at a time as fixed-size arrays, so that
/// the loop vectorises (indexing through a closure left it scalar: bounds checks).
#[inline(always)]
fn sum16<const N: usize>(cols: [&[f32]; N], f: impl Fn([f32; N]) -> f32) -> f32 {
    let len = cols[0].len();
    let cols = cols.map(|c| &c[..len]);
    let split = len - len % 16;
    let mut acc = [0.0f32; 16];
    for c in (0..split).step_by(16) {
        let blocks: [&[f32; 16]; N] =
            cols.map(|col| col[c..c + 16].try_into().expect("a block of 16"));
        for (k, a) in acc.iter_mut().enumerate() {
            *a += f(blocks.map(|b| b[k]));
        }
    }
    for (k, j) in (split..len).enumerate() {
        acc[k] += f(cols.map(|col| col[j]));
    }
    let mut width = 16;
    while width > 1 {
        width /= 2;
        for k in 0..width {
            acc[k] += acc[k + width];
        }
    }
    acc[0]
}

#[inline(always)]
fn sum_body(x: &[f32], out: &mut f32) {
    *out = sum16([x], |[v]| v);
}
dispatch!(sum_chunk, (x: &[f32], out: &mut f32), sum_body);

/// The sum of `x`, in 16 interleaved partial sums added pairwise: vectorised, more accurate than
/// a running sum, and the same order (so the same bits) under every instruction set.
pub fn sum(x: &[f32]) -> f32 {
    let mut out = 0.0;
    sum_chunk(x, &mut out);
    out
}

/// Layer normalisation of each contiguous row of length `d`: `y = (x − μ)/σ · w + b`, with
/// σ = sqrt(var + eps) (population variance), and per row `(μ, 1/σ)` written to `stats`.
#[inline(always)]
fn layer_norm_body(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [Out], stats: &mut [Out]) {
    // Writes every element of `y` and `stats` when they hold as many rows as `x`.
    let d = w.len();
    let (w, b) = (&w[..d], &b[..d]);
    for ((x, y), st) in x
        .chunks_exact(d)
        .zip(y.chunks_exact_mut(d))
        .zip(stats.chunks_exact_mut(2))
    {
        let mean = sum16([x], |[v]| v) / d as f32;
        let var = sum16([x], |[v]| (v - mean) * (v - mean)) / d as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        st[0].write(mean);
        st[1].write(rstd);
        for j in 0..d {
            y[j].write((x[j] - mean) * rstd * w[j] + b[j]);
        }
    }
}

/// Layer normalisation's gradients being written: `(dx, dw, db, scratch row)`.
/// `dx` is written whole (when it holds as many rows as `x`), not read.
type LnGrads<'a> = (&'a mut [Out], &'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// Layer normalisation's backward pass over contiguous rows of length `d`, given the forward
/// pass's `stats`: with x̂ = (x − μ)/σ and ĝ = g·w,
/// `dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) / σ`, and `dw += Σ g·x̂`, `db += Σ g` over the rows.
/// `out` is `(dx, dw, db, xhat)`, the last a scratch row.
#[inline(always)]
fn layer_norm_backward_body(x: &[f32], g: &[f32], w: &[f32], stats: &[f32], out: LnGrads<'_>) {
    let (dx, dw, db, xhat) = out;
    let d = w.len();
    let (dw, db, xhat) = (&mut dw[..d], &mut db[..d], &mut xhat[..d]);
    for (((x, g), dx), st) in x
        .chunks_exact(d)
        .zip(g.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
        .zip(stats.chunks_exact(2))
    {
        let (mean, rstd) = (st[0], st[1]);
        for j in 0..d {
            xhat[j] = (x[j] - mean) * rstd;
            dw[j] += g[j] * xhat[j];
            db[j] += g[j];
        }
        let m1 = sum16([g, w], |[g, w]| g * w) / d as f32;
        let m2 = sum16([g, w, xhat], |[g, w, xh]| g * w * xh) / d as f32;
        for j in 0..d {
            dx[j].write((g[j] * w[j] - m1 - xhat[j] * m2) * rstd);
        }
    }
}

dispatch!(
    layer_norm_chunk,
    (x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [Out], stats: &mut [Out]),
    layer_norm_body
);
dispatch!(
    layer_norm_backward_chunk,
    (x: &[f32], g: &[f32], w: &[f32], stats: &[f32], out: LnGrads<'_>),
    layer_norm_backward_body
);

/// Layer normalisation of each contiguous row of `x` (rows of `w.len()`): returns `y` and the
/// per-row `(mean, 1/σ)` pairs the backward pass needs. `b` has the length of `w`.
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = w.len();
    assert!(
        d > 0 && b.len() == d && x.len().is_multiple_of(d),
        "layer_norm: bad lengths"
    );
    let (n, rows) = (x.len(), x.len() / d);
    let (mut y, mut stats) = (Vec::with_capacity(n), Vec::with_capacity(2 * rows));
    let (yo, so) = (
        &mut y.spare_capacity_mut()[..n],
        &mut stats.spare_capacity_mut()[..2 * rows],
    );
    layer_norm_chunk(x, w, b, eps, yo, so);
    // SAFETY: `layer_norm_body` wrote all `rows` rows of both (`n = rows·d`, asserted above).
    unsafe {
        y.set_len(n);
        stats.set_len(2 * rows);
    }
    (y, stats)
}

/// Layer normalisation's backward pass: `(dx, dw, db)` for the output gradient `g`, given the
/// input `x`, the weight `w` and the forward pass's `stats`.
pub fn layer_norm_backward(
    x: &[f32],
    g: &[f32],
    w: &[f32],
    stats: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = w.len();
    assert!(
        d > 0
            && x.len().is_multiple_of(d)
            && g.len() == x.len()
            && stats.len() == 2 * (x.len() / d),
        "layer_norm_backward: bad lengths"
    );
    let n = x.len();
    let mut dx = Vec::with_capacity(n);
    let (mut dw, mut db, mut xhat) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let dxo = &mut dx.spare_capacity_mut()[..n];
    layer_norm_backward_chunk(x, g, w, stats, (dxo, &mut dw, &mut db, &mut xhat));
    // SAFETY: `layer_norm_backward_body` wrote every row of `dx` (as many as `x` and `g` hold,
    // and `stats` pairs: asserted above).
    unsafe { dx.set_len(n) };
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values() {
        let y = exp(&[
            f32::NEG_INFINITY,
            -1e9,
            -200.0,
            0.0,
            1.0,
            100.0,
            f32::INFINITY,
            f32::NAN,
        ]);
        assert_eq!(&y[..4], &[0.0, 0.0, 0.0, 1.0]);
        assert!((y[4] - std::f32::consts::E).abs() < 1e-6);
        assert_eq!(y[5], f32::INFINITY);
        assert_eq!(y[6], f32::INFINITY);
        assert!(y[7].is_nan());
        let s = softmax_rows(&[0.0, f32::NEG_INFINITY, 0.0, 1000.0, 1000.0, 1000.0], 3);
        assert_eq!(&s[..3], &[0.5, 0.0, 0.5]);
        assert!((s[3] - 1.0 / 3.0).abs() < 1e-7);
    }
}

/// The larger of `a` and `b` and whether it is `b`: `b` wins only when strictly greater, or NaN
/// where `a` is not (so the first maximum, or the first NaN, wins, as in PyTorch).
#[inline(always)]
fn max_first(a: f32, b: f32) -> (f32, bool) {
    let take = (b > a) | (b.is_nan() & !a.is_nan());
    (if take { b } else { a }, take)
}

#[inline(always)]
fn max_pool_2x2_body(x: &[f32], w: usize, y: &mut [f32], code: &mut [u8]) {
    let ow = y.len() / (x.len() / (2 * w)).max(1);
    for ((pair, y), code) in x
        .chunks_exact(2 * w)
        .zip(y.chunks_exact_mut(ow))
        .zip(code.chunks_exact_mut(ow))
    {
        let (top, bottom) = (&pair[..2 * ow], &pair[w..w + 2 * ow]);
        for i in 0..ow {
            let (m1, t1) = max_first(top[2 * i], top[2 * i + 1]);
            let (m2, t2) = max_first(bottom[2 * i], bottom[2 * i + 1]);
            let (m, t) = max_first(m1, m2);
            y[i] = m;
            code[i] = if t { 2 + t2 as u8 } else { t1 as u8 };
        }
    }
}

#[inline(always)]
fn max_pool_2x2_backward_body(g: &[f32], code: &[u8], w: usize, gx: &mut [f32]) {
    let ow = g.len() / (gx.len() / (2 * w)).max(1);
    for ((pair, g), code) in gx
        .chunks_exact_mut(2 * w)
        .zip(g.chunks_exact(ow))
        .zip(code.chunks_exact(ow))
    {
        let (top, bottom) = pair.split_at_mut(w);
        let (top, bottom) = (&mut top[..2 * ow], &mut bottom[..2 * ow]);
        for i in 0..ow {
            let (gv, c) = (g[i], code[i]);
            top[2 * i] = if c == 0 { gv } else { 0.0 };
            top[2 * i + 1] = if c == 1 { gv } else { 0.0 };
            bottom[2 * i] = if c == 2 { gv } else { 0.0 };
            bottom[2 * i + 1] = if c == 3 { gv } else { 0.0 };
        }
    }
}

dispatch!(
    max_pool_2x2_chunk,
    (x: &[f32], w: usize, y: &mut [f32], code: &mut [u8]),
    max_pool_2x2_body
);
dispatch!(
    max_pool_2x2_backward_chunk,
    (g: &[f32], code: &[u8], w: usize, gx: &mut [f32]),
    max_pool_2x2_backward_body
);

/// 2×2 max pooling with stride 2 of `rows` pairs of input rows of width `w` (`x` holds
/// `2·rows·w` floats: whole planes, or their first `2·OH` rows): `y[r][i]` is the maximum of the
/// window at output column `i` (`OW = y.len() / rows` of them, `2·OW ≤ w`), and `code[r][i]` its
/// position in the window (0, 1 top row; 2, 3 bottom row). The first maximum wins, and NaN
/// beats numbers, as in PyTorch.
///
/// # Panics
/// If the lengths do not match that layout.
pub fn max_pool_2x2(x: &[f32], w: usize, y: &mut [f32], code: &mut [u8]) {
    assert!(
        w > 0 && x.len().is_multiple_of(2 * w) && code.len() == y.len(),
        "max_pool_2x2: bad lengths"
    );
    let rows = x.len() / (2 * w);
    assert!(
        y.len() == rows * (y.len() / rows.max(1)) && 2 * (y.len() / rows.max(1)) <= w,
        "max_pool_2x2: bad lengths"
    );
    #[cfg(target_arch = "x86_64")]
    if super::gemm::current_isa() == Isa::Avx512 {
        let ow = y.len() / rows.max(1);
        // SAFETY: `current_isa` is `Avx512` only on a CPU with avx512f; the lengths were checked
        // above to be the layout `x86::max_pool_2x2` requires.
        return unsafe { x86::max_pool_2x2(x, w, ow, y, code) };
    }
    max_pool_2x2_chunk(x, w, y, code)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`max_first`](super::max_first) on 16 lanes: the maximum, and the mask of lanes where it
    /// is `b`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn max_first(a: __m512, b: __m512) -> (__m512, __mmask16) {
        let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b, a);
        let b_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b);
        let a_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a);
        let take = gt | (b_nan & !a_nan);
        (_mm512_mask_blend_ps(take, a, b), take)
    }

    /// The first `n` lanes (n ≤ 16).
    #[inline(always)]
    fn lanes(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }

    /// [`max_pool_2x2`](super::max_pool_2x2) with 16 outputs of a row pair per step: the
    /// windows' four corners de-interleaved from two 16-float loads per row, the rows' tails
    /// (LeNet's rows have 12 and 4 outputs) handled by masked loads and stores.
    ///
    /// # Safety
    /// The CPU must have avx512f, and `x` must hold whole pairs of rows of `w ≥ 2·ow` floats,
    /// one pair per `ow` elements of `y` and `code`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn max_pool_2x2(
        x: &[f32],
        w: usize,
        ow: usize,
        y: &mut [f32],
        code: &mut [u8],
    ) {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let (zero, one) = (_mm512_setzero_si512(), _mm512_set1_epi32(1));
        let (two, three) = (_mm512_set1_epi32(2), _mm512_set1_epi32(3));
        let rows = y.len().checked_div(ow).unwrap_or(0);
        for r in 0..rows {
            // SAFETY: row pair `r` is x[2rw..2rw + 2w] (the caller's layout), and every load
            // reads inputs below 2·ow ≤ w of each row: lanes beyond are masked off (masked
            // loads do not touch them); stores write outputs r·ow + i.. of at most `ow − i` lanes.
            unsafe {
                let top = x.as_ptr().add(2 * r * w);
                let bottom = top.add(w);
                let (yr, cr) = (y.as_mut_ptr().add(r * ow), code.as_mut_ptr().add(r * ow));
                for i in (0..ow).step_by(16) {
                    let n = (ow - i).min(16);
                    let (lo, hi) = (lanes(2 * n), lanes((2 * n).saturating_sub(16)));
                    let load = |row: *const f32| {
                        let v0 = _mm512_maskz_loadu_ps(lo, row.add(2 * i));
                        let v1 = _mm512_maskz_loadu_ps(hi, row.add(2 * i + 16));
                        (
                            _mm512_permutex2var_ps(v0, even, v1),
                            _mm512_permutex2var_ps(v0, odd, v1),
                        )
                    };
                    let ((a, b), (c, d)) = (load(top), load(bottom));
                    let (m1, k1) = max_first(a, b);
                    let (m2, k2) = max_first(c, d);
                    let (m, k) = max_first(m1, m2);
                    let upper = _mm512_mask_blend_epi32(k1, zero, one);
                    let lower = _mm512_mask_blend_epi32(k2, two, three);
                    let codes = _mm512_mask_blend_epi32(k, upper, lower);
                    let out = lanes(n);
                    _mm512_mask_storeu_ps(yr.add(i), out, m);
                    _mm512_mask_cvtepi32_storeu_epi8(cr.add(i) as *mut i8, out, codes);
                }
            }
        }
    }
}

/// The backward pass of [`max_pool_2x2`]: writes every element of the row pairs in `gx` (same
/// layout as `x`): the output gradient where `code` says the maximum was, zero elsewhere (the
/// columns beyond `2·OW` are left as they are).
///
/// # Panics
/// If the lengths do not match that layout.
pub fn max_pool_2x2_backward(g: &[f32], code: &[u8], w: usize, gx: &mut [f32]) {
    assert!(
        w > 0 && gx.len().is_multiple_of(2 * w) && code.len() == g.len(),
        "max_pool_2x2_backward: bad lengths"
    );
    let rows = gx.len() / (2 * w);
    assert!(
        g.len() == rows * (g.len() / rows.max(1)) && 2 * (g.len() / rows.max(1)) <= w,
        "max_pool_2x2_backward: bad lengths"
    );
    max_pool_2x2_backward_chunk(g, code, w, gx)
}

#[inline(always)]
fn all_finite_body(x: &[f32]) -> bool {
    // An f32 is infinite or NaN exactly when its exponent bits are all ones: the largest masked
    // exponent over the slice, an integer maximum that vectorises (where `any` with its early
    // exit stays scalar, one element per cycle: 6% of an MLP step).
    const EXPONENT: u32 = 0x7f80_0000;
    let mut lanes = [0u32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for k in 0..16 {
            lanes[k] = lanes[k].max(c[k].to_bits() & EXPONENT);
        }
    }
    let tail = chunks.remainder().iter().map(|v| v.to_bits() & EXPONENT);
    lanes.into_iter().chain(tail).max().unwrap_or(0) != EXPONENT
}

fn all_finite_isa(x: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(x: &[f32]) -> bool {
            all_finite_body(x)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(x: &[f32]) -> bool {
            all_finite_body(x)
        }
        match super::gemm::current_isa() {
            // SAFETY: as in `dispatch!`: the CPU has the features these copies were compiled for.
            Isa::Avx512 => return unsafe { avx512(x) },
            Isa::Avx2Fma => return unsafe { avx2(x) },
            Isa::Portable => {}
        }
    }
    all_finite_body(x)
}

/// Whether every element is finite (no infinity, no NaN).
pub fn all_finite(x: &[f32]) -> bool {
    all_finite_isa(x)
}
