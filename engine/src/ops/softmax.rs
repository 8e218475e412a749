//! Softmax and log-softmax along an axis: fused ops with their own backward rules, computed stably
//! (the maximum is subtracted before exponentiating, so large logits cannot overflow).

use smallvec::smallvec;

use crate::autodiff::record;
use crate::error::Result;
use crate::tensor::{Buffer, Tensor};

/// Visits each lane along an axis: `f(start, stride)` for the `outer * inner` lanes of length `n`.
fn for_each_lane(outer: usize, n: usize, inner: usize, mut f: impl FnMut(usize, usize)) {
    for o in 0..outer {
        for i in 0..inner {
            f(o * n * inner + i, inner);
        }
    }
}

impl Tensor {
    fn lanes(&self, op: &'static str, axis: isize) -> Result<(usize, usize, usize)> {
        let d = self.dims();
        if d.is_empty() {
            // A scalar: axis 0 (or -1) is its one lane of length 1, as in PyTorch.
            crate::tensor::shape::resolve_axis(op, axis, 0)?;
            return Ok((1, 1, 1));
        }
        let a = self.shape().axis(op, axis)?;
        Ok((d[..a].iter().product(), d[a], d[a + 1..].iter().product()))
    }

    /// `exp(x_i) / sum_j exp(x_j)` along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        let (outer, n, inner) = self.lanes("softmax", axis)?;
        let x = self.data();
        if inner == 1 && n > 0 {
            return Ok(self.softmax_rows(&x, n));
        }
        let mut y = vec![0.0; x.len()];
        for_each_lane(outer, n, inner, |s, st| {
            let max = (0..n)
                .map(|j| x[s + j * st])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for j in 0..n {
                let e = (x[s + j * st] - max).exp();
                y[s + j * st] = e;
                sum += e;
            }
            for j in 0..n {
                y[s + j * st] /= sum;
            }
        });
        let y = Buffer::new(y);
        let shape = self.shape().clone();
        Ok(record(
            "softmax",
            y.clone(),
            shape.clone(),
            &[self],
            move || {
                move |g: &Tensor, _: &[bool]| {
                    // dx_i = y_i (g_i - sum_j g_j y_j)
                    let g = g.data();
                    let mut dx = vec![0.0; g.len()];
                    for_each_lane(outer, n, inner, |s, st| {
                        let dot: f32 = (0..n).map(|j| g[s + j * st] * y[s + j * st]).sum();
                        for j in 0..n {
                            dx[s + j * st] = y[s + j * st] * (g[s + j * st] - dot);
                        }
                    });
                    Ok(smallvec![Some(Tensor::from_data(dx, shape))])
                }
            },
        ))
    }

    /// Softmax over contiguous rows of length `n` (the last axis): the common case, on the
    /// vectorised kernels in `kernels::vmath`.
    fn softmax_rows(&self, x: &[f32], n: usize) -> Tensor {
        let y = Buffer::new(crate::kernels::vmath::softmax_rows(x, n));
        let shape = self.shape().clone();
        record("softmax", y.clone(), shape.clone(), &[self], move || {
            move |g: &Tensor, _: &[bool]| {
                // dx_i = y_i (g_i - sum_j g_j y_j)
                let dx = crate::kernels::vmath::softmax_backward_rows(&y, &g.data(), n);
                Ok(smallvec![Some(Tensor::from_data(dx, shape))])
            }
        })
    }

    /// `x_i - log sum_j exp(x_j)` along `axis`, without forming the softmax.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        let (outer, n, inner) = self.lanes("log_softmax", axis)?;
        let x = self.data();
        // Contiguous rows (the last axis, a classifier's case) go to the vectorised kernels in
        // `kernels::vmath`; other axes lane by lane.
        let rows = inner == 1 && n > 0;
        let y = if rows {
            crate::kernels::vmath::log_softmax_rows(&x, n)
        } else {
            let mut y = vec![0.0; x.len()];
            for_each_lane(outer, n, inner, |s, st| {
                let max = (0..n)
                    .map(|j| x[s + j * st])
                    .fold(f32::NEG_INFINITY, f32::max);
                let lse = max
                    + (0..n)
                        .map(|j| (x[s + j * st] - max).exp())
                        .sum::<f32>()
                        .ln();
                for j in 0..n {
                    y[s + j * st] = x[s + j * st] - lse;
                }
            });
            y
        };
        let y = Buffer::new(y);
        let shape = self.shape().clone();
        Ok(record(
            "log_softmax",
            y.clone(),
            shape.clone(),
            &[self],
            move || {
                move |g: &Tensor, _: &[bool]| {
                    // dx_i = g_i - softmax_i * sum_j g_j, with softmax_i = exp(y_i)
                    let g = g.data();
                    if rows {
                        let dx = crate::kernels::vmath::log_softmax_backward_rows(&y, &g, n);
                        return Ok(smallvec![Some(Tensor::from_data(dx, shape))]);
                    }
                    let mut dx = vec![0.0; g.len()];
                    for_each_lane(outer, n, inner, |s, st| {
                        let total: f32 = (0..n).map(|j| g[s + j * st]).sum();
                        for j in 0..n {
                            dx[s + j * st] = g[s + j * st] - y[s + j * st].exp() * total;
                        }
                    });
                    Ok(smallvec![Some(Tensor::from_data(dx, shape))])
                }
            },
        ))
    }
}
