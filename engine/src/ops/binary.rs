//! Elementwise functions of two tensors, with NumPy broadcasting; comparisons and `where`.
//!
//! Each op gives its forward `f(a, b)` and its partial derivatives `(∂f/∂a, ∂f/∂b)` side by side.
//! The gradient of a broadcast operand is summed back to its own shape (`sum_to`).

use rayon::prelude::*;
use smallvec::smallvec;

use super::expand;
use crate::autodiff::{record, Grads};
use crate::error::Result;
use crate::tensor::shape::{broadcast_shapes, broadcast_strides, for_each_run};
use crate::tensor::{Buffer, Shape, Tensor};

/// `f` over the broadcast of `a` (shape `sa`) and `b` (shape `sb`) to `out`.
fn broadcast_map(
    a: &[f32],
    sa: &Shape,
    b: &[f32],
    sb: &Shape,
    out: &Shape,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Vec<f32> {
    if sa == sb {
        // Memory-bound: one core cannot saturate the memory bus, two come close; the split pays
        // from about a million elements.
        if crate::threads::worth_splitting(a.len(), 1 << 20) {
            let mut v = Vec::with_capacity(a.len());
            crate::threads::install(|| {
                a.par_iter()
                    .zip(b.par_iter())
                    .with_min_len(1 << 16)
                    .map(|(&x, &y)| f(x, y))
                    .collect_into_vec(&mut v)
            });
            return v;
        }
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    if b.len() == 1 && sa == out {
        let y = b[0];
        return a.iter().map(|&x| f(x, y)).collect();
    }
    if a.len() == 1 && sb == out {
        let x = a[0];
        return b.iter().map(|&y| f(x, y)).collect();
    }
    let (stra, strb) = (broadcast_strides(sa, out), broadcast_strides(sb, out));
    let n = *out.dims().last().unwrap_or(&1);
    let last = out.rank() - 1;
    let (da, db) = (stra[last], strb[last]);
    let mut v = Vec::with_capacity(out.numel());
    for_each_run(out.dims(), [&stra, &strb], |[oa, ob]| match (da, db) {
        (1, 1) => v.extend(
            a[oa..oa + n]
                .iter()
                .zip(&b[ob..ob + n])
                .map(|(&x, &y)| f(x, y)),
        ),
        (1, 0) => v.extend(a[oa..oa + n].iter().map(|&x| f(x, b[ob]))),
        (0, 1) => v.extend(b[ob..ob + n].iter().map(|&y| f(a[oa], y))),
        _ => v.extend(std::iter::repeat_n(f(a[oa], b[ob]), n)),
    });
    v
}

impl Tensor {
    /// A broadcasting binary op: `f` is the forward, `df(g, a, b, y)` returns the two input
    /// gradients at one element of the broadcast shape (before summing back to each input's shape).
    fn zip_op(
        &self,
        op: &'static str,
        rhs: &Tensor,
        f: impl Fn(f32, f32) -> f32 + Sync,
        df: impl Fn(f32, f32, f32, f32) -> (f32, f32) + Send + 'static,
    ) -> Result<Tensor> {
        let out = broadcast_shapes(op, self.shape(), rhs.shape())?;
        crate::tensor::budget::check(op, out.dims())?;
        let (a, b) = (self.data(), rhs.data());
        let y = Buffer::new(broadcast_map(&a, self.shape(), &b, rhs.shape(), &out, f));
        let (sa, sb) = (self.shape().clone(), rhs.shape().clone());
        Ok(record(
            op,
            y.clone(),
            out.clone(),
            &[self, rhs],
            move || {
                move |g: &Tensor, needs: &[bool]| {
                    let (ea, eb) = (expand(&a, &sa, &out), expand(&b, &sb, &out));
                    let g = g.data();
                    let n = g.len();
                    let (mut ga, mut gb) = (Vec::with_capacity(n), Vec::with_capacity(n));
                    for i in 0..n {
                        let (da, db) = df(g[i], ea[i], eb[i], y[i]);
                        ga.push(da);
                        gb.push(db);
                    }
                    let ga = if needs[0] {
                        Some(Tensor::from_data(ga, out.clone()).sum_to(&sa)?)
                    } else {
                        None
                    };
                    let gb = if needs[1] {
                        Some(Tensor::from_data(gb, out.clone()).sum_to(&sb)?)
                    } else {
                        None
                    };
                    Ok(smallvec![ga, gb])
                }
            },
        ))
    }

    /// `a + b`, broadcasting.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.linear_op("add", rhs, 1.0)
    }

    /// `a - b`, broadcasting.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.linear_op("sub", rhs, -1.0)
    }

    /// `a + sign * b`: the gradient is `g` for `a` and `sign * g` for `b`, so backward needs no
    /// saved values and no elementwise pass when nothing was broadcast.
    fn linear_op(&self, op: &'static str, rhs: &Tensor, sign: f32) -> Result<Tensor> {
        let out = broadcast_shapes(op, self.shape(), rhs.shape())?;
        crate::tensor::budget::check(op, out.dims())?;
        let y = {
            let (a, b) = (self.data(), rhs.data());
            if sign > 0.0 {
                broadcast_map(&a, self.shape(), &b, rhs.shape(), &out, |x, y| x + y)
            } else {
                broadcast_map(&a, self.shape(), &b, rhs.shape(), &out, |x, y| x - y)
            }
        };
        let (sa, sb) = (self.shape().clone(), rhs.shape().clone());
        Ok(record(op, Buffer::new(y), out, &[self, rhs], move || {
            move |g: &Tensor, needs: &[bool]| {
                let ga = if needs[0] { Some(g.sum_to(&sa)?) } else { None };
                let gb = match (needs[1], sign > 0.0) {
                    (false, _) => None,
                    (true, true) => Some(g.sum_to(&sb)?),
                    (true, false) => Some(g.sum_to(&sb)?.neg()),
                };
                Ok(smallvec![ga, gb] as Grads)
            }
        }))
    }

    /// `a * b`, broadcasting.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.zip_op("mul", rhs, |a, b| a * b, |g, a, b, _| (g * b, g * a))
    }

    /// `a / b`, broadcasting.
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.zip_op(
            "div",
            rhs,
            |a, b| a / b,
            |g, a, b, _| (g / b, -g * a / (b * b)),
        )
    }

    /// `a ^ b`, broadcasting. As in PyTorch, the gradient for the exponent is 0 where `a = 0` and
    /// `b >= 0` (rather than `0 * log 0`).
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        self.zip_op("pow", rhs, f32::powf, |g, a, b, y| {
            let da = if b == 0.0 {
                0.0
            } else {
                g * b * a.powf(b - 1.0)
            };
            let db = if a == 0.0 && b >= 0.0 {
                0.0
            } else {
                g * y * a.ln()
            };
            (da, db)
        })
    }

    /// The larger of `a` and `b`, elementwise; ties share the gradient equally, as in PyTorch.
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.zip_op("maximum", rhs, f32::max, |g, a, b, _| select_grad(g, a, b))
    }

    /// The smaller of `a` and `b`, elementwise; ties share the gradient equally.
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.zip_op("minimum", rhs, f32::min, |g, a, b, _| select_grad(g, b, a))
    }

    fn compare(
        &self,
        op: &'static str,
        rhs: &Tensor,
        f: impl Fn(f32, f32) -> bool + Sync,
    ) -> Result<Tensor> {
        let out = broadcast_shapes(op, self.shape(), rhs.shape())?;
        let (a, b) = (self.data(), rhs.data());
        let y = broadcast_map(&a, self.shape(), &b, rhs.shape(), &out, |x, y| {
            if f(x, y) {
                1.0
            } else {
                0.0
            }
        });
        Ok(Tensor::from_data(y, out))
    }

    /// 1 where `a == b`, else 0 (not differentiable).
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("eq", rhs, |a, b| a == b)
    }

    /// 1 where `a != b`, else 0.
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("ne", rhs, |a, b| a != b)
    }

    /// 1 where `a < b`, else 0.
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("lt", rhs, |a, b| a < b)
    }

    /// 1 where `a <= b`, else 0.
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("le", rhs, |a, b| a <= b)
    }

    /// 1 where `a > b`, else 0.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("gt", rhs, |a, b| a > b)
    }

    /// 1 where `a >= b`, else 0.
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare("ge", rhs, |a, b| a >= b)
    }

    /// `a` where `self` (the condition) is non-zero, `b` elsewhere; all three broadcast together.
    /// Differentiable in `a` and `b`.
    pub fn where_(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let out = broadcast_shapes(
            "where",
            &broadcast_shapes("where", self.shape(), a.shape())?,
            b.shape(),
        )?;
        let cond = expand(&self.data(), self.shape(), &out);
        let (ea, eb) = (
            expand(&a.data(), a.shape(), &out),
            expand(&b.data(), b.shape(), &out),
        );
        let y: Vec<f32> = (0..out.numel())
            .map(|i| if cond[i] != 0.0 { ea[i] } else { eb[i] })
            .collect();
        let (sa, sb) = (a.shape().clone(), b.shape().clone());
        let cond_t = self.detach();
        Ok(record(
            "where",
            Buffer::new(y),
            out.clone(),
            &[&cond_t, a, b],
            move || {
                move |g: &Tensor, needs: &[bool]| {
                    let g = g.data();
                    let pick = |take_a: bool| -> Result<Tensor> {
                        let v = g
                            .iter()
                            .zip(cond.iter())
                            .map(|(&g, &c)| if (c != 0.0) == take_a { g } else { 0.0 })
                            .collect();
                        Tensor::from_data(v, out.clone()).sum_to(if take_a { &sa } else { &sb })
                    };
                    let ga = if needs[1] { Some(pick(true)?) } else { None };
                    let gb = if needs[2] { Some(pick(false)?) } else { None };
                    Ok(smallvec![None, ga, gb])
                }
            },
        ))
    }
}

/// The gradient pair for `max(a, b)`: to the larger, split on a tie.
fn select_grad(g: f32, a: f32, b: f32) -> (f32, f32) {
    if a > b {
        (g, 0.0)
    } else if a < b {
        (0.0, g)
    } else {
        (g / 2.0, g / 2.0)
    }
}
