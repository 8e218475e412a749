//! Optimizers (SGD with momentum/Nesterov, Adagrad, RMSProp, Adam, AdamW), learning-rate
//! schedules and gradient clipping, following PyTorch's update rules exactly (checked against its
//! first steps in the fixture tests).
//!
//! An [`Optimizer`] holds the named parameters it updates, one state buffer per parameter and slot
//! (`exp_avg`, `momentum_buffer`, ... as PyTorch names them), and a step count. Its state can be
//! saved with a checkpoint and restored.

pub mod schedule;

use rayon::prelude::*;
use std::collections::BTreeMap;

use crate::error::{bail, Result};
use crate::tensor::Tensor;

pub use schedule::LrSchedule;

/// The update rule and its hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Algorithm {
    /// `torch.optim.SGD`.
    Sgd {
        momentum: f32,
        dampening: f32,
        nesterov: bool,
        weight_decay: f32,
    },
    /// `torch.optim.Adagrad`.
    Adagrad {
        lr_decay: f32,
        weight_decay: f32,
        eps: f32,
    },
    /// `torch.optim.RMSprop` (not centered).
    RmsProp {
        alpha: f32,
        eps: f32,
        momentum: f32,
        weight_decay: f32,
    },
    /// `torch.optim.Adam` (`decoupled = false`, weight decay added to the gradient) and
    /// `torch.optim.AdamW` (`decoupled = true`, weight decay applied to the weights).
    Adam {
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
        decoupled: bool,
    },
}

impl Algorithm {
    /// The state buffers this rule keeps per parameter, by PyTorch's names.
    fn slots(&self) -> &'static [&'static str] {
        match self {
            Algorithm::Sgd { momentum, .. } if *momentum != 0.0 => &["momentum_buffer"],
            Algorithm::Sgd { .. } => &[],
            Algorithm::Adagrad { .. } => &["sum"],
            Algorithm::RmsProp { momentum, .. } if *momentum != 0.0 => {
                &["square_avg", "momentum_buffer"]
            }
            Algorithm::RmsProp { .. } => &["square_avg"],
            Algorithm::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Algorithm::Sgd { .. } => "SGD",
            Algorithm::Adagrad { .. } => "Adagrad",
            Algorithm::RmsProp { .. } => "RMSprop",
            Algorithm::Adam {
                decoupled: false, ..
            } => "Adam",
            Algorithm::Adam {
                decoupled: true, ..
            } => "AdamW",
        }
    }
}

/// Updates a set of named parameters from their gradients. A clone shares the parameters and copies
/// the state.
#[derive(Clone)]
pub struct Optimizer {
    pub algorithm: Algorithm,
    lr: f32,
    params: Vec<(String, Tensor)>,
    /// `state[i][s]`: slot `s` of parameter `i`, created on the first step.
    state: Vec<Vec<Vec<f32>>>,
    steps: u64,
}

impl Optimizer {
    /// An optimizer over `params` (from `model.named_parameters()`).
    pub fn new(algorithm: Algorithm, lr: f32, params: Vec<(String, Tensor)>) -> Result<Optimizer> {
        if !(lr.is_finite() && lr >= 0.0) {
            bail!(
                "optimizer",
                "learning rate must be a non-negative number, got {lr}"
            );
        }
        if let Some((name, _)) = params.iter().find(|(_, p)| !p.requires_grad_flag()) {
            bail!(
                "optimizer",
                "parameter `{name}` does not require grad, so it would never be updated"
            );
        }
        let n = params.len();
        Ok(Optimizer {
            algorithm,
            lr,
            params,
            state: vec![Vec::new(); n],
            steps: 0,
        })
    }

    /// Plain SGD with the given momentum (0 for none).
    pub fn sgd(params: Vec<(String, Tensor)>, lr: f32, momentum: f32) -> Result<Optimizer> {
        Optimizer::new(
            Algorithm::Sgd {
                momentum,
                dampening: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            },
            lr,
            params,
        )
    }

    /// Adam with PyTorch's defaults (betas 0.9, 0.999; eps 1e-8; no weight decay).
    pub fn adam(params: Vec<(String, Tensor)>, lr: f32) -> Result<Optimizer> {
        Optimizer::new(
            Algorithm::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                decoupled: false,
            },
            lr,
            params,
        )
    }

    /// AdamW with PyTorch's defaults (weight decay 0.01).
    pub fn adamw(params: Vec<(String, Tensor)>, lr: f32, weight_decay: f32) -> Result<Optimizer> {
        Optimizer::new(
            Algorithm::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay,
                decoupled: true,
            },
            lr,
            params,
        )
    }

    /// Adagrad with PyTorch's defaults (eps 1e-10).
    pub fn adagrad(params: Vec<(String, Tensor)>, lr: f32) -> Result<Optimizer> {
        Optimizer::new(
            Algorithm::Adagrad {
                lr_decay: 0.0,
                weight_decay: 0.0,
                eps: 1e-10,
            },
            lr,
            params,
        )
    }

    /// RMSprop with PyTorch's defaults (alpha 0.99, eps 1e-8).
    pub fn rmsprop(params: Vec<(String, Tensor)>, lr: f32) -> Result<Optimizer> {
        Optimizer::new(
            Algorithm::RmsProp {
                alpha: 0.99,
                eps: 1e-8,
                momentum: 0.0,
                weight_decay: 0.0,
            },
            lr,
            params,
        )
    }

    /// The algorithm's name as PyTorch spells it (`SGD`, `AdamW`, ...).
    pub fn name(&self) -> &'static str {
        self.algorithm.name()
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Changes the learning rate (schedules call this).
    pub fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// The parameters being optimised, with their names.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// How many steps have been taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Clears every parameter's gradient.
    pub fn zero_grad(&self) {
        for (_, p) in &self.params {
            p.zero_grad();
        }
    }

    /// Updates every parameter that has a gradient, in place.
    pub fn step(&mut self) -> Result<()> {
        self.steps += 1;
        let t = self.steps;
        let lr = self.lr;
        let slots = self.algorithm.slots().len();
        for ((name, p), state) in self.params.iter().zip(self.state.iter_mut()) {
            let Some(grad) = p.grad() else { continue };
            if grad.shape() != p.shape() {
                bail!(
                    "optimizer",
                    "gradient of `{name}` has shape {} but the parameter has {}",
                    grad.shape(),
                    p.shape()
                );
            }
            let g = grad.data();
            let first = state.is_empty();
            if first {
                // Every slot starts at zero (Adagrad's initial_accumulator_value is 0 by default).
                *state = vec![vec![0.0; p.numel()]; slots];
            }
            let algorithm = &self.algorithm;
            p.update(|w| {
                // Large parameters are updated in pieces across the pool (an update is a few
                // passes over memory, and after a data-parallel step half of the gradient sits in
                // the other core's cache). Each element is computed the same way either way.
                const PIECE: usize = 1 << 14;
                if crate::threads::worth_splitting(w.len(), 4 * PIECE) {
                    let mut slots: Vec<_> = state.iter_mut().map(|v| v.chunks_mut(PIECE)).collect();
                    let jobs: Vec<Piece> = w
                        .chunks_mut(PIECE)
                        .zip(g.chunks(PIECE))
                        .map(|(wc, gc)| {
                            let sc = slots
                                .iter_mut()
                                .map(|it| it.next().expect("slots have the parameter's length"))
                                .collect();
                            (wc, gc, sc)
                        })
                        .collect();
                    crate::threads::install(|| {
                        jobs.into_par_iter().for_each(|(wc, gc, mut sc)| {
                            update(algorithm, lr, t, first, wc, gc, &mut sc)
                        })
                    });
                } else {
                    let mut sc: Vec<&mut [f32]> = state.iter_mut().map(|v| &mut v[..]).collect();
                    update(algorithm, lr, t, first, w, &g, &mut sc);
                }
            });
        }
        Ok(())
    }

    /// The optimizer's state, for a checkpoint: tensors named `{param}.{slot}` and numbers
    /// (`step`, `lr`).
    pub fn state_dict(&self) -> (Vec<(String, Tensor)>, BTreeMap<String, f64>) {
        let mut tensors = Vec::new();
        for ((name, p), state) in self.params.iter().zip(&self.state) {
            for (slot, buf) in self.algorithm.slots().iter().zip(state) {
                tensors.push((
                    format!("{name}.{slot}"),
                    Tensor::from_data(buf.clone(), p.shape().clone()),
                ));
            }
        }
        let mut scalars = BTreeMap::new();
        scalars.insert("step".to_string(), self.steps as f64);
        scalars.insert("lr".to_string(), self.lr as f64);
        (tensors, scalars)
    }

    /// Restores state saved by [`Optimizer::state_dict`]; checks every name and shape before
    /// changing anything.
    pub fn load_state_dict(
        &mut self,
        tensors: &[(String, Tensor)],
        scalars: &BTreeMap<String, f64>,
    ) -> Result<()> {
        let find = |n: &str| tensors.iter().find(|(k, _)| k == n).map(|(_, t)| t);
        let mut new_state = Vec::with_capacity(self.params.len());
        let slots = self.algorithm.slots();
        for (name, p) in &self.params {
            let mut bufs = Vec::new();
            for slot in slots {
                let key = format!("{name}.{slot}");
                match find(&key) {
                    Some(t) if t.shape() == p.shape() => bufs.push(t.to_vec()),
                    Some(t) => bail!(
                        "optimizer",
                        "saved state `{key}` has shape {} but the parameter has {}",
                        t.shape(),
                        p.shape()
                    ),
                    None => {}
                }
            }
            if !bufs.is_empty() && bufs.len() != slots.len() {
                bail!(
                    "optimizer",
                    "saved state for `{name}` is incomplete: {} expects slots {:?}",
                    self.name(),
                    slots
                );
            }
            new_state.push(bufs);
        }
        let Some(&step) = scalars.get("step") else {
            bail!("optimizer", "saved state has no step count")
        };
        self.state = new_state;
        self.steps = step as u64;
        if let Some(&lr) = scalars.get("lr") {
            self.lr = lr as f32;
        }
        Ok(())
    }
}

/// A piece of one parameter's update: weights, gradient and each state slot.
type Piece<'a> = (&'a mut [f32], &'a [f32], Vec<&'a mut [f32]>);

/// One step of `algorithm` on one parameter `w` with gradient `g`, at step `t` (from 1).
fn update(
    algorithm: &Algorithm,
    lr: f32,
    t: u64,
    first: bool,
    w: &mut [f32],
    g: &[f32],
    state: &mut [&mut [f32]],
) {
    match *algorithm {
        Algorithm::Sgd {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } => {
            let n = w.len();
            let g = &g[..n];
            if momentum == 0.0 {
                for i in 0..n {
                    w[i] -= lr * (g[i] + weight_decay * w[i]);
                }
                return;
            }
            let buf = &mut state[0][..n];
            let h = SgdHyper {
                lr,
                momentum,
                dampening,
                weight_decay,
            };
            // The branches are resolved outside the loop, so that each variant vectorises.
            match (first, nesterov) {
                (true, true) => sgd_momentum::<true, true>(w, g, buf, h),
                (true, false) => sgd_momentum::<true, false>(w, g, buf, h),
                (false, true) => sgd_momentum::<false, true>(w, g, buf, h),
                (false, false) => sgd_momentum::<false, false>(w, g, buf, h),
            }
        }
        Algorithm::Adagrad {
            lr_decay,
            weight_decay,
            eps,
        } => {
            let clr = lr / (1.0 + (t - 1) as f32 * lr_decay);
            for i in 0..w.len() {
                let d = g[i] + weight_decay * w[i];
                let sum = &mut state[0][i];
                *sum += d * d;
                w[i] -= clr * d / (sum.sqrt() + eps);
            }
        }
        Algorithm::RmsProp {
            alpha,
            eps,
            momentum,
            weight_decay,
        } => {
            for i in 0..w.len() {
                let d = g[i] + weight_decay * w[i];
                let sq = &mut state[0][i];
                *sq = alpha * *sq + (1.0 - alpha) * d * d;
                let avg = sq.sqrt() + eps;
                if momentum != 0.0 {
                    let buf = &mut state[1][i];
                    *buf = momentum * *buf + d / avg;
                    w[i] -= lr * *buf;
                } else {
                    w[i] -= lr * d / avg;
                }
            }
        }
        Algorithm::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
        } => {
            let bc1 = 1.0 - beta1.powi(t as i32);
            let bc2_sqrt = (1.0 - beta2.powi(t as i32)).sqrt();
            let step_size = lr / bc1;
            let (m, rest) = state.split_at_mut(1);
            let n = w.len();
            let (g, m, v) = (&g[..n], &mut m[0][..n], &mut rest[0][..n]);
            let h = AdamHyper {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                step_size,
                bc2_sqrt,
            };
            if decoupled {
                adam::<true>(w, g, m, v, h);
            } else {
                adam::<false>(w, g, m, v, h);
            }
        }
    }
}

#[derive(Clone, Copy)]
struct SgdHyper {
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
}

/// SGD with momentum over equal-length slices (PyTorch's update, term for term).
#[inline(always)]
fn sgd_momentum<const FIRST: bool, const NESTEROV: bool>(
    w: &mut [f32],
    g: &[f32],
    buf: &mut [f32],
    h: SgdHyper,
) {
    let n = w.len();
    let (g, buf) = (&g[..n], &mut buf[..n]);
    for i in 0..n {
        let d = g[i] + h.weight_decay * w[i];
        buf[i] = if FIRST {
            d
        } else {
            h.momentum * buf[i] + (1.0 - h.dampening) * d
        };
        let step = if NESTEROV {
            d + h.momentum * buf[i]
        } else {
            buf[i]
        };
        w[i] -= h.lr * step;
    }
}

#[derive(Clone, Copy)]
struct AdamHyper {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
}

/// Adam (or AdamW when `DECOUPLED`) over equal-length slices (PyTorch's update, term for term).
#[inline(always)]
fn adam<const DECOUPLED: bool>(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    h: AdamHyper,
) {
    let n = w.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let mut d = g[i];
        if DECOUPLED {
            w[i] *= 1.0 - h.lr * h.weight_decay;
        } else {
            d += h.weight_decay * w[i];
        }
        m[i] += (d - m[i]) * (1.0 - h.beta1);
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * d * d;
        let denom = v[i].sqrt() / h.bc2_sqrt + h.eps;
        w[i] -= h.step_size * m[i] / denom;
    }
}

/// Scales the gradients of `params` so that their joint L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`. Returns the norm before clipping.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f32) -> Result<f32> {
    let grads: Vec<Tensor> = params.iter().filter_map(Tensor::grad).collect();
    let total = grads
        .iter()
        .map(|g| {
            g.data()
                .iter()
                .map(|&v| (v as f64) * (v as f64))
                .sum::<f64>()
        })
        .sum::<f64>()
        .sqrt() as f32;
    if !total.is_finite() {
        bail!(
            "clip_grad_norm",
            "the gradient norm is {total}: a gradient contains NaN or infinity"
        );
    }
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        for p in params {
            if let Some(g) = p.grad() {
                p.set_grad(Some(g.mul_scalar(coef)))?;
            }
        }
    }
    Ok(total)
}
