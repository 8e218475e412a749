//! Metrics computed from a model's outputs and the targets: accuracy, precision, recall, F1 for
//! classification; MSE, MAE and R² for regression.

use crate::error::{bail, Result};
use crate::tensor::Tensor;

/// A number to report each epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Accuracy,
    /// Precision of class 1 for binary tasks, macro-averaged over classes otherwise.
    Precision,
    /// Recall, averaged the same way.
    Recall,
    /// F1, averaged the same way.
    F1,
    Mse,
    Mae,
    /// The coefficient of determination, 1 - SS_res / SS_tot.
    R2,
}

impl Metric {
    /// The name used in histories and tables (`accuracy`, `r2`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::Mse => "mse",
            Metric::Mae => "mae",
            Metric::R2 => "r2",
        }
    }

    /// Parses a name as [`Metric::name`] gives it.
    pub fn from_name(name: &str) -> Result<Metric> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "accuracy" | "acc" => Metric::Accuracy,
            "precision" => Metric::Precision,
            "recall" => Metric::Recall,
            "f1" => Metric::F1,
            "mse" => Metric::Mse,
            "mae" => Metric::Mae,
            "r2" => Metric::R2,
            other => bail!(
                "metric",
                "unknown metric `{other}`; known: accuracy, precision, recall, f1, mse, mae, r2"
            ),
        })
    }
}

/// Predicted and true class labels from outputs and targets. Outputs with several columns are
/// scored by argmax; a single column is thresholded at `threshold` (0.5 for probabilities, 0 for
/// logits). Targets are class indices `[N]`/`[N, 1]`, or one-hot rows.
pub fn labels(
    output: &Tensor,
    target: &Tensor,
    threshold: f32,
) -> Result<(Vec<usize>, Vec<usize>, usize)> {
    let n = if output.rank() == 0 {
        1
    } else {
        output.dims()[0]
    };
    let cols = if output.rank() >= 2 {
        output.numel() / n.max(1)
    } else {
        1
    };
    let pred: Vec<usize> = if cols > 1 {
        output
            .reshape_to([n, cols])?
            .argmax(1, false)?
            .to_vec()
            .iter()
            .map(|&v| v as usize)
            .collect()
    } else {
        output
            .to_vec()
            .iter()
            .map(|&v| usize::from(v > threshold))
            .collect()
    };
    let truth: Vec<usize> = if target.numel() == n {
        target.to_indices("metrics", usize::MAX)?
    } else if target.numel() == n * cols {
        target
            .reshape_to([n, cols])?
            .argmax(1, false)?
            .to_vec()
            .iter()
            .map(|&v| v as usize)
            .collect()
    } else {
        bail!(
            "metrics",
            "cannot match outputs {} with targets {}",
            output.shape(),
            target.shape()
        );
    };
    let classes = cols
        .max(2)
        .max(truth.iter().copied().max().map_or(0, |m| m + 1));
    Ok((pred, truth, classes))
}

/// The confusion matrix `m[true][pred]`.
pub fn confusion(pred: &[usize], truth: &[usize], classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    for (&p, &t) in pred.iter().zip(truth) {
        if p < classes && t < classes {
            m[t][p] += 1;
        }
    }
    m
}

fn precision_recall(m: &[Vec<usize>]) -> (f64, f64, f64) {
    let classes = m.len();
    let per_class = |c: usize| {
        let tp = m[c][c] as f64;
        let predicted: f64 = (0..classes).map(|t| m[t][c] as f64).sum();
        let actual: f64 = m[c].iter().sum::<usize>() as f64;
        let p = if predicted > 0.0 { tp / predicted } else { 0.0 };
        let r = if actual > 0.0 { tp / actual } else { 0.0 };
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        (p, r, f)
    };
    if classes == 2 {
        return per_class(1);
    }
    let all: Vec<(f64, f64, f64)> = (0..classes).map(per_class).collect();
    let k = classes as f64;
    (
        all.iter().map(|x| x.0).sum::<f64>() / k,
        all.iter().map(|x| x.1).sum::<f64>() / k,
        all.iter().map(|x| x.2).sum::<f64>() / k,
    )
}

/// Computes `metric` for `output` against `target`.
pub fn compute(metric: Metric, output: &Tensor, target: &Tensor, threshold: f32) -> Result<f64> {
    match metric {
        Metric::Accuracy | Metric::Precision | Metric::Recall | Metric::F1 => {
            let (pred, truth, classes) = labels(output, target, threshold)?;
            if pred.is_empty() {
                return Ok(0.0);
            }
            if metric == Metric::Accuracy {
                return Ok(
                    pred.iter().zip(&truth).filter(|(p, t)| p == t).count() as f64
                        / pred.len() as f64,
                );
            }
            let (p, r, f) = precision_recall(&confusion(&pred, &truth, classes));
            Ok(match metric {
                Metric::Precision => p,
                Metric::Recall => r,
                _ => f,
            })
        }
        Metric::Mse | Metric::Mae | Metric::R2 => {
            if output.numel() != target.numel() {
                bail!(
                    "metrics",
                    "{} needs as many outputs as targets, got {} and {}",
                    metric.name(),
                    output.shape(),
                    target.shape()
                );
            }
            let (o, t) = (output.to_vec(), target.to_vec());
            let n = o.len().max(1) as f64;
            let res: f64 = o
                .iter()
                .zip(&t)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum();
            Ok(match metric {
                Metric::Mse => res / n,
                Metric::Mae => {
                    o.iter()
                        .zip(&t)
                        .map(|(a, b)| (a - b).abs() as f64)
                        .sum::<f64>()
                        / n
                }
                _ => {
                    let mean = t.iter().map(|&v| v as f64).sum::<f64>() / n;
                    let tot: f64 = t.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
                    if tot == 0.0 {
                        0.0
                    } else {
                        1.0 - res / tot
                    }
                }
            })
        }
    }
}
