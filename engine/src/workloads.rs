//! The benchmark workloads, defined once for the criterion benches (`benches/`) and the PyTorch
//! comparison (`engine/examples/throughput.rs`, `benches/pytorch/`): each is a model, its data and
//! one step (forward + backward + optimizer update, or a forward pass), built with the same shapes
//! and optimizers as `benches/pytorch/torch_workloads.py`.

use crate::data::Dataset;
use crate::error::{bail, Result};
use crate::nn::loss::{self, Reduction};
use crate::nn::{
    Activation, Conv2d, Embedding, Flatten, Init, LayerNorm, Linear, MaxPool2d, Module, Sequential,
    TransformerBlock,
};
use crate::ops::pool::PoolSpec;
use crate::optim::{Algorithm, Optimizer};
use crate::train::Loss;
use crate::{manual_seed, no_grad, Tensor};

/// One benchmarkable step and what it processes.
pub struct Workload {
    /// Samples (or tokens) per step.
    pub items: usize,
    /// Floating-point operations per step, where counted.
    pub flops: Option<f64>,
    /// Runs one step.
    pub step: Box<dyn FnMut() + Send>,
}

/// The names [`build`] accepts.
pub const NAMES: [&str; 12] = [
    "tiny",
    "tiny_infer",
    "mlp",
    "mlp_adam",
    "lenet",
    "lenet_infer",
    "conv64_fwd",
    "conv64_fwd_bwd",
    "ae",
    "gan",
    "gpt_train",
    "gpt_infer",
];

fn mlp(sizes: &[usize], act: Activation) -> Sequential {
    let mut m = Sequential::new();
    for (i, w) in sizes.windows(2).enumerate() {
        if i > 0 {
            m = m.layer(act);
        }
        m = m.layer(Linear::new(w[0], w[1]));
    }
    m
}

fn labels(n: usize, classes: usize) -> Tensor {
    Tensor::from_vec((0..n).map(|i| ((i * 7919) % classes) as f32).collect(), [n])
        .expect("n labels fill [n]")
}

fn adam(params: Vec<(String, Tensor)>, lr: f32, beta1: f32) -> Result<Optimizer> {
    Optimizer::new(
        Algorithm::Adam {
            beta1,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        },
        lr,
        params,
    )
}

/// A training step of `model` on `x` with `loss`; panics only on an engine bug (shapes are fixed).
fn train(
    model: impl Module + 'static,
    mut opt: Optimizer,
    x: Tensor,
    loss: impl Fn(&Tensor) -> Result<Tensor> + Send + 'static,
) -> Box<dyn FnMut() + Send> {
    Box::new(move || {
        opt.zero_grad();
        let l = loss(&model.forward(&x).expect("fixed shapes")).expect("fixed shapes");
        l.backward().expect("a scalar loss");
        opt.step().expect("fixed shapes");
    })
}

/// A training step through `train::step`, split into one data-parallel shard per engine thread:
/// small models use every core this way, where splitting each small GEMM would not pay.
fn train_sharded(
    model: impl Module + 'static,
    mut opt: Optimizer,
    batch: Dataset,
    loss: Loss,
) -> Box<dyn FnMut() + Send> {
    let mut n = 0;
    Box::new(move || {
        n += 1;
        crate::train::step(
            &model,
            &mut opt,
            &loss,
            &batch,
            crate::threads::num_threads(),
            0,
            n,
        )
        .expect("fixed shapes");
    })
}

/// A forward pass without gradients, whole (the tiny model: too small to split).
fn forward_only(model: impl Module + 'static, x: Tensor) -> Box<dyn FnMut() + Send> {
    Box::new(move || {
        no_grad(|| model.forward(&x).expect("fixed shapes"));
    })
}

/// Inference through `train::predict`, the batch split into one part per engine thread (run in
/// parallel, as `predict` runs batches).
fn infer(model: impl Module + 'static, x: Tensor) -> Box<dyn FnMut() + Send> {
    Box::new(move || {
        let part = x.dims()[0].div_ceil(crate::threads::num_threads());
        crate::train::predict(&model, &x, part).expect("fixed shapes");
    })
}

fn lenet() -> Sequential {
    Sequential::new()
        .layer(Conv2d::new(1, 6, 5, 0))
        .layer(Activation::ReLU)
        .layer(MaxPool2d(PoolSpec::square(2)))
        .layer(Conv2d::new(6, 16, 5, 0))
        .layer(Activation::ReLU)
        .layer(MaxPool2d(PoolSpec::square(2)))
        .layer(Flatten)
        .layer(Linear::new(256, 120))
        .layer(Activation::ReLU)
        .layer(Linear::new(120, 84))
        .layer(Activation::ReLU)
        .layer(Linear::new(84, 10))
}

/// The character-level GPT: vocabulary 65, context 64, width 128, 4 heads, 4 pre-norm blocks, an
/// untied head without bias; 818,176 parameters, as in the PyTorch script.
pub struct Gpt {
    tok: Embedding,
    pos: Embedding,
    blocks: Sequential,
    lnf: LayerNorm,
    head: Linear,
}

impl Gpt {
    /// A GPT with the comparison's sizes.
    pub fn new() -> Result<Gpt> {
        let (v, t, d, heads, layers) = (65, 64, 128, 4, 4);
        let mut blocks = Sequential::new();
        for _ in 0..layers {
            blocks = blocks.layer(TransformerBlock::new(d, heads, true, 0.0)?);
        }
        Ok(Gpt {
            tok: Embedding::new(v, d),
            pos: Embedding::new(t, d),
            blocks,
            lnf: LayerNorm::new(&[d]),
            head: Linear::with_init(d, v, false, Init::PyTorchDefault),
        })
    }
}

impl Module for Gpt {
    fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        if idx.rank() != 2 {
            bail!(
                "Gpt",
                "expects token indices [batch, time], got {}",
                idx.shape()
            );
        }
        let positions = Tensor::arange(0.0, idx.dims()[1] as f32, 1.0)?;
        let x = self.tok.call(idx)?.add(&self.pos.call(&positions)?)?;
        self.head.call(&self.lnf.call(&self.blocks.call(&x)?)?)
    }
    fn describe(&self) -> String {
        "Gpt(vocab=65, context=64, width=128, heads=4, layers=4)".into()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("tok".into(), &self.tok),
            ("pos".into(), &self.pos),
            ("blocks".into(), &self.blocks),
            ("lnf".into(), &self.lnf),
            ("head".into(), &self.head),
        ]
    }
}

/// Builds a workload by name (see [`NAMES`]), seeded so runs are comparable. Its step runs on the
/// engine's pool ([`crate::threads::run`]), as the training loop's does.
pub fn build(name: &str) -> Result<Workload> {
    let mut w = build_here(name)?;
    let mut step = w.step;
    w.step = Box::new(move || crate::threads::run(&mut step));
    Ok(w)
}

fn build_here(name: &str) -> Result<Workload> {
    manual_seed(0);
    Ok(match name {
        "tiny" | "tiny_infer" => {
            let m = mlp(&[2, 8, 8, 1], Activation::Tanh);
            let (x, y) = (Tensor::randn([32, 2]), Tensor::randn([32, 1]));
            let step = if name == "tiny" {
                let opt = Optimizer::sgd(m.named_parameters(), 0.03, 0.0)?;
                train(m, opt, x, move |o| loss::mse(o, &y, Reduction::Mean))
            } else {
                forward_only(m, x)
            };
            Workload {
                items: 32,
                flops: None,
                step,
            }
        }
        "mlp" | "mlp_adam" => {
            let m = mlp(&[784, 256, 128, 10], Activation::ReLU);
            let (x, y) = (Tensor::randn([128, 784]), labels(128, 10));
            let opt = if name == "mlp" {
                Optimizer::sgd(m.named_parameters(), 0.01, 0.9)?
            } else {
                adam(m.named_parameters(), 1e-3, 0.9)?
            };
            let flops = 6.0 * 128.0 * (784.0 * 256.0 + 256.0 * 128.0 + 128.0 * 10.0);
            Workload {
                items: 128,
                flops: Some(flops),
                step: train_sharded(m, opt, Dataset::new(x, y)?, Loss::CrossEntropy),
            }
        }
        "lenet" | "lenet_infer" => {
            let m = lenet();
            let (x, y) = (Tensor::randn([64, 1, 28, 28]), labels(64, 10));
            let step = if name == "lenet" {
                let opt = Optimizer::sgd(m.named_parameters(), 0.01, 0.9)?;
                train_sharded(m, opt, Dataset::new(x, y)?, Loss::CrossEntropy)
            } else {
                infer(m, x)
            };
            Workload {
                items: 64,
                flops: None,
                step,
            }
        }
        "conv64_fwd" | "conv64_fwd_bwd" => {
            let conv = Conv2d::new(64, 64, 3, 1);
            let x = Tensor::randn([32, 64, 32, 32]);
            let fwd = 2.0 * (32 * 64 * 32 * 32 * 64 * 9) as f64;
            if name == "conv64_fwd" {
                Workload {
                    items: 32,
                    flops: Some(fwd),
                    step: infer(conv, x),
                }
            } else {
                let xg = x.requires_grad();
                let step = Box::new(move || {
                    conv.zero_grad();
                    xg.zero_grad();
                    conv.forward(&xg)
                        .expect("fixed shapes")
                        .sum_all()
                        .backward()
                        .expect("a scalar");
                });
                Workload {
                    items: 32,
                    flops: Some(3.0 * fwd),
                    step,
                }
            }
        }
        "ae" => {
            let m = mlp(&[784, 128, 32, 128, 784], Activation::ReLU).layer(Activation::Sigmoid);
            let x = Tensor::rand([64, 784]);
            let opt = adam(m.named_parameters(), 1e-3, 0.9)?;
            let target = x.clone();
            Workload {
                items: 64,
                flops: None,
                step: train_sharded(m, opt, Dataset::new(x, target)?, Loss::Mse),
            }
        }
        "gan" => {
            let g = Sequential::new()
                .layer(Linear::new(64, 256))
                .layer(Activation::ReLU)
                .layer(Linear::new(256, 784))
                .layer(Activation::Tanh);
            let d = Sequential::new()
                .layer(Linear::new(784, 256))
                .layer(Activation::LeakyReLU(0.2))
                .layer(Linear::new(256, 1));
            let (mut og, mut od) = (
                adam(g.named_parameters(), 2e-4, 0.5)?,
                adam(d.named_parameters(), 2e-4, 0.5)?,
            );
            let real = Tensor::rand([64, 784]).mul_scalar(2.0).sub_scalar(1.0);
            let (ones, zeros) = (Tensor::ones([64, 1]), Tensor::zeros([64, 1]));
            let bce = |o: &Tensor, t: &Tensor| {
                loss::binary_cross_entropy_with_logits(o, t, Reduction::Mean).expect("fixed shapes")
            };
            let step = Box::new(move || {
                // One discriminator update on real and fake, then one generator update.
                let fake = g.forward(&Tensor::randn([64, 64])).expect("fixed shapes");
                od.zero_grad();
                let ld = bce(&d.forward(&real).expect("fixed shapes"), &ones)
                    .add(&bce(
                        &d.forward(&fake.detach()).expect("fixed shapes"),
                        &zeros,
                    ))
                    .expect("scalars");
                ld.backward().expect("a scalar");
                od.step().expect("fixed shapes");
                og.zero_grad();
                d.zero_grad();
                bce(&d.forward(&fake).expect("fixed shapes"), &ones)
                    .backward()
                    .expect("a scalar");
                og.step().expect("fixed shapes");
            });
            Workload {
                items: 64,
                flops: None,
                step,
            }
        }
        "gpt_train" | "gpt_infer" => {
            let (v, t, b) = (65, 64, 32);
            let gpt = Gpt::new()?;
            let idx = labels(b * t, v).reshape(&[b as isize, t as isize])?;
            let step: Box<dyn FnMut() + Send> = if name == "gpt_train" {
                let tgt = Tensor::from_vec(
                    (0..b * t).map(|i| ((i * 31 + 7) % v) as f32).collect(),
                    [b, t],
                )?;
                let opt = Optimizer::adamw(gpt.named_parameters(), 3e-4, 0.01)?;
                // Next-character cross-entropy over every position: logits [B, T, V] against
                // targets [B, T], averaged over B·T (the same loss as PyTorch's script). Through
                // the data-parallel step, as the other training workloads: each core runs whole
                // sequences, where splitting each op of a small transformer leaves a core idle.
                let per_token: crate::train::fit::LossFn = std::sync::Arc::new(move |o, y| {
                    loss::cross_entropy(
                        &o.reshape(&[-1, v as isize])?,
                        &y.reshape(&[-1])?,
                        Reduction::Mean,
                    )
                });
                train_sharded(
                    gpt,
                    opt,
                    Dataset::new(idx, tgt)?,
                    Loss::Custom("next-character cross-entropy", per_token),
                )
            } else {
                infer(gpt, idx)
            };
            Workload {
                items: b * t,
                flops: None,
                step,
            }
        }
        other => bail!(
            "workloads",
            "unknown workload `{other}`; known: {}",
            NAMES.join(", ")
        ),
    })
}
