//! Convolution against a naive direct loop, on awkward shapes and every option.

use engine::kernels::gemm::{with_isa, Isa};
use engine::ops::conv::Conv2dSpec;
use engine::{Rng, Tensor};

/// out[n][o][y][x] = b[o] + sum over (c in o's group, ky, kx) of w[o][c][ky][kx] * in[n][g*cg + c][y*s - p + ky*d][x*s - p + kx*d]
fn naive(x: &Tensor, w: &Tensor, b: &Tensor, s: Conv2dSpec) -> Vec<f32> {
    let (xd, wd, bd) = (x.to_vec(), w.to_vec(), b.to_vec());
    let [n, c, h, wi] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let [o, cg, kh, kw] = [w.dims()[0], w.dims()[1], w.dims()[2], w.dims()[3]];
    let og = o / s.groups;
    let oh = (h + 2 * s.padding.0 - s.dilation.0 * (kh - 1) - 1) / s.stride.0 + 1;
    let ow = (wi + 2 * s.padding.1 - s.dilation.1 * (kw - 1) - 1) / s.stride.1 + 1;
    let mut out = vec![0.0; n * o * oh * ow];
    for ni in 0..n {
        for oi in 0..o {
            let g = oi / og;
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = bd[oi] as f64;
                    for ci in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (y * s.stride.0 + ky * s.dilation.0) as isize
                                    - s.padding.0 as isize;
                                let ix = (xx * s.stride.1 + kx * s.dilation.1) as isize
                                    - s.padding.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wi {
                                    let xv = xd[((ni * c + g * cg + ci) * h + iy as usize) * wi
                                        + ix as usize];
                                    acc += (wd[((oi * cg + ci) * kh + ky) * kw + kx] * xv) as f64;
                                }
                            }
                        }
                    }
                    out[((ni * o + oi) * oh + y) * ow + xx] = acc as f32;
                }
            }
        }
    }
    out
}

#[test]
fn conv2d_matches_a_direct_loop() {
    let mut rng = Rng::seed(11);
    let cases = [
        ([1, 1, 1, 1], [1, 1, 1, 1], Conv2dSpec::default()),
        ([2, 3, 7, 5], [4, 3, 3, 3], Conv2dSpec::default()),
        (
            [1, 3, 11, 13],
            [5, 3, 5, 2],
            Conv2dSpec {
                stride: (3, 2),
                padding: (2, 1),
                ..Default::default()
            },
        ),
        (
            [2, 6, 9, 9],
            [4, 3, 3, 3],
            Conv2dSpec {
                groups: 2,
                dilation: (2, 3),
                padding: (3, 3),
                ..Default::default()
            },
        ),
        (
            [3, 4, 8, 8],
            [4, 1, 3, 3],
            Conv2dSpec {
                groups: 4,
                padding: (1, 1),
                ..Default::default()
            },
        ),
    ];
    for (xs, ws, spec) in cases {
        let x = Tensor::randn_with(xs, 0.0, 1.0, &mut rng);
        let w = Tensor::randn_with(ws, 0.0, 1.0, &mut rng);
        let b = Tensor::randn_with([ws[0]], 0.0, 1.0, &mut rng);
        let got = x.conv2d(&w, Some(&b), spec).unwrap().to_vec();
        let want = naive(&x, &w, &b, spec);
        assert_eq!(got.len(), want.len());
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                "{xs:?} * {ws:?} {spec:?} [{i}]: {g} vs {e}"
            );
        }
    }
}

#[test]
fn conv_errors_name_the_shapes() {
    let x = Tensor::zeros([1, 3, 4, 4]);
    let e = x
        .conv2d(&Tensor::zeros([2, 4, 3, 3]), None, Conv2dSpec::default())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "conv2d: input [1, 3, 4, 4] has 3 channels but weight [2, 4, 3, 3] with 1 groups expects 4"
    );
    let e = x
        .conv2d(&Tensor::zeros([2, 3, 5, 5]), None, Conv2dSpec::default())
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "conv2d: kernel 5x5 (dilation (1, 1)) is larger than the padded input 4x4"
        ),
        "{e}"
    );
}

/// The per-image path (a column matrix too big to build for the whole batch): forward and both
/// gradients against direct loops, on a layer big enough to be cut into several blocks of output
/// rows and to run its images on different threads; 3×3 and 5×5 kernels (one and two padding
/// columns in each row of the column matrix, which im2col copies as one run per block).
#[test]
fn per_image_blocks_match_direct_loops() {
    check_against_loops(2, 32, 64, 64, 4, 3, 29);
    check_against_loops(2, 32, 48, 48, 4, 5, 30);
}

/// The batched path (one column matrix for a group of images) with the batch split into groups
/// across threads (8 images, 9.8 M multiply-adds): forward and both gradients.
#[test]
fn batched_groups_match_direct_loops() {
    check_against_loops(8, 3, 32, 32, 16, 5, 31);
}

/// The direct path (few taps per output, no column matrix), with each instruction set's kernels
/// in turn: LeNet's first layer with "same" padding, an odd-sized two-channel layer whose wide
/// rows end mid-block, 1×1 kernels, LeNet's second layer (direct forward and input gradient,
/// im2col weight gradient), a layer of 37 channels into 20 (333 taps: direct on AVX2 only,
/// whose kernel sums 16 sources per pass, so the sums take passes of 16, 16 and 5 channels
/// forward and 16 and 4 for the input gradient), and one with 16×16 outputs, whose weight
/// gradient is direct on AVX2 too.
#[test]
fn direct_path_matches_direct_loops() {
    for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Portable] {
        let ran = with_isa(isa, || {
            check_against_loops(5, 1, 28, 28, 6, 5, 37);
            check_against_loops(3, 2, 9, 13, 7, 3, 41);
            check_against_loops(2, 3, 5, 4, 9, 1, 43);
            check_against_loops(2, 6, 12, 12, 16, 5, 47);
            check_against_loops(2, 37, 7, 9, 20, 3, 53);
            // 180 taps on 16×16 outputs: the weight gradient is direct on AVX2 (3×3 taps cut
            // into blocks of 3, 7 rows into blocks of 3, 3 and 1), im2col + GEMM elsewhere.
            check_against_loops(2, 20, 16, 16, 7, 3, 71);
            // Padding other than "same": none (a smaller output), and more than the kernel
            // needs (a larger output, whose gradient planes are longer than the rows of the
            // input gradient that are computed; with 1×1 on 16×14 those rows end on a whole
            // block, so nothing else makes room).
            check_padded(2, 5, (8, 11), 4, (3, 0), 59);
            check_padded(2, 5, (8, 11), 4, (3, 2), 61);
            check_padded(2, 3, (16, 14), 4, (1, 1), 67);
        });
        println!(
            "direct convolution, {isa:?}: {}",
            if ran.is_some() {
                "ran"
            } else {
                "not supported here"
            }
        );
    }
}

/// A stride-1 convolution of `n` images `[c, h, wi]` by `o` square `k`×`k` kernels with "same"
/// padding and a bias: output, dX and dW against direct loops in f64.
fn check_against_loops(n: usize, c: usize, h: usize, wi: usize, o: usize, k: usize, seed: u64) {
    check_padded(n, c, (h, wi), o, (k, k / 2), seed)
}

/// As [`check_against_loops`] with padding `p` on every side (any `p`, so the output may be
/// smaller or larger than the image).
fn check_padded(
    n: usize,
    c: usize,
    (h, wi): (usize, usize),
    o: usize,
    (k, p): (usize, usize),
    seed: u64,
) {
    let mut rng = Rng::seed(seed);
    let (oh, ow) = (h + 2 * p + 1 - k, wi + 2 * p + 1 - k);
    let spec = Conv2dSpec {
        padding: (p, p),
        ..Default::default()
    };
    let x = Tensor::randn_with([n, c, h, wi], 0.0, 1.0, &mut rng).requires_grad();
    let w = Tensor::randn_with([o, c, k, k], 0.0, 1.0, &mut rng).requires_grad();
    let b = Tensor::randn_with([o], 0.0, 1.0, &mut rng);
    let y = x.conv2d(&w, Some(&b), spec).unwrap();
    let want = naive(&x, &w, &b, spec);
    for (i, (g, e)) in y.to_vec().iter().zip(&want).enumerate() {
        assert!(
            (g - e).abs() <= 1e-3 * (1.0 + e.abs()),
            "forward [{i}]: {g} vs {e}"
        );
    }
    let gy = Tensor::randn_with([n, o, oh, ow], 0.0, 1.0, &mut rng);
    y.backward_with(&gy).unwrap();
    let (xd, wd, gd) = (x.to_vec(), w.to_vec(), gy.to_vec());
    let (mut gx, mut gw) = (vec![0.0f64; xd.len()], vec![0.0f64; wd.len()]);
    for ni in 0..n {
        for oi in 0..o {
            for yy in 0..oh {
                for xx in 0..ow {
                    let g = gd[((ni * o + oi) * oh + yy) * ow + xx] as f64;
                    for ci in 0..c {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = (yy + ky, xx + kx);
                                if iy < p || ix < p || iy >= h + p || ix >= wi + p {
                                    continue;
                                }
                                let xi = ((ni * c + ci) * h + iy - p) * wi + ix - p;
                                let wj = ((oi * c + ci) * k + ky) * k + kx;
                                gx[xi] += g * wd[wj] as f64;
                                gw[wj] += g * xd[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    for (name, got, want) in [
        ("dX", x.grad().unwrap().to_vec(), gx),
        ("dW", w.grad().unwrap().to_vec(), gw),
    ] {
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            let e = *e as f32;
            assert!(
                (g - e).abs() <= 1e-3 * (1.0 + e.abs()),
                "{name} [{i}]: {g} vs {e}"
            );
        }
    }
}

/// 2×2 max pooling (its own vectorised kernel) against a direct loop, forward and backward, with
/// each instruction set in turn: odd and even sizes, rows shorter and longer than a vector, ties
/// (ReLU's zeros: the first of equal maxima gets the gradient, as in PyTorch) and NaN (which wins).
#[test]
fn max_pool_2x2_matches_a_direct_loop() {
    use engine::ops::pool::PoolSpec;
    let mut rng = Rng::seed(53);
    for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Portable] {
        let ran = with_isa(isa, || {
            for [n, c, h, w] in [[2, 3, 24, 24], [1, 2, 7, 9], [1, 1, 2, 70], [3, 1, 9, 2]] {
                let mut xv = Tensor::randn_with([n, c, h, w], 0.0, 1.0, &mut rng).to_vec();
                for (i, v) in xv.iter_mut().enumerate() {
                    // Rounded to a few values so windows hold equal maxima; some zeros, a NaN.
                    *v = if i % 5 == 0 { 0.0 } else { (*v * 2.0).round() };
                }
                xv[3] = f32::NAN;
                let x = Tensor::from_vec(xv.clone(), [n, c, h, w])
                    .unwrap()
                    .requires_grad();
                let y = x.max_pool2d(PoolSpec::square(2)).unwrap();
                let (oh, ow) = (h / 2, w / 2);
                let g: Vec<f32> = (0..n * c * oh * ow).map(|i| 1.0 + i as f32).collect();
                y.backward_with(&Tensor::from_vec(g.clone(), [n, c, oh, ow]).unwrap())
                    .unwrap();
                let (yv, gx) = (y.to_vec(), x.grad().unwrap().to_vec());
                let mut want_gx = vec![0.0f32; xv.len()];
                for p in 0..n * c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut at = (p * h + 2 * oy) * w + 2 * ox;
                            for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                                let i = (p * h + 2 * oy + dy) * w + 2 * ox + dx;
                                let (v, best) = (xv[i], xv[at]);
                                if v > best || (v.is_nan() && !best.is_nan()) {
                                    at = i;
                                }
                            }
                            let o = (p * oh + oy) * ow + ox;
                            assert!(
                                yv[o] == xv[at] || (yv[o].is_nan() && xv[at].is_nan()),
                                "{isa:?} {n}x{c}x{h}x{w} output {o}: {} vs {}",
                                yv[o],
                                xv[at]
                            );
                            want_gx[at] += g[o];
                        }
                    }
                }
                assert_eq!(gx, want_gx, "{isa:?} {n}x{c}x{h}x{w}: input gradient");
            }
        });
        println!(
            "max_pool 2x2, {isa:?}: {}",
            if ran.is_some() {
                "ran"
            } else {
                "not supported here"
            }
        );
    }
}
