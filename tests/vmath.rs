//! The vectorised maths kernels against f64 over their whole input range, on every instruction
//! set this CPU has (each path forced in turn; the test prints which ran).

use engine::kernels::gemm::{with_isa, Isa};
use engine::kernels::vmath;

/// Every 97th f32 bit pattern between `lo` and `hi` (positive and negative), about 40,000 values
/// per decade of magnitude — every exponent and many mantissas — plus the edges.
fn inputs(lo: f32, hi: f32) -> Vec<f32> {
    let mut v = Vec::new();
    let mut bits = 0u32;
    while bits < 0x7f80_0000 {
        let x = f32::from_bits(bits);
        if x <= hi.abs().max(lo.abs()) {
            if x <= hi {
                v.push(x);
            }
            if -x >= lo {
                v.push(-x);
            }
        }
        bits += 97 * 1024;
    }
    v.extend([lo, hi, 0.0, -0.0]);
    v
}

/// Runs `f` in pieces below the kernels' parallel threshold, so the forced path is the one used.
fn run(f: fn(&[f32]) -> Vec<f32>, x: &[f32]) -> Vec<f32> {
    x.chunks(50_000).flat_map(f).collect()
}

fn isas() -> Vec<Isa> {
    [Isa::Avx512, Isa::Avx2Fma, Isa::Portable]
        .into_iter()
        .filter(|i| i.supported())
        .collect()
}

#[test]
fn exp_is_within_2e_7_relative_where_normal() {
    let x = inputs(-87.3, 88.7);
    for isa in isas() {
        let y = with_isa(isa, || run(vmath::exp, &x)).unwrap();
        let worst = x
            .iter()
            .zip(&y)
            .map(|(&x, &y)| {
                let want = (x as f64).exp();
                ((y as f64 - want) / want).abs()
            })
            .fold(0.0, f64::max);
        println!("exp on {isa:?}: worst relative error {worst:.2e}");
        assert!(worst < 2e-7, "{isa:?}: {worst}");
    }
}

#[test]
fn sigmoid_tanh_and_gelu_are_within_stated_absolute_errors() {
    let x = inputs(-100.0, 100.0);
    let erf = |v: f64| libm::erf(v);
    for isa in isas() {
        let (s, t, g) = with_isa(isa, || {
            (
                run(vmath::sigmoid, &x),
                run(vmath::tanh, &x),
                run(vmath::gelu, &x),
            )
        })
        .unwrap();
        let mut worst = [0.0f64; 3];
        for (i, &v) in x.iter().enumerate() {
            let v64 = v as f64;
            let want = [
                1.0 / (1.0 + (-v64).exp()),
                v64.tanh(),
                0.5 * v64 * (1.0 + erf(v64 / std::f64::consts::SQRT_2)),
            ];
            let got = [s[i], t[i], g[i]];
            for k in 0..3 {
                let scale = if k == 2 { v64.abs().max(1.0) } else { 1.0 };
                worst[k] = worst[k].max((got[k] as f64 - want[k]).abs() / scale);
            }
        }
        println!(
            "{isa:?}: sigmoid {:.1e}, tanh {:.1e}, gelu/max(|x|,1) {:.1e}",
            worst[0], worst[1], worst[2]
        );
        assert!(
            worst[0] < 3e-7 && worst[1] < 3e-7 && worst[2] < 4e-7,
            "{isa:?}: {worst:?}"
        );
    }
}

#[test]
fn gelu_derivative_matches_and_values_match_gelu() {
    let x = inputs(-20.0, 20.0);
    for isa in isas() {
        let (y, d) = with_isa(isa, || {
            let (y, d): (Vec<_>, Vec<_>) = x.chunks(50_000).map(vmath::gelu_with_grad).unzip();
            (y.concat(), d.concat())
        })
        .unwrap();
        // The values kept with the derivative (erfc form) and GELU's alone (exponential-free erf)
        // are two approximations of the same function: within 3e-7·max(|x|, 1) of each other (measured: 2.2e-7).
        let plain = with_isa(isa, || vmath::gelu(&x)).unwrap();
        let apart = x
            .iter()
            .zip(y.iter().zip(&plain))
            .map(|(&v, (&a, &b))| ((a - b).abs() / v.abs().max(1.0)) as f64)
            .fold(0.0, f64::max);
        println!("gelu_with_grad's values against gelu's on {isa:?}: {apart:.1e} apart");
        assert!(
            apart < 3e-7,
            "{isa:?}: gelu_with_grad's values {apart} from gelu's"
        );
        let value_err = x
            .iter()
            .zip(&y)
            .map(|(&v, &a)| {
                let v = v as f64;
                let want = 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2));
                (a as f64 - want).abs() / v.abs().max(1.0)
            })
            .fold(0.0, f64::max);
        println!("gelu_with_grad's values on {isa:?}: gelu/max(|x|,1) {value_err:.1e}");
        assert!(value_err < 4e-7, "{isa:?}: {value_err}");
        let worst = x
            .iter()
            .zip(&d)
            .map(|(&v, &d)| {
                let v = v as f64;
                let phi = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let want = 0.5 * (1.0 + libm::erf(v / std::f64::consts::SQRT_2)) + v * phi;
                (d as f64 - want).abs()
            })
            .fold(0.0, f64::max);
        println!("gelu' on {isa:?}: worst absolute error {worst:.1e}");
        assert!(worst < 1e-6, "{isa:?}: {worst}");
    }
}

#[test]
fn softmax_rows_sum_to_one_and_match_f64() {
    let n = 37;
    let x: Vec<f32> = (0..n * 300)
        .map(|i| ((i * 7919) % 1000) as f32 / 25.0 - 20.0)
        .collect();
    for isa in isas() {
        let y = with_isa(isa, || vmath::softmax_rows(&x, n)).unwrap();
        for (xr, yr) in x.chunks(n).zip(y.chunks(n)) {
            let m = xr.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let z: f64 = xr.iter().map(|&v| (v as f64 - m).exp()).sum();
            for (&v, &p) in xr.iter().zip(yr) {
                let want = (v as f64 - m).exp() / z;
                assert!((p as f64 - want).abs() < 1e-6 * want.max(1e-3), "{isa:?}");
            }
        }
    }
}

/// Log-softmax rows and their backward pass against f64, rows of every length class around the
/// 8-lane blocks, enough rows to be split across the pool; a row with −∞ (a masked class) keeps
/// it, and gives it no gradient.
#[test]
fn log_softmax_rows_and_backward_match_f64() {
    for n in [1usize, 7, 8, 9, 65] {
        let mut x: Vec<f32> = (0..n * 2000)
            .map(|i| ((i * 7919) % 1000) as f32 / 25.0 - 20.0)
            .collect();
        if n > 1 {
            x[1] = f32::NEG_INFINITY;
        }
        let g: Vec<f32> = (0..x.len())
            .map(|i| ((i * 104_729) % 997) as f32 / 500.0 - 1.0)
            .collect();
        for isa in isas() {
            let (y, dx) = with_isa(isa, || {
                let y = vmath::log_softmax_rows(&x, n);
                let dx = vmath::log_softmax_backward_rows(&y, &g, n);
                (y, dx)
            })
            .unwrap();
            for (r, ((xr, yr), (gr, dr))) in x
                .chunks(n)
                .zip(y.chunks(n))
                .zip(g.chunks(n).zip(dx.chunks(n)))
                .enumerate()
            {
                let m = xr.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
                let lse = m + xr.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
                let total: f64 = gr.iter().map(|&v| v as f64).sum();
                for j in 0..n {
                    let want = xr[j] as f64 - lse;
                    if want == f64::NEG_INFINITY {
                        assert_eq!(yr[j], f32::NEG_INFINITY, "{isa:?} n {n} row {r}");
                        assert_eq!(dr[j], gr[j], "{isa:?} n {n} row {r}: no gradient to −∞");
                        continue;
                    }
                    let ok = (yr[j] as f64 - want).abs() < 2e-6 * (1.0 + want.abs());
                    assert!(ok, "{isa:?} n {n} row {r} [{j}]: {} vs {want}", yr[j]);
                    let dwant = gr[j] as f64 - want.exp() * total;
                    let ok = (dr[j] as f64 - dwant).abs() < 1e-5 * (1.0 + dwant.abs());
                    assert!(ok, "{isa:?} n {n} row {r} [{j}]: d {} vs {dwant}", dr[j]);
                }
            }
        }
    }
}

/// The in-place softmax of attention scores: each row against f64, over its visible prefix when
/// causal (query `r % t` sees entries `0..=r % t`, the rest exactly 0), with rows of every length
/// class (tails of 0-7 past the 8-lane blocks), enough rows to be split across the pool, and the
/// same bits under the two SIMD instruction sets (both fuse the exponential's multiply-adds; the
/// portable path does not, and may differ in the last bit).
#[test]
fn softmax_rows_in_place_matches_f64_with_and_without_causal_mask() {
    for (n, t) in [(37, 0), (1, 0), (64, 64), (33, 20), (5, 9), (16, 16)] {
        let x: Vec<f32> = (0..n * 3000)
            .map(|i| ((i * 7919) % 1000) as f32 / 25.0 - 20.0)
            .collect();
        let mut first: Option<Vec<f32>> = None;
        for isa in isas() {
            let mut y = x.clone();
            with_isa(isa, || vmath::softmax_rows_in_place(&mut y, n, t)).unwrap();
            for (r, (xr, yr)) in x.chunks(n).zip(y.chunks(n)).enumerate() {
                let visible = if t == 0 { n } else { (r % t + 1).min(n) };
                let xr = &xr[..visible];
                let m = xr.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
                let z: f64 = xr.iter().map(|&v| (v as f64 - m).exp()).sum();
                for (&v, &p) in xr.iter().zip(yr) {
                    let want = (v as f64 - m).exp() / z;
                    let ok = (p as f64 - want).abs() < 1e-6 * want.max(1e-3);
                    assert!(ok, "{isa:?} n {n} t {t} row {r}: {p} vs {want}");
                }
                assert!(yr[visible..].iter().all(|&p| p == 0.0), "{isa:?} row {r}");
            }
            match &first {
                _ if isa == Isa::Portable => {}
                None => first = Some(y),
                Some(f) => assert!(f == &y, "{isa:?} n {n}: differs from the first ISA"),
            }
        }
    }
}

/// `vmath::sum` against f64 over lengths around the 16-lane blocks and a long run (where a running
/// f32 sum would drift), with the same bits under every instruction set.
#[test]
fn sum_matches_f64_and_every_isa() {
    for len in [0usize, 1, 15, 16, 17, 100, 1 << 20] {
        let x: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 3.0)
            .collect();
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        let mut first = None;
        for isa in isas() {
            let got = with_isa(isa, || vmath::sum(&x)).unwrap();
            let tol = 1e-6 * (len as f64).max(1.0) * 10.0;
            assert!(
                (got as f64 - want).abs() <= tol,
                "{isa:?} len {len}: {got} vs {want}"
            );
            match first {
                None => first = Some(got.to_bits()),
                Some(b) => assert_eq!(b, got.to_bits(), "{isa:?} len {len}"),
            }
        }
    }
}

/// `all_finite` finds one infinity or NaN wherever it sits (in a 16-lane block or the tail), and
/// accepts the extremes of the finite range, under each instruction set.
#[test]
fn all_finite_finds_every_non_finite_value() {
    for isa in isas() {
        with_isa(isa, || {
            for len in [0usize, 1, 15, 16, 17, 100] {
                let mut x: Vec<f32> = (0..len).map(|i| i as f32 - 50.0).collect();
                if len > 0 {
                    x[0] = f32::MAX;
                    x[len - 1] = -f32::MAX;
                }
                assert!(vmath::all_finite(&x), "{isa:?} len {len}: all finite");
                for at in 0..len {
                    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
                        let mut y = x.clone();
                        y[at] = bad;
                        assert!(!vmath::all_finite(&y), "{isa:?} len {len}: {bad} at {at}");
                    }
                }
            }
        })
        .unwrap();
    }
}

#[test]
fn layer_norm_forward_and_backward_match_f64() {
    // Rows shorter than, equal to and longer than the 16 partial sums, with a ragged tail.
    for d in [1usize, 5, 16, 33, 128] {
        let rows = 9;
        let val = |i: usize, s: usize| ((i * s) % 1013) as f32 / 101.3 - 4.0;
        let x: Vec<f32> = (0..rows * d).map(|i| val(i, 7919) + 3.0).collect();
        let g: Vec<f32> = (0..rows * d).map(|i| val(i, 4099)).collect();
        let w: Vec<f32> = (0..d).map(|i| 0.5 + val(i, 31) / 8.0).collect();
        let b: Vec<f32> = (0..d).map(|i| val(i, 17) / 4.0).collect();
        let eps = 1e-5f64;
        // f64 reference, straight from the definitions.
        let (mut y64, mut dx64) = (vec![0.0f64; rows * d], vec![0.0f64; rows * d]);
        let (mut dw64, mut db64) = (vec![0.0f64; d], vec![0.0f64; d]);
        for r in 0..rows {
            let xr: Vec<f64> = x[r * d..][..d].iter().map(|&v| v as f64).collect();
            let gr: Vec<f64> = g[r * d..][..d].iter().map(|&v| v as f64).collect();
            let mean = xr.iter().sum::<f64>() / d as f64;
            let var = xr.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            let xh: Vec<f64> = xr.iter().map(|v| (v - mean) * rstd).collect();
            let gh: Vec<f64> = (0..d).map(|j| gr[j] * w[j] as f64).collect();
            let m1 = gh.iter().sum::<f64>() / d as f64;
            let m2 = (0..d).map(|j| gh[j] * xh[j]).sum::<f64>() / d as f64;
            for j in 0..d {
                y64[r * d + j] = xh[j] * w[j] as f64 + b[j] as f64;
                dx64[r * d + j] = (gh[j] - m1 - xh[j] * m2) * rstd;
                dw64[j] += gr[j] * xh[j];
                db64[j] += gr[j];
            }
        }
        for isa in isas() {
            let (y, stats) = with_isa(isa, || vmath::layer_norm(&x, &w, &b, eps as f32)).unwrap();
            let (dx, dw, db) =
                with_isa(isa, || vmath::layer_norm_backward(&x, &g, &w, &stats)).unwrap();
            let close = |got: &[f32], want: &[f64], what: &str| {
                for (i, (&a, &e)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (a as f64 - e).abs() < 2e-5 * e.abs().max(1.0),
                        "{isa:?} d = {d}: {what}[{i}] = {a}, want {e}"
                    );
                }
            };
            close(&y, &y64, "y");
            close(&dx, &dx64, "dx");
            close(&dw, &dw64, "dw");
            close(&db, &db64, "db");
        }
    }
}

#[test]
fn add_rows_sums_rows_into_the_destination() {
    for n in [1usize, 3, 16, 17, 65] {
        let rows: Vec<f32> = (0..n * 7).map(|i| (i % 13) as f32 - 6.0).collect();
        for isa in isas() {
            let mut dst: Vec<f32> = (0..n).map(|j| j as f32 * 0.5).collect();
            with_isa(isa, || vmath::add_rows(&mut dst, &rows)).unwrap();
            for (j, &v) in dst.iter().enumerate() {
                let want = j as f32 * 0.5 + (0..7).map(|r| rows[r * n + j]).sum::<f32>();
                assert_eq!(v, want, "{isa:?} n = {n}, column {j}");
            }
        }
    }
}

#[test]
fn special_values_on_every_isa() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    for isa in isas() {
        with_isa(isa, || {
            let x = [-inf, -100.0, -87.5, 0.0, 88.7, 89.0, inf, nan];
            let e = vmath::exp(&x);
            assert_eq!(&e[..4], &[0.0, 0.0, 0.0, 1.0], "{isa:?}: exp");
            assert!(
                e[4].is_finite() && e[4] > 3.2e38,
                "{isa:?}: exp(88.7) = {}",
                e[4]
            );
            assert_eq!(&e[5..7], &[inf, inf], "{isa:?}: exp");
            assert!(e[7].is_nan(), "{isa:?}: exp(NaN)");
            let x = [-inf, -200.0, 200.0, inf, nan];
            let s = vmath::sigmoid(&x);
            assert_eq!(&s[..4], &[0.0, 0.0, 1.0, 1.0], "{isa:?}: sigmoid");
            assert!(s[4].is_nan(), "{isa:?}: sigmoid(NaN)");
            let t = vmath::tanh(&x);
            assert_eq!(&t[..4], &[-1.0, -1.0, 1.0, 1.0], "{isa:?}: tanh");
            assert!(t[4].is_nan(), "{isa:?}: tanh(NaN)");
            let x = [-200.0, -20.0, 20.0, 1e30, inf, nan];
            let g = vmath::gelu(&x);
            assert_eq!(&g[..5], &[0.0, 0.0, 20.0, 1e30, inf], "{isa:?}: gelu");
            assert!(g[5].is_nan(), "{isa:?}: gelu(NaN)");
            let (gv, gd) = vmath::gelu_with_grad(&x);
            assert_eq!(gv[..5], g[..5], "{isa:?}: gelu_with_grad");
            assert_eq!(&gd[..4], &[0.0, 0.0, 1.0, 1.0], "{isa:?}: gelu'");
            // At +∞ the derivative's x·φ(x) is ∞·0: NaN, as in PyTorch.
            assert!(
                gv[5].is_nan() && gd[4].is_nan() && gd[5].is_nan(),
                "{isa:?}: gelu'"
            );
            // A row's masked entries (−∞) get weight 0; a NaN spreads over its row only.
            let mut rows = vec![1.0, -inf, 2.0, -inf, 0.5, nan, 0.0, 0.0];
            vmath::softmax_rows_in_place(&mut rows, 4, 0);
            let want = [
                1.0 / (1.0 + 1f32.exp()),
                0.0,
                1.0 / (1.0 + (-1f32).exp()),
                0.0,
            ];
            for (got, want) in rows[..4].iter().zip(want) {
                assert!(
                    (got - want).abs() < 1e-6,
                    "{isa:?}: softmax {got} against {want}"
                );
            }
            assert!(
                rows[4..].iter().all(|v| v.is_nan()),
                "{isa:?}: softmax of NaN"
            );
        })
        .unwrap();
    }
}
