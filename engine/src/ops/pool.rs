//! Pooling over 2-D windows (and 1-D as height 1): max and average, NCHW.

use smallvec::smallvec;

use super::conv::out_extent;
use crate::autodiff::record;
use crate::error::{bail, Result};
use crate::kernels::vmath;
use crate::tensor::{Buffer, Shape, Tensor};

/// Window size, stride and zero padding of a pooling op, per axis (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl PoolSpec {
    /// A `k`×`k` window moving by `k` (PyTorch's default stride), no padding.
    pub fn square(k: usize) -> PoolSpec {
        PoolSpec {
            kernel: (k, k),
            stride: (k, k),
            padding: (0, 0),
        }
    }
}

impl Tensor {
    fn pool_geometry(&self, op: &'static str, p: PoolSpec) -> Result<[usize; 6]> {
        let d = self.dims();
        if d.len() != 4 {
            bail!(op, "expects input [N, C, H, W], got {}", self.shape());
        }
        if p.kernel.0 == 0 || p.kernel.1 == 0 || p.stride.0 == 0 || p.stride.1 == 0 {
            bail!(op, "kernel and stride must be positive, got {p:?}");
        }
        if 2 * p.padding.0 > p.kernel.0 || 2 * p.padding.1 > p.kernel.1 {
            bail!(
                op,
                "padding {:?} must be at most half the kernel {:?}",
                p.padding,
                p.kernel
            );
        }
        match (
            out_extent(d[2], p.kernel.0, p.stride.0, p.padding.0, 1),
            out_extent(d[3], p.kernel.1, p.stride.1, p.padding.1, 1),
        ) {
            (Some(oh), Some(ow)) if oh > 0 && ow > 0 => Ok([d[0] * d[1], d[2], d[3], oh, ow, 0]),
            _ => bail!(
                op,
                "window {:?} is larger than the padded input of {}",
                p.kernel,
                self.shape()
            ),
        }
    }

    /// The maximum over each window; the gradient goes to the element that was the maximum.
    pub fn max_pool2d(&self, p: PoolSpec) -> Result<Tensor> {
        let [planes, h, w, oh, ow, _] = self.pool_geometry("max_pool2d", p)?;
        let x = self.data();
        if p.kernel == (2, 2) && p.stride == (2, 2) && p.padding == (0, 0) {
            return Ok(self.max_pool_2x2(planes, h, w, oh, ow));
        }
        let mut y = Vec::with_capacity(planes * oh * ow);
        let mut argmax = Vec::with_capacity(planes * oh * ow);
        if p.padding == (0, 0) {
            // Every tap is inside the image: index directly, and pick the maximum with selects
            // rather than branches (random data would mispredict every other comparison). NaN
            // wins, as in PyTorch.
            y.resize(planes * oh * ow, 0.0);
            argmax.resize(planes * oh * ow, 0);
            for pl in 0..planes {
                let plane = &x[pl * h * w..][..h * w];
                let (yo, ao) = (
                    &mut y[pl * oh * ow..][..oh * ow],
                    &mut argmax[pl * oh * ow..][..oh * ow],
                );
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (y0, x0) = (oy * p.stride.0, ox * p.stride.1);
                        let mut at = y0 * w + x0;
                        let mut best = plane[at];
                        for ky in 0..p.kernel.0 {
                            let base = (y0 + ky) * w + x0;
                            for (kx, &v) in plane[base..base + p.kernel.1].iter().enumerate() {
                                let take = (v > best) | (v.is_nan() & !best.is_nan());
                                best = if take { v } else { best };
                                at = if take { base + kx } else { at };
                            }
                        }
                        yo[oy * ow + ox] = best;
                        ao[oy * ow + ox] = pl * h * w + at;
                    }
                }
            }
        }
        for pl in (0..planes).filter(|_| p.padding != (0, 0)) {
            let plane = &x[pl * h * w..][..h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut best, mut at) = (f32::NEG_INFINITY, usize::MAX);
                    for ky in 0..p.kernel.0 {
                        for kx in 0..p.kernel.1 {
                            let (Some(iy), Some(ix)) = (
                                (oy * p.stride.0 + ky).checked_sub(p.padding.0),
                                (ox * p.stride.1 + kx).checked_sub(p.padding.1),
                            ) else {
                                continue;
                            };
                            if iy < h
                                && ix < w
                                && (plane[iy * w + ix] > best
                                    || at == usize::MAX
                                    || plane[iy * w + ix].is_nan())
                            {
                                best = plane[iy * w + ix];
                                at = iy * w + ix;
                            }
                        }
                    }
                    y.push(best);
                    argmax.push(pl * h * w + at);
                }
            }
        }
        let d = self.dims();
        let in_shape = self.shape().clone();
        Ok(record(
            "max_pool2d",
            Buffer::new(y),
            Shape::new(&[d[0], d[1], oh, ow]),
            &[self],
            move || {
                move |g: &Tensor, _: &[bool]| {
                    let mut gx = vec![0.0; in_shape.numel()];
                    for (&i, &gv) in argmax.iter().zip(g.data().iter()) {
                        gx[i] += gv;
                    }
                    Ok(smallvec![Some(Tensor::from_data(gx, in_shape))])
                }
            },
        ))
    }

    /// The usual window (2×2, stride 2, no padding) through the vectorised kernel: the position
    /// of each maximum is kept as a code 0..4 within its window (one byte, not an index), and the
    /// backward pass writes every input gradient element once instead of zeroing and scattering.
    fn max_pool_2x2(&self, planes: usize, h: usize, w: usize, oh: usize, ow: usize) -> Tensor {
        let x = self.data();
        let mut y = vec![0.0; planes * oh * ow];
        let mut code = vec![0u8; planes * oh * ow];
        if h == 2 * oh {
            // Whole planes are whole row pairs: one call.
            vmath::max_pool_2x2(&x[..planes * h * w], w, &mut y, &mut code);
        } else {
            for ((plane, y), code) in x
                .chunks_exact(h * w)
                .zip(y.chunks_exact_mut(oh * ow))
                .zip(code.chunks_exact_mut(oh * ow))
            {
                vmath::max_pool_2x2(&plane[..2 * oh * w], w, y, code);
            }
        }
        let d = self.dims();
        let in_shape = self.shape().clone();
        record(
            "max_pool2d",
            Buffer::new(y),
            Shape::new(&[d[0], d[1], oh, ow]),
            &[self],
            move || {
                move |g: &Tensor, _: &[bool]| {
                    let g = g.data();
                    // Zeros only where no window reaches (an odd last row or column).
                    let mut gx = vec![0.0; in_shape.numel()];
                    if h == 2 * oh {
                        vmath::max_pool_2x2_backward(&g, &code, w, &mut gx);
                    } else {
                        for ((plane, g), code) in gx
                            .chunks_exact_mut(h * w)
                            .zip(g.chunks_exact(oh * ow))
                            .zip(code.chunks_exact(oh * ow))
                        {
                            vmath::max_pool_2x2_backward(g, code, w, &mut plane[..2 * oh * w]);
                        }
                    }
                    Ok(smallvec![Some(Tensor::from_data(gx, in_shape))])
                }
            },
        )
    }

    /// The mean over each window, padding counted as zeros (PyTorch's `count_include_pad=True`).
    pub fn avg_pool2d(&self, p: PoolSpec) -> Result<Tensor> {
        let [planes, h, w, oh, ow, _] = self.pool_geometry("avg_pool2d", p)?;
        let area = (p.kernel.0 * p.kernel.1) as f32;
        let taps = move |oy: usize, ox: usize, f: &mut dyn FnMut(usize)| {
            for ky in 0..p.kernel.0 {
                for kx in 0..p.kernel.1 {
                    let (Some(iy), Some(ix)) = (
                        (oy * p.stride.0 + ky).checked_sub(p.padding.0),
                        (ox * p.stride.1 + kx).checked_sub(p.padding.1),
                    ) else {
                        continue;
                    };
                    if iy < h && ix < w {
                        f(iy * w + ix);
                    }
                }
            }
        };
        let x = self.data();
        let mut y = Vec::with_capacity(planes * oh * ow);
        for pl in 0..planes {
            let plane = &x[pl * h * w..][..h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0;
                    taps(oy, ox, &mut |i| s += plane[i]);
                    y.push(s / area);
                }
            }
        }
        let d = self.dims();
        let in_shape = self.shape().clone();
        Ok(record(
            "avg_pool2d",
            Buffer::new(y),
            Shape::new(&[d[0], d[1], oh, ow]),
            &[self],
            move || {
                move |g: &Tensor, _: &[bool]| {
                    let g = g.data();
                    let mut gx = vec![0.0; in_shape.numel()];
                    for pl in 0..planes {
                        let plane = &mut gx[pl * h * w..][..h * w];
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let gv = g[(pl * oh + oy) * ow + ox] / area;
                                taps(oy, ox, &mut |i| plane[i] += gv);
                            }
                        }
                    }
                    Ok(smallvec![Some(Tensor::from_data(gx, in_shape))])
                }
            },
        ))
    }

    /// 1-D max pooling of `[N, C, L]` with window `k` and stride `stride`.
    pub fn max_pool1d(&self, k: usize, stride: usize) -> Result<Tensor> {
        if self.rank() != 3 {
            bail!(
                "max_pool1d",
                "expects input [N, C, L], got {}",
                self.shape()
            );
        }
        self.unsqueeze(2)?
            .max_pool2d(PoolSpec {
                kernel: (1, k),
                stride: (1, stride),
                padding: (0, 0),
            })?
            .squeeze(2)
    }
}
