//! Normalisation layers: BatchNorm (1-D and 2-D) and LayerNorm, composed from the differentiable
//! ops (mean, var, sub, div), so their gradients follow from those.

use std::sync::atomic::{AtomicBool, Ordering};

use super::Module;
use crate::autodiff::no_grad;
use crate::error::{bail, Result};
use crate::tensor::Tensor;

/// Batch normalisation over the channel axis 1 of `[N, C]`, `[N, C, L]` (BatchNorm1d) or
/// `[N, C, H, W]` (BatchNorm2d): each channel is standardised with the batch's statistics in
/// training mode and with running averages of them in evaluation mode, then scaled and shifted.
pub struct BatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Tensor,
    pub eps: f32,
    pub momentum: f32,
    /// 1 for BatchNorm1d (inputs of rank 2 or 3), 2 for BatchNorm2d (rank 4).
    pub dims: usize,
    training: AtomicBool,
}

impl BatchNorm {
    /// BatchNorm1d: inputs `[N, C]` or `[N, C, L]`. PyTorch's defaults: eps 1e-5, momentum 0.1.
    pub fn new_1d(channels: usize) -> BatchNorm {
        BatchNorm::new(channels, 1)
    }

    /// BatchNorm2d: inputs `[N, C, H, W]`.
    pub fn new_2d(channels: usize) -> BatchNorm {
        BatchNorm::new(channels, 2)
    }

    fn new(channels: usize, dims: usize) -> BatchNorm {
        BatchNorm {
            weight: Tensor::ones([channels]).requires_grad(),
            bias: Tensor::zeros([channels]).requires_grad(),
            running_mean: Tensor::zeros([channels]),
            running_var: Tensor::ones([channels]),
            num_batches_tracked: Tensor::scalar(0.0),
            eps: 1e-5,
            momentum: 0.1,
            dims,
            training: AtomicBool::new(true),
        }
    }

    fn channels(&self) -> usize {
        self.weight.numel()
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.channels();
        let name = if self.dims == 1 {
            "BatchNorm1d"
        } else {
            "BatchNorm2d"
        };
        let ok_rank = if self.dims == 1 {
            x.rank() == 2 || x.rank() == 3
        } else {
            x.rank() == 4
        };
        if !ok_rank || x.dims()[1] != c {
            let want = if self.dims == 1 {
                "[N, C] or [N, C, L]"
            } else {
                "[N, C, H, W]"
            };
            bail!(name, "expects input {want} with C = {c}, got {}", x.shape());
        }
        // Per-channel parameters broadcast as [1, C, 1, ...].
        let mut bshape = vec![1usize; x.rank()];
        bshape[1] = c;
        let as_b = |t: &Tensor| t.reshape_to(bshape.clone());
        let axes: Vec<isize> = std::iter::once(0).chain(2..x.rank() as isize).collect();
        let (mean, var) = if self.training.load(Ordering::Relaxed) {
            let count = x.numel() / c;
            if count < 2 {
                bail!(name, "training mode needs more than one value per channel to estimate a variance, got input {}", x.shape());
            }
            let mean = x.mean(&axes, true)?;
            let var = x.var_with(&axes, 0, true)?;
            if super::updates_running_stats() {
                no_grad(|| -> Result<()> {
                    let m = self.momentum;
                    let unbiased = var
                        .reshape(&[-1])?
                        .mul_scalar(count as f32 / (count - 1) as f32);
                    let new_mean = self
                        .running_mean
                        .mul_scalar(1.0 - m)
                        .add(&mean.reshape(&[-1])?.mul_scalar(m))?;
                    let new_var = self
                        .running_var
                        .mul_scalar(1.0 - m)
                        .add(&unbiased.mul_scalar(m))?;
                    self.running_mean.assign(&new_mean)?;
                    self.running_var.assign(&new_var)?;
                    self.num_batches_tracked.update(|v| v[0] += 1.0);
                    Ok(())
                })?;
            }
            (mean, var)
        } else {
            (as_b(&self.running_mean)?, as_b(&self.running_var)?)
        };
        let xhat = x.sub(&mean)?.div(&var.add_scalar(self.eps).sqrt())?;
        xhat.mul(&as_b(&self.weight)?)?.add(&as_b(&self.bias)?)
    }
    fn describe(&self) -> String {
        format!("BatchNorm{}d({})", self.dims, self.channels())
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("weight".into(), self.weight.clone()),
            ("bias".into(), self.bias.clone()),
        ]
    }
    fn own_buffers(&self) -> Vec<(String, Tensor)> {
        vec![
            ("running_mean".into(), self.running_mean.clone()),
            ("running_var".into(), self.running_var.clone()),
            (
                "num_batches_tracked".into(),
                self.num_batches_tracked.clone(),
            ),
        ]
    }
    fn set_training_own(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}

/// Layer normalisation over the last axes (`normalized_shape`): each sample is standardised over
/// its own features, then scaled and shifted elementwise. The same in training and evaluation.
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    /// Normalises over the last `normalized_shape.len()` axes; eps 1e-5 as in PyTorch.
    pub fn new(normalized_shape: &[usize]) -> LayerNorm {
        LayerNorm {
            weight: Tensor::ones(normalized_shape.to_vec()).requires_grad(),
            bias: Tensor::zeros(normalized_shape.to_vec()).requires_grad(),
            eps: 1e-5,
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let nd = self.weight.dims();
        if x.rank() < nd.len() || &x.dims()[x.rank() - nd.len()..] != nd {
            bail!(
                "LayerNorm",
                "input {} does not end with the normalised shape {}",
                x.shape(),
                self.weight.shape()
            );
        }
        x.layer_norm(&self.weight, &self.bias, self.eps)
    }
    fn describe(&self) -> String {
        format!("LayerNorm({})", self.weight.shape())
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("weight".into(), self.weight.clone()),
            ("bias".into(), self.bias.clone()),
        ]
    }
}
