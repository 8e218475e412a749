//! Helpers shared by the integration tests: the finite-difference gradient check.
#![allow(dead_code)]

use engine::{no_grad, Result, Rng, Tensor};

/// Random values in ±[0.2, 1.5): away from 0, where relu, abs, clamp and friends have kinks.
pub fn away_from_zero(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            let m = 0.2 + 1.3 * rng.next_f32();
            if rng.next_f32() < 0.5 {
                -m
            } else {
                m
            }
        })
        .collect();
    Tensor::from_vec(v, shape.to_vec()).unwrap()
}

/// Random values in [0.5, 2): for log, sqrt, pow and division.
pub fn positive(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::rand_with(shape.to_vec(), 0.5, 2.0, rng)
}

/// The loss `sum(f(inputs) * r)` in f64, with fixed random weights `r` so that no gradient
/// component can cancel out by symmetry.
fn weighted_loss(out: &Tensor, r: &[f64]) -> f64 {
    out.data().iter().zip(r).map(|(&y, &w)| y as f64 * w).sum()
}

/// Checks the gradients that `backward()` gives for `f` at `inputs` against central finite
/// differences, for every element of every input. The step (1e-2) and tolerances (2e-3 relative,
/// 5e-4 absolute) suit f32: rounding error in the difference quotient is ~1e-5 and truncation
/// error ~1e-5 for the smooth ops checked, while a wrong rule is off by O(1).
pub fn gradcheck(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let leaves: Vec<Tensor> = inputs.iter().map(|t| t.requires_grad()).collect();
    let out = f(&leaves).unwrap_or_else(|e| panic!("{name}: forward failed: {e}"));
    let mut rng = Rng::seed(99);
    let r: Vec<f64> = (0..out.numel())
        .map(|_| rng.next_f64() * 2.0 - 1.0)
        .collect();
    let r_t = Tensor::from_vec(r.iter().map(|&x| x as f32).collect(), out.shape().clone()).unwrap();
    out.mul(&r_t)
        .unwrap()
        .sum_all()
        .backward()
        .unwrap_or_else(|e| panic!("{name}: backward failed: {e}"));

    let eps = 1e-2f32;
    for (i, leaf) in leaves.iter().enumerate() {
        let analytic = leaf
            .grad()
            .unwrap_or_else(|| Tensor::zeros(leaf.shape().clone()))
            .to_vec();
        assert_eq!(
            analytic.len(),
            leaf.numel(),
            "{name}: gradient of input {i} has the wrong size"
        );
        let base = inputs[i].to_vec();
        for j in 0..base.len() {
            let eval = |delta: f32| -> f64 {
                let mut v = base.clone();
                v[j] += delta;
                let mut args: Vec<Tensor> = inputs.to_vec();
                args[i] = Tensor::from_vec(v, inputs[i].shape().clone()).unwrap();
                no_grad(|| weighted_loss(&f(&args).unwrap(), &r))
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
            let a = analytic[j] as f64;
            let tol = 5e-4 + 2e-3 * a.abs().max(numeric.abs());
            assert!(
                (a - numeric).abs() <= tol,
                "{name}: d/d input{i}[{j}]: backward gives {a:.6}, finite differences give {numeric:.6}"
            );
        }
    }
}

/// A tensor from the fixtures' JSON form `{"shape": [...], "data": [...]}`.
pub fn from_json(v: &serde_json::Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// Reads a JSON fixture from `tests/fixtures/`.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Elementwise `|a - b| <= rel * max(|a|, |b|) + abs`, with a message naming the element.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rel: f32, abs: f32) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    for (i, (a, b)) in got.to_vec().iter().zip(want.to_vec()).enumerate() {
        let tol = rel * a.abs().max(b.abs()) + abs;
        assert!(
            (a - b).abs() <= tol,
            "{what}[{i}]: gradbook {a:e}, PyTorch {b:e} (difference {:e})",
            (a - b).abs()
        );
    }
}
