//! The training loop.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::metrics::{self, Metric};
use crate::autodiff::{capture_grads, no_grad};
use crate::data::Dataset;
use crate::error::{bail, Error, Result};
use crate::nn::loss::{self, Reduction};
use crate::nn::{with_shard_context, Module};
use crate::optim::{clip_grad_norm, LrSchedule, Optimizer};
use crate::tensor::rng::Rng;
use crate::tensor::Tensor;

/// A custom loss: `(output, target) -> scalar`, which must be a mean over the batch (so that
/// data-parallel shards can be weighted by their size).
pub type LossFn = Arc<dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync>;

/// The loss a training run minimises.
#[derive(Clone)]
pub enum Loss {
    Mse,
    L1,
    Huber(f32),
    /// Binary cross-entropy on probabilities (a sigmoid output).
    Bce,
    /// Binary cross-entropy on raw scores (stable; the usual choice).
    BceWithLogits,
    /// Cross-entropy on logits against class indices.
    CrossEntropy,
    /// Cross-entropy on logits against probability rows (one-hot or soft).
    CrossEntropyProbs,
    /// Negative log-likelihood of log-probabilities against class indices.
    Nll,
    Custom(&'static str, LossFn),
}

impl Loss {
    /// The loss of `output` against `target`, averaged over the batch. A target that differs from
    /// the output only by axes of extent 1 (`[N]` against `[N, 1]`) is reshaped to match.
    pub fn compute(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> {
        let aligned = || -> Result<Tensor> {
            if target.shape() != output.shape()
                && target.numel() == output.numel()
                && target.squeeze_all().shape() == output.squeeze_all().shape()
            {
                target.reshape_to(output.shape().clone())
            } else {
                Ok(target.clone())
            }
        };
        let r = Reduction::Mean;
        match self {
            Loss::Mse => loss::mse(output, &aligned()?, r),
            Loss::L1 => loss::l1(output, &aligned()?, r),
            Loss::Huber(d) => loss::huber(output, &aligned()?, *d, r),
            Loss::Bce => loss::binary_cross_entropy(output, &aligned()?, r),
            Loss::BceWithLogits => loss::binary_cross_entropy_with_logits(output, &aligned()?, r),
            Loss::CrossEntropy => loss::cross_entropy(output, target, r),
            Loss::CrossEntropyProbs => loss::cross_entropy_probs(output, target, r),
            Loss::Nll => loss::nll(output, target, r),
            Loss::Custom(_, f) => f(output, target),
        }
    }

    /// Where a single-output classifier's score splits the classes: 0 for logits, 0.5 otherwise.
    pub fn threshold(&self) -> f32 {
        if matches!(self, Loss::BceWithLogits) {
            0.0
        } else {
            0.5
        }
    }

    /// The loss's name (`mse`, `cross_entropy`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::L1 => "l1",
            Loss::Huber(_) => "huber",
            Loss::Bce => "bce",
            Loss::BceWithLogits => "bce_with_logits",
            Loss::CrossEntropy => "cross_entropy",
            Loss::CrossEntropyProbs => "cross_entropy_probs",
            Loss::Nll => "nll",
            Loss::Custom(n, _) => n,
        }
    }

    /// A built-in loss by name.
    pub fn from_name(name: &str) -> Result<Loss> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "mse" => Loss::Mse,
            "l1" | "mae" => Loss::L1,
            "huber" => Loss::Huber(1.0),
            "bce" | "binary_cross_entropy" => Loss::Bce,
            "bce_with_logits" | "binary_cross_entropy_with_logits" => Loss::BceWithLogits,
            "cross_entropy" | "ce" => Loss::CrossEntropy,
            "cross_entropy_probs" => Loss::CrossEntropyProbs,
            "nll" => Loss::Nll,
            other => bail!("loss", "unknown loss `{other}`; known: mse, l1, huber, bce, bce_with_logits, cross_entropy, cross_entropy_probs, nll"),
        })
    }
}

/// Stop when the monitored value has not improved by `min_delta` for `patience` epochs.
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    /// `val_loss` (the default), `loss`, or any metric name with a `val_` prefix.
    pub monitor: String,
    pub patience: usize,
    pub min_delta: f64,
    /// Put the weights of the best epoch back at the end.
    pub restore_best: bool,
}

impl EarlyStopping {
    /// Watches `val_loss` with the given patience and restores the best weights.
    pub fn new(patience: usize) -> EarlyStopping {
        EarlyStopping {
            monitor: "val_loss".into(),
            patience,
            min_delta: 0.0,
            restore_best: true,
        }
    }

    fn lower_is_better(&self) -> bool {
        let m = self.monitor.trim_start_matches("val_");
        matches!(m, "loss" | "mse" | "mae")
    }
}

/// The settings of a training run.
#[derive(Clone, Debug)]
pub struct FitConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Fixes the shuffling, and the dropout masks drawn during training.
    pub seed: u64,
    pub shuffle: bool,
    pub metrics: Vec<Metric>,
    pub early_stopping: Option<EarlyStopping>,
    pub schedule: Option<LrSchedule>,
    pub clip_grad_norm: Option<f32>,
    /// Penalties `l1 * Σ|w|` and `l2 * Σw²` on weights (parameters named `*weight`, not biases).
    pub l1: f32,
    pub l2: f32,
    /// How many shards each batch is split into, each run on its own tape on a rayon worker.
    /// 0 picks one per engine thread (with at least 16 samples each); 1 runs unsplit.
    pub shards: usize,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 10,
            batch_size: 32,
            seed: 0,
            shuffle: true,
            metrics: Vec::new(),
            early_stopping: None,
            schedule: None,
            clip_grad_norm: None,
            l1: 0.0,
            l2: 0.0,
            shards: 0,
        }
    }
}

/// Every logged value per epoch: `loss`, `val_loss`, metrics (`accuracy`, `val_accuracy`, ...),
/// `lr`, `seconds`.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub series: BTreeMap<String, Vec<f64>>,
    /// The epoch (from 0) whose weights were kept by early stopping, if it ran.
    pub best_epoch: Option<usize>,
    pub stopped_early: bool,
    /// Whether the observer asked to stop (e.g. Ctrl-C in the notebook).
    pub interrupted: bool,
}

impl History {
    /// The values of one series.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.series.get(name).map(Vec::as_slice)
    }

    /// The last value of one series.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|s| s.last().copied())
    }

    /// The number of epochs recorded.
    pub fn epochs(&self) -> usize {
        self.series.values().map(Vec::len).max().unwrap_or(0)
    }

    /// The history as a JSON object of arrays (for checkpoints and CSV export).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.series).unwrap_or_else(|_| "{}".into())
    }

    fn push(&mut self, logs: &BTreeMap<String, f64>) {
        for (k, v) in logs {
            self.series.entry(k.clone()).or_default().push(*v);
        }
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> = self.series.keys().filter(|k| *k != "seconds").collect();
        write!(f, "{:>5}", "epoch")?;
        for n in &names {
            write!(f, "  {n:>12}")?;
        }
        writeln!(f)?;
        for e in 0..self.epochs() {
            write!(f, "{:>5}", e + 1)?;
            for n in &names {
                match self.series[*n].get(e) {
                    Some(v) => write!(f, "  {v:>12.5}")?,
                    None => write!(f, "  {:>12}", "")?,
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// What happened in the loop, for an observer to show.
pub enum Event<'a> {
    Begin {
        epochs: usize,
        batches: usize,
        samples: usize,
    },
    Batch {
        epoch: usize,
        batch: usize,
        batches: usize,
        loss: f64,
        samples_per_second: f64,
    },
    Epoch {
        epoch: usize,
        logs: &'a BTreeMap<String, f64>,
    },
    End {
        history: &'a History,
    },
}

/// What the observer wants the loop to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Stop after this batch, keep what was learned, and return the history so far.
    Stop,
}

fn shard_rng(seed: u64, epoch: usize, batch: usize, shard: usize) -> Rng {
    let mut r = Rng::seed(seed ^ 0xD1B5_4A32_D192_ED03);
    let mix = (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (batch as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ (shard as u64).wrapping_mul(0x94D0_49BB_1331_11EB);
    Rng::seed(r.next_u64() ^ mix)
}

/// The weight penalty `l1 Σ|w| + l2 Σw²` over parameters named `*weight`.
fn penalty(params: &[(String, Tensor)], l1: f32, l2: f32) -> Result<Option<Tensor>> {
    if l1 == 0.0 && l2 == 0.0 {
        return Ok(None);
    }
    let mut total: Option<Tensor> = None;
    for (_, w) in params.iter().filter(|(n, _)| n.ends_with("weight")) {
        let mut term = Tensor::scalar(0.0);
        if l1 != 0.0 {
            term = term.add(&w.abs().sum_all().mul_scalar(l1))?;
        }
        if l2 != 0.0 {
            term = term.add(&w.square().sum_all().mul_scalar(l2))?;
        }
        total = Some(match total {
            Some(t) => t.add(&term)?,
            None => term,
        });
    }
    Ok(total)
}

/// Explains a non-finite loss or gradient: where, which parameter, and the usual causes.
fn non_finite(epoch: usize, batch: usize, what: &str, params: &[(String, Tensor)]) -> Error {
    let bad_value = params
        .iter()
        .find(|(_, p)| !crate::kernels::vmath::all_finite(&p.data()))
        .map(|(n, _)| n.clone());
    let bad_grad = params
        .iter()
        .find(|(_, p)| {
            p.grad()
                .is_some_and(|g| !crate::kernels::vmath::all_finite(&g.data()))
        })
        .map(|(n, _)| n.clone());
    let culprit = match (bad_value, bad_grad) {
        (Some(n), _) => format!("parameter `{n}` already holds a non-finite value"),
        (None, Some(n)) => format!("the gradient of `{n}` was the first to go non-finite"),
        (None, None) => "every parameter is still finite".to_string(),
    };
    Error::new(
        "fit",
        format!(
            "the {what} became NaN or infinite at epoch {}, batch {}; {culprit}. Usual causes: a learning rate that is too high, inputs that are not standardised, or the log of zero (use a loss on logits instead of probabilities)",
            epoch + 1,
            batch + 1
        ),
    )
}

/// What one shard of a batch produces: its weighted loss, its outputs, and its leaf gradients.
type ShardResult = Result<(f64, Tensor, Vec<(Tensor, Tensor)>)>;

/// One optimisation step on `batch`; returns the loss (penalty included) and the outputs.
#[allow(clippy::too_many_arguments)]
fn train_step(
    model: &dyn Module,
    opt: &mut Optimizer,
    loss_fn: &Loss,
    batch: &Dataset,
    cfg: &FitConfig,
    epoch: usize,
    b: usize,
    params: &[(String, Tensor)],
) -> Result<(f64, Tensor)> {
    let n = batch.len();
    let shards = match cfg.shards {
        0 => crate::threads::num_threads().min(n / 16).max(1),
        s => s.min(n).max(1),
    };
    opt.zero_grad();
    // One shard's work: forward, loss weighted by the shard's share of the batch, backward.
    let run = |s: usize, start: usize, end: usize| -> ShardResult {
        with_shard_context(shard_rng(cfg.seed, epoch, b, s), s == 0, || {
            let part = if shards == 1 {
                batch.clone()
            } else {
                batch.range(start, end)?
            };
            let (result, grads) = capture_grads(|| -> Result<(f64, Tensor)> {
                let out = model.call(&part.x)?;
                let mut l = loss_fn
                    .compute(&out, &part.y)?
                    .mul_scalar((end - start) as f32 / n as f32);
                if s == 0 {
                    if let Some(p) = penalty(params, cfg.l1, cfg.l2)? {
                        l = l.add(&p)?;
                    }
                }
                let value = l.item()? as f64;
                if value.is_finite() {
                    l.backward()?;
                }
                Ok((value, out.detach()))
            });
            let (value, out) = result?;
            Ok((value, out, grads))
        })
    };
    let bounds: Vec<(usize, usize)> = (0..shards)
        .map(|s| (s * n / shards, (s + 1) * n / shards))
        .collect();
    let results: Vec<ShardResult> = if shards == 1 {
        vec![run(0, 0, n)]
    } else {
        crate::threads::install(|| {
            bounds
                .par_iter()
                .enumerate()
                .map(|(s, &(a, z))| run(s, a, z))
                .collect()
        })
    };
    let mut total = 0.0;
    let mut outputs = Vec::with_capacity(shards);
    let mut summed: Vec<Option<Tensor>> = vec![None; params.len()];
    for r in results {
        let (value, out, grads) = r?;
        total += value;
        outputs.push(out);
        // Sum the shards' gradients in shard order, so the result does not depend on timing.
        for (leaf, g) in grads {
            if let Some(i) = params.iter().position(|(_, p)| p.same_node(&leaf)) {
                summed[i] = Some(match summed[i].take() {
                    // In place into the first shard's buffer (a vectorised add, no new tensor).
                    Some(acc) if acc.shape() == g.shape() => crate::autodiff::add_into(acc, &g),
                    Some(acc) => acc.add(&g)?,
                    None => g,
                });
            }
        }
    }
    if !total.is_finite() {
        return Err(non_finite(epoch, b, "loss", params));
    }
    for ((_, p), g) in params.iter().zip(summed) {
        p.set_grad(g)?;
    }
    if params.iter().any(|(_, p)| {
        p.grad()
            .is_some_and(|g| !crate::kernels::vmath::all_finite(&g.data()))
    }) {
        return Err(non_finite(epoch, b, "gradient", params));
    }
    if let Some(max) = cfg.clip_grad_norm {
        let ps: Vec<Tensor> = params.iter().map(|(_, p)| p.clone()).collect();
        clip_grad_norm(&ps, max)?;
    }
    opt.step()?;
    let out = if outputs.len() == 1 {
        outputs.remove(0)
    } else {
        Tensor::concat(&outputs, 0)?
    };
    Ok((total, out))
}

/// One optimisation step on `batch` — the step `fit` takes — split into `shards` data-parallel
/// shards (each on its own tape on a rayon worker, gradients summed in shard order; 0 = one per
/// engine thread). `seed` and `step` fix the random draws (dropout). Returns the loss.
pub fn step(
    model: &dyn Module,
    opt: &mut Optimizer,
    loss: &Loss,
    batch: &Dataset,
    shards: usize,
    seed: u64,
    step: usize,
) -> Result<f64> {
    let params = opt.params().to_vec();
    let cfg = FitConfig {
        shards,
        seed,
        ..Default::default()
    };
    // On a worker, so that the step's ops split their work with the caller taking part.
    let done = crate::threads::run(|| train_step(model, opt, loss, batch, &cfg, 0, step, &params));
    Ok(done?.0)
}

/// Trains `model` on `train` with `opt` and `loss`, validating on `val` after each epoch, and
/// reports progress to `observe`. Returns the history of every logged value. The model is left in
/// evaluation mode.
pub fn fit(
    model: &dyn Module,
    opt: &mut Optimizer,
    loss: &Loss,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &FitConfig,
    observe: &mut dyn FnMut(&Event) -> Control,
) -> Result<History> {
    if train.is_empty() {
        bail!("fit", "the training set is empty");
    }
    if cfg.batch_size == 0 {
        bail!("fit", "batch size must be positive");
    }
    if let Some(es) = &cfg.early_stopping {
        if es.monitor.starts_with("val_") && val.is_none() {
            bail!(
                "fit",
                "early stopping watches `{}` but no validation set was given",
                es.monitor
            );
        }
    }
    let params = opt.params().to_vec();
    let base_lr = opt.lr();
    let batches_per_epoch = train.len().div_ceil(cfg.batch_size);
    let mut history = History::default();
    let mut best: Option<(f64, usize, Vec<Vec<f32>>)> = None;
    let mut waited = 0;
    let state = |m: &dyn Module| {
        crate::nn::state_dict(m)
            .into_iter()
            .map(|(_, t)| t.to_vec())
            .collect::<Vec<_>>()
    };
    if observe(&Event::Begin {
        epochs: cfg.epochs,
        batches: batches_per_epoch,
        samples: train.len(),
    }) == Control::Stop
    {
        history.interrupted = true;
        return Ok(history);
    }
    'epochs: for epoch in 0..cfg.epochs {
        if let Some(s) = &cfg.schedule {
            opt.set_lr(s.lr_at(base_lr, epoch));
        }
        model.train(true);
        let started = Instant::now();
        let order_seed = cfg
            .shuffle
            .then(|| cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        let (mut outs, mut targets) = (Vec::new(), Vec::new());
        for (b, batch) in train
            .batches(cfg.batch_size, order_seed)?
            .into_iter()
            .enumerate()
        {
            // On a worker, so that the step's ops split their work with the caller taking part.
            let (value, out) = crate::threads::run(|| {
                train_step(model, opt, loss, &batch, cfg, epoch, b, &params)
            })?;
            loss_sum += value * batch.len() as f64;
            seen += batch.len();
            if !cfg.metrics.is_empty() {
                outs.push(out);
                targets.push(batch.y.clone());
            }
            let rate = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
            if observe(&Event::Batch {
                epoch,
                batch: b,
                batches: batches_per_epoch,
                loss: value,
                samples_per_second: rate,
            }) == Control::Stop
            {
                history.interrupted = true;
                break 'epochs;
            }
        }
        let mut logs = BTreeMap::new();
        logs.insert("loss".to_string(), loss_sum / seen.max(1) as f64);
        if !outs.is_empty() {
            let (o, t) = (Tensor::concat(&outs, 0)?, Tensor::concat(&targets, 0)?);
            for &m in &cfg.metrics {
                logs.insert(
                    m.name().to_string(),
                    metrics::compute(m, &o, &t, loss.threshold())?,
                );
            }
        }
        if let Some(v) = val {
            for (k, value) in evaluate(model, v, loss, &cfg.metrics, cfg.batch_size.max(256))? {
                logs.insert(format!("val_{k}"), value);
            }
        }
        logs.insert("lr".to_string(), opt.lr() as f64);
        logs.insert("seconds".to_string(), started.elapsed().as_secs_f64());
        history.push(&logs);
        if observe(&Event::Epoch { epoch, logs: &logs }) == Control::Stop {
            history.interrupted = true;
            break;
        }
        if let Some(es) = &cfg.early_stopping {
            let Some(&now) = logs.get(&es.monitor) else {
                bail!(
                    "fit",
                    "early stopping watches `{}`, which is not logged; logged: {}",
                    es.monitor,
                    logs.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            };
            let better = match &best {
                None => true,
                Some((b, _, _)) if es.lower_is_better() => now < b - es.min_delta,
                Some((b, _, _)) => now > b + es.min_delta,
            };
            if better {
                best = Some((
                    now,
                    epoch,
                    if es.restore_best {
                        state(model)
                    } else {
                        Vec::new()
                    },
                ));
                waited = 0;
            } else {
                waited += 1;
                if waited >= es.patience {
                    history.stopped_early = true;
                    break;
                }
            }
        }
    }
    if let (Some(es), Some((_, epoch, weights))) = (&cfg.early_stopping, &best) {
        history.best_epoch = Some(*epoch);
        if es.restore_best {
            for ((_, t), w) in crate::nn::state_dict(model).iter().zip(weights) {
                t.update(|d| d.copy_from_slice(w));
            }
        }
    }
    model.eval();
    observe(&Event::End { history: &history });
    Ok(history)
}

/// The model's outputs for `x`, in evaluation mode and without recording a graph, computed in
/// batches of `batch_size`.
pub fn predict(model: &dyn Module, x: &Tensor, batch_size: usize) -> Result<Tensor> {
    if x.rank() == 0 {
        bail!("predict", "expects samples on axis 0, got a scalar");
    }
    model.eval();
    let n = x.dims()[0];
    let bs = batch_size.max(1);
    let starts: Vec<usize> = (0..n).step_by(bs).collect();
    if starts.is_empty() {
        bail!("predict", "no samples to predict");
    }
    // Each batch on its own, without gradients (the mode is per thread).
    let one = |s: usize| no_grad(|| model.call(&x.slice(0, s, (s + bs).min(n))?));
    // Batches are independent: with several, they run in parallel, one per piece (each computed
    // the same way wherever it runs, so the result does not depend on the thread count).
    let outs = if starts.len() > 1 && crate::threads::worth_splitting(starts.len(), 2) {
        crate::threads::install(|| starts.par_iter().map(|&s| one(s)).collect())
    } else {
        starts.iter().map(|&s| one(s)).collect::<Result<Vec<_>>>()
    }?;
    // One batch is the whole answer: joining it would copy it.
    if let [one] = outs.as_slice() {
        return Ok(one.clone());
    }
    Tensor::concat(&outs, 0)
}

/// The loss and metrics of `model` on `data`, in evaluation mode.
pub fn evaluate(
    model: &dyn Module,
    data: &Dataset,
    loss: &Loss,
    metrics: &[Metric],
    batch_size: usize,
) -> Result<BTreeMap<String, f64>> {
    let out = predict(model, &data.x, batch_size)?;
    let mut logs = BTreeMap::new();
    logs.insert(
        "loss".to_string(),
        no_grad(|| loss.compute(&out, &data.y))?.item()? as f64,
    );
    for &m in metrics {
        logs.insert(
            m.name().to_string(),
            metrics::compute(m, &out, &data.y, loss.threshold())?,
        );
    }
    Ok(logs)
}
