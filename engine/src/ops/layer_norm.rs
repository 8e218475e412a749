//! Layer normalisation as one fused op, with its own backward: a hot path in every transformer
//! block, where the composed form (mean, variance, subtract, divide, scale, shift, each with a
//! broadcast backward) makes a dozen full-size temporaries per call.

use smallvec::smallvec;

use crate::autodiff::record;
use crate::error::{bail, Result};
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
        let d = weight.numel();
        let x = self.data();
        let (w, b) = (weight.data(), bias.data());
        let rows = x.len() / d;
        let mut y = Vec::with_capacity(x.len());
        // Per row: the mean and 1/σ, kept for the backward pass.
        let mut stats = Vec::with_capacity(2 * rows);
        for row in x.chunks_exact(d) {
            let mean = row.iter().sum::<f32>() / d as f32;
            let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let rstd = 1.0 / (var + eps).sqrt();
            stats.push(mean);
            stats.push(rstd);
            y.extend(
                row.iter()
                    .zip(w.iter().zip(b.iter()))
                    .map(|(&v, (&w, &b))| (v - mean) * rstd * w + b),
            );
        }
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
                    let g = g.data();
                    let mut dx = needs[0].then(|| Vec::with_capacity(x.len()));
                    let mut dw = vec![0.0f32; d];
                    let mut db = vec![0.0f32; d];
                    let mut xhat = vec![0.0f32; d];
                    for (r, (row, gr)) in x.chunks_exact(d).zip(g.chunks_exact(d)).enumerate() {
                        let (mean, rstd) = (stats[2 * r], stats[2 * r + 1]);
                        let (mut sum_gh, mut sum_ghx) = (0.0f32, 0.0f32);
                        for j in 0..d {
                            xhat[j] = (row[j] - mean) * rstd;
                            let gh = gr[j] * w[j];
                            sum_gh += gh;
                            sum_ghx += gh * xhat[j];
                            dw[j] += gr[j] * xhat[j];
                            db[j] += gr[j];
                        }
                        if let Some(dx) = dx.as_mut() {
                            let (m1, m2) = (sum_gh / d as f32, sum_ghx / d as f32);
                            dx.extend((0..d).map(|j| (gr[j] * w[j] - m1 - xhat[j] * m2) * rstd));
                        }
                    }
                    Ok(smallvec![
                        dx.map(|v| Tensor::from_data(v, shape)),
                        needs[1].then(|| Tensor::from_data(dw, wshape)),
                        needs[2].then(|| Tensor::from_data(db, bshape)),
                    ])
                }
            },
        ))
    }
}
