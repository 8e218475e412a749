//! Elementwise functions of one tensor, and the tensor-with-scalar forms of arithmetic.
//!
//! Each op is one line: its forward `f(x)` and its derivative `f'(x)`, written in terms of the input
//! `x` and the output `y = f(x)` (whichever is cheaper), side by side.

use smallvec::smallvec;

use crate::autodiff::record;
use crate::kernels::vmath;
use crate::tensor::{Buffer, Tensor};

fn sigmoid(x: f32) -> f32 {
    // Two forms so that exp never overflows.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn softplus(x: f32) -> f32 {
    // PyTorch's threshold: above 20, log(1 + e^x) equals x in f32.
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

impl Tensor {
    /// Applies `f` to every element. `df(x, y)` is its derivative at `x`, given `y = f(x)`.
    pub(crate) fn map(
        &self,
        op: &'static str,
        f: impl Fn(f32) -> f32,
        df: impl Fn(f32, f32) -> f32 + Send + 'static,
    ) -> Tensor {
        let x = self.data();
        let y = x.iter().map(|&v| f(v)).collect();
        self.record_map(op, x, y, df)
    }

    /// Like [`Tensor::map`], with the forward pass computed by a vectorised kernel over the
    /// whole buffer (see `kernels::vmath`).
    fn map_kernel(
        &self,
        op: &'static str,
        f: fn(&[f32]) -> Vec<f32>,
        df: impl Fn(f32, f32) -> f32 + Send + 'static,
    ) -> Tensor {
        let x = self.data();
        let y = f(&x);
        self.record_map(op, x, y, df)
    }

    /// Records `y = f(x)` elementwise, with gradient `g · df(x, y)`.
    fn record_map(
        &self,
        op: &'static str,
        x: Buffer,
        y: Vec<f32>,
        df: impl Fn(f32, f32) -> f32 + Send + 'static,
    ) -> Tensor {
        let y = Buffer::new(y);
        let shape = self.shape().clone();
        record(op, y.clone(), shape.clone(), &[self], move || {
            move |g: &Tensor, _: &[bool]| {
                let g = g.data();
                let dx = g
                    .iter()
                    .zip(x.iter().zip(y.iter()))
                    .map(|(&g, (&x, &y))| g * df(x, y))
                    .collect();
                Ok(smallvec![Some(Tensor::from_data(dx, shape))])
            }
        })
    }

    /// `-x`.
    pub fn neg(&self) -> Tensor {
        self.map("neg", |x| -x, |_, _| -1.0)
    }

    /// `|x|`; the derivative at 0 is taken as 0, as PyTorch does.
    pub fn abs(&self) -> Tensor {
        self.map("abs", f32::abs, |x, _| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        })
    }

    /// `e^x`.
    pub fn exp(&self) -> Tensor {
        self.map_kernel("exp", vmath::exp, |_, y| y)
    }

    /// The natural logarithm (`-inf` at 0, NaN below).
    pub fn log(&self) -> Tensor {
        self.map("log", f32::ln, |x, _| 1.0 / x)
    }

    /// The square root.
    pub fn sqrt(&self) -> Tensor {
        self.map("sqrt", f32::sqrt, |_, y| 0.5 / y)
    }

    /// `sin x`.
    pub fn sin(&self) -> Tensor {
        self.map("sin", f32::sin, |x, _| x.cos())
    }

    /// `cos x`.
    pub fn cos(&self) -> Tensor {
        self.map("cos", f32::cos, |x, _| -x.sin())
    }

    /// The hyperbolic tangent.
    pub fn tanh(&self) -> Tensor {
        self.map_kernel("tanh", vmath::tanh, |_, y| 1.0 - y * y)
    }

    /// The logistic function `1 / (1 + e^-x)`, computed without overflow.
    pub fn sigmoid(&self) -> Tensor {
        self.map_kernel("sigmoid", vmath::sigmoid, |_, y| y * (1.0 - y))
    }

    /// `max(x, 0)`; the derivative at 0 is 0.
    pub fn relu(&self) -> Tensor {
        self.map(
            "relu",
            |x| x.max(0.0),
            |x, _| if x > 0.0 { 1.0 } else { 0.0 },
        )
    }

    /// `x` for positive `x`, `slope * x` otherwise (PyTorch's default slope is 0.01).
    pub fn leaky_relu(&self, slope: f32) -> Tensor {
        self.map(
            "leaky_relu",
            move |x| if x > 0.0 { x } else { slope * x },
            move |x, _| if x > 0.0 { 1.0 } else { slope },
        )
    }

    /// `x` for positive `x`, `alpha (e^x - 1)` otherwise.
    pub fn elu(&self, alpha: f32) -> Tensor {
        self.map(
            "elu",
            move |x| if x > 0.0 { x } else { alpha * x.exp_m1() },
            move |x, y| if x > 0.0 { 1.0 } else { y + alpha },
        )
    }

    /// The Gaussian error linear unit, exact form: `x Φ(x) = x (1 + erf(x/√2)) / 2`.
    /// Runs in `kernels::vmath`, within 4e-7·max(|x|, 1) of the true value. Without gradients it
    /// computes the value alone (an erf without exponential); when a gradient is wanted the
    /// forward pass also computes the derivative `Φ(x) + x φ(x)`, by an erfc form that shares its
    /// exponential with the density, and keeps it for the backward pass (then `g · GELU'(x)`, one
    /// multiply per element). The two ways' values are at most 3e-7·max(|x|, 1) apart.
    pub fn gelu(&self) -> Tensor {
        let x = self.data();
        let shape = self.shape().clone();
        if !crate::autodiff::is_grad_enabled() || !self.requires_grad_flag() {
            return Tensor::from_data(vmath::gelu(&x), shape);
        }
        let (y, d) = vmath::gelu_with_grad(&x);
        record("gelu", Buffer::new(y), shape.clone(), &[self], move || {
            move |g: &Tensor, _: &[bool]| {
                let dx = g.data().iter().zip(&d).map(|(g, d)| g * d).collect();
                Ok(smallvec![Some(Tensor::from_data(dx, shape))])
            }
        })
    }

    /// `log(1 + e^x)`, a smooth ReLU; linear above 20 as in PyTorch.
    pub fn softplus(&self) -> Tensor {
        self.map("softplus", softplus, |x, _| sigmoid(x))
    }

    /// Clamps into `[min, max]` (either bound optional). The gradient passes where
    /// `min <= x <= max`, as in PyTorch.
    pub fn clamp(&self, min: Option<f32>, max: Option<f32>) -> Tensor {
        let (lo, hi) = (
            min.unwrap_or(f32::NEG_INFINITY),
            max.unwrap_or(f32::INFINITY),
        );
        self.map(
            "clamp",
            move |x| x.max(lo).min(hi),
            move |x, _| if x >= lo && x <= hi { 1.0 } else { 0.0 },
        )
    }

    /// `x + c`.
    pub fn add_scalar(&self, c: f32) -> Tensor {
        self.map("add_scalar", move |x| x + c, |_, _| 1.0)
    }

    /// `x - c`.
    pub fn sub_scalar(&self, c: f32) -> Tensor {
        self.map("sub_scalar", move |x| x - c, |_, _| 1.0)
    }

    /// `c - x`.
    pub fn rsub_scalar(&self, c: f32) -> Tensor {
        self.map("rsub_scalar", move |x| c - x, |_, _| -1.0)
    }

    /// `x * c`.
    pub fn mul_scalar(&self, c: f32) -> Tensor {
        self.map("mul_scalar", move |x| x * c, move |_, _| c)
    }

    /// `x / c`.
    pub fn div_scalar(&self, c: f32) -> Tensor {
        self.map("div_scalar", move |x| x / c, move |_, _| 1.0 / c)
    }

    /// `c / x`.
    pub fn rdiv_scalar(&self, c: f32) -> Tensor {
        self.map("rdiv_scalar", move |x| c / x, move |x, _| -c / (x * x))
    }

    /// `x^p`.
    pub fn pow_scalar(&self, p: f32) -> Tensor {
        self.map(
            "pow_scalar",
            move |x| x.powf(p),
            move |x, _| if p == 0.0 { 0.0 } else { p * x.powf(p - 1.0) },
        )
    }

    /// `x²`, a common shorthand.
    pub fn square(&self) -> Tensor {
        self.map("square", |x| x * x, |x, _| 2.0 * x)
    }
}
