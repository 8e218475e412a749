//! Data sets in scripts: the shipped files, splits, standardisation, one-hot.

use engine::data::{one_hot, Dataset, Standardizer};
use engine::Tensor;
use rhai::{Array, Dynamic, Engine, INT};

use super::{err, fail, floats, RResult, SharedHost};

fn datasets(a: &Array) -> RResult<Vec<Dataset>> {
    a.iter()
        .map(|d| {
            d.clone().try_cast::<Dataset>().map_or_else(
                || {
                    fail(format!(
                        "expected a list of data sets, found a {}",
                        d.type_name()
                    ))
                },
                Ok,
            )
        })
        .collect()
}

/// Registers data-set functions.
pub fn register(e: &mut Engine, host: SharedHost) {
    e.register_type_with_name::<Dataset>("Dataset");
    e.register_fn("to_string", |d: &mut Dataset| {
        format!(
            "Dataset({} samples, x {}, y {})",
            d.len(),
            d.x.shape(),
            d.y.shape()
        )
    });
    e.register_fn("dataset", |x: Tensor, y: Tensor| -> RResult<Dataset> {
        Dataset::new(x, y).map_err(err)
    });
    e.register_get("x", |d: &mut Dataset| d.x.clone());
    e.register_get("y", |d: &mut Dataset| d.y.clone());
    e.register_fn("len", |d: &mut Dataset| d.len() as INT);
    e.register_fn(
        "split",
        |d: &mut Dataset, fractions: Array, seed: INT| -> RResult<Array> {
            let f: Vec<f32> = floats(&fractions, "split")?
                .into_iter()
                .map(|v| v as f32)
                .collect();
            Ok(d.split(&f, seed as u64)
                .map_err(err)?
                .into_iter()
                .map(Dynamic::from)
                .collect())
        },
    );
    e.register_fn(
        "subset",
        |d: &mut Dataset, start: INT, end: INT| -> RResult<Dataset> {
            if start < 0 || end < start {
                return fail("subset: need 0 <= start <= end");
            }
            d.range(start as usize, (end as usize).min(d.len()))
                .map_err(err)
        },
    );
    e.register_fn(
        "batches",
        |d: &mut Dataset, size: INT, seed: INT| -> RResult<Array> {
            if size < 1 {
                return fail(format!(
                    "batches: the batch size must be at least 1, got {size}"
                ));
            }
            Ok(d.batches(size as usize, Some(seed as u64))
                .map_err(err)?
                .into_iter()
                .map(Dynamic::from)
                .collect())
        },
    );
    e.register_fn(
        "standardize",
        |train: Dataset, others: Array| -> RResult<Array> {
            let s = Standardizer::fit(&train.x).map_err(err)?;
            let fix = |d: &Dataset| -> RResult<Dynamic> {
                Ok(Dynamic::from(
                    Dataset::new(s.transform(&d.x).map_err(err)?, d.y.clone()).map_err(err)?,
                ))
            };
            let mut out = vec![fix(&train)?];
            for d in datasets(&others)? {
                out.push(fix(&d)?);
            }
            Ok(out)
        },
    );
    e.register_fn("one_hot", |labels: Tensor, k: INT| -> RResult<Tensor> {
        if k < 1 {
            return fail(format!(
                "one_hot: the number of classes must be positive, got {k}"
            ));
        }
        engine::tensor::budget::check("one_hot", &[labels.numel(), k as usize]).map_err(err)?;
        one_hot(&labels, k as usize).map_err(err)
    });
    let h = host.clone();
    e.register_fn("load_csv", move |path: &str| -> RResult<Dataset> {
        let p = h.borrow().readable(path)?;
        engine::io::csv::load_csv(p)
            .map_err(err)?
            .into_dataset("label")
            .map_err(err)
    });
    let h = host.clone();
    e.register_fn(
        "load_csv",
        move |path: &str, target: &str| -> RResult<Dataset> {
            let p = h.borrow().readable(path)?;
            engine::io::csv::load_csv(p)
                .map_err(err)?
                .into_dataset(target)
                .map_err(err)
        },
    );
    let h = host.clone();
    e.register_fn("digits", move || -> RResult<Dataset> {
        let p = h.borrow().readable("data/digits_8x8.csv")?;
        engine::io::csv::load_csv(p)
            .map_err(err)?
            .into_dataset("label")
            .map_err(err)
    });
    let h = host;
    e.register_fn(
        "load_idx",
        move |images: &str, labels: &str| -> RResult<Dataset> {
            let (pi, pl) = {
                let h = h.borrow();
                (h.readable(images)?, h.readable(labels)?)
            };
            let x = engine::io::idx::load_idx_images(pi).map_err(err)?;
            let y = engine::io::idx::load_idx_labels(pl).map_err(err)?;
            Dataset::new(x, y).map_err(err)
        },
    );
}
