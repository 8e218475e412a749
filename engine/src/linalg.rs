//! Principal component analysis, and the symmetric eigen-decomposition behind it.
//!
//! PCA finds the `k` directions along which data varies most: the top eigenvectors of its
//! covariance matrix. The covariance is one matrix product on the engine's GEMM. Its
//! eigenvectors come from the cyclic Jacobi method when the data has at most
//! [`DIRECT_LIMIT`] features (exact, and cheap at that size), and from subspace iteration
//! otherwise: `k + 10` random directions multiplied by the covariance and re-orthonormalised until
//! they stop turning, then a small Jacobi problem inside that subspace (Rayleigh–Ritz). That is
//! fast for the few components a lesson needs out of hundreds of pixels.

use crate::error::{bail, Result};
use crate::tensor::rng::Rng;
use crate::Tensor;

/// Above this many features, PCA uses subspace iteration instead of a full eigen-decomposition.
pub const DIRECT_LIMIT: usize = 200;

/// A fitted PCA: project with [`Pca::transform`], reconstruct with [`Pca::inverse_transform`].
#[derive(Clone, Debug)]
pub struct Pca {
    /// The mean of each feature, `[d]`.
    pub mean: Tensor,
    /// The principal directions as rows of unit length, `[k, d]`, strongest first.
    pub components: Tensor,
    /// The variance of the data along each component.
    pub explained_variance: Vec<f32>,
    /// Each component's share of the total variance.
    pub explained_ratio: Vec<f32>,
}

impl Pca {
    /// Fits `k` components to the rows of `x` (`[n, d]`, n ≥ 2).
    pub fn fit(x: &Tensor, k: usize) -> Result<Pca> {
        crate::no_grad(|| fit(x, k))
    }

    /// Coordinates of the rows of `x` along the components: `(x − mean) · componentsᵀ`, `[n, k]`.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        crate::no_grad(|| x.sub(&self.mean)?.matmul(&self.components.t()?))
    }

    /// Points back in the data space: `z · components + mean`, `[n, d]`.
    pub fn inverse_transform(&self, z: &Tensor) -> Result<Tensor> {
        crate::no_grad(|| z.matmul(&self.components)?.add(&self.mean))
    }
}

fn fit(x: &Tensor, k: usize) -> Result<Pca> {
    let dims = x.dims().to_vec();
    let [n, d] = dims[..] else {
        bail!(
            "pca",
            "expects data as [samples, features], got {}",
            x.shape()
        );
    };
    if n < 2 || k == 0 || k > d {
        bail!(
            "pca",
            "needs at least 2 samples and 1 <= k <= {d} features, got {n} samples and k = {k}"
        );
    }
    let mean = x.mean(&[0], false)?;
    let centred = x.sub(&mean)?;
    let cov = centred.t()?.matmul(&centred)?.div_scalar((n - 1) as f32);
    let c: Vec<f64> = cov.to_vec().into_iter().map(f64::from).collect();
    let total: f64 = (0..d).map(|i| c[i * d + i]).sum();
    let (values, vectors) = if d <= DIRECT_LIMIT {
        symmetric_eigen(&c, d)
    } else {
        top_eigen(&c, d, k)
    };
    let mut comps = Vec::with_capacity(k * d);
    for v in vectors.chunks_exact(d).take(k) {
        // Fix the sign so that results do not depend on rounding: largest entry positive.
        let big = v
            .iter()
            .fold(0.0f64, |m, &x| if x.abs() > m.abs() { x } else { m });
        let s = if big < 0.0 { -1.0 } else { 1.0 };
        comps.extend(v.iter().map(|&x| (x * s) as f32));
    }
    let explained_variance: Vec<f32> = values.iter().take(k).map(|&v| v.max(0.0) as f32).collect();
    let explained_ratio = explained_variance
        .iter()
        .map(|&v| {
            if total > 0.0 {
                (v as f64 / total) as f32
            } else {
                0.0
            }
        })
        .collect();
    Ok(Pca {
        mean,
        components: Tensor::from_vec(comps, [k, d])?,
        explained_variance,
        explained_ratio,
    })
}

/// Eigenvalues (falling) and eigenvectors (as rows, in the same order) of the symmetric `n × n`
/// matrix `a`, by cyclic Jacobi rotations until the off-diagonal part is negligible.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "symmetric_eigen: a is not {n} x {n}");
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-12 * norm.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                // The rotation that zeroes a[p][q] (Golub & Van Loan, algorithm 8.5.1).
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                // Eigenvectors are kept as rows of v.
                for k in 0..n {
                    let (vpk, vqk) = (v[p * n + k], v[q * n + k]);
                    v[p * n + k] = c * vpk - s * vqk;
                    v[q * n + k] = s * vpk + c * vqk;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let vectors = order
        .iter()
        .flat_map(|&i| v[i * n..(i + 1) * n].to_vec())
        .collect();
    (values, vectors)
}

/// The top `k` eigenpairs of the symmetric `n × n` matrix `c` by subspace iteration with
/// Rayleigh–Ritz (see the module docs). Rows of the returned vectors are eigenvectors.
fn top_eigen(c: &[f64], n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let m = (k + 10).min(n);
    let mut rng = Rng::seed(0x5eed);
    // q holds m orthonormal vectors of length n, as rows.
    let mut q: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
    orthonormalize(&mut q, n);
    let mut previous = vec![0.0; m];
    for _ in 0..300 {
        let z = times_rows(c, n, &q);
        let ritz: Vec<f64> = (0..m)
            .map(|i| (0..n).map(|j| q[i * n + j] * z[i * n + j]).sum())
            .collect();
        q = z;
        orthonormalize(&mut q, n);
        let change = ritz
            .iter()
            .zip(&previous)
            .take(k)
            .map(|(a, b)| ((a - b) / a.abs().max(1e-30)).abs())
            .fold(0.0, f64::max);
        previous = ritz;
        if change < 1e-10 {
            break;
        }
    }
    // Rayleigh–Ritz: the eigenvectors of the small matrix qᵀ c q rotate q onto the eigenvectors.
    let z = times_rows(c, n, &q);
    let mut t = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..m {
            t[i * m + j] = (0..n).map(|l| q[i * n + l] * z[j * n + l]).sum();
        }
    }
    for i in 0..m {
        for j in 0..i {
            let avg = 0.5 * (t[i * m + j] + t[j * m + i]);
            t[i * m + j] = avg;
            t[j * m + i] = avg;
        }
    }
    let (values, small) = symmetric_eigen(&t, m);
    let mut vectors = vec![0.0; m * n];
    for r in 0..m {
        for i in 0..m {
            let w = small[r * m + i];
            for l in 0..n {
                vectors[r * n + l] += w * q[i * n + l];
            }
        }
    }
    (values, vectors)
}

/// `c` times each row of `q` (c symmetric, so this is (c · qᵀ)ᵀ).
fn times_rows(c: &[f64], n: usize, q: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; q.len()];
    for (o, row) in out.chunks_exact_mut(n).zip(q.chunks_exact(n)) {
        for (i, oi) in o.iter_mut().enumerate() {
            *oi = c[i * n..(i + 1) * n]
                .iter()
                .zip(row)
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    out
}

/// Modified Gram–Schmidt on the rows of `q` (each of length `n`).
fn orthonormalize(q: &mut [f64], n: usize) {
    let m = q.len() / n;
    for i in 0..m {
        for j in 0..i {
            let d: f64 = (0..n).map(|l| q[i * n + l] * q[j * n + l]).sum();
            for l in 0..n {
                q[i * n + l] -= d * q[j * n + l];
            }
        }
        let norm = (0..n).map(|l| q[i * n + l].powi(2)).sum::<f64>().sqrt();
        for l in 0..n {
            q[i * n + l] /= norm.max(1e-300);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_recovers_a_known_spectrum() {
        // a = Vᵀ diag(5, 2, 1) V for a rotation V.
        let (c, s) = (0.6f64, 0.8f64);
        let v = [c, s, 0.0, -s, c, 0.0, 0.0, 0.0, 1.0];
        let lam = [5.0, 2.0, 1.0];
        let mut a = [0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                a[i * 3 + j] = (0..3).map(|k| v[k * 3 + i] * lam[k] * v[k * 3 + j]).sum();
            }
        }
        let (values, vectors) = symmetric_eigen(&a, 3);
        for (x, y) in values.iter().zip(lam) {
            assert!((x - y).abs() < 1e-10);
        }
        let dot: f64 = (0..3).map(|k| vectors[k] * v[k]).sum();
        assert!((dot.abs() - 1.0).abs() < 1e-10);
    }

    #[test]
    fn subspace_iteration_agrees_with_jacobi() {
        let n = 40;
        let mut rng = Rng::seed(1);
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[k * n + i] * b[k * n + j]).sum();
            }
        }
        let (full, fv) = symmetric_eigen(&a, n);
        let (top, tv) = top_eigen(&a, n, 3);
        for r in 0..3 {
            assert!(
                (full[r] - top[r]).abs() < 1e-6 * full[0],
                "{r}: {} {}",
                full[r],
                top[r]
            );
            let dot: f64 = (0..n).map(|l| fv[r * n + l] * tv[r * n + l]).sum();
            assert!((dot.abs() - 1.0).abs() < 1e-6, "{r}: {dot}");
        }
    }
}
