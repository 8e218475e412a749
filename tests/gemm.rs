//! GEMM against a naive triple loop and against `matrixmultiply`, on awkward shapes (1, 2, 3,
//! primes, every tile size ± 1), transposed and strided operands, alpha and beta, with the output
//! pre-filled with NaN when beta = 0 — with every instruction-set path forced in turn; and
//! `sgemm_new`, which writes a fresh output without zeroing it first.

use engine::kernels::gemm::{
    reference, sgemm, sgemm_new, transpose, with_isa, Epilogue, Isa, MatMut, MatRef,
};
use engine::Rng;

fn naive(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &[f32], rsc: usize) -> Vec<f32> {
    let mut out = c.to_vec();
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut s = 0.0f64;
            for p in 0..a.cols {
                s += a.data[i * a.row_stride + p * a.col_stride] as f64
                    * b.data[p * b.row_stride + j * b.col_stride] as f64;
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c[i * rsc + j] as f64
            };
            out[i * rsc + j] = (alpha as f64 * s + old) as f32;
        }
    }
    out
}

fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
}

/// Checks one product in every layout of A and B, with and without accumulation.
fn check(m: usize, k: usize, n: usize, isa: Isa, rng: &mut Rng) {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        // Stored transposed when `ta`: A is read through swapped strides. Otherwise A's rows are
        // padded for two m in three (the micro-kernel reads a row-major A in place with its row
        // stride; with `m` a multiple of 3 they are contiguous, which for k = 1024 is the case
        // where A is packed instead). B gets a padded row stride.
        let a_pad = m % 3;
        let a_store = random(m * (k + a_pad), rng);
        let a = if ta {
            MatRef::row_major(&a_store[..m * k], k, m).t()
        } else {
            MatRef {
                data: &a_store,
                rows: m,
                cols: k,
                row_stride: k + a_pad,
                col_stride: 1,
            }
        };
        let pad = 3;
        let b_store = random(k * (n + pad), rng);
        let b = if tb {
            MatRef {
                data: &b_store,
                rows: k,
                cols: n,
                row_stride: 1,
                col_stride: k,
            }
        } else {
            MatRef {
                data: &b_store,
                rows: k,
                cols: n,
                row_stride: n + pad,
                col_stride: 1,
            }
        };
        for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (-2.0, 0.25)] {
            let rsc = n + 2;
            let init = random(m * rsc, rng);
            let mut c = if beta == 0.0 {
                vec![f32::NAN; m * rsc]
            } else {
                init.clone()
            };
            let want = naive(alpha, a, b, beta, &init, rsc);
            sgemm(alpha, a, b, beta, MatMut::strided(&mut c, m, n, rsc));
            let mut oracle = if beta == 0.0 {
                vec![f32::NAN; m * rsc]
            } else {
                init.clone()
            };
            reference(alpha, a, b, beta, MatMut::strided(&mut oracle, m, n, rsc));
            for i in 0..m {
                for j in 0..n {
                    let (g, w, o) = (c[i * rsc + j], want[i * rsc + j], oracle[i * rsc + j]);
                    let tol = 1e-4 * (k as f32).sqrt() * (1.0 + w.abs());
                    assert!((g - w).abs() <= tol && (g - o).abs() <= tol, "{isa:?} {m}x{k}x{n} ta={ta} tb={tb} alpha={alpha} beta={beta} at ({i},{j}): got {g}, naive {w}, matrixmultiply {o}");
                }
                if beta == 0.0 && i == m - 1 {
                    // A fresh output, never zeroed: every element written, the same values.
                    let fresh = sgemm_new(alpha, a, b, None, Epilogue::None);
                    assert_eq!(fresh.len(), m * n);
                    for (r, row) in fresh.chunks_exact(n.max(1)).enumerate() {
                        for (q, &v) in row.iter().enumerate() {
                            let g = c[r * rsc + q];
                            assert!(
                                v.to_bits() == g.to_bits(),
                                "{isa:?} {m}x{k}x{n}: sgemm_new ({r},{q}) {v} vs {g}"
                            );
                        }
                    }
                }
                // The padding between rows is never touched.
                for j in n..rsc {
                    let idx = i * rsc + j;
                    if beta == 0.0 {
                        assert!(c[idx].is_nan(), "{isa:?}: wrote outside C");
                    } else {
                        assert_eq!(c[idx], init[idx], "{isa:?}: wrote outside C");
                    }
                }
            }
        }
    }
}

#[test]
fn every_path_on_awkward_shapes() {
    let mut rng = Rng::seed(17);
    let dims = [1usize, 2, 3, 5, 6, 7, 11, 12, 13, 16, 17, 31, 32, 33, 37];
    let mut ran = Vec::new();
    for isa in [Isa::Portable, Isa::Avx2Fma, Isa::Avx512] {
        let done = with_isa(isa, || {
            for &m in &dims {
                for &n in &dims {
                    let k = dims[(m * 7 + n) % dims.len()];
                    check(m, k, n, isa, &mut rng);
                }
            }
        });
        match done {
            Some(()) => ran.push(format!("{isa:?}")),
            None => eprintln!("{isa:?}: not supported by this CPU, not tested here"),
        }
    }
    eprintln!("GEMM paths tested: {}", ran.join(", "));
    assert!(ran.contains(&"Portable".to_string()));
}

#[test]
fn large_blocked_and_parallel_products() {
    // Big enough to cross the KC block boundaries and to be split across threads.
    let mut rng = Rng::seed(5);
    for isa in [Isa::Portable, Isa::Avx2Fma, Isa::Avx512] {
        let _ = with_isa(isa, || {
            // (64, 576, 1024) and (30, 300, 2000) are wide: split by columns across threads; (1100, 300,
            // 40) crosses the KC blocks; (128, 256, 10) and (4096, 16, 9) take the skinny kernel;
            // the narrow ones read A in place, but for (48, 1024, 70), whose A rows are 4 KiB apart;
            // (700, 800, 300) has an A larger than a 2 MiB L2, whose panels are fetched ahead. On
            // AVX-512, B is read in place unless its rows are a multiple of 2 KiB apart ((64, 576,
            // 1024) packs it).
            for (m, k, n) in [
                (300, 700, 130),
                (128, 256, 10),
                (97, 513, 65),
                (4096, 16, 9),
                (10, 1000, 300),
                (64, 576, 1024),
                (30, 300, 2000),
                (1100, 300, 40),
                (48, 1024, 70),
                (301, 200, 255),
                (700, 800, 300),
            ] {
                check(m, k, n, isa, &mut rng);
            }
        });
    }
}

#[test]
#[should_panic(expected = "needs beta = 0")]
fn an_output_not_written_yet_cannot_accumulate() {
    let a = vec![1.0f32; 4];
    let mut c = Vec::<f32>::with_capacity(4);
    let out = MatMut::uninit(&mut c.spare_capacity_mut()[..4], 2, 2, 2);
    sgemm(
        1.0,
        MatRef::row_major(&a, 2, 2),
        MatRef::row_major(&a, 2, 2),
        1.0,
        out,
    );
}

#[test]
fn zero_inner_dimension_scales_c() {
    let a: Vec<f32> = vec![];
    let mut c = vec![2.0f32; 6];
    sgemm(
        1.0,
        MatRef::row_major(&a, 2, 0),
        MatRef::row_major(&a, 0, 3),
        0.5,
        MatMut::row_major(&mut c, 2, 3),
    );
    assert_eq!(c, vec![1.0; 6]);
}

/// `sgemm_then(.., Epilogue::Relu)` equals the product followed by `max(·, 0)`, and
/// `Epilogue::Gelu` the product followed by `vmath::gelu`, on every path (small, skinny, blocked
/// across KC, computed transposed, split by columns and by rows across threads, k = 0), with and
/// without accumulation into C, and `sgemm_new` with a bias per column before the epilogue,
/// under each instruction set.
#[test]
fn epilogues_on_every_path() {
    use engine::kernels::gemm::{sgemm_then, Epilogue};
    let mut rng = Rng::seed(9);
    for isa in [Isa::Portable, Isa::Avx2Fma, Isa::Avx512] {
        let ran = with_isa(isa, || {
            for (m, k, n) in [
                (5, 7, 3),
                (13, 40, 33),
                (128, 256, 10),
                (4096, 16, 9),
                (300, 700, 130),
                (64, 576, 1024),
                (1100, 300, 40),
                (3, 0, 4),
            ] {
                for (beta, ep) in [
                    (0.0, Epilogue::Relu),
                    (1.0, Epilogue::Relu),
                    (0.0, Epilogue::Gelu),
                    (1.0, Epilogue::Gelu),
                ] {
                    let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
                    let c0 = random(m * n, &mut rng);
                    let (am, bm) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
                    let product = naive(1.5, am, bm, beta, &c0, n);
                    let want: Vec<f32> = match ep {
                        Epilogue::Relu => product.into_iter().map(|v| v.max(0.0)).collect(),
                        _ => engine::kernels::vmath::gelu(&product),
                    };
                    let mut c = c0.clone();
                    sgemm_then(1.5, am, bm, beta, MatMut::row_major(&mut c, m, n), ep);
                    for (i, (g, e)) in c.iter().zip(&want).enumerate() {
                        assert!(
                            (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                            "{isa:?} {ep:?} {m}x{k}x{n} beta {beta} [{i}]: {g} vs {e}"
                        );
                    }
                    if beta == 0.0 {
                        // With a bias per column, added before the epilogue: a Linear layer.
                        let bias = random(n, &mut rng);
                        let biased: Vec<f32> = naive(1.5, am, bm, 0.0, &c0, n)
                            .iter()
                            .enumerate()
                            .map(|(i, v)| v + bias[i % n])
                            .collect();
                        let want: Vec<f32> = match ep {
                            Epilogue::Relu => biased.into_iter().map(|v| v.max(0.0)).collect(),
                            _ => engine::kernels::vmath::gelu(&biased),
                        };
                        let got = sgemm_new(1.5, am, bm, Some(&bias), ep);
                        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                                "{isa:?} {ep:?} {m}x{k}x{n} with bias [{i}]: {g} vs {e}"
                            );
                        }
                    }
                }
            }
        });
        println!(
            "relu epilogue, {isa:?}: {}",
            if ran.is_some() {
                "ran"
            } else {
                "not supported here"
            }
        );
    }
}

/// `transpose` of strided row-major and column-major sources, every size up to 19 by 19 (8×8
/// register blocks, 4×4 ones and single lines left over), on every instruction set.
#[test]
fn transpose_on_every_path() {
    let mut rng = Rng::seed(11);
    for isa in [Isa::Portable, Isa::Avx2Fma, Isa::Avx512] {
        if !isa.supported() {
            continue;
        }
        for rows in 0..20 {
            for cols in 0..20 {
                let ld = cols + 3;
                let data = random((rows + 2) * (cols + 3), &mut rng);
                let row_major = MatRef {
                    data: &data,
                    rows,
                    cols,
                    row_stride: ld,
                    col_stride: 1,
                };
                let col_major = MatRef {
                    data: &data,
                    rows,
                    cols,
                    row_stride: 1,
                    col_stride: rows + 2,
                };
                for src in [row_major, col_major] {
                    let mut out = vec![f32::NAN; rows * cols];
                    with_isa(isa, || transpose(src, &mut out)).unwrap();
                    for p in 0..cols {
                        for i in 0..rows {
                            let want = src.data[i * src.row_stride + p * src.col_stride];
                            assert_eq!(
                                out[p * rows + i].to_bits(),
                                want.to_bits(),
                                "{isa:?} {rows}×{cols} (strides {}, {}) at [{p}][{i}]",
                                src.row_stride,
                                src.col_stride
                            );
                        }
                    }
                }
            }
        }
    }
}
