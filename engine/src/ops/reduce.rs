//! Reductions over one or more axes, with `keepdim`: sum, mean, max, min, argmax, argmin, var, std.
//!
//! `sum`, `max` and `min` carry their own backward rules; `mean`, `var` and `std` are composed from
//! them and the elementwise ops, so their gradients follow.

use smallvec::smallvec;

use crate::autodiff::record;
use crate::error::{bail, Result};
use crate::kernels::vmath;
use crate::tensor::shape::{for_each_run, resolve_axes, resolve_axis, Dims};
use crate::tensor::{Buffer, Shape, Tensor};

/// The shape after reducing `axes`: extent 1 there when `keepdim`, the axis dropped otherwise.
fn reduced_shape(shape: &Shape, axes: &[usize], keepdim: bool) -> Shape {
    let mut dims = Dims::new();
    for (i, &d) in shape.dims().iter().enumerate() {
        if !axes.contains(&i) {
            dims.push(d);
        } else if keepdim {
            dims.push(1);
        }
    }
    Shape(dims)
}

/// Folds the elements of `data` (shape `shape`) over `axes` with `combine`, starting from `init`.
/// Returns the result laid out with the reduced axes kept as extent 1.
fn fold_axes(
    data: &[f32],
    shape: &Shape,
    axes: &[usize],
    init: f32,
    combine: impl Fn(f32, f32) -> f32,
) -> Vec<f32> {
    let kept = reduced_shape(shape, axes, true);
    let mut out = vec![init; kept.numel()];
    if shape.rank() == 0 {
        out[0] = combine(init, data[0]);
        return out;
    }
    let in_strides = shape.strides();
    let mut out_strides = kept.strides();
    for &a in axes {
        out_strides[a] = 0;
    }
    let n = *shape.dims().last().unwrap_or(&1);
    let last_reduced = axes.contains(&(shape.rank() - 1));
    for_each_run(shape.dims(), [&in_strides, &out_strides], |[i, o]| {
        let run = &data[i..i + n];
        if last_reduced {
            out[o] = run.iter().fold(out[o], |acc, &x| combine(acc, x));
        } else {
            for (dst, &x) in out[o..o + n].iter_mut().zip(run) {
                *dst = combine(*dst, x);
            }
        }
    });
    out
}

impl Tensor {
    /// The sum over `axes` (all axes when empty; negative axes count from the end).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let axes = resolve_axes("sum", axes, self.rank())?;
        let kept = reduced_shape(self.shape(), &axes, true);
        let out_shape = reduced_shape(self.shape(), &axes, keepdim);
        let data = self.data();
        let suffix = axes
            .iter()
            .enumerate()
            .all(|(i, &a)| a == self.rank() - axes.len() + i);
        let y = if suffix && !data.is_empty() {
            // The reduced axes are the last ones (or all): each output sums one contiguous run,
            // with the vectorised kernel (a running sum would be a chain of dependent adds).
            let inner = data.len() / kept.numel().max(1);
            data.chunks_exact(inner).map(vmath::sum).collect()
        } else {
            fold_axes(&data, self.shape(), &axes, 0.0, |a, x| a + x)
        };
        let in_shape = self.shape().clone();
        Ok(record(
            "sum",
            Buffer::new(y),
            out_shape,
            &[self],
            move || {
                // d(sum)/dx = 1 for every summed element: the gradient is broadcast back.
                move |g: &Tensor, _: &[bool]| {
                    Ok(smallvec![Some(
                        g.reshape_to(kept)?.broadcast_to(&in_shape)?
                    )])
                }
            },
        ))
    }

    /// The sum of every element, as a scalar.
    pub fn sum_all(&self) -> Tensor {
        self.sum(&[], false)
            .expect("summing over all axes cannot fail")
    }

    /// The mean over `axes` (all when empty).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let resolved = resolve_axes("mean", axes, self.rank())?;
        // A scalar reduced over its axis 0 counts as one element.
        let count: usize = resolved
            .iter()
            .map(|&a| self.dims().get(a).copied().unwrap_or(1))
            .product();
        Ok(self.sum(axes, keepdim)?.mul_scalar(1.0 / count as f32))
    }

    /// The mean of every element, as a scalar.
    pub fn mean_all(&self) -> Tensor {
        self.mean(&[], false)
            .expect("averaging over all axes cannot fail")
    }

    /// The maximum over `axes`; the gradient goes to the maximal elements, split evenly on ties.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extremum("max", axes, keepdim, f32::NEG_INFINITY, |a, x| {
            if x > a || x.is_nan() {
                x
            } else {
                a
            }
        })
    }

    /// The minimum over `axes`; the gradient goes to the minimal elements, split evenly on ties.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extremum("min", axes, keepdim, f32::INFINITY, |a, x| {
            if x < a || x.is_nan() {
                x
            } else {
                a
            }
        })
    }

    /// The largest element, as a scalar.
    pub fn max_all(&self) -> Result<Tensor> {
        self.max(&[], false)
    }

    /// The smallest element, as a scalar.
    pub fn min_all(&self) -> Result<Tensor> {
        self.min(&[], false)
    }

    fn extremum(
        &self,
        op: &'static str,
        axes: &[isize],
        keepdim: bool,
        init: f32,
        pick: impl Fn(f32, f32) -> f32,
    ) -> Result<Tensor> {
        if self.numel() == 0 {
            bail!(
                op,
                "cannot reduce an empty tensor of shape {}",
                self.shape()
            );
        }
        let axes = resolve_axes(op, axes, self.rank())?;
        if let Some(&a) = axes.iter().find(|&&a| self.dims().get(a) == Some(&0)) {
            bail!(
                op,
                "cannot reduce over axis {a} of extent 0 (shape {})",
                self.shape()
            );
        }
        let kept = reduced_shape(self.shape(), &axes, true);
        let out_shape = reduced_shape(self.shape(), &axes, keepdim);
        let y = Buffer::new(fold_axes(&self.data(), self.shape(), &axes, init, pick));
        let x = self.detach();
        let y_kept = Tensor::from_parts(y.clone(), kept.clone(), false, None);
        Ok(record(op, y, out_shape, &[self], move || {
            move |g: &Tensor, _: &[bool]| {
                // The gradient flows to the elements equal to the extremum, shared among ties.
                let mask = x.eq(&y_kept)?;
                let ties = mask.sum(&axes.iter().map(|&a| a as isize).collect::<Vec<_>>(), true)?;
                Ok(smallvec![Some(mask.mul(&g.reshape_to(kept)?.div(&ties)?)?)])
            }
        }))
    }

    /// The index of the largest element along `axis` (the first one on ties), as f32 values.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extremum("argmax", axis, keepdim, |x, best| x > best)
    }

    /// The index of the smallest element along `axis` (the first one on ties), as f32 values.
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extremum("argmin", axis, keepdim, |x, best| x < best)
    }

    fn arg_extremum(
        &self,
        op: &'static str,
        axis: isize,
        keepdim: bool,
        better: impl Fn(f32, f32) -> bool,
    ) -> Result<Tensor> {
        let ax = resolve_axis(op, axis, self.rank())?;
        if self.rank() == 0 {
            return Ok(Tensor::scalar(0.0));
        }
        let n = self.dims()[ax];
        if n == 0 {
            bail!(
                op,
                "cannot take {op} over axis {ax} of extent 0 (shape {})",
                self.shape()
            );
        }
        let outer: usize = self.dims()[..ax].iter().product();
        let inner: usize = self.dims()[ax + 1..].iter().product();
        let x = self.data();
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| x[(o * n + j) * inner + i];
                let mut best = 0;
                for j in 1..n {
                    // NaN wins, as in PyTorch, so a NaN is never hidden by the reduction.
                    if !at(best).is_nan() && (better(at(j), at(best)) || at(j).is_nan()) {
                        best = j;
                    }
                }
                out.push(best as f32);
            }
        }
        Ok(Tensor::from_data(
            out,
            reduced_shape(self.shape(), &[ax], keepdim),
        ))
    }

    /// The index of the largest element of the flattened tensor.
    pub fn argmax_all(&self) -> Result<usize> {
        Ok(self.reshape(&[-1])?.argmax(0, false)?.item()? as usize)
    }

    /// The variance over `axes` with Bessel's correction (divide by n - 1), as `torch.var`.
    pub fn var(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.var_with(axes, 1, keepdim)
    }

    /// The variance over `axes`, dividing by `n - correction` (0 gives the population variance).
    pub fn var_with(&self, axes: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        let resolved = resolve_axes("var", axes, self.rank())?;
        // A scalar reduced over its axis 0 counts as one element.
        let count: usize = resolved
            .iter()
            .map(|&a| self.dims().get(a).copied().unwrap_or(1))
            .product();
        if count <= correction {
            bail!("var", "needs more than {correction} elements along the reduced axes, got {count} (shape {})", self.shape());
        }
        let centred = self.sub(&self.mean(axes, true)?)?;
        Ok(centred
            .square()
            .sum(axes, keepdim)?
            .mul_scalar(1.0 / (count - correction) as f32))
    }

    /// The standard deviation over `axes` (Bessel-corrected), as `torch.std`.
    pub fn std(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        Ok(self.var(axes, keepdim)?.sqrt())
    }

    /// Sums this tensor down to `shape`, which it must broadcast from: the reverse of
    /// [`broadcast_to`](Tensor::broadcast_to), used to reduce gradients of broadcast operands.
    pub fn sum_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self.rank().checked_sub(shape.rank());
        let ok = lead.is_some_and(|lead| {
            shape
                .dims()
                .iter()
                .enumerate()
                .all(|(i, &d)| d == 1 || d == self.dims()[i + lead])
        });
        let Some(lead) = lead.filter(|_| ok) else {
            bail!(
                "sum_to",
                "cannot sum shape {} down to {}: {} does not broadcast to {}",
                self.shape(),
                shape,
                shape,
                self.shape()
            );
        };
        let axes: Vec<isize> = (0..self.rank())
            .filter(|&i| i < lead || (shape.dims()[i - lead] == 1 && self.dims()[i] != 1))
            .map(|i| i as isize)
            .collect();
        self.sum(&axes, true)?.reshape_to(shape.clone())
    }
}
