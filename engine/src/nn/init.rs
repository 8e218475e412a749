//! Parameter initialisation, with PyTorch's defaults.

use crate::tensor::rng::{with_default_rng, Rng};
use crate::tensor::{Shape, Tensor};

/// How to draw a layer's initial weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's default for Linear and Conv: Kaiming-uniform with `a = √5`, which works out to
    /// U(-1/√fan_in, 1/√fan_in).
    PyTorchDefault,
    /// Glorot & Bengio: U(-a, a) with a = √(6 / (fan_in + fan_out)).
    XavierUniform,
    /// Glorot & Bengio: N(0, 2 / (fan_in + fan_out)).
    XavierNormal,
    /// He et al., for ReLU nets: U(-a, a) with a = √(6 / fan_in).
    HeUniform,
    /// He et al.: N(0, 2 / fan_in).
    HeNormal,
    /// N(0, std²).
    Normal(f32),
    /// Every weight the same value.
    Constant(f32),
}

impl Init {
    /// Draws a tensor of `shape` whose fans are `fan_in` and `fan_out`.
    pub fn draw(
        self,
        shape: impl Into<Shape>,
        fan_in: usize,
        fan_out: usize,
        rng: &mut Rng,
    ) -> Tensor {
        let (fi, fo) = (fan_in.max(1) as f32, fan_out.max(1) as f32);
        match self {
            Init::PyTorchDefault => {
                let b = 1.0 / fi.sqrt();
                Tensor::rand_with(shape, -b, b, rng)
            }
            Init::XavierUniform => {
                let a = (6.0 / (fi + fo)).sqrt();
                Tensor::rand_with(shape, -a, a, rng)
            }
            Init::XavierNormal => Tensor::randn_with(shape, 0.0, (2.0 / (fi + fo)).sqrt(), rng),
            Init::HeUniform => {
                let a = (6.0 / fi).sqrt();
                Tensor::rand_with(shape, -a, a, rng)
            }
            Init::HeNormal => Tensor::randn_with(shape, 0.0, (2.0 / fi).sqrt(), rng),
            Init::Normal(std) => Tensor::randn_with(shape, 0.0, std, rng),
            Init::Constant(v) => Tensor::full(shape, v),
        }
    }
}

/// Draws from the default generator (seeded by [`manual_seed`](crate::manual_seed)).
pub(crate) fn draw_default(
    init: Init,
    shape: impl Into<Shape>,
    fan_in: usize,
    fan_out: usize,
) -> Tensor {
    let shape = shape.into();
    with_default_rng(|r| init.draw(shape, fan_in, fan_out, r))
}

/// PyTorch's bias init for Linear and Conv: U(-1/√fan_in, 1/√fan_in).
pub(crate) fn default_bias(n: usize, fan_in: usize) -> Tensor {
    draw_default(Init::PyTorchDefault, [n], fan_in, n)
}
