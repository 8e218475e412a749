//! Making tensors: constants, ranges, and seeded random draws.

use super::rng::{with_default_rng, Rng};
use super::{Shape, Tensor};
use crate::error::{bail, Result};

impl Tensor {
    /// A tensor holding `data` (row-major) with the given shape.
    ///
    /// ```
    /// let t = engine::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap();
    /// assert_eq!(t.dims(), &[2, 2]);
    /// ```
    pub fn from_vec(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            bail!(
                "from_vec",
                "{} values cannot fill shape {} ({} elements)",
                data.len(),
                shape,
                shape.numel()
            );
        }
        Ok(Tensor::from_data(data, shape))
    }

    /// A copy of `data` with the given shape.
    pub fn from_slice(data: &[f32], shape: impl Into<Shape>) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A one-element tensor with no axes.
    pub fn scalar(value: f32) -> Tensor {
        Tensor::from_data(vec![value], Shape::scalar())
    }

    /// A tensor filled with `value`.
    pub fn full(shape: impl Into<Shape>, value: f32) -> Tensor {
        let shape = shape.into();
        Tensor::from_data(vec![value; shape.numel()], shape)
    }

    /// A tensor of zeros.
    pub fn zeros(shape: impl Into<Shape>) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    /// A tensor of ones.
    pub fn ones(shape: impl Into<Shape>) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// Zeros shaped like `self`.
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape().clone())
    }

    /// Ones shaped like `self`.
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape().clone())
    }

    /// `start, start + step, ...` up to but excluding `end`, as `torch.arange`.
    pub fn arange(start: f32, end: f32, step: f32) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            bail!(
                "arange",
                "start {start}, end {end} and step {step} must be finite, and step non-zero"
            );
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        super::budget::check("arange", &[n])?;
        let data: Vec<f32> = (0..n).map(|i| start + step * i as f32).collect();
        Ok(Tensor::from_data(data, Shape::new(&[n])))
    }

    /// `n` evenly spaced values from `start` to `end`, both included, as `torch.linspace`.
    pub fn linspace(start: f32, end: f32, n: usize) -> Tensor {
        let data: Vec<f32> = match n {
            0 => vec![],
            1 => vec![start],
            _ => {
                let step = (end - start) / (n - 1) as f32;
                (0..n)
                    .map(|i| {
                        if i == n - 1 {
                            end
                        } else {
                            start + step * i as f32
                        }
                    })
                    .collect()
            }
        };
        Tensor::from_data(data, Shape::new(&[n]))
    }

    /// The `n`×`n` identity matrix.
    pub fn eye(n: usize) -> Tensor {
        let mut data = vec![0.0; n * n];
        for i in 0..n {
            data[i * n + i] = 1.0;
        }
        Tensor::from_data(data, Shape::new(&[n, n]))
    }

    /// Uniform draws in [low, high) from `rng`.
    pub fn rand_with(shape: impl Into<Shape>, low: f32, high: f32, rng: &mut Rng) -> Tensor {
        let shape = shape.into();
        let data = (0..shape.numel())
            .map(|_| low + (high - low) * rng.next_f32())
            .collect();
        Tensor::from_data(data, shape)
    }

    /// Normal draws with the given mean and standard deviation from `rng`.
    pub fn randn_with(shape: impl Into<Shape>, mean: f32, std: f32, rng: &mut Rng) -> Tensor {
        let shape = shape.into();
        let data = (0..shape.numel())
            .map(|_| mean + std * rng.normal() as f32)
            .collect();
        Tensor::from_data(data, shape)
    }

    /// Uniform draws in [0, 1) from the default generator (see [`manual_seed`](super::rng::manual_seed)).
    pub fn rand(shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        with_default_rng(|r| Tensor::rand_with(shape, 0.0, 1.0, r))
    }

    /// Standard normal draws from the default generator (see [`manual_seed`](super::rng::manual_seed)).
    pub fn randn(shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        with_default_rng(|r| Tensor::randn_with(shape, 0.0, 1.0, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            Tensor::arange(0.0, 5.0, 2.0).unwrap().to_vec(),
            vec![0.0, 2.0, 4.0]
        );
        assert_eq!(
            Tensor::arange(3.0, 0.0, -1.0).unwrap().to_vec(),
            vec![3.0, 2.0, 1.0]
        );
        assert_eq!(
            Tensor::linspace(0.0, 1.0, 5).to_vec(),
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        );
        assert_eq!(Tensor::eye(2).to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
        assert!(Tensor::arange(0.0, 1.0, 0.0).is_err());
    }

    #[test]
    fn seeded_draws_repeat() {
        let a = Tensor::randn_with([3, 4], 0.0, 1.0, &mut Rng::seed(5));
        let b = Tensor::randn_with([3, 4], 0.0, 1.0, &mut Rng::seed(5));
        assert_eq!(a.to_vec(), b.to_vec());
        let u = Tensor::rand_with([1000], -1.0, 1.0, &mut Rng::seed(5)).to_vec();
        assert!(u.iter().all(|&x| (-1.0..1.0).contains(&x)));
    }

    #[test]
    fn from_vec_checks_length() {
        let e = Tensor::from_vec(vec![1.0; 5], [2, 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "from_vec: 5 values cannot fill shape [2, 3] (6 elements)"
        );
    }
}
