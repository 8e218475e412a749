//! Data sets in memory: features and targets with samples on the first axis, seeded shuffling and
//! batching, train/validation/test splits, standardisation fitted on the training split only, and
//! one-hot encoding; and TensorFlow Playground's synthetic data sets ([`synthetic`]).

pub mod synthetic;

use crate::error::{bail, Result};
use crate::tensor::rng::Rng;
use crate::tensor::Tensor;

/// Features `x` and targets `y`, one sample per entry of the first axis of each.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub x: Tensor,
    pub y: Tensor,
}

impl Dataset {
    /// Pairs features and targets, which must hold the same number of samples.
    pub fn new(x: Tensor, y: Tensor) -> Result<Dataset> {
        if x.rank() == 0 || y.rank() == 0 || x.dims()[0] != y.dims()[0] {
            bail!(
                "Dataset",
                "features {} and targets {} must have the same number of samples on axis 0",
                x.shape(),
                y.shape()
            );
        }
        Ok(Dataset { x, y })
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.x.dims()[0]
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        Ok(Dataset {
            x: self.x.index_select(0, indices)?,
            y: self.y.index_select(0, indices)?,
        })
    }

    /// Samples `start..end`.
    pub fn range(&self, start: usize, end: usize) -> Result<Dataset> {
        Ok(Dataset {
            x: self.x.slice(0, start, end)?,
            y: self.y.slice(0, start, end)?,
        })
    }

    /// A permutation of `0..len` drawn with `seed`.
    pub fn permutation(&self, seed: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        Rng::seed(seed).shuffle(&mut idx);
        idx
    }

    /// Splits the samples, shuffled with `seed`, into parts of the given fractions (which must sum
    /// to 1), e.g. `[0.7, 0.15, 0.15]` for train/validation/test.
    pub fn split(&self, fractions: &[f32], seed: u64) -> Result<Vec<Dataset>> {
        let total: f32 = fractions.iter().sum();
        if fractions.is_empty() || fractions.iter().any(|&f| f < 0.0) || (total - 1.0).abs() > 1e-4
        {
            bail!(
                "split",
                "fractions {fractions:?} must be non-negative and sum to 1"
            );
        }
        let idx = self.permutation(seed);
        let n = self.len();
        let mut parts = Vec::with_capacity(fractions.len());
        let mut start = 0;
        let mut acc = 0.0;
        for (i, &f) in fractions.iter().enumerate() {
            acc += f;
            let end = if i + 1 == fractions.len() {
                n
            } else {
                ((acc * n as f32).round() as usize).min(n)
            };
            parts.push(self.subset(&idx[start..end])?);
            start = end;
        }
        Ok(parts)
    }

    /// The batches of one epoch: `batch_size` samples each (the last may be smaller), in a
    /// shuffled order drawn with `shuffle_seed`, or in order when it is `None`.
    pub fn batches(&self, batch_size: usize, shuffle_seed: Option<u64>) -> Result<Vec<Dataset>> {
        if batch_size == 0 {
            bail!("batches", "batch size must be positive");
        }
        match shuffle_seed {
            None => (0..self.len())
                .step_by(batch_size)
                .map(|s| self.range(s, (s + batch_size).min(self.len())))
                .collect(),
            Some(seed) => self
                .permutation(seed)
                .chunks(batch_size)
                .map(|c| self.subset(c))
                .collect(),
        }
    }
}

/// Per-feature mean and standard deviation, fitted on training data and applied to any split
/// (fitting on all the data would leak the test set into training).
#[derive(Clone, Debug)]
pub struct Standardizer {
    pub mean: Tensor,
    pub std: Tensor,
}

impl Standardizer {
    /// Fits on `x` (`[N, features...]`): statistics over axis 0. Constant features get std 1.
    pub fn fit(x: &Tensor) -> Result<Standardizer> {
        if x.rank() == 0 || x.dims()[0] < 2 {
            bail!(
                "Standardizer",
                "needs at least two samples to estimate a spread, got {}",
                x.shape()
            );
        }
        let mean = x.mean(&[0], true)?;
        let std = x.var_with(&[0], 0, true)?.sqrt();
        let std = std
            .gt(&Tensor::scalar(1e-8))?
            .where_(&std, &Tensor::scalar(1.0))?;
        Ok(Standardizer { mean, std })
    }

    /// `(x - mean) / std`.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        x.sub(&self.mean)?.div(&self.std)
    }

    /// Undoes [`transform`](Self::transform).
    pub fn inverse(&self, x: &Tensor) -> Result<Tensor> {
        x.mul(&self.std)?.add(&self.mean)
    }
}

/// One-hot rows `[N, classes]` for class indices `[N]` (whole numbers in `0..classes`).
pub fn one_hot(labels: &Tensor, classes: usize) -> Result<Tensor> {
    let idx = labels.to_indices("one_hot", classes)?;
    let mut data = vec![0.0; idx.len() * classes];
    for (i, &c) in idx.iter().enumerate() {
        data[i * classes + c] = 1.0;
    }
    Tensor::from_vec(data, [idx.len(), classes])
}
