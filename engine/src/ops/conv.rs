//! Convolution (2-D, and 1-D as a 2-D convolution of height 1) by im2col + GEMM, with stride,
//! zero padding, dilation and groups. A fused op with its own backward: the input gradient is
//! `Wᵀ·G` scattered back by col2im, the weight gradient `G·colsᵀ`, the bias gradient the sum of `G`.
//!
//! Layout is NCHW, as in PyTorch; the weight is `[out_channels, in_channels / groups, kh, kw]`.

use smallvec::smallvec;

use crate::autodiff::{record, Grads};
use crate::error::{bail, Result};
use crate::kernels::gemm::{sgemm, MatMut, MatRef};
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

    /// The input position read by output (oy, ox) through kernel tap (ky, kx), if not padding.
    #[inline]
    fn source(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let s = &self.spec;
        let y = (oy * s.stride.0 + ky * s.dilation.0).checked_sub(s.padding.0)?;
        let x = (ox * s.stride.1 + kx * s.dilation.1).checked_sub(s.padding.1)?;
        (y < self.h && x < self.w).then_some((y, x))
    }

    /// Fills `cols` (`rows × cols`) from the group's channels of one image `img` (`[C, H, W]`).
    fn im2col(&self, img: &[f32], group: usize, cols: &mut [f32]) {
        let l = self.cols();
        for ci in 0..self.cg() {
            let plane = &img[(group * self.cg() + ci) * self.h * self.w..][..self.h * self.w];
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = &mut cols[((ci * self.kh + ky) * self.kw + kx) * l..][..l];
                    for oy in 0..self.oh {
                        for ox in 0..self.ow {
                            row[oy * self.ow + ox] = self
                                .source(oy, ox, ky, kx)
                                .map_or(0.0, |(y, x)| plane[y * self.w + x]);
                        }
                    }
                }
            }
        }
    }

    /// Adds the column-matrix gradient back onto the image gradient (the adjoint of `im2col`).
    fn col2im(&self, cols: &[f32], group: usize, img: &mut [f32]) {
        let l = self.cols();
        for ci in 0..self.cg() {
            let plane = &mut img[(group * self.cg() + ci) * self.h * self.w..][..self.h * self.w];
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = &cols[((ci * self.kh + ky) * self.kw + kx) * l..][..l];
                    for oy in 0..self.oh {
                        for ox in 0..self.ow {
                            if let Some((y, x)) = self.source(oy, ox, ky, kx) {
                                plane[y * self.w + x] += row[oy * self.ow + ox];
                            }
                        }
                    }
                }
            }
        }
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
        let (rows, l, og) = (geo.rows(), geo.cols(), geo.og());
        let mut y = vec![0.0; geo.n * geo.o * l];
        let mut cols = vec![0.0; rows * l];
        for ni in 0..geo.n {
            let img = &xd[ni * geo.c * geo.h * geo.w..][..geo.c * geo.h * geo.w];
            for gi in 0..s.groups {
                geo.im2col(img, gi, &mut cols);
                let wg = MatRef::row_major(&wd[gi * og * rows..][..og * rows], og, rows);
                let out = &mut y[(ni * geo.o + gi * og) * l..][..og * l];
                sgemm(
                    1.0,
                    wg,
                    MatRef::row_major(&cols, rows, l),
                    0.0,
                    MatMut::row_major(out, og, l),
                );
            }
        }
        if let Some(b) = bias {
            let b = b.data();
            for (i, plane) in y.chunks_exact_mut(l).enumerate() {
                let bv = b[i % geo.o];
                plane.iter_mut().for_each(|v| *v += bv);
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
                    let mut gx = needs[0].then(|| vec![0.0; sx.numel()]);
                    let mut gw = needs[1].then(|| vec![0.0; sw.numel()]);
                    let mut cols = vec![0.0; rows * l];
                    for ni in 0..geo.n {
                        let img = &xd[ni * geo.c * geo.h * geo.w..][..geo.c * geo.h * geo.w];
                        for gi in 0..geo.spec.groups {
                            let gout = MatRef::row_major(
                                &g[(ni * geo.o + gi * og) * l..][..og * l],
                                og,
                                l,
                            );
                            if let Some(gw) = gw.as_mut() {
                                // dW_g += G·colsᵀ
                                geo.im2col(img, gi, &mut cols);
                                let dst = MatMut::row_major(
                                    &mut gw[gi * og * rows..][..og * rows],
                                    og,
                                    rows,
                                );
                                sgemm(1.0, gout, MatRef::row_major(&cols, rows, l).t(), 1.0, dst);
                            }
                            if let Some(gx) = gx.as_mut() {
                                // dcols = W_gᵀ·G, scattered back onto the image.
                                let wg =
                                    MatRef::row_major(&wd[gi * og * rows..][..og * rows], og, rows);
                                sgemm(
                                    1.0,
                                    wg.t(),
                                    gout,
                                    0.0,
                                    MatMut::row_major(&mut cols, rows, l),
                                );
                                geo.col2im(
                                    &cols,
                                    gi,
                                    &mut gx[ni * geo.c * geo.h * geo.w..][..geo.c * geo.h * geo.w],
                                );
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
                                gb[i % geo.o] += plane.iter().sum::<f32>();
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
