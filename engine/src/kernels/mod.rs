//! The unsafe, performance-critical code, each piece behind a safe function that checks the
//! invariants its `unsafe` block relies on. Nothing outside this module uses `unsafe`.

pub mod alloc;
pub mod direct;
pub mod fp;
pub mod gemm;
pub mod prefetch;
pub mod vmath;

/// `a·b + c`: one fused multiply-add in the copies of a loop compiled for AVX2+FMA and AVX-512
/// (`FMA`), a multiply and an add in the portable one, where `mul_add` would be a call to a
/// software `fmaf` per element on CPUs without FMA. Fusing halves a polynomial's instructions and
/// shortens its dependency chain; it rounds once instead of twice.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Small checks of every kernel path Miri can execute (`cargo +nightly miri test -p
/// gradbook-engine --lib kernels::`, run by `.ci/run`): the portable GEMM on awkward shapes with
/// transposed operands and alpha/beta (Miri checks every packed-panel access is in bounds and
/// initialised), the baseline build of the vectorised maths, and the prefetch hint. Miri cannot
/// execute the AVX-512 and AVX2 micro-kernels or the MXCSR assembly, so those are compiled out of
/// these runs (`cfg(miri)`, and `Isa::detected` finds no AVX under Miri); the native test suite
/// forces each of them against the same references (`tests/gemm.rs`, `tests/vmath.rs`).
#[cfg(test)]
mod tests {
    use super::gemm::{sgemm, sgemm_new, with_isa, Epilogue, Isa, MatMut, MatRef};

    #[test]
    fn portable_gemm_matches_naive_products() {
        let shapes = [(1, 1, 1), (2, 3, 5), (5, 7, 3), (9, 4, 13), (4, 9, 8)];
        for &(m, k, n) in &shapes {
            for transposed in [false, true] {
                let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
                let c0: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.25).collect();
                let mut c = c0.clone();
                // A stored as its transpose when `transposed`.
                let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
                let a_ref = if transposed {
                    MatRef::row_major(&at, k, m).t()
                } else {
                    MatRef::row_major(&a, m, k)
                };
                with_isa(Isa::Portable, || {
                    sgemm(
                        2.0,
                        a_ref,
                        MatRef::row_major(&b, k, n),
                        0.5,
                        MatMut::row_major(&mut c, m, n),
                    )
                })
                .unwrap();
                // A fresh output, not zeroed first: Miri fails if an element is left unwritten.
                let fresh = with_isa(Isa::Portable, || {
                    sgemm_new(
                        2.0,
                        a_ref,
                        MatRef::row_major(&b, k, n),
                        None,
                        Epilogue::None,
                    )
                })
                .unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let dot: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                        let want = 2.0 * dot + 0.5 * c0[i * n + j];
                        assert!((c[i * n + j] - want).abs() < 1e-4, "{m}x{k}x{n} at {i},{j}");
                        assert!((fresh[i * n + j] - 2.0 * dot).abs() < 1e-4);
                    }
                }
            }
        }
    }

    #[test]
    fn vectorised_maths_on_short_slices() {
        let x: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 9.0).collect();
        for (got, want) in super::vmath::exp(&x).iter().zip(&x) {
            assert!((got - want.exp()).abs() <= 1e-6 * want.exp());
        }
        let s = super::vmath::softmax_rows(&x[..36], 9);
        for row in s.chunks(9) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        // Buffers written without being zeroed first: reading every value makes Miri fail on
        // any the kernels left uninitialised.
        let gelu = super::vmath::gelu(&x);
        let (gelu_too, gelu_back) = super::vmath::gelu_with_grad(&x);
        for ((a, b), v) in gelu.iter().zip(&gelu_too).zip(&x) {
            assert!(
                (a - b).abs() <= 3e-7 * v.abs().max(1.0),
                "gelu {a} against {b}"
            );
        }
        let soft_back = super::vmath::softmax_backward_rows(&s, &x[..36], 9);
        let (w, b) = (vec![1.5; 9], vec![0.25; 9]);
        let (norm, stats) = super::vmath::layer_norm(&x[..36], &w, &b, 1e-5);
        let (norm_back, ..) = super::vmath::layer_norm_backward(&x[..36], &x[..36], &w, &stats);
        assert!(gelu
            .iter()
            .chain(&gelu_back)
            .chain(&soft_back)
            .chain(&norm)
            .chain(&stats)
            .chain(&norm_back)
            .all(|v| v.is_finite()));
        // Attention's score rows, written only where each query sees (4 queries of 6 keys,
        // causal): Miri fails if the softmax or its backward read an entry not written.
        let (t, n) = (4, 6);
        let mut scores = vec![std::mem::MaybeUninit::<f32>::uninit(); t * n];
        let mut dscores = scores.clone();
        for r in 0..t {
            for j in 0..=r {
                scores[r * n + j].write(x[r * n + j]);
                dscores[r * n + j].write(x[r + j]);
            }
        }
        // SAFETY: entries 0..=r of each row r were written above.
        let p = unsafe { super::vmath::softmax_rows_uninit(&mut scores, n, t) }.to_vec();
        unsafe { super::vmath::softmax_backward_rows_uninit(&p, &mut dscores, n, t) };
        // SAFETY: the backward pass wrote every entry (the unseen ones 0).
        let ds: Vec<f32> = dscores.iter().map(|v| unsafe { v.assume_init() }).collect();
        assert!(p.iter().chain(&ds).all(|v| v.is_finite()));
        assert_eq!((p[1], ds[1]), (0.0, 0.0));
        let log_p = super::vmath::log_softmax_rows(&x[..36], 9);
        let log_back = super::vmath::log_softmax_backward_rows(&log_p, &x[..36], 9);
        assert!(log_p.iter().chain(&log_back).all(|v| v.is_finite()));
        // Attention's Kᵀ: a strided row-major source (4 rows of 5, 9 apart), transposed.
        let mut kt = vec![0.0; 20];
        super::gemm::transpose(
            MatRef {
                data: &x,
                rows: 4,
                cols: 5,
                row_stride: 9,
                col_stride: 1,
            },
            &mut kt,
        );
        assert!((0..4).all(|i| (0..5).all(|p| kt[p * 4 + i] == x[i * 9 + p])));
        super::prefetch::prefetch(&x);
        super::fp::set_flush_denormal_on_this_thread(false);
    }
}
