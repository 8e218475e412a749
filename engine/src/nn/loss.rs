//! Loss functions, with PyTorch's names, formulas and defaults (mean reduction).
//!
//! Each refuses the mistakes a learner is likely to make with an explanation instead of a silent
//! wrong number: prediction and target shapes that would broadcast into a matrix, probabilities
//! outside [0, 1], class indices out of range.

use smallvec::smallvec;

use crate::autodiff::record;
use crate::error::{bail, Result};
use crate::tensor::{Buffer, Tensor};

/// How a loss combines its per-element terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    #[default]
    Mean,
    Sum,
    /// No reduction: one loss per element (or per sample for the cross-entropies).
    None,
}

fn reduce(t: Tensor, r: Reduction) -> Tensor {
    match r {
        Reduction::Mean => t.mean_all(),
        Reduction::Sum => t.sum_all(),
        Reduction::None => t,
    }
}

fn same_shape(op: &'static str, pred: &Tensor, target: &Tensor) -> Result<()> {
    if pred.shape() != target.shape() {
        bail!(op, "prediction {} and target {} must have the same shape (broadcasting them would compare every prediction with every target); reshape one of them", pred.shape(), target.shape());
    }
    Ok(())
}

/// Mean squared error `(pred - target)²`.
pub fn mse(pred: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("mse_loss", pred, target)?;
    Ok(reduce(pred.sub(target)?.square(), r))
}

/// Mean absolute error `|pred - target|`.
pub fn l1(pred: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("l1_loss", pred, target)?;
    Ok(reduce(pred.sub(target)?.abs(), r))
}

/// Huber loss: quadratic for errors below `delta`, linear above (PyTorch's `HuberLoss`).
pub fn huber(pred: &Tensor, target: &Tensor, delta: f32, r: Reduction) -> Result<Tensor> {
    same_shape("huber_loss", pred, target)?;
    if delta <= 0.0 {
        bail!("huber_loss", "delta must be positive, got {delta}");
    }
    let e = pred.sub(target)?.abs();
    let small = e.le(&Tensor::scalar(delta))?;
    let quad = e.square().mul_scalar(0.5);
    let lin = e.sub_scalar(0.5 * delta).mul_scalar(delta);
    Ok(reduce(small.where_(&quad, &lin)?, r))
}

/// Binary cross-entropy on probabilities: `-(y log p + (1 - y) log(1 - p))`, with the logs clamped
/// at -100 as in PyTorch so that p = 0 or 1 gives a large finite loss, not infinity.
pub fn binary_cross_entropy(prob: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("binary_cross_entropy", prob, target)?;
    let p = prob.data();
    if let Some(bad) = p.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        let (lo, hi) = p
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        bail!("binary_cross_entropy", "expects probabilities in [0, 1] but got values from {lo} to {hi} (e.g. {bad}); apply sigmoid first, or use binary_cross_entropy_with_logits on the raw outputs");
    }
    check_targets_01("binary_cross_entropy", target)?;
    Ok(reduce(bce_terms(prob, target), r))
}

/// The per-element terms `-(y log p + (1 - y) log(1 - p))`, logs clamped at -100, as one op: its
/// backward is PyTorch's `(p - y) / max(p (1 - p), 1e-12)`, which stays finite when a sigmoid has
/// saturated to exactly 0 or 1 (composing `log` and `clamp` would give 0 × ∞ = NaN there).
fn bce_terms(prob: &Tensor, target: &Tensor) -> Tensor {
    let clamped_log = |v: f32| v.ln().max(-100.0);
    let (p, y) = (prob.data(), target.data());
    let terms: Vec<f32> = p
        .iter()
        .zip(y.iter())
        .map(|(&p, &y)| -(y * clamped_log(p) + (1.0 - y) * clamped_log(1.0 - p)))
        .collect();
    let shape = prob.shape().clone();
    record(
        "binary_cross_entropy",
        Buffer::new(terms),
        shape.clone(),
        &[prob, target],
        move || {
            move |g: &Tensor, needs: &[bool]| {
                let g = g.data();
                let dp = needs[0].then(|| {
                    let v = g
                        .iter()
                        .zip(p.iter().zip(y.iter()))
                        .map(|(&g, (&p, &y))| g * (p - y) / (p * (1.0 - p)).max(1e-12))
                        .collect();
                    Tensor::from_vec(v, shape.clone()).expect("same shape")
                });
                let dy = needs[1].then(|| {
                    let v = g
                        .iter()
                        .zip(p.iter())
                        .map(|(&g, &p)| g * (clamped_log(1.0 - p) - clamped_log(p)))
                        .collect();
                    Tensor::from_vec(v, shape.clone()).expect("same shape")
                });
                Ok(smallvec![dp, dy])
            }
        },
    )
}

fn check_targets_01(op: &'static str, target: &Tensor) -> Result<()> {
    if let Some(bad) = target.data().iter().find(|v| !(0.0..=1.0).contains(*v)) {
        bail!(
            op,
            "targets must lie in [0, 1] (class labels 0/1 or probabilities), got {bad}"
        );
    }
    Ok(())
}

/// Binary cross-entropy on raw scores (logits), computed stably as
/// `max(x, 0) - x y + log(1 + e^-|x|)`: never overflows, whatever the scores.
pub fn binary_cross_entropy_with_logits(
    logits: &Tensor,
    target: &Tensor,
    r: Reduction,
) -> Result<Tensor> {
    same_shape("binary_cross_entropy_with_logits", logits, target)?;
    check_targets_01("binary_cross_entropy_with_logits", target)?;
    let terms = logits
        .relu()
        .sub(&logits.mul(target)?)?
        .add(&logits.abs().neg().softplus())?;
    Ok(reduce(terms, r))
}

/// Checks `[N, C]` logits against `N` class indices; returns the indices.
fn class_targets(op: &'static str, scores: &Tensor, target: &Tensor) -> Result<Vec<usize>> {
    if scores.rank() != 2 {
        bail!(
            op,
            "expects scores [batch, classes], got {}",
            scores.shape()
        );
    }
    let (n, c) = (scores.dims()[0], scores.dims()[1]);
    if target.numel() != n || target.rank() > 2 || (target.rank() == 2 && target.dims()[1] != 1) {
        bail!(op, "expects {n} class indices (shape [{n}]) for scores {}, got target {}; for one-hot or probability targets use cross_entropy_probs", scores.shape(), target.shape());
    }
    target.to_indices(op, c).map_err(|_| {
        let bad = target
            .data()
            .iter()
            .copied()
            .find(|v| v.fract() != 0.0 || *v < 0.0 || *v as usize >= c)
            .unwrap_or(f32::NAN);
        crate::Error::new(
            op,
            format!("class index {bad} is not a whole number in 0..{c} (there are {c} classes)"),
        )
    })
}

/// Picks `logp[i, target_i]` as a `[N]` tensor.
fn pick(logp: &Tensor, idx: &[usize]) -> Result<Tensor> {
    let t = Tensor::from_vec(idx.iter().map(|&i| i as f32).collect(), [idx.len(), 1])?;
    logp.gather(1, &t)?.reshape(&[-1])
}

/// Cross-entropy of raw scores (logits, `[N, C]`) against class indices (`[N]`), through a stable
/// log-softmax: `-log softmax(x)[target]`. The usual loss for multi-class classification.
pub fn cross_entropy(logits: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    let idx = class_targets("cross_entropy", logits, target)?;
    Ok(reduce(pick(&logits.log_softmax(1)?, &idx)?.neg(), r))
}

/// Cross-entropy of logits `[N, C]` against a probability distribution per row (`[N, C]`, e.g.
/// one-hot or label-smoothed): `-sum_c p_c log softmax(x)_c`.
pub fn cross_entropy_probs(logits: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("cross_entropy_probs", logits, target)?;
    if logits.rank() != 2 {
        bail!(
            "cross_entropy_probs",
            "expects [batch, classes], got {}",
            logits.shape()
        );
    }
    if target.data().iter().any(|&v| v < 0.0) {
        bail!(
            "cross_entropy_probs",
            "target probabilities must not be negative"
        );
    }
    Ok(reduce(
        logits.log_softmax(1)?.mul(target)?.sum(&[1], false)?.neg(),
        r,
    ))
}

/// Negative log-likelihood of log-probabilities `[N, C]` (e.g. from `log_softmax`) and class
/// indices `[N]`.
pub fn nll(log_probs: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    let idx = class_targets("nll_loss", log_probs, target)?;
    if log_probs.data().iter().any(|&v| v > 1e-4) {
        bail!("nll_loss", "expects log-probabilities (all ≤ 0), got positive values; apply log_softmax first, or use cross_entropy on the raw scores");
    }
    Ok(reduce(pick(log_probs, &idx)?.neg(), r))
}

/// KL divergence `sum p (log p - log q)` as PyTorch's `kl_div(input=log q, target=p)`, averaged
/// over the batch (`reduction='batchmean'`, the mathematically correct mean).
pub fn kl_div(log_q: &Tensor, p: &Tensor) -> Result<Tensor> {
    same_shape("kl_div", log_q, p)?;
    if p.data().iter().any(|&v| v < 0.0) {
        bail!("kl_div", "the target distribution has negative entries");
    }
    // Terms with p = 0 contribute 0 (the limit of p log p).
    let log_p = p.clamp(Some(f32::MIN_POSITIVE), None).log();
    let terms = p.mul(&log_p.sub(log_q)?)?;
    let batch = if log_q.rank() > 0 {
        log_q.dims()[0].max(1)
    } else {
        1
    };
    Ok(terms.sum_all().mul_scalar(1.0 / batch as f32))
}

/// The KL divergence of N(mu, exp(logvar)) from N(0, 1), summed over latent dimensions and
/// averaged over the batch: the regulariser in a variational autoencoder's loss,
/// `-0.5 * sum(1 + logvar - mu² - exp(logvar))`.
pub fn gaussian_kl(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    same_shape("gaussian_kl", mu, logvar)?;
    let terms = logvar
        .add_scalar(1.0)
        .sub(&mu.square())?
        .sub(&logvar.exp())?;
    let batch = if mu.rank() > 0 {
        mu.dims()[0].max(1)
    } else {
        1
    };
    Ok(terms.sum_all().mul_scalar(-0.5 / batch as f32))
}
