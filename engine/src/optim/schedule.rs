//! Learning-rate schedules, as closed forms of the epoch (or step) number, matching PyTorch's
//! `StepLR`, `ExponentialLR`, `CosineAnnealingLR` and a linear warm-up.

use std::f32::consts::PI;

/// How the learning rate changes with the epoch (counted from 0).
#[derive(Clone, Debug, PartialEq)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Multiplies by `gamma` every `step_size` epochs.
    Step { step_size: usize, gamma: f32 },
    /// Multiplies by `gamma` every epoch.
    Exponential { gamma: f32 },
    /// Follows half a cosine from the base rate down to `eta_min` over `t_max` epochs (and, as in
    /// PyTorch, back up along the same cosine after that).
    Cosine { t_max: usize, eta_min: f32 },
    /// Rises linearly from `base / warmup` to the base rate over `warmup` epochs, then follows
    /// `then` (counted from the end of the warm-up).
    Warmup {
        warmup: usize,
        then: Box<LrSchedule>,
    },
}

impl LrSchedule {
    /// The learning rate at `epoch` for base rate `base`.
    pub fn lr_at(&self, base: f32, epoch: usize) -> f32 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                base * gamma.powi((epoch / (*step_size).max(1)) as i32)
            }
            LrSchedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            LrSchedule::Cosine { t_max, eta_min } => {
                let t = epoch as f32;
                eta_min + (base - eta_min) * (1.0 + (PI * t / (*t_max).max(1) as f32).cos()) / 2.0
            }
            LrSchedule::Warmup { warmup, then } => {
                if epoch < *warmup {
                    base * (epoch + 1) as f32 / *warmup as f32
                } else {
                    then.lr_at(base, epoch - warmup)
                }
            }
        }
    }
}
