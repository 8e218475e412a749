//! Checking a saved model in PyTorch from a lesson.
//!
//! Lessons cannot run programs (see the sandbox in the README). This binding is the one exception
//! and runs no lesson-supplied code: the notebook's own fixed Python script ([`SCRIPT`]) reads a
//! safetensors checkpoint (written by `save_checkpoint`) and an input, rebuilds the MLP as
//! `torch.nn.Sequential(Linear, ReLU, Linear, ..., Linear)` from the weight names and shapes, and
//! prints its output. When `python3` or PyTorch is missing it says so and the lesson skips.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine::Tensor;
use rhai::{Dynamic, Engine, Map};

use super::{err, RResult, SharedHost};

/// The Python side: no dependency beyond PyTorch (safetensors is parsed by hand: an 8-byte
/// little-endian header length, a JSON header, then the raw little-endian data).
const SCRIPT: &str = r#"
import json, struct, sys
try:
    import torch
except Exception as e:
    print(json.dumps({"available": False, "message": "PyTorch is not installed (" + type(e).__name__ + ")"}))
    sys.exit(0)

def read(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        a, b = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(body[a:b]), dtype=torch.float32).reshape(info["shape"])
    return out

weights = read(sys.argv[1])
x = read(sys.argv[2])["x"]
index = sorted({int(k.split(".")[0]) for k in weights if k.endswith(".weight")})
layers = []
for i, j in enumerate(index):
    w = weights[f"{j}.weight"]
    layers.append(torch.nn.Linear(w.shape[1], w.shape[0], bias=f"{j}.bias" in weights))
    if i + 1 < len(index):
        layers.append(torch.nn.ReLU())
model = torch.nn.Sequential(*layers)
state = {}
for pos, layer in enumerate(model):
    if isinstance(layer, torch.nn.Linear):
        j = index[pos // 2]
        state[f"{pos}.weight"] = weights[f"{j}.weight"]
        if f"{j}.bias" in weights:
            state[f"{pos}.bias"] = weights[f"{j}.bias"]
model.load_state_dict(state)
with torch.no_grad():
    y = model(x)
print(json.dumps({"available": True, "torch": torch.__version__, "shape": list(y.shape),
                  "data": [float(v) for v in y.reshape(-1).tolist()], "model": str(model)}))
"#;

/// Runs [`SCRIPT`] on `checkpoint` and `x`; `Ok(map)` with `available` false when Python or
/// PyTorch is missing.
fn forward_in_pytorch(host: &SharedHost, checkpoint: &str, x: &Tensor) -> RResult<Map> {
    let (ckpt, input) = {
        let h = host.borrow();
        (
            h.readable(checkpoint)?,
            h.writable(".gradbook-pytorch-input.safetensors")?,
        )
    };
    let bytes = engine::io::checkpoint::to_bytes(&[("x".into(), x.clone())], &BTreeMap::new())
        .map_err(err)?;
    engine::io::atomic::write_atomic(&input, &bytes).map_err(err)?;
    let mut m = Map::new();
    let unavailable = |m: &mut Map, why: String| {
        m.insert("available".into(), false.into());
        m.insert("message".into(), why.into());
    };
    let child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&ckpt)
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&input);
            unavailable(&mut m, format!("python3 could not be started ({e})"));
            return Ok(m);
        }
    };
    // A minute is plenty for importing torch and one forward pass; never hang the notebook.
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() < Duration::from_secs(60) && !super::interrupted() => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let _ = std::fs::remove_file(&input);
    let output = child.wait_with_output();
    let (Some(status), Ok(output)) = (status, output) else {
        unavailable(
            &mut m,
            "python3 took longer than a minute, or was interrupted".into(),
        );
        return Ok(m);
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reply: Option<serde_json::Value> = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok());
    let Some(reply) = reply.filter(|_| status.success()) else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no output").to_string();
        unavailable(&mut m, format!("the PyTorch check failed: {last}"));
        return Ok(m);
    };
    if reply["available"] != serde_json::Value::Bool(true) {
        unavailable(
            &mut m,
            reply["message"]
                .as_str()
                .unwrap_or("unavailable")
                .to_string(),
        );
        return Ok(m);
    }
    let shape: Vec<usize> = reply["shape"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_default();
    let data: Vec<f32> = reply["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_f64())
                .map(|v| v as f32)
                .collect()
        })
        .unwrap_or_default();
    let y = Tensor::from_vec(data, shape).map_err(err)?;
    m.insert("available".into(), true.into());
    m.insert("output".into(), Dynamic::from(y));
    m.insert(
        "torch".into(),
        reply["torch"].as_str().unwrap_or("").to_string().into(),
    );
    m.insert(
        "model".into(),
        reply["model"].as_str().unwrap_or("").to_string().into(),
    );
    Ok(m)
}

/// Registers `pytorch_mlp_forward`.
pub fn register(e: &mut Engine, host: SharedHost) {
    e.register_fn(
        "pytorch_mlp_forward",
        move |checkpoint: &str, x: Tensor| -> RResult<Map> {
            forward_in_pytorch(&host, checkpoint, &x)
        },
    );
}
