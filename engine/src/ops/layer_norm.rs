//! Layer normalisation as one fused op, with its own backward: a hot path in every transformer
//! block, where the composed form (mean, variance, subtract, divide, scale, shift, each with a
//! broadcast backward) makes a dozen full-size temporaries per call.

use smallvec::smallvec;

use crate::autodiff::record;
use crate::error::{bail, Result};
use crate::kernels::vmath;
use crate::tensor::{Buffer, Tensor};

impl Tensor {
    /// `(x − mean) / sqrt(var + eps) · weight + bias` over the last `weight.numel()` elements of
    /// each row (population variance, as `torch.nn.functional.layer_norm`). `weight` and `bias`
    /// have the normalised shape, which `self`'s shape must end with.
    pub fn layer_norm(&self, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
        let nd = weight.dims();
        if bias.dims() != nd
            || self.rank() < nd.len()
            || &self.dims()[self.rank() - nd.len()..] != nd
            || weight.numel() == 0
        {
            bail!(
                "layer_norm",
                "input {} must end with the normalised shape {} of weight and bias (bias {})",
                self.shape(),
                weight.shape(),
                bias.shape()
            );
        }
        let x = self.data();
        let w = weight.data();
        // Per row: the mean and 1/σ, kept for the backward pass.
        let (y, stats) = vmath::layer_norm(&x, &w, &bias.data(), eps);
        let shape = self.shape().clone();
        let (wshape, bshape) = (weight.shape().clone(), bias.shape().clone());
        Ok(record(
            "layer_norm",
            Buffer::new(y),
            shape.clone(),
            &[self, weight, bias],
            move || {
                move |g: &Tensor, needs: &[bool]| {
                    // With x̂ = (x − μ)/σ and ĝ = g·w:
                    //   dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) / σ,  dw = Σ g·x̂,  db = Σ g.
                    let (dx, dw, db) = vmath::layer_norm_backward(&x, &g.data(), &w, &stats);
                    Ok(smallvec![
                        needs[0].then(|| Tensor::from_data(dx, shape)),
                        needs[1].then(|| Tensor::from_data(dw, wshape)),
                        needs[2].then(|| Tensor::from_data(db, bshape)),
                    ])
                }
            },
        ))
    }
}
