//! The data sets of TensorFlow Playground, generated with a seed: four classification problems
//! (circle, exclusive-or, two Gaussians, spiral) and two regression surfaces (plane, Gaussians),
//! following the definitions in the Playground's `dataset.ts`, with its noise parameter (0 to 0.5).
//! Points lie in [-6, 6]²; classes are 0 and 1.

use crate::data::Dataset;
use crate::error::{bail, Result};
use crate::tensor::rng::Rng;
use crate::tensor::Tensor;

/// The names [`playground`] accepts.
pub const NAMES: [&str; 6] = ["circle", "xor", "gauss", "spiral", "plane", "gaussians"];

fn uniform(r: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * r.next_f64()
}

/// `n` points of the named Playground data set with the given noise.
pub fn playground(name: &str, n: usize, noise: f64, seed: u64) -> Result<Dataset> {
    if !(0.0..=1.0).contains(&noise) {
        bail!(
            "playground",
            "noise must be between 0 and 1 (the Playground uses 0 to 0.5), got {noise}"
        );
    }
    let mut r = Rng::seed(seed);
    let mut pts: Vec<(f64, f64, f64)> = Vec::with_capacity(n);
    match name {
        "circle" => {
            let radius = 5.0;
            let label = |x: f64, y: f64| {
                if (x * x + y * y).sqrt() < radius * 0.5 {
                    1.0
                } else {
                    0.0
                }
            };
            for i in 0..n {
                let (lo, hi) = if i < n / 2 {
                    (0.0, radius * 0.5)
                } else {
                    (radius * 0.7, radius)
                };
                let (rr, a) = (
                    uniform(&mut r, lo, hi),
                    uniform(&mut r, 0.0, 2.0 * std::f64::consts::PI),
                );
                let (x, y) = (rr * a.sin(), rr * a.cos());
                let (nx, ny) = (
                    uniform(&mut r, -radius, radius) * noise,
                    uniform(&mut r, -radius, radius) * noise,
                );
                pts.push((x, y, label(x + nx, y + ny)));
            }
        }
        "xor" => {
            let pad = 0.3;
            for _ in 0..n {
                let mut x = uniform(&mut r, -5.0, 5.0);
                x += if x > 0.0 { pad } else { -pad };
                let mut y = uniform(&mut r, -5.0, 5.0);
                y += if y > 0.0 { pad } else { -pad };
                let (nx, ny) = (
                    uniform(&mut r, -5.0, 5.0) * noise,
                    uniform(&mut r, -5.0, 5.0) * noise,
                );
                pts.push((x, y, if (x + nx) * (y + ny) >= 0.0 { 1.0 } else { 0.0 }));
            }
        }
        "gauss" => {
            let sd = (0.5 + 3.5 * (noise / 0.5).min(1.0)).sqrt();
            for i in 0..n {
                let (c, label) = if i < n / 2 { (2.0, 1.0) } else { (-2.0, 0.0) };
                pts.push((c + sd * r.normal(), c + sd * r.normal(), label));
            }
        }
        "spiral" => {
            let half = n / 2;
            for i in 0..n {
                let (j, delta, label) = if i < half {
                    (i, 0.0, 1.0)
                } else {
                    (i - half, std::f64::consts::PI, 0.0)
                };
                let m = if i < half { half } else { n - half }.max(1) as f64;
                let rr = j as f64 / m * 5.0;
                let t = 1.75 * j as f64 / m * 2.0 * std::f64::consts::PI + delta;
                let x = rr * t.sin() + uniform(&mut r, -1.0, 1.0) * noise;
                let y = rr * t.cos() + uniform(&mut r, -1.0, 1.0) * noise;
                pts.push((x, y, label));
            }
        }
        "plane" => {
            for _ in 0..n {
                let (x, y) = (uniform(&mut r, -6.0, 6.0), uniform(&mut r, -6.0, 6.0));
                let (nx, ny) = (
                    uniform(&mut r, -6.0, 6.0) * noise,
                    uniform(&mut r, -6.0, 6.0) * noise,
                );
                pts.push((x, y, ((x + nx + y + ny) / 10.0).clamp(-1.0, 1.0)));
            }
        }
        "gaussians" => {
            const CENTRES: [(f64, f64, f64); 6] = [
                (-4.0, 2.5, 1.0),
                (0.0, 2.5, -1.0),
                (4.0, 2.5, 1.0),
                (-4.0, -2.5, -1.0),
                (0.0, -2.5, 1.0),
                (4.0, -2.5, -1.0),
            ];
            for _ in 0..n {
                let (x, y) = (uniform(&mut r, -6.0, 6.0), uniform(&mut r, -6.0, 6.0));
                let (nx, ny) = (
                    uniform(&mut r, -6.0, 6.0) * noise,
                    uniform(&mut r, -6.0, 6.0) * noise,
                );
                let mut label: f64 = 0.0;
                for (cx, cy, sign) in CENTRES {
                    let d = ((x + nx - cx).powi(2) + (y + ny - cy).powi(2)).sqrt();
                    let v = sign * (1.0 - d / 2.0).clamp(0.0, 1.0);
                    if v.abs() > label.abs() {
                        label = v;
                    }
                }
                pts.push((x, y, label));
            }
        }
        other => bail!(
            "playground",
            "unknown data set `{other}`; choose one of {}",
            NAMES.join(", ")
        ),
    }
    // Shuffle so that any prefix mixes the classes.
    r.shuffle(&mut pts);
    let x = Tensor::from_vec(
        pts.iter().flat_map(|p| [p.0 as f32, p.1 as f32]).collect(),
        [n, 2],
    )?;
    let y = Tensor::from_vec(pts.iter().map(|p| p.2 as f32).collect(), [n])?;
    Dataset::new(x, y)
}

/// Whether the named data set is a regression problem.
pub fn is_regression(name: &str) -> bool {
    matches!(name, "plane" | "gaussians")
}

/// The Playground's input features of points `[n, 2]`, by name: `x1`, `x2`, `x1^2`, `x2^2`,
/// `x1x2`, `sin(x1)`, `sin(x2)`. Returns `[n, features]`.
pub fn features(points: &Tensor, names: &[String]) -> Result<Tensor> {
    if points.rank() != 2 || points.dims()[1] != 2 {
        bail!("features", "expects points [n, 2], got {}", points.shape());
    }
    if names.is_empty() {
        bail!(
            "features",
            "choose at least one feature: x1, x2, x1^2, x2^2, x1x2, sin(x1), sin(x2)"
        );
    }
    let (x1, x2) = (points.narrow(1, 0, 1)?, points.narrow(1, 1, 1)?);
    let cols = names
        .iter()
        .map(|n| {
            Ok(match n.replace(' ', "").as_str() {
                "x1" => x1.clone(),
                "x2" => x2.clone(),
                "x1^2" | "x1²" => x1.square(),
                "x2^2" | "x2²" => x2.square(),
                "x1x2" | "x1*x2" => x1.mul(&x2)?,
                "sin(x1)" => x1.sin(),
                "sin(x2)" => x2.sin(),
                other => bail!("features", "unknown feature `{other}`; choose from x1, x2, x1^2, x2^2, x1x2, sin(x1), sin(x2)"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::concat(&cols, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_definitions() {
        let d = playground("xor", 200, 0.0, 1).unwrap();
        let (x, y) = (d.x.to_vec(), d.y.to_vec());
        for i in 0..200 {
            assert_eq!(
                y[i],
                if x[2 * i] * x[2 * i + 1] >= 0.0 {
                    1.0
                } else {
                    0.0
                }
            );
        }
        let c = playground("circle", 200, 0.0, 1).unwrap();
        let (x, y) = (c.x.to_vec(), c.y.to_vec());
        for i in 0..200 {
            assert_eq!(
                y[i],
                if (x[2 * i].powi(2) + x[2 * i + 1].powi(2)).sqrt() < 2.5 {
                    1.0
                } else {
                    0.0
                }
            );
        }
        assert_eq!(
            playground("spiral", 100, 0.0, 1)
                .unwrap()
                .y
                .sum_all()
                .item()
                .unwrap(),
            50.0
        );
        assert!(playground("moons", 10, 0.0, 1).is_err());
        let f = features(&c.x, &["x1".into(), "x1^2".into(), "sin(x2)".into()]).unwrap();
        assert_eq!(f.dims(), &[200, 3]);
        assert_eq!(f.get(&[3, 1]).unwrap(), c.x.get(&[3, 0]).unwrap().powi(2));
    }
}
