//! A model's state — parameters and buffers by name — and loading it back with every name and
//! shape checked before anything is changed.

use std::collections::HashMap;

use super::Module;
use crate::error::{bail, Result};
use crate::tensor::Tensor;

/// Parameters then buffers, named as in PyTorch's `state_dict()`.
pub fn state_dict(model: &dyn Module) -> Vec<(String, Tensor)> {
    let mut all = model.named_parameters();
    all.extend(model.named_buffers());
    all
}

/// Checks that `values` fit the model: every name the model has is present with the same shape,
/// and (when `strict`) there are no extra names. The error lists everything that differs.
pub fn check_state_dict(
    model: &dyn Module,
    values: &HashMap<String, Tensor>,
    strict: bool,
) -> Result<()> {
    let own = state_dict(model);
    let mut problems = Vec::new();
    for (name, t) in &own {
        match values.get(name) {
            None => problems.push(format!("missing `{name}` (shape {})", t.shape())),
            Some(v) if v.shape() != t.shape() => problems.push(format!(
                "`{name}` has shape {} in the file but {} in the model",
                v.shape(),
                t.shape()
            )),
            Some(_) => {}
        }
    }
    if strict {
        let mut extra: Vec<&String> = values
            .keys()
            .filter(|k| !own.iter().any(|(n, _)| n == *k))
            .collect();
        extra.sort();
        problems.extend(
            extra
                .into_iter()
                .map(|k| format!("unexpected `{k}` (not in the model)")),
        );
    }
    if !problems.is_empty() {
        bail!(
            "load_state_dict",
            "the saved state does not fit this model; nothing was loaded:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Copies `values` into the model's parameters and buffers, after [`check_state_dict`]: on any
/// mismatch the model is left unchanged.
pub fn load_state_dict(
    model: &dyn Module,
    values: &HashMap<String, Tensor>,
    strict: bool,
) -> Result<()> {
    check_state_dict(model, values, strict)?;
    for (name, t) in &state_dict(model) {
        t.assign(&values[name])?;
    }
    Ok(())
}
