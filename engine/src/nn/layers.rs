//! The basic layers: Linear, convolutions, pooling, Flatten, Dropout, Embedding, activations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::init::{default_bias, draw_default, Init};
use super::Module;
use crate::error::{bail, Result};
use crate::ops::conv::Conv2dSpec;
use crate::ops::pool::PoolSpec;
use crate::tensor::rng::{with_default_rng, Rng};
use crate::tensor::Tensor;

/// `y = x·Wᵀ + b`, with `W` of shape `[out, in]` as in PyTorch.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with PyTorch's default initialisation, drawn from the default generator.
    pub fn new(in_features: usize, out_features: usize) -> Linear {
        Linear::with_init(in_features, out_features, true, Init::PyTorchDefault)
    }

    /// A layer with the given weight initialisation; the bias (if any) as in PyTorch.
    pub fn with_init(in_features: usize, out_features: usize, bias: bool, init: Init) -> Linear {
        let weight = draw_default(init, [out_features, in_features], in_features, out_features)
            .requires_grad();
        let bias = bias.then(|| default_bias(out_features, in_features).requires_grad());
        Linear { weight, bias }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.linear(&self.weight, self.bias.as_ref())
    }
    fn forward_activated(&self, x: &Tensor, act: Activation) -> Option<Result<Tensor>> {
        match act {
            Activation::ReLU => Some(x.linear_relu(&self.weight, self.bias.as_ref())),
            Activation::GELU => Some(x.linear_gelu(&self.weight, self.bias.as_ref())),
            _ => None,
        }
    }
    fn describe(&self) -> String {
        format!(
            "Linear(in={}, out={}{})",
            self.weight.dims()[1],
            self.weight.dims()[0],
            if self.bias.is_some() {
                ""
            } else {
                ", bias=false"
            }
        )
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = vec![("weight".to_string(), self.weight.clone())];
        p.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        p
    }
}

/// A 2-D convolution over `[N, C, H, W]`; weight `[out, in/groups, kh, kw]`.
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub spec: Conv2dSpec,
}

impl Conv2d {
    /// A `k`×`k` convolution with stride 1 and the given padding, PyTorch's initialisation.
    pub fn new(in_channels: usize, out_channels: usize, k: usize, padding: usize) -> Conv2d {
        Conv2d::with_spec(
            in_channels,
            out_channels,
            (k, k),
            Conv2dSpec {
                padding: (padding, padding),
                ..Default::default()
            },
            true,
        )
    }

    /// Any kernel size, stride, padding, dilation and groups.
    pub fn with_spec(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        spec: Conv2dSpec,
        bias: bool,
    ) -> Conv2d {
        let groups = spec.groups.max(1);
        let fan_in = in_channels / groups * kernel.0 * kernel.1;
        let fan_out = out_channels / groups * kernel.0 * kernel.1;
        let weight = draw_default(
            Init::PyTorchDefault,
            [out_channels, in_channels / groups, kernel.0, kernel.1],
            fan_in,
            fan_out,
        )
        .requires_grad();
        let bias = bias.then(|| default_bias(out_channels, fan_in).requires_grad());
        Conv2d { weight, bias, spec }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, self.bias.as_ref(), self.spec)
    }
    fn describe(&self) -> String {
        let d = self.weight.dims();
        let s = &self.spec;
        format!(
            "Conv2d({}, {}, kernel=({}, {}), stride={:?}, padding={:?})",
            d[1] * s.groups,
            d[0],
            d[2],
            d[3],
            s.stride,
            s.padding
        )
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = vec![("weight".to_string(), self.weight.clone())];
        p.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        p
    }
}

/// A 1-D convolution over `[N, C, L]`; weight `[out, in/groups, k]`.
pub struct Conv1d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Conv1d {
    /// A width-`k` convolution with stride 1 and the given padding, PyTorch's initialisation.
    pub fn new(in_channels: usize, out_channels: usize, k: usize, padding: usize) -> Conv1d {
        let fan_in = in_channels * k;
        let weight = draw_default(
            Init::PyTorchDefault,
            [out_channels, in_channels, k],
            fan_in,
            out_channels * k,
        )
        .requires_grad();
        let bias = Some(default_bias(out_channels, fan_in).requires_grad());
        Conv1d {
            weight,
            bias,
            stride: 1,
            padding,
            dilation: 1,
            groups: 1,
        }
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv1d(
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
    }
    fn describe(&self) -> String {
        let d = self.weight.dims();
        format!(
            "Conv1d({}, {}, kernel={}, stride={}, padding={})",
            d[1] * self.groups,
            d[0],
            d[2],
            self.stride,
            self.padding
        )
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = vec![("weight".to_string(), self.weight.clone())];
        p.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        p
    }
}

/// Max pooling over 2-D windows.
pub struct MaxPool2d(pub PoolSpec);

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool2d(self.0)
    }
    fn describe(&self) -> String {
        format!(
            "MaxPool2d(kernel={:?}, stride={:?})",
            self.0.kernel, self.0.stride
        )
    }
}

/// Average pooling over 2-D windows.
pub struct AvgPool2d(pub PoolSpec);

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool2d(self.0)
    }
    fn describe(&self) -> String {
        format!(
            "AvgPool2d(kernel={:?}, stride={:?})",
            self.0.kernel, self.0.stride
        )
    }
}

/// Max pooling over 1-D windows of `[N, C, L]`.
pub struct MaxPool1d {
    pub kernel: usize,
    pub stride: usize,
}

impl Module for MaxPool1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool1d(self.kernel, self.stride)
    }
    fn describe(&self) -> String {
        format!("MaxPool1d(kernel={}, stride={})", self.kernel, self.stride)
    }
}

/// The mean of each channel over all positions: `[N, C, H, W] -> [N, C]`.
pub struct GlobalAvgPool2d;

impl Module for GlobalAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 4 {
            bail!(
                "GlobalAvgPool2d",
                "expects input [N, C, H, W], got {}",
                x.shape()
            );
        }
        x.mean(&[2, 3], false)
    }
    fn describe(&self) -> String {
        "GlobalAvgPool2d()".into()
    }
}

/// Flattens every axis after the first: `[N, ...] -> [N, features]`.
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 2 {
            return Ok(x.clone());
        }
        x.flatten(1, -1)
    }
    fn describe(&self) -> String {
        "Flatten()".into()
    }
}

/// Zeroes each element with probability `p` in training mode and scales the rest by `1/(1-p)`;
/// the identity in evaluation mode.
pub struct Dropout {
    pub p: f32,
    training: AtomicBool,
    rng: Mutex<Rng>,
}

impl Dropout {
    /// Dropout with rate `p` in [0, 1); its generator is forked from the default one.
    pub fn new(p: f32) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            bail!("Dropout", "rate must be in [0, 1), got {p}");
        }
        Ok(Dropout {
            p,
            training: AtomicBool::new(true),
            rng: Mutex::new(with_default_rng(Rng::fork)),
        })
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.training.load(Ordering::Relaxed) || self.p == 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.p;
        let mask: Vec<f32> = super::with_forward_rng(&self.rng, |r| {
            (0..x.numel())
                .map(|_| if r.next_f32() < keep { 1.0 / keep } else { 0.0 })
                .collect()
        });
        x.mul(&Tensor::from_vec(mask, x.shape().clone())?)
    }
    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }
    fn set_training_own(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}

/// A lookup table of learned vectors: indices `[...]` (whole numbers as f32) to `[..., dim]`.
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    /// `num` vectors of size `dim`, drawn from N(0, 1) as in PyTorch.
    pub fn new(num: usize, dim: usize) -> Embedding {
        Embedding {
            weight: draw_default(Init::Normal(1.0), [num, dim], num, dim).requires_grad(),
        }
    }
}

impl Module for Embedding {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (num, dim) = (self.weight.dims()[0], self.weight.dims()[1]);
        let idx = x.to_indices("Embedding", num)?;
        let rows = self.weight.index_select(0, &idx)?;
        let mut shape = x.dims().to_vec();
        shape.push(dim);
        rows.reshape_to(shape)
    }
    fn describe(&self) -> String {
        format!(
            "Embedding({}, {})",
            self.weight.dims()[0],
            self.weight.dims()[1]
        )
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}

/// An activation function as a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    ReLU,
    LeakyReLU(f32),
    ELU(f32),
    GELU,
    Tanh,
    Sigmoid,
    Softplus,
    Identity,
    /// Softmax along the last axis.
    Softmax,
}

impl Activation {
    /// Applies the function.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::ReLU => x.relu(),
            Activation::LeakyReLU(s) => x.leaky_relu(*s),
            Activation::ELU(a) => x.elu(*a),
            Activation::GELU => x.gelu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Softplus => x.softplus(),
            Activation::Identity => x.clone(),
            Activation::Softmax => x.softmax(-1)?,
        })
    }

    /// Looks an activation up by its usual name (`relu`, `tanh`, `sigmoid`, `linear`, ...).
    pub fn from_name(name: &str) -> Result<Activation> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "relu" => Activation::ReLU,
            "leaky_relu" | "leakyrelu" => Activation::LeakyReLU(0.01),
            "elu" => Activation::ELU(1.0),
            "gelu" => Activation::GELU,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "softplus" => Activation::Softplus,
            "linear" | "identity" | "none" => Activation::Identity,
            "softmax" => Activation::Softmax,
            other => bail!("Activation", "unknown activation `{other}`; known: relu, leaky_relu, elu, gelu, tanh, sigmoid, softplus, linear, softmax"),
        })
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x)
    }
    fn activation(&self) -> Option<Activation> {
        Some(*self)
    }
    fn describe(&self) -> String {
        match self {
            Activation::LeakyReLU(s) => format!("LeakyReLU({s})"),
            Activation::ELU(a) => format!("ELU({a})"),
            other => format!("{other:?}()"),
        }
    }
}
