//! Convolution (2-D, and 1-D as a 2-D convolution of height 1) by im2col + GEMM, with stride,
//! zero padding, dilation and groups. A fused op with its own backward: the input gradient is
//! `Wᵀ·G` scattered back by col2im, the weight gradient `G·colsᵀ`, the bias gradient the sum of `G`.
//! Layers with few multiply-adds per output (LeNet's) are convolved directly instead, pass by pass
//! ([`Geometry::direct`], kernels in [`crate::kernels::direct`]): no column matrix at all.
//!
//! Layout is NCHW, as in PyTorch; the weight is `[out_channels, in_channels / groups, kh, kw]`.

use std::ops::Range;

use rayon::prelude::*;
use smallvec::smallvec;

use super::{into_floats, uninit, Out};
use crate::autodiff::{record, Grads};
use crate::error::{bail, Result};
use crate::kernels::direct;
use crate::kernels::gemm::{current_isa, sgemm, Isa, MatMut, MatRef};
use crate::tensor::{Buffer, Shape, Tensor};

/// Stride, padding and dilation of a 2-D convolution or pooling window, per axis (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dSpec {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2dSpec {
    fn default() -> Self {
        Conv2dSpec {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// The most multiply-adds per output (`C·kh·kw`) of a layer convolved directly rather than by
/// im2col + GEMM (see [`Geometry::direct`]), per pass. Measured on LeNet (`examples/throughput
/// lenet`, one thread, AVX-512): its first layer (25 taps) is faster directly in every pass; its
/// second (150 taps) directly forward and for the input gradient (training step 21.0k → 27.7k
/// samples/s, inference 59k → 107k, against im2col for that layer), but not for the weight
/// gradient (27.7k → 26–27k), whose direct dot products are short (64 outputs per image) and end
/// in a horizontal sum each. Past a few hundred taps the GEMM's register blocking wins.
const DIRECT_FORWARD_MAX_TAPS: usize = 160;
const DIRECT_INPUT_GRAD_MAX_TAPS: usize = 160;
const DIRECT_WEIGHT_GRAD_MAX_TAPS: usize = 32;
/// [`DIRECT_FORWARD_MAX_TAPS`] and [`DIRECT_INPUT_GRAD_MAX_TAPS`] on AVX2, where the direct
/// kernel's register block (6 rows × 16 positions) is the GEMM micro-kernel's (6 × 16), so
/// skipping im2col and packing pays well past 160 taps. Measured on an AMD Zen 1
/// (`examples/throughput conv64`, one thread, interleaved rounds): the 64→64 3×3 layer's forward
/// pass (576 taps) ran at 28.9–29.4 GFLOP/s directly, 26.5–27.8 by im2col + GEMM. Once the
/// kernel summed 16 sources per pass (`RowBlock::SOURCES`), forward rose to 32–32.9 and the
/// input gradient became faster directly too (forward+backward best of 4: 32.2 against 31.7
/// GFLOP/s, and no column matrix). Larger layers are not measured, so they keep the GEMM.
/// Computing only the image's rows of the input gradient, with the kernel flipped once per pass
/// rather than per image, took forward+backward from 32.4 to 33.5 (best of 4, interleaved).
const DIRECT_MAX_TAPS_AVX2: usize = 576;
/// On AVX2, the weight gradient is convolved directly up to [`DIRECT_MAX_TAPS_AVX2`] taps too
/// when each output plane has at least this many positions (the length of its dot products).
/// Measured on Zen 1 (`examples/throughput`, one thread, 6–8 alternating rounds): the 64→64 3×3
/// layer on 32×32 (1,024 outputs per plane), forward+backward 1.02× with it, once the kernel's
/// blocks became 3 rows × 3 taps (with 2 × 4, a 3×3 kernel computed 12 taps for 9, and it was
/// 0.92×); LeNet's second layer (150 taps, 64 outputs per plane) 0.95× directly, so it keeps
/// im2col + GEMM. Kernels whose taps the direct blocks cannot cut without computing more than
/// one in eight again ([`direct::grad_taps_computed`]: 1×1, 2×2) keep the GEMM too.
const DIRECT_WEIGHT_GRAD_MIN_OUTPUTS_AVX2: usize = 256;

/// Which pass a choice of method is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Forward,
    InputGrad,
    WeightGrad,
}

/// The geometry of one convolution: everything the loops need.
#[derive(Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    spec: Conv2dSpec,
}

impl Geometry {
    fn cg(&self) -> usize {
        self.c / self.spec.groups
    }
    fn og(&self) -> usize {
        self.o / self.spec.groups
    }
    /// Rows of the column matrix of one group: (channel, ky, kx).
    fn rows(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    fn cols(&self) -> usize {
        self.oh * self.ow
    }

    /// Whether to run the whole batch as one GEMM: worth it for small layers (LeNet's), where a
    /// GEMM per image would be dominated by per-call overhead; limited to column matrices of 8 MiB.
    fn batched(&self, pass: Pass) -> bool {
        !self.direct(pass) && self.spec.groups == 1 && self.rows() * self.n * self.cols() <= 1 << 21
    }

    /// Whether to convolve directly ([`kernels::direct`](crate::kernels::direct)) instead of
    /// through a column matrix, in `pass`: stride and dilation 1, one group, and few
    /// multiply-adds per output ([`DIRECT_FORWARD_MAX_TAPS`], [`DIRECT_BACKWARD_MAX_TAPS`]).
    /// Such a layer (LeNet's first: one channel, 5×5) does so little arithmetic per output that
    /// building and packing im2col's matrix costs more than the GEMM.
    fn direct(&self, pass: Pass) -> bool {
        let s = &self.spec;
        let max_taps = match pass {
            Pass::Forward | Pass::InputGrad if current_isa() == Isa::Avx2Fma => {
                DIRECT_MAX_TAPS_AVX2
            }
            Pass::WeightGrad
                if current_isa() == Isa::Avx2Fma
                    && self.oh * self.ow >= DIRECT_WEIGHT_GRAD_MIN_OUTPUTS_AVX2
                    && 8 * self.kh * self.kw
                        >= 7 * direct::grad_taps_computed(self.kh * self.kw) =>
            {
                DIRECT_MAX_TAPS_AVX2
            }
            Pass::Forward => DIRECT_FORWARD_MAX_TAPS,
            Pass::InputGrad => DIRECT_INPUT_GRAD_MAX_TAPS,
            Pass::WeightGrad => DIRECT_WEIGHT_GRAD_MAX_TAPS,
        };
        s.stride == (1, 1) && s.dilation == (1, 1) && s.groups == 1 && self.rows() <= max_taps
    }

    /// The padded plane's row stride `Wp` and height, the wide output's length (`OH` rows of
    /// `Wp` positions, in whole blocks), and the offset of each kernel tap in the padded plane.
    ///
    /// Consecutive rows share their horizontal padding: a row's `pw` zeros on the right are the
    /// next row's on the left, so `Wp = W + pw` (not `W + 2·pw`) as long as the output rows
    /// (`OW` wide) still fit. A tap reads at most `pw` columns left or right of a row's pixels,
    /// all inside the gap of `Wp − W ≥ pw` zeros between two rows (or the zeroed rows and slack
    /// above and below). Every output row then has `Wp − OW` junk columns, computed and
    /// dropped: with 1-pixel padding on 32×32, one in 33 rather than two in 34 (3% less work
    /// in the forward pass and the input gradient).
    fn direct_layout(&self) -> (usize, usize, usize, Vec<usize>) {
        let (wp, hp) = (
            (self.w + self.spec.padding.1).max(self.ow),
            self.h + 2 * self.spec.padding.0,
        );
        let lw = (self.oh * wp).next_multiple_of(direct::BLOCK);
        let offsets = (0..self.kh)
            .flat_map(|ky| (0..self.kw).map(move |kx| ky * wp + kx))
            .collect();
        (wp, hp, lw, offsets)
    }

    /// Copies the `[C, H, W]` image into zero-padded planes of `stride` floats each (`Hp` rows
    /// `Wp` apart, each row's image pixels `pw` floats in; the rest slack the kernels may read).
    fn pad_planes(&self, img: &[f32], wp: usize, stride: usize, out: &mut [f32]) {
        // Every float of each plane is written once: the border and the slack zeroed, the image
        // rows copied (not the whole buffer zeroed first, a pass over it per image).
        let (ph, pw) = self.spec.padding;
        let (h, w) = (self.h, self.w);
        if h * w == 0 {
            out.fill(0.0);
            return;
        }
        for (plane, src) in out.chunks_exact_mut(stride).zip(img.chunks_exact(h * w)) {
            plane[..ph * wp].fill(0.0);
            for (y, row) in src.chunks_exact(w).enumerate() {
                let dst = &mut plane[(y + ph) * wp..][..wp];
                dst[..pw].fill(0.0);
                copy_short(&mut dst[pw..pw + w], row);
                dst[pw + w..].fill(0.0);
            }
            plane[(h + ph) * wp..].fill(0.0);
        }
    }

    /// The output gradient of image `ni` as wide rows (`Wp` positions per output row, junk
    /// columns zero), starting `front` floats into each of `O` rows of `stride` floats.
    fn wide_grad(
        &self,
        g: &[f32],
        ni: usize,
        wp: usize,
        front: usize,
        stride: usize,
        out: &mut [f32],
    ) {
        let l = self.cols();
        out.fill(0.0);
        for (oi, plane) in g[ni * self.o * l..][..self.o * l]
            .chunks_exact(l)
            .enumerate()
        {
            for (oy, row) in plane.chunks_exact(self.ow).enumerate() {
                copy_short(&mut out[oi * stride + front + oy * wp..][..self.ow], row);
            }
        }
    }

    /// The stride between the padded input planes of the direct path: room for the plane and for
    /// the runs of the last tap.
    fn direct_plane_stride(&self, hp: usize, wp: usize, lw: usize, offsets: &[usize]) -> usize {
        (hp * wp).max(offsets[offsets.len() - 1] + lw)
    }

    /// Runs `f(taps, planes, wide, wp, lw)` with image `ni` copied into zero-padded planes (the
    /// taps' source) and a wide buffer of `O × lw` floats, both carved from `scratch`.
    fn with_padded_image(
        &self,
        xd: &[f32],
        ni: usize,
        scratch: &mut Vec<f32>,
        f: impl FnOnce(direct::Taps, &[f32], &mut [f32], usize, usize),
    ) {
        let (wp, hp, lw, offsets) = self.direct_layout();
        let chw = self.c * self.h * self.w;
        let stride = self.direct_plane_stride(hp, wp, lw, &offsets);
        scratch.resize(self.c * stride + self.o * lw, 0.0);
        let (planes, wide) = scratch.split_at_mut(self.c * stride);
        self.pad_planes(&xd[ni * chw..][..chw], wp, stride, planes);
        let taps = direct::Taps {
            offsets: &offsets,
            sources: self.c,
            stride,
        };
        f(taps, planes, wide, wp, lw)
    }

    /// Direct forward pass of image `ni` into `yi` (`[O, L]`), plus the bias if any (added as
    /// the wide rows are copied out, not in a pass of its own).
    fn forward_direct(
        &self,
        xd: &[f32],
        (wd, bias): (&[f32], Option<&[f32]>),
        ni: usize,
        yi: &mut [Out],
        scratch: &mut Vec<f32>,
    ) {
        // Every element of `yi` is written: `O` planes of `OH` rows of `OW`.
        assert_eq!(yi.len(), self.o * self.cols(), "forward_direct: output");
        self.with_padded_image(xd, ni, scratch, |taps, planes, wide, wp, lw| {
            direct::correlate(planes, taps, wd, self.o, lw, wide);
            let rows = yi.chunks_exact_mut(self.cols()).zip(wide.chunks_exact(lw));
            for (oi, (out, row)) in rows.enumerate() {
                for (oy, dst) in out.chunks_exact_mut(self.ow).enumerate() {
                    let src = &row[oy * wp..][..self.ow];
                    match bias {
                        Some(b) => dst.iter_mut().zip(src).for_each(|(d, &v)| {
                            d.write(v + b[oi]);
                        }),
                        None => {
                            dst.write_copy_of_slice(src);
                        }
                    }
                }
            }
        })
    }

    /// Direct weight gradient of image `ni`, added onto `gw` (`[O, C·kh·kw]`).
    fn weight_grad_direct(
        &self,
        xd: &[f32],
        g: &[f32],
        ni: usize,
        gw: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        self.with_padded_image(xd, ni, scratch, |taps, planes, wide, wp, lw| {
            self.wide_grad(g, ni, wp, 0, lw, wide);
            direct::correlate_grad(planes, taps, wide, self.o, lw, gw);
        })
    }

    /// Direct input gradient of image `ni` into `gxi` (`[C, H, W]`): the full correlation of the
    /// output gradient with the flipped kernel, `dXp[c][q] = Σ_o Σ_t W[o][c][t]·G[o][q − off_t]`,
    /// computed as a correlation of G padded in front by the largest offset. Only the padded
    /// plane's rows that hold the image (`ph..ph + H`) are computed: the padding rows' gradient
    /// is dropped anyway (with 1-pixel padding on 32×32, that is 8% of the work).
    fn input_grad_direct(
        &self,
        g: &[f32],
        flipped: &[f32],
        ni: usize,
        gxi: &mut [Out],
        scratch: &mut Vec<f32>,
    ) {
        // Every element of `gxi` is written: `C` planes of `H` rows of `W`.
        assert_eq!(
            gxi.len(),
            self.c * self.h * self.w,
            "input_grad_direct: output"
        );
        let (wp, _, _, offsets) = self.direct_layout();
        let t = offsets.len();
        let front = offsets[t - 1];
        // The computed rows start `skip` floats into the padded plane; the correlation reads the
        // gradient planes from there on, up to `skip + front + lq` into each.
        let skip = self.spec.padding.0 * wp;
        let lq = (self.h * wp).next_multiple_of(direct::BLOCK);
        let stride = front + (skip + lq).max(self.oh * wp);
        scratch.resize(self.o * stride + self.c * lq, 0.0);
        let (gp, dxp) = scratch.split_at_mut(self.o * stride);
        self.wide_grad(g, ni, wp, front, stride, gp);
        let taps = direct::Taps {
            offsets: &offsets,
            sources: self.o,
            stride,
        };
        direct::correlate(&gp[skip..], taps, flipped, self.c, lq, dxp);
        let pw = self.spec.padding.1;
        for (dst, src) in gxi
            .chunks_exact_mut(self.h * self.w)
            .zip(dxp.chunks_exact(lq))
        {
            for (y, row) in dst.chunks_exact_mut(self.w).enumerate() {
                row.write_copy_of_slice(&src[y * wp + pw..][..self.w]);
            }
        }
    }

    /// The column matrix of the images `images` (a range of the batch), `[rows, n·L]`: the range's
    /// image `i` has its columns at `i·L` (one group). Built by appending in memory order, so the buffer is written once (not zeroed
    /// first): a small layer's step is dominated by such passes over memory.
    fn im2col_batch(&self, x: &[f32], images: Range<usize>) -> Vec<f32> {
        let (chw, hw, ow, sw) = (
            self.c * self.h * self.w,
            self.h * self.w,
            self.ow,
            self.spec.stride.1,
        );
        let mut cols = Vec::with_capacity(self.rows() * images.len() * self.cols());
        for ci in 0..self.c {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let (lo, hi, x0) = self.valid_cols(kx);
                    // Output columns lo..hi read the image; the others are padding.
                    let (lo, hi) = if lo < hi { (lo, hi) } else { (ow, ow) };
                    for ni in images.clone() {
                        let plane = &x[ni * chw + ci * hw..][..hw];
                        for oy in 0..self.oh {
                            let Some(y) = self.source_row(oy, ky) else {
                                cols.resize(cols.len() + ow, 0.0);
                                continue;
                            };
                            cols.resize(cols.len() + lo, 0.0);
                            if lo < hi {
                                let start = y * self.w + (x0 + (lo * sw) as isize) as usize;
                                if sw == 1 && hi - lo <= 32 {
                                    // A short run (LeNet's rows are 8 and 24 wide): copied
                                    // inline; extend_from_slice calls memmove per run.
                                    cols.extend(plane[start..start + (hi - lo)].iter().copied());
                                } else if sw == 1 {
                                    cols.extend_from_slice(&plane[start..start + (hi - lo)]);
                                } else {
                                    cols.extend(plane[start..].iter().step_by(sw).take(hi - lo));
                                }
                            }
                            cols.resize(cols.len() + (ow - hi), 0.0);
                        }
                    }
                }
            }
        }
        cols
    }

    /// How many groups of images the batched path splits the batch into: one per thread when
    /// the layer is big enough and the caller is not a worker already (a data-parallel shard),
    /// else one. Each group is one GEMM per pass.
    fn batch_groups(&self) -> usize {
        if self.images_in_parallel() {
            crate::threads::num_threads().min(self.n)
        } else {
            1
        }
    }

    /// The images of group `t` of `groups`.
    fn group_images(&self, t: usize, groups: usize) -> Range<usize> {
        t * self.n / groups..(t + 1) * self.n / groups
    }

    /// Batched forward pass of the images `images`: `W [O, rows] · cols [rows, n·L] = [O, n·L]`,
    /// returned laid out as `[n, O, L]`.
    fn forward_batch(&self, xd: &[f32], wd: &[f32], images: Range<usize>) -> Vec<f32> {
        let (rows, l, nb) = (self.rows(), self.cols(), images.len());
        let wide = nb * l;
        let cols = self.im2col_batch(xd, images);
        let mut out = vec![0.0; self.o * wide];
        sgemm(
            1.0,
            MatRef::row_major(wd, self.o, rows),
            MatRef::row_major(&cols, rows, wide),
            0.0,
            MatMut::row_major(&mut out, self.o, wide),
        );
        let mut y = Vec::with_capacity(nb * self.o * l);
        for i in 0..nb {
            for o in 0..self.o {
                y.extend_from_slice(&out[o * wide + i * l..][..l]);
            }
        }
        y
    }

    /// The output gradient of the images `images` laid out as `[O, n·L]`, as the GEMMs want it.
    fn grad_batch(&self, g: &[f32], images: Range<usize>) -> Vec<f32> {
        let l = self.cols();
        let mut gall = Vec::with_capacity(self.o * images.len() * l);
        for o in 0..self.o {
            for ni in images.clone() {
                gall.extend_from_slice(&g[(ni * self.o + o) * l..][..l]);
            }
        }
        gall
    }

    /// Weight gradient `G·colsᵀ` (`[O, rows]`) of the images `images`, computed as its transpose
    /// `cols·Gᵀ` (see [`Geometry::untranspose_weight_grad`]).
    fn weight_grad_batch(&self, xd: &[f32], g: &[f32], images: Range<usize>) -> Vec<f32> {
        let (rows, wide) = (self.rows(), images.len() * self.cols());
        let gall = self.grad_batch(g, images.clone());
        let cols = self.im2col_batch(xd, images);
        let mut gwt = vec![0.0; rows * self.o];
        sgemm(
            1.0,
            MatRef::row_major(&cols, rows, wide),
            MatRef::row_major(&gall, self.o, wide).t(),
            0.0,
            MatMut::row_major(&mut gwt, rows, self.o),
        );
        self.untranspose_weight_grad(&gwt)
    }

    /// The weight gradient `[O, rows]` (per group: `[O/g, rows]`) from its transpose, each group's
    /// block `[rows, O/g]`.
    ///
    /// The im2col passes compute `dWᵀ = cols·Gᵀ` rather than `dW = G·colsᵀ`: both operands of the
    /// latter are transposed views, and packing colsᵀ (rows × the block's columns, the large one)
    /// into panels is a transpose at a few floats a cycle, while `cols` is read by the GEMM in
    /// place and only the small `Gᵀ` is transposed. Measured on the 64→64 3×3 layer: 3.7% of a
    /// training step was that transpose.
    fn untranspose_weight_grad(&self, gwt: &[f32]) -> Vec<f32> {
        let (rows, og) = (self.rows(), self.og());
        let mut gw = vec![0.0; gwt.len()];
        for (dst, src) in gw
            .chunks_exact_mut(og * rows)
            .zip(gwt.chunks_exact(og * rows))
        {
            for (r, src_row) in src.chunks_exact(og).enumerate() {
                for (o, &v) in src_row.iter().enumerate() {
                    dst[o * rows + r] = v;
                }
            }
        }
        gw
    }

    /// Input gradient of the images `images` (`gx` holds exactly their `[n, C, H, W]`):
    /// `dcols = Wᵀ·G`, scattered back by col2im.
    fn input_grad_batch(&self, g: &[f32], wd: &[f32], images: Range<usize>, gx: &mut [f32]) {
        let (rows, l, chw) = (self.rows(), self.cols(), self.c * self.h * self.w);
        let wide = images.len() * l;
        let gall = self.grad_batch(g, images.clone());
        let mut dcols = vec![0.0; rows * wide];
        sgemm(
            1.0,
            MatRef::row_major(wd, self.o, rows).t(),
            MatRef::row_major(&gall, self.o, wide),
            0.0,
            MatMut::row_major(&mut dcols, rows, wide),
        );
        for i in 0..images.len() {
            self.col2im(
                &dcols[i * l..],
                0,
                0..self.oh,
                &mut gx[i * chw..][..chw],
                wide,
            );
        }
    }

    /// Output rows per block of the per-image path: the block's column matrix (`rows × block·OW`)
    /// is kept to 512 KiB, so that im2col writes it and the GEMM packs it from L2 rather than
    /// memory (a 64-channel 3×3 layer on 32×32 would otherwise build 2.3 MiB per image).
    fn block_rows(&self) -> usize {
        ((128 << 10) / (self.rows() * self.ow).max(1)).clamp(1, self.oh)
    }

    /// The output rows of one image in blocks of [`Geometry::block_rows`].
    fn row_blocks(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let b = self.block_rows();
        (0..self.oh)
            .step_by(b)
            .map(move |y| y..(y + b).min(self.oh))
    }

    /// Whether to run the per-image path with images in parallel (each image's GEMMs then run on
    /// one thread): a batch of at least two images and enough work to pay for the split.
    fn images_in_parallel(&self) -> bool {
        self.n >= 2
            && crate::threads::worth_splitting(self.n * self.o * self.cols() * self.rows(), 1 << 22)
    }

    /// Forward pass of the per-image path for image `ni`: `yi` is its output `[O, L]`, every
    /// element of which is written.
    fn forward_image(
        &self,
        xd: &[f32],
        (wd, bias): (&[f32], Option<&[f32]>),
        ni: usize,
        yi: &mut [Out],
        cols: &mut Vec<f32>,
    ) {
        let (rows, l, og, chw) = (
            self.rows(),
            self.cols(),
            self.og(),
            self.c * self.h * self.w,
        );
        if self.direct(Pass::Forward) {
            return self.forward_direct(xd, (wd, bias), ni, yi, cols);
        }
        let img = &xd[ni * chw..][..chw];
        for gi in 0..self.spec.groups {
            let wg = MatRef::row_major(&wd[gi * og * rows..][..og * rows], og, rows);
            for oys in self.row_blocks() {
                let lc = oys.len() * self.ow;
                cols.resize(rows * lc, 0.0);
                self.im2col(img, gi, oys.clone(), cols, lc);
                let out = MatMut::uninit(&mut yi[gi * og * l + oys.start * self.ow..], og, lc, l);
                sgemm(
                    1.0,
                    wg,
                    MatRef::row_major(&cols[..rows * lc], rows, lc),
                    0.0,
                    out,
                );
            }
        }
        // SAFETY: the products above (beta = 0) wrote the output rows of every group for every
        // block of output rows: all of `yi`.
        let yi = unsafe { yi.assume_init_mut() };
        if let Some(b) = bias {
            add_bias(yi, b, l);
        }
    }

    /// The kernel of the direct input gradient, flipped: `flipped[c][o·T + t] = W[o][c][T − 1 − t]`
    /// (made once per backward pass, not per image).
    fn flipped_weights(&self, wd: &[f32]) -> Vec<f32> {
        let t = self.kh * self.kw;
        let mut flipped = vec![0.0; self.c * self.o * t];
        for (ci, per_c) in flipped.chunks_exact_mut(self.o * t).enumerate() {
            for (oi, taps) in per_c.chunks_exact_mut(t).enumerate() {
                let w = &wd[(oi * self.c + ci) * t..][..t];
                taps.iter_mut()
                    .zip(w.iter().rev())
                    .for_each(|(d, &v)| *d = v);
            }
        }
        flipped
    }

    /// Input gradient of the per-image path for image `ni` into `gxi` (`[C, H, W]`), every
    /// element of which is written: `dcols = W_gᵀ·G` block by block, scattered back onto `gxi`
    /// zeroed first. On the direct path `flipped` is [`Geometry::flipped_weights`] (else unused).
    fn input_grad_image(
        &self,
        g: &[f32],
        (wd, flipped): (&[f32], &[f32]),
        ni: usize,
        gxi: &mut [Out],
        cols: &mut Vec<f32>,
    ) {
        if self.direct(Pass::InputGrad) {
            return self.input_grad_direct(g, flipped, ni, gxi, cols);
        }
        gxi.iter_mut().for_each(|v| {
            v.write(0.0);
        });
        // SAFETY: every element was just written.
        let gxi = unsafe { gxi.assume_init_mut() };
        let (rows, l, og) = (self.rows(), self.cols(), self.og());
        for gi in 0..self.spec.groups {
            let wg = MatRef::row_major(&wd[gi * og * rows..][..og * rows], og, rows);
            for oys in self.row_blocks() {
                let lc = oys.len() * self.ow;
                cols.resize(rows * lc, 0.0);
                let gout = MatRef {
                    data: &g[(ni * self.o + gi * og) * l + oys.start * self.ow..],
                    rows: og,
                    cols: lc,
                    row_stride: l,
                    col_stride: 1,
                };
                sgemm(
                    1.0,
                    wg.t(),
                    gout,
                    0.0,
                    MatMut::row_major(&mut cols[..rows * lc], rows, lc),
                );
                self.col2im(&cols[..rows * lc], gi, oys, gxi, lc);
            }
        }
    }

    /// Adds image `ni`'s weight gradient `G·colsᵀ`, block by block, onto `gw`: `[O, rows]` on
    /// the direct path, else its transpose, `[rows, O/g]` per group (see
    /// [`Geometry::untranspose_weight_grad`]).
    fn weight_grad_image(
        &self,
        xd: &[f32],
        g: &[f32],
        ni: usize,
        gw: &mut [f32],
        cols: &mut Vec<f32>,
    ) {
        let (rows, l, og, chw) = (
            self.rows(),
            self.cols(),
            self.og(),
            self.c * self.h * self.w,
        );
        if self.direct(Pass::WeightGrad) {
            return self.weight_grad_direct(xd, g, ni, gw, cols);
        }
        let img = &xd[ni * chw..][..chw];
        for gi in 0..self.spec.groups {
            for oys in self.row_blocks() {
                let lc = oys.len() * self.ow;
                cols.resize(rows * lc, 0.0);
                self.im2col(img, gi, oys.clone(), cols, lc);
                let gout = MatRef {
                    data: &g[(ni * self.o + gi * og) * l + oys.start * self.ow..],
                    rows: og,
                    cols: lc,
                    row_stride: l,
                    col_stride: 1,
                };
                let dst = MatMut::row_major(&mut gw[gi * og * rows..][..og * rows], rows, og);
                sgemm(
                    1.0,
                    MatRef::row_major(&cols[..rows * lc], rows, lc),
                    gout.t(),
                    1.0,
                    dst,
                );
            }
        }
    }

    /// For kernel column `kx`: the range of output columns whose input column lies inside the image,
    /// and the input column of output column 0 (which may be negative).
    #[inline]
    fn valid_cols(&self, kx: usize) -> (usize, usize, isize) {
        let s = &self.spec;
        let x0 = (kx * s.dilation.1) as isize - s.padding.1 as isize;
        let sw = s.stride.1 as isize;
        // ox is valid when 0 <= x0 + ox·sw < w.
        let lo = if x0 >= 0 { 0 } else { ((-x0) + sw - 1) / sw } as usize;
        let hi = if (self.w as isize) <= x0 {
            0
        } else {
            ((self.w as isize - x0) + sw - 1) / sw
        } as usize;
        (lo.min(self.ow), hi.min(self.ow), x0)
    }

    /// The input row read by output row `oy` through kernel row `ky`, if not padding.
    #[inline]
    fn source_row(&self, oy: usize, ky: usize) -> Option<usize> {
        let s = &self.spec;
        (oy * s.stride.0 + ky * s.dilation.0)
            .checked_sub(s.padding.0)
            .filter(|&y| y < self.h)
    }

    /// Fills `cols` from the group's channels of one image `img` (`[C, H, W]`), for the output
    /// rows `oys` only (a block of the column matrix small enough to stay in cache), copying whole
    /// runs of each output row (padding becomes zeros). Row `r` of the column matrix is
    /// `cols[r·row_stride..][..oys.len()·OW]` (the batched path lays several images' columns side
    /// by side).
    fn im2col(
        &self,
        img: &[f32],
        group: usize,
        oys: Range<usize>,
        cols: &mut [f32],
        row_stride: usize,
    ) {
        let (l, sw) = (oys.len() * self.ow, self.spec.stride.1);
        // With stride 1 and outputs as wide as the input ("same" padding), a block's row of the
        // column matrix is one contiguous run of the plane with a few padding columns in it.
        let one_run = self.spec.stride == (1, 1) && self.ow == self.w;
        for ci in 0..self.cg() {
            let plane = &img[(group * self.cg() + ci) * self.h * self.w..][..self.h * self.w];
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = &mut cols[((ci * self.kh + ky) * self.kw + kx) * row_stride..][..l];
                    let (lo, hi, x0) = self.valid_cols(kx);
                    if one_run && lo < hi {
                        self.im2col_run(plane, row, oys.clone(), ky, (lo, hi, x0));
                        continue;
                    }
                    for (i, oy) in oys.clone().enumerate() {
                        let dst = &mut row[i * self.ow..(i + 1) * self.ow];
                        let Some(y) = self.source_row(oy, ky) else {
                            dst.fill(0.0);
                            continue;
                        };
                        dst[..lo].fill(0.0);
                        dst[hi.max(lo)..].fill(0.0);
                        if lo < hi {
                            let start = y * self.w + (x0 + (lo * sw) as isize) as usize;
                            if sw == 1 {
                                copy_short(&mut dst[lo..hi], &plane[start..start + (hi - lo)]);
                            } else {
                                for (d, &v) in dst[lo..hi]
                                    .iter_mut()
                                    .zip(plane[start..].iter().step_by(sw))
                                {
                                    *d = v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// One row of [`Geometry::im2col`]'s block (kernel tap `ky`, and the valid columns
    /// `(lo, hi, x0)` of its `kx`) when the stride is 1 and the output as wide as the input: the
    /// output rows whose source row exists read consecutive input rows, so their values are one
    /// contiguous run of the plane (copied at once, instead of a short copy per output row), but
    /// for the padding columns at each row's ends, which the run wraps into and which are zeroed
    /// after.
    fn im2col_run(
        &self,
        plane: &[f32],
        row: &mut [f32],
        oys: Range<usize>,
        ky: usize,
        (lo, hi, x0): (usize, usize, isize),
    ) {
        let ow = self.ow;
        let valid = |i: usize| self.source_row(oys.start + i, ky).is_some();
        let Some(i0) = (0..oys.len()).find(|&i| valid(i)) else {
            row.fill(0.0);
            return;
        };
        let i1 = (i0..oys.len()).find(|&i| !valid(i)).unwrap_or(oys.len());
        row[..i0 * ow].fill(0.0);
        row[i1 * ow..].fill(0.0);
        let y0 = self.source_row(oys.start + i0, ky).unwrap_or(0);
        // Output (i, ox) reads plane[(y0 + i - i0)·W + x0 + ox]: a constant offset, as OW = W.
        let (d0, d1) = (i0 * ow + lo, (i1 - 1) * ow + hi);
        let s0 = ((y0 * self.w) as isize + x0 + lo as isize) as usize;
        row[d0..d1].copy_from_slice(&plane[s0..s0 + (d1 - d0)]);
        let zero = |run: &mut [f32]| match run {
            [] => {}
            [v] => *v = 0.0,
            run => run.fill(0.0),
        };
        for i in i0..i1 {
            zero(&mut row[i * ow..i * ow + lo]);
            zero(&mut row[i * ow + hi..(i + 1) * ow]);
        }
    }

    /// Adds the column-matrix gradient of the output rows `oys` back onto the image gradient (the
    /// adjoint of `im2col`).
    fn col2im(
        &self,
        cols: &[f32],
        group: usize,
        oys: Range<usize>,
        img: &mut [f32],
        row_stride: usize,
    ) {
        let (l, sw) = (oys.len() * self.ow, self.spec.stride.1);
        for ci in 0..self.cg() {
            let plane = &mut img[(group * self.cg() + ci) * self.h * self.w..][..self.h * self.w];
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = &cols[((ci * self.kh + ky) * self.kw + kx) * row_stride..][..l];
                    let (lo, hi, x0) = self.valid_cols(kx);
                    if lo >= hi {
                        continue;
                    }
                    for (i, oy) in oys.clone().enumerate() {
                        let Some(y) = self.source_row(oy, ky) else {
                            continue;
                        };
                        let src = &row[i * self.ow + lo..i * self.ow + hi];
                        let start = y * self.w + (x0 + (lo * sw) as isize) as usize;
                        if sw == 1 {
                            // Contiguous: a loop the compiler vectorises (step_by would not be).
                            add_short(&mut plane[start..start + src.len()], src);
                        } else {
                            for (d, &v) in plane[start..].iter_mut().step_by(sw).zip(src) {
                                *d += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (an output row: 24 or 32 floats in the
/// lessons' layers): blocks of 8 as fixed-size copies, which compile to inline vector moves, where
/// `copy_from_slice` of a run-time length calls memmove, whose fixed cost dominates such short
/// copies (hundreds of thousands per layer).
#[inline]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_short: lengths differ");
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d8, s8) in (&mut d).zip(&mut s) {
        let d8: &mut [f32; 8] = d8.try_into().expect("chunks of 8");
        *d8 = s8.try_into().expect("chunks of 8");
    }
    for (dv, &sv) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *dv = sv;
    }
}

/// Adds `b[o]` to every element of plane `o` (planes of `l` floats, cycling through the `b.len()`
/// channels: one image's `[O, L]` output or a batch's).
fn add_bias(y: &mut [f32], b: &[f32], l: usize) {
    for (i, plane) in y.chunks_exact_mut(l.max(1)).enumerate() {
        let bv = b[i % b.len()];
        plane.iter_mut().for_each(|v| *v += bv);
    }
}

/// `dst += src` elementwise for col2im's short runs: blocks of 8 as fixed-size arrays (unrolled
/// vector adds), where a loop of run-time length pays its setup per run of 8 or 24 floats.
#[inline]
fn add_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "add_short: lengths differ");
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d8, s8) in (&mut d).zip(&mut s) {
        let d8: &mut [f32; 8] = d8.try_into().expect("chunks of 8");
        let s8: &[f32; 8] = s8.try_into().expect("chunks of 8");
        for i in 0..8 {
            d8[i] += s8[i];
        }
    }
    for (dv, &sv) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *dv += sv;
    }
}

/// Output extent of a window sliding over `len` inputs.
pub(crate) fn out_extent(
    len: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation * (k - 1) + 1;
    (len + 2 * pad).checked_sub(span).map(|r| r / stride + 1)
}

impl Tensor {
    /// 2-D convolution of `self` (`[N, C, H, W]`) with `weight` (`[O, C/groups, kh, kw]`) and an
    /// optional `bias` (`[O]`), as `torch.nn.functional.conv2d`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        spec: Conv2dSpec,
    ) -> Result<Tensor> {
        let (x, wt) = (self.dims(), weight.dims());
        if x.len() != 4 || wt.len() != 4 {
            bail!(
                "conv2d",
                "expects input [N, C, H, W] and weight [O, C/groups, kh, kw], got {} and {}",
                self.shape(),
                weight.shape()
            );
        }
        let s = spec;
        if s.groups == 0
            || s.stride.0 == 0
            || s.stride.1 == 0
            || s.dilation.0 == 0
            || s.dilation.1 == 0
        {
            bail!(
                "conv2d",
                "stride, dilation and groups must be positive, got {s:?}"
            );
        }
        if x[1] % s.groups != 0 || wt[0] % s.groups != 0 || wt[1] * s.groups != x[1] {
            bail!(
                "conv2d",
                "input {} has {} channels but weight {} with {} groups expects {}",
                self.shape(),
                x[1],
                weight.shape(),
                s.groups,
                wt[1] * s.groups
            );
        }
        if wt[2] == 0 || wt[3] == 0 {
            bail!("conv2d", "kernel {} has an empty window", weight.shape());
        }
        if x[1] == 0 || wt[0] == 0 {
            bail!(
                "conv2d",
                "input {} and weight {} must have at least one input and one output channel",
                self.shape(),
                weight.shape()
            );
        }
        let (Some(oh), Some(ow)) = (
            out_extent(x[2], wt[2], s.stride.0, s.padding.0, s.dilation.0),
            out_extent(x[3], wt[3], s.stride.1, s.padding.1, s.dilation.1),
        ) else {
            bail!(
                "conv2d",
                "kernel {}x{} (dilation {:?}) is larger than the padded input {}x{} of {}",
                wt[2],
                wt[3],
                s.dilation,
                x[2] + 2 * s.padding.0,
                x[3] + 2 * s.padding.1,
                self.shape()
            );
        };
        if let Some(b) = bias {
            if b.dims() != [wt[0]] {
                bail!(
                    "conv2d",
                    "bias shape {} does not match the {} output channels",
                    b.shape(),
                    wt[0]
                );
            }
        }
        crate::tensor::budget::check("conv2d", &[x[0], wt[0], oh, ow])?;
        crate::tensor::budget::check("conv2d", &[wt[1] * wt[2] * wt[3], oh * ow])?;
        let geo = Geometry {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            o: wt[0],
            kh: wt[2],
            kw: wt[3],
            oh,
            ow,
            spec,
        };
        let (xd, wd) = (self.data(), weight.data());
        let l = geo.cols();
        let batched = geo.batched(Pass::Forward);
        let bd = bias.map(|b| b.data());
        let bias_data = bd.as_deref();
        let mut y = if batched {
            // One GEMM per group of images (the whole batch, or one group per thread).
            let groups = geo.batch_groups();
            if groups == 1 {
                geo.forward_batch(&xd, &wd, 0..geo.n)
            } else {
                let parts: Vec<Vec<f32>> = crate::threads::install(|| {
                    (0..groups)
                        .into_par_iter()
                        .map(|t| geo.forward_batch(&xd, &wd, geo.group_images(t, groups)))
                        .collect()
                });
                parts.concat()
            }
        } else {
            // Image by image, each one's bias added while its output is in cache.
            let per_image = geo.o * l;
            let mut y = uninit(geo.n * per_image);
            if geo.images_in_parallel() {
                crate::threads::install(|| {
                    y.par_chunks_mut(per_image)
                        .enumerate()
                        .for_each_init(Vec::new, |cols, (ni, yi)| {
                            geo.forward_image(&xd, (&wd, bias_data), ni, yi, cols)
                        })
                });
            } else {
                let mut cols = Vec::new();
                for (ni, yi) in y.chunks_mut(per_image).enumerate() {
                    geo.forward_image(&xd, (&wd, bias_data), ni, yi, &mut cols);
                }
            }
            // SAFETY: `forward_image` wrote every element of each image's output, and the
            // images' outputs cover `y`.
            unsafe { into_floats(y) }
        };
        if batched {
            if let Some(b) = bias_data {
                add_bias(&mut y, b, l);
            }
        }
        let (sx, sw) = (self.shape().clone(), weight.shape().clone());
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(record(
            "conv2d",
            Buffer::new(y),
            Shape::new(&[geo.n, geo.o, oh, ow]),
            &inputs,
            move || {
                move |g: &Tensor, needs: &[bool]| {
                    let g = g.data();
                    // The batched path adds into a zeroed dX; the per-image path writes every
                    // element of it (below).
                    let mut gx =
                        (needs[0] && geo.batched(Pass::InputGrad)).then(|| vec![0.0; sx.numel()]);
                    let mut gw = needs[1].then(|| vec![0.0; sw.numel()]);
                    {
                        // G as [O, n·L] per group of images; dW = G·colsᵀ and dcols = Wᵀ·G in
                        // one GEMM each. dW sums the groups' parts in group order, so the result
                        // depends on the thread count only, not on scheduling.
                        let groups = geo.batch_groups();
                        if let Some(gw) = gw.as_mut().filter(|_| geo.batched(Pass::WeightGrad)) {
                            let parts: Vec<Vec<f32>> = if groups == 1 {
                                vec![geo.weight_grad_batch(&xd, &g, 0..geo.n)]
                            } else {
                                crate::threads::install(|| {
                                    (0..groups)
                                        .into_par_iter()
                                        .map(|t| {
                                            geo.weight_grad_batch(
                                                &xd,
                                                &g,
                                                geo.group_images(t, groups),
                                            )
                                        })
                                        .collect()
                                })
                            };
                            for part in parts {
                                gw.iter_mut().zip(part).for_each(|(d, v)| *d += v);
                            }
                        }
                        if let Some(gx) = gx.as_mut().filter(|_| geo.batched(Pass::InputGrad)) {
                            let chw = geo.c * geo.h * geo.w;
                            // Each group's images own a disjoint slice of dX.
                            let mut pieces = Vec::with_capacity(groups);
                            let mut rest: &mut [f32] = gx;
                            for t in 0..groups {
                                let (piece, tail) =
                                    rest.split_at_mut(geo.group_images(t, groups).len() * chw);
                                pieces.push((t, piece));
                                rest = tail;
                            }
                            let run = |(t, piece): (usize, &mut [f32])| {
                                geo.input_grad_batch(&g, &wd, geo.group_images(t, groups), piece)
                            };
                            if groups == 1 {
                                pieces.into_iter().for_each(run);
                            } else {
                                crate::threads::install(|| pieces.into_par_iter().for_each(run));
                            }
                        }
                    }
                    {
                        let chw = geo.c * geo.h * geo.w;
                        let parallel = geo.images_in_parallel();
                        if needs[0] && !geo.batched(Pass::InputGrad) {
                            // Images own disjoint slices of dX.
                            let mut out = uninit(sx.numel());
                            let flipped = if geo.direct(Pass::InputGrad) {
                                geo.flipped_weights(&wd)
                            } else {
                                Vec::new()
                            };
                            let one = |cols: &mut Vec<f32>, (ni, gxi): (usize, &mut [Out])| {
                                geo.input_grad_image(&g, (&wd, &flipped), ni, gxi, cols)
                            };
                            if parallel {
                                crate::threads::install(|| {
                                    out.par_chunks_mut(chw)
                                        .enumerate()
                                        .for_each_init(Vec::new, one)
                                });
                            } else {
                                let mut cols = Vec::new();
                                out.chunks_mut(chw)
                                    .enumerate()
                                    .for_each(|job| one(&mut cols, job));
                            }
                            // SAFETY: `input_grad_image` wrote every element of each image's
                            // slice, and the slices cover `out`.
                            gx = Some(unsafe { into_floats(out) });
                        }
                        if let Some(gw) = gw.as_mut().filter(|_| !geo.batched(Pass::WeightGrad)) {
                            // dW sums over images: each thread sums a fixed, contiguous range of
                            // images into its own buffer, and the buffers are added in order, so
                            // the result depends on the thread count only, not on scheduling.
                            let parts = if parallel {
                                crate::threads::num_threads().min(geo.n)
                            } else {
                                1
                            };
                            let per = geo.n.div_ceil(parts);
                            let partial = |t: usize| {
                                let mut acc = vec![0.0f32; gw.len()];
                                let mut cols = Vec::new();
                                for ni in t * per..((t + 1) * per).min(geo.n) {
                                    geo.weight_grad_image(&xd, &g, ni, &mut acc, &mut cols);
                                }
                                if geo.direct(Pass::WeightGrad) {
                                    acc
                                } else {
                                    geo.untranspose_weight_grad(&acc)
                                }
                            };
                            let sums: Vec<Vec<f32>> = if parallel {
                                crate::threads::install(|| {
                                    (0..parts).into_par_iter().map(partial).collect()
                                })
                            } else {
                                vec![partial(0)]
                            };
                            for part in sums {
                                gw.iter_mut().zip(part).for_each(|(d, v)| *d += v);
                            }
                        }
                    }
                    let mut grads: Grads = smallvec![
                        gx.map(|v| Tensor::from_data(v, sx)),
                        gw.map(|v| Tensor::from_data(v, sw))
                    ];
                    if needs.len() == 3 {
                        grads.push(needs[2].then(|| {
                            let mut gb = vec![0.0; geo.o];
                            for (i, plane) in g.chunks_exact(l).enumerate() {
                                gb[i % geo.o] += crate::kernels::vmath::sum(plane);
                            }
                            Tensor::from_data(gb, Shape::new(&[geo.o]))
                        }));
                    }
                    Ok(grads)
                }
            },
        ))
    }

    /// 1-D convolution of `self` (`[N, C, L]`) with `weight` (`[O, C/groups, k]`), computed as a
    /// 2-D convolution of height 1.
    pub fn conv1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Tensor> {
        if self.rank() != 3 || weight.rank() != 3 {
            bail!(
                "conv1d",
                "expects input [N, C, L] and weight [O, C/groups, k], got {} and {}",
                self.shape(),
                weight.shape()
            );
        }
        let spec = Conv2dSpec {
            stride: (1, stride),
            padding: (0, padding),
            dilation: (1, dilation),
            groups,
        };
        let y = self
            .unsqueeze(2)?
            .conv2d(&weight.unsqueeze(2)?, bias, spec)?;
        y.squeeze(2)
    }
}
