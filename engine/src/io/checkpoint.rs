//! Checkpoints in the safetensors format (readable by PyTorch, candle, burn): the model's
//! parameters and buffers under PyTorch's `state_dict` names, the optimizer's state under
//! `optimizer.{param}.{slot}`, and training metadata (epoch, seed, history, ...) as strings in the
//! header. Written atomically; on loading, every name, shape and dtype is checked before the model
//! or the optimizer is changed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::atomic::write_atomic;
use crate::error::{bail, Error, Result};
use crate::nn::{self, Module};
use crate::optim::Optimizer;
use crate::tensor::Tensor;

/// The value of the `format` metadata key in files gradbook writes.
pub const FORMAT: &str = "gradbook-checkpoint/1";
const OPTIMIZER_PREFIX: &str = "optimizer.";
/// The header metadata key under which gradbook stores its metadata (a JSON object of strings).
const METADATA_KEY: &str = "gradbook";

/// PyTorch stores this batch-norm counter as int64; so do we, so that `load_state_dict` in
/// PyTorch gets the dtype it expects.
fn is_integer_buffer(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Tensors and header metadata as read from a safetensors file.
pub struct Contents {
    pub tensors: Vec<(String, Tensor)>,
    pub metadata: BTreeMap<String, String>,
}

/// Serialises named tensors and metadata to safetensors bytes.
pub fn to_bytes(
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let data = t.data();
            if is_integer_buffer(name) {
                (
                    name.clone(),
                    Dtype::I64,
                    t.dims().to_vec(),
                    data.iter()
                        .flat_map(|&v| (v as i64).to_le_bytes())
                        .collect(),
                )
            } else {
                (
                    name.clone(),
                    Dtype::F32,
                    t.dims().to_vec(),
                    data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            }
        })
        .collect();
    let views = raw
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::new("save_checkpoint", format!("cannot describe a tensor: {e}")))?;
    // safetensors takes the header metadata as a HashMap, whose order is random per instance; one
    // entry holding a key-sorted JSON object makes the file's bytes reproducible.
    let sorted = serde_json::to_string(metadata)
        .map_err(|e| Error::new("save_checkpoint", format!("cannot encode metadata: {e}")))?;
    let meta: HashMap<String, String> = HashMap::from([(METADATA_KEY.to_string(), sorted)]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::new("save_checkpoint", format!("cannot serialise: {e}")))
}

/// Parses safetensors bytes; `source` names them in errors. Accepts f32 tensors, and i64 ones for
/// integer buffers.
pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Contents> {
    let explain = |e: safetensors::SafeTensorError| {
        Error::new("load_checkpoint", format!("{source} is not a valid safetensors file ({e}); it may be truncated or written by something else"))
    };
    let st = SafeTensors::deserialize(bytes).map_err(explain)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(explain)?;
    let mut metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    // gradbook's own metadata is one JSON object under METADATA_KEY; other writers' keys stay as they are.
    if let Some(packed) = metadata.remove(METADATA_KEY) {
        let inner: BTreeMap<String, String> = serde_json::from_str(&packed).map_err(|e| {
            Error::new(
                "load_checkpoint",
                format!("{source}: unreadable gradbook metadata: {e}"),
            )
        })?;
        metadata.extend(inner);
    }
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::I64 => view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("chunks of 8")) as f32).collect(),
            other => bail!("load_checkpoint", "tensor `{name}` in {source} has dtype {other:?}; gradbook reads float32 (and int64 counters)"),
        };
        tensors.push((name, Tensor::from_vec(data, shape)?));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Contents { tensors, metadata })
}

/// Reads a safetensors file.
pub fn read(path: impl AsRef<Path>) -> Result<Contents> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| {
        Error::new(
            "load_checkpoint",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    from_bytes(&bytes, &path.display().to_string())
}

/// Saves `model` (and `optimizer`'s state, if given) with `metadata` to `path`, atomically.
pub fn save(
    path: impl AsRef<Path>,
    model: &dyn Module,
    optimizer: Option<&Optimizer>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut tensors = nn::state_dict(model);
    let mut meta = metadata.clone();
    meta.insert("format".into(), FORMAT.into());
    if let Some(opt) = optimizer {
        let (state, scalars) = opt.state_dict();
        tensors.extend(
            state
                .into_iter()
                .map(|(n, t)| (format!("{OPTIMIZER_PREFIX}{n}"), t)),
        );
        let mut info = serde_json::Map::new();
        info.insert("name".into(), opt.name().into());
        for (k, v) in scalars {
            info.insert(k, v.into());
        }
        meta.insert(
            "optimizer".into(),
            serde_json::Value::Object(info).to_string(),
        );
    }
    write_atomic(path.as_ref(), &to_bytes(&tensors, &meta)?)
}

/// Loads a checkpoint into `model` (and `optimizer`, if given) and returns its metadata. Nothing is
/// changed unless everything fits: names, shapes, dtypes, and the optimizer's kind.
pub fn load(
    path: impl AsRef<Path>,
    model: &dyn Module,
    optimizer: Option<&mut Optimizer>,
) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let contents = read(path)?;
    let (opt_tensors, model_tensors): (Vec<_>, Vec<_>) = contents
        .tensors
        .into_iter()
        .partition(|(n, _)| n.starts_with(OPTIMIZER_PREFIX));
    let model_values: HashMap<String, Tensor> = model_tensors.into_iter().collect();
    nn::state::check_state_dict(model, &model_values, true).map_err(|e| {
        Error::new(
            "load_checkpoint",
            format!("{}: {}", path.display(), e.message),
        )
    })?;
    let trial = match optimizer.as_deref() {
        None => None,
        Some(opt) => {
            let Some(info) = contents.metadata.get("optimizer") else {
                bail!("load_checkpoint", "{} holds no optimizer state; load it without an optimizer, or save one with it", path.display());
            };
            let info: serde_json::Value = serde_json::from_str(info).map_err(|e| {
                Error::new(
                    "load_checkpoint",
                    format!("{}: unreadable optimizer metadata: {e}", path.display()),
                )
            })?;
            let saved = info.get("name").and_then(|n| n.as_str()).unwrap_or("?");
            if saved != opt.name() {
                bail!(
                    "load_checkpoint",
                    "{} holds {saved} state, but the optimizer is {}",
                    path.display(),
                    opt.name()
                );
            }
            let scalars: BTreeMap<String, f64> = info
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect();
            let stripped: Vec<(String, Tensor)> = opt_tensors
                .into_iter()
                .map(|(n, t)| (n[OPTIMIZER_PREFIX.len()..].to_string(), t))
                .collect();
            let mut trial = opt.clone();
            trial.load_state_dict(&stripped, &scalars).map_err(|e| {
                Error::new(
                    "load_checkpoint",
                    format!("{}: {}", path.display(), e.message),
                )
            })?;
            Some(trial)
        }
    };
    nn::load_state_dict(model, &model_values, true)?;
    if let (Some(opt), Some(trial)) = (optimizer, trial) {
        *opt = trial;
    }
    Ok(contents.metadata)
}
