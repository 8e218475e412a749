//! A table of a model's layers — output shape, parameters, and time and memory of one forward
//! pass — like `torchinfo.summary`. It is filled by the hooks in [`Module::call`].

use std::cell::RefCell;
use std::fmt;
use std::time::Instant;

use super::Module;
use crate::autodiff::no_grad;
use crate::error::Result;
use crate::tensor::rng::Rng;
use crate::tensor::{Shape, Tensor};

/// One layer's line in a [`Summary`].
#[derive(Clone, Debug)]
pub struct LayerRecord {
    /// Nesting depth (0 = the model itself).
    pub depth: usize,
    /// The layer's description, e.g. `Linear(in=784, out=256)`.
    pub layer: String,
    pub output_shape: Option<Shape>,
    /// Parameters of this layer and its children.
    pub params: usize,
    /// Wall time of this layer's forward pass, children included, in seconds.
    pub seconds: f64,
    /// Bytes of the layer's output (the activation memory it adds).
    pub output_bytes: usize,
}

/// The layers of a model in the order they ran, with the totals.
#[derive(Clone, Debug)]
pub struct Summary {
    pub layers: Vec<LayerRecord>,
    pub total_params: usize,
    pub param_bytes: usize,
}

struct Recorder {
    depth: usize,
    records: Vec<LayerRecord>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

pub(crate) fn hooks_active() -> bool {
    RECORDER.with(|r| r.borrow().is_some())
}

pub(crate) struct Token {
    index: usize,
    start: Instant,
}

pub(crate) fn enter() -> Token {
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let rec = r
            .as_mut()
            .expect("enter() is only called while hooks are active");
        let index = rec.records.len();
        rec.records.push(LayerRecord {
            depth: rec.depth,
            layer: String::new(),
            output_shape: None,
            params: 0,
            seconds: 0.0,
            output_bytes: 0,
        });
        rec.depth += 1;
        Token {
            index,
            start: Instant::now(),
        }
    })
}

pub(crate) fn leave(token: Token, module: &(impl Module + ?Sized), output: Option<&Tensor>) {
    let seconds = token.start.elapsed().as_secs_f64();
    let (layer, params) = (module.describe(), module.num_parameters());
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            rec.depth -= 1;
            let line = &mut rec.records[token.index];
            line.layer = layer;
            line.params = params;
            line.seconds = seconds;
            line.output_shape = output.map(|o| o.shape().clone());
            line.output_bytes = output.map_or(0, |o| o.numel() * 4);
        }
    });
}

/// Runs `model` once on `input` (without recording a graph, updating running statistics or
/// drawing from the model's generators) and tabulates every layer it called.
pub fn summary(model: &dyn Module, input: &Tensor) -> Result<Summary> {
    let previous = RECORDER.with(|r| {
        r.replace(Some(Recorder {
            depth: 0,
            records: Vec::new(),
        }))
    });
    let result = super::with_shard_context(Rng::seed(0), false, || no_grad(|| model.call(input)));
    let rec = RECORDER
        .with(|r| r.replace(previous))
        .expect("the recorder was installed above");
    result?;
    let params = model.parameters();
    Ok(Summary {
        layers: rec.records,
        total_params: params.iter().map(Tensor::numel).sum(),
        param_bytes: params.iter().map(|p| p.numel() * 4).sum(),
    })
}

fn human_bytes(b: usize) -> String {
    match b {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 5]> = self
            .layers
            .iter()
            .map(|l| {
                [
                    format!("{}{}", "  ".repeat(l.depth), l.layer),
                    l.output_shape
                        .as_ref()
                        .map_or("-".into(), |s| s.to_string()),
                    l.params.to_string(),
                    format!("{:.3}", l.seconds * 1e3),
                    human_bytes(l.output_bytes),
                ]
            })
            .collect();
        let head = [
            "Layer",
            "Output shape",
            "Params",
            "Time (ms)",
            "Output memory",
        ];
        let mut w = head.map(str::len);
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String; 5]| {
            writeln!(
                f,
                "{:<a$}  {:<b$}  {:>c$}  {:>d$}  {:>e$}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                a = w[0],
                b = w[1],
                c = w[2],
                d = w[3],
                e = w[4]
            )
        };
        line(f, &head.map(String::from))?;
        writeln!(f, "{}", "-".repeat(w.iter().sum::<usize>() + 8))?;
        for r in &rows {
            line(f, r)?;
        }
        writeln!(f, "{}", "-".repeat(w.iter().sum::<usize>() + 8))?;
        write!(
            f,
            "Total parameters: {} ({})",
            self.total_params,
            human_bytes(self.param_bytes)
        )
    }
}
