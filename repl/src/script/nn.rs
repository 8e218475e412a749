//! Layers, models, optimizers, losses, training and checkpoints in scripts.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use engine::data::Dataset;
use engine::nn::{self, loss, Activation, Module};
use engine::ops::conv::Conv2dSpec;
use engine::ops::pool::PoolSpec;
use engine::optim::{Algorithm, Optimizer};
use engine::train::{self, Control, EarlyStopping, Event, FitConfig, Loss, Metric};
use engine::Tensor;
use rhai::{Array, Dynamic, Engine, Map, FLOAT, INT};

use super::{err, fail, interrupted, num, opt_num, Output, RResult, SharedHost};
use crate::render::{Figure, Series};

/// A layer or a model in a script: shared, so that putting a layer into a model keeps one set of
/// weights.
#[derive(Clone)]
pub struct Layer(pub Arc<dyn Module>);

struct Shared(Arc<dyn Module>);

impl Module for Shared {
    fn forward(&self, x: &Tensor) -> engine::Result<Tensor> {
        self.0.forward(x)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        self.0.own_parameters()
    }
    fn own_buffers(&self) -> Vec<(String, Tensor)> {
        self.0.own_buffers()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.0.children()
    }
    fn set_training_own(&self, training: bool) {
        self.0.set_training_own(training)
    }
    fn call(&self, x: &Tensor) -> engine::Result<Tensor> {
        self.0.call(x)
    }
    fn last_attention(&self) -> Option<Tensor> {
        self.0.last_attention()
    }
}

/// A layer size typed in a script: a whole number from 1 to 2^24.
fn size(x: INT, what: &str) -> RResult<usize> {
    if (1..=1 << 24).contains(&x) {
        Ok(x as usize)
    } else {
        fail(format!(
            "{what} must be a whole number from 1 to 16777216, got {x}"
        ))
    }
}

/// Refuses a weight of this shape if it would exceed the memory cap.
fn weight(op: &'static str, dims: &[usize]) -> RResult<()> {
    engine::tensor::budget::check(op, dims).map_err(err)
}

fn layer(m: impl Module + 'static) -> Layer {
    Layer(Arc::new(m))
}

fn boxed(l: &Layer) -> Box<dyn Module> {
    Box::new(Shared(l.0.clone()))
}

fn layers(a: &Array, what: &str) -> RResult<Vec<Layer>> {
    a.iter()
        .map(|d| {
            d.clone().try_cast::<Layer>().map_or_else(
                || {
                    fail(format!(
                        "{what}: expected a list of layers, found a {}",
                        d.type_name()
                    ))
                },
                Ok,
            )
        })
        .collect()
}

/// An optimizer in a script (shared, so `fit` and `opt.step()` update the same state).
#[derive(Clone)]
pub struct Opt(pub Rc<RefCell<Optimizer>>);

fn params_of(d: &Dynamic) -> RResult<Vec<(String, Tensor)>> {
    if let Some(l) = d.clone().try_cast::<Layer>() {
        return Ok(l.0.named_parameters());
    }
    if let Some(a) = d.clone().try_cast::<Array>() {
        return super::tensor::tensors(&a, "optimizer")?
            .into_iter()
            .enumerate()
            .map(|(i, t)| Ok((format!("p{i}"), t)))
            .collect();
    }
    fail(format!(
        "an optimizer needs a model or a list of tensors, got a {}",
        d.type_name()
    ))
}

fn make_opt(alg: Algorithm, what: &Dynamic, lr: &Dynamic) -> RResult<Opt> {
    let o = Optimizer::new(alg, num(lr, "learning rate")? as f32, params_of(what)?).map_err(err)?;
    Ok(Opt(Rc::new(RefCell::new(o))))
}

fn metric_names(m: &Map) -> RResult<Vec<Metric>> {
    match m.get("metrics") {
        None => Ok(Vec::new()),
        Some(v) => match v.clone().try_cast::<Array>() {
            Some(a) => a
                .iter()
                .map(|x| Metric::from_name(&x.to_string()).map_err(err))
                .collect(),
            None => Metric::from_name(&v.to_string())
                .map(|m| vec![m])
                .map_err(err),
        },
    }
}

/// A history as a script map: each series an array of numbers, plus `best_epoch` and flags.
fn history_map(h: &train::History) -> Map {
    let mut m = Map::new();
    for (k, v) in &h.series {
        m.insert(
            k.as_str().into(),
            Dynamic::from_array(v.iter().map(|&x| Dynamic::from_float(x)).collect()),
        );
    }
    m.insert("epochs".into(), Dynamic::from_int(h.epochs() as INT));
    m.insert("stopped_early".into(), Dynamic::from_bool(h.stopped_early));
    m.insert("interrupted".into(), Dynamic::from_bool(h.interrupted));
    if let Some(b) = h.best_epoch {
        m.insert("best_epoch".into(), Dynamic::from_int(b as INT));
    }
    m
}

fn loss_chart(series: &BTreeMap<String, Vec<f64>>, title: &str) -> Figure {
    let pick = |name: &str| {
        series.get(name).map(|v| Series {
            name: name.to_string(),
            points: v
                .iter()
                .enumerate()
                .map(|(i, &y)| ((i + 1) as f64, y))
                .collect(),
        })
    };
    Figure::Lines {
        title: title.to_string(),
        series: ["loss", "val_loss"]
            .iter()
            .filter_map(|n| pick(n))
            .collect(),
        x_label: "epoch".into(),
        y_label: String::new(),
        log_y: false,
    }
}

#[allow(clippy::too_many_arguments)]
fn run_fit(
    host: &SharedHost,
    model: &Layer,
    opt: &Opt,
    loss_name: &str,
    train_set: &Dataset,
    val: Option<&Dataset>,
    o: &Map,
) -> RResult<Map> {
    let loss = Loss::from_name(loss_name).map_err(err)?;
    let mut cfg = FitConfig {
        epochs: opt_num(o, "epochs", 10.0)? as usize,
        batch_size: opt_num(o, "batch_size", 32.0)? as usize,
        seed: opt_num(o, "seed", 0.0)? as u64,
        metrics: metric_names(o)?,
        l1: opt_num(o, "l1", 0.0)? as f32,
        l2: opt_num(o, "l2", 0.0)? as f32,
        shards: opt_num(o, "shards", 0.0)? as usize,
        ..Default::default()
    };
    if let Some(p) = o.get("patience") {
        cfg.early_stopping = Some(EarlyStopping {
            monitor: if val.is_some() {
                "val_loss".into()
            } else {
                "loss".into()
            },
            ..EarlyStopping::new(num(p, "patience")? as usize)
        });
    }
    if let Some(c) = o.get("clip") {
        cfg.clip_grad_norm = Some(num(c, "clip")? as f32);
    }
    let show = o.get("plot").is_none_or(|v| v.as_bool().unwrap_or(true));
    let title = o.get("title").map_or_else(
        || format!("{} while training", loss.name()),
        |t| t.to_string(),
    );
    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut observe = |ev: &Event| -> Control {
        if let Event::Epoch { logs, .. } = ev {
            for k in ["loss", "val_loss"] {
                if let Some(v) = logs.get(k) {
                    series.entry(k.to_string()).or_default().push(*v);
                }
            }
            if show {
                // Redrawn in place in an interactive terminal; only the final chart otherwise.
                host.borrow_mut().frame(&loss_chart(&series, &title));
            }
        }
        if interrupted() {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let mut opt_ref = opt.0.borrow_mut();
    let result = train::fit(
        model.0.as_ref(),
        &mut opt_ref,
        &loss,
        train_set,
        val,
        &cfg,
        &mut observe,
    );
    drop(opt_ref);
    let history = result.map_err(err)?;
    if show && !series.is_empty() {
        host.borrow_mut()
            .emit(Output::Figure(loss_chart(&series, &title)));
    }
    if history.interrupted {
        return fail("training interrupted by Ctrl-C (the weights keep what was learned so far)");
    }
    Ok(history_map(&history))
}

/// Registers layers, models, optimizers, losses, `fit` and checkpoints.
pub fn register(e: &mut Engine, host: SharedHost) {
    e.register_type_with_name::<Layer>("Layer");
    e.register_type_with_name::<Opt>("Optimizer");
    e.register_fn("to_string", |l: &mut Layer| l.0.describe());
    e.register_fn("to_debug", |l: &mut Layer| l.0.describe());
    e.register_fn("to_string", |o: &mut Opt| {
        format!("{}(lr={})", o.0.borrow().name(), o.0.borrow().lr())
    });

    // Layers: every size is checked, and every weight against the memory cap, before allocating.
    e.register_fn("linear", |i: INT, o: INT| -> RResult<Layer> {
        let (i, o) = (size(i, "linear: inputs")?, size(o, "linear: outputs")?);
        weight("linear", &[o, i])?;
        Ok(layer(nn::Linear::new(i, o)))
    });
    fn conv(i: INT, o: INT, k: INT, pad: INT, stride: INT) -> RResult<Layer> {
        let (i, o, k) = (
            size(i, "conv2d: input channels")?,
            size(o, "conv2d: output channels")?,
            size(k, "conv2d: kernel size")?,
        );
        let (pad, stride) = (
            if pad == 0 {
                0
            } else {
                size(pad, "conv2d: padding")?
            },
            size(stride, "conv2d: stride")?,
        );
        weight("conv2d", &[o, i, k, k])?;
        Ok(layer(nn::Conv2d::with_spec(
            i,
            o,
            (k, k),
            Conv2dSpec {
                stride: (stride, stride),
                padding: (pad, pad),
                ..Default::default()
            },
            true,
        )))
    }
    e.register_fn("conv2d", |i: INT, o: INT, k: INT| conv(i, o, k, 0, 1));
    e.register_fn("conv2d", |i: INT, o: INT, k: INT, pad: INT| {
        conv(i, o, k, pad, 1)
    });
    e.register_fn("conv2d", |i: INT, o: INT, k: INT, pad: INT, stride: INT| {
        conv(i, o, k, pad, stride)
    });
    e.register_fn(
        "conv1d",
        |i: INT, o: INT, k: INT, pad: INT| -> RResult<Layer> {
            let (i, o, k) = (
                size(i, "conv1d: input channels")?,
                size(o, "conv1d: output channels")?,
                size(k, "conv1d: kernel size")?,
            );
            let pad = if pad == 0 {
                0
            } else {
                size(pad, "conv1d: padding")?
            };
            weight("conv1d", &[o, i, k])?;
            Ok(layer(nn::Conv1d::new(i, o, k, pad)))
        },
    );
    e.register_fn("maxpool2d", |k: INT| -> RResult<Layer> {
        Ok(layer(nn::MaxPool2d(PoolSpec::square(size(
            k,
            "maxpool2d: window",
        )?))))
    });
    e.register_fn("avgpool2d", |k: INT| -> RResult<Layer> {
        Ok(layer(nn::AvgPool2d(PoolSpec::square(size(
            k,
            "avgpool2d: window",
        )?))))
    });
    e.register_fn("maxpool1d", |k: INT| -> RResult<Layer> {
        let k = size(k, "maxpool1d: window")?;
        Ok(layer(nn::MaxPool1d {
            kernel: k,
            stride: k,
        }))
    });
    e.register_fn("global_avg_pool", || layer(nn::GlobalAvgPool2d));
    e.register_fn("flatten", || layer(nn::Flatten));
    e.register_fn("dropout", |p: FLOAT| -> RResult<Layer> {
        nn::Dropout::new(p as f32).map(layer).map_err(err)
    });
    e.register_fn("batchnorm1d", |c: INT| -> RResult<Layer> {
        Ok(layer(nn::BatchNorm::new_1d(size(
            c,
            "batchnorm1d: features",
        )?)))
    });
    e.register_fn("batchnorm2d", |c: INT| -> RResult<Layer> {
        Ok(layer(nn::BatchNorm::new_2d(size(
            c,
            "batchnorm2d: channels",
        )?)))
    });
    e.register_fn("layernorm", |d: INT| -> RResult<Layer> {
        Ok(layer(nn::LayerNorm::new(&[size(d, "layernorm: width")?])))
    });
    e.register_fn("embedding", |n: INT, d: INT| -> RResult<Layer> {
        let (n, d) = (size(n, "embedding: count")?, size(d, "embedding: width")?);
        weight("embedding", &[n, d])?;
        Ok(layer(nn::Embedding::new(n, d)))
    });
    e.register_fn(
        "attention",
        |d: INT, h: INT, causal: bool| -> RResult<Layer> {
            let (d, h) = (size(d, "attention: width")?, size(h, "attention: heads")?);
            weight("attention", &[3 * d, d])?;
            nn::MultiHeadAttention::new(d, h, causal)
                .map(layer)
                .map_err(err)
        },
    );
    e.register_fn(
        "transformer_block",
        |d: INT, h: INT, causal: bool| -> RResult<Layer> {
            let (d, h) = (
                size(d, "transformer_block: width")?,
                size(h, "transformer_block: heads")?,
            );
            weight("transformer_block", &[4 * d, d])?;
            nn::TransformerBlock::new(d, h, causal, 0.0)
                .map(layer)
                .map_err(err)
        },
    );
    e.register_fn("residual", |inner: Layer| {
        layer(nn::Residual {
            inner: boxed(&inner),
            shortcut: None,
        })
    });
    e.register_fn(
        "basic_block",
        |i: INT, o: INT, stride: INT| -> RResult<Layer> {
            let (i, o, st) = (
                size(i, "basic_block: input channels")?,
                size(o, "basic_block: output channels")?,
                size(stride, "basic_block: stride")?,
            );
            weight("basic_block", &[o, i.max(o), 3, 3])?;
            Ok(layer(nn::Residual::basic_block(i, o, st)))
        },
    );
    e.register_fn(
        "inception",
        |i: INT, c1: INT, c3: INT, c5: INT, pool: INT| -> RResult<Layer> {
            let i = size(i, "inception: input channels")?;
            let (c1, c3, c5, pool) = (
                size(c1, "inception: 1x1 channels")?,
                size(c3, "inception: 3x3 channels")?,
                size(c5, "inception: 5x5 channels")?,
                size(pool, "inception: pool channels")?,
            );
            weight(
                "inception",
                &[c5.max(c3).max(c1).max(pool), i.max(c5), 5, 5],
            )?;
            Ok(layer(nn::Parallel::inception(
                i,
                c1,
                (c3, c3),
                (c5, c5),
                pool,
            )))
        },
    );
    e.register_fn("parallel", |branches: Array| -> RResult<Layer> {
        Ok(layer(nn::Parallel {
            branches: layers(&branches, "parallel")?.iter().map(boxed).collect(),
            axis: 1,
        }))
    });
    e.register_fn("sequential", |a: Array| -> RResult<Layer> {
        let mut s = nn::Sequential::new();
        for l in layers(&a, "sequential")? {
            s.push(boxed(&l));
        }
        Ok(layer(s))
    });
    for name in [
        "relu",
        "tanh",
        "sigmoid",
        "gelu",
        "softplus",
        "identity",
        "softmax",
        "leaky_relu",
        "elu",
    ] {
        e.register_fn(name, move || -> RResult<Layer> {
            Activation::from_name(name).map(layer).map_err(err)
        });
    }
    e.register_fn("activation", |name: &str| -> RResult<Layer> {
        Activation::from_name(name).map(layer).map_err(err)
    });

    // Models.
    e.register_fn("forward", |m: &mut Layer, x: Tensor| -> RResult<Tensor> {
        m.0.call(&x).map_err(err)
    });
    e.register_fn("parameters", |m: &mut Layer| -> Array {
        m.0.parameters().into_iter().map(Dynamic::from).collect()
    });
    e.register_fn("named_parameters", |m: &mut Layer| -> Map {
        m.0.named_parameters()
            .into_iter()
            .map(|(n, t)| (n.into(), Dynamic::from(t)))
            .collect()
    });
    e.register_fn("num_params", |m: &mut Layer| m.0.num_parameters() as INT);
    e.register_fn("train", |m: &mut Layer| m.0.train(true));
    e.register_fn("eval", |m: &mut Layer| m.0.eval());
    e.register_fn("zero_grad", |m: &mut Layer| m.0.zero_grad());
    e.register_fn("attention_maps", |m: &mut Layer| -> Array {
        nn::attention_maps(m.0.as_ref())
            .into_iter()
            .map(|(_, t)| Dynamic::from(t))
            .collect()
    });
    let h = host.clone();
    e.register_fn("summary", move |m: &mut Layer, x: Tensor| -> RResult<()> {
        let s = nn::summary(m.0.as_ref(), &x).map_err(err)?;
        h.borrow_mut().emit(Output::Text(s.to_string()));
        Ok(())
    });

    // Optimizers.
    let sgd = |m: f32, nesterov: bool| Algorithm::Sgd {
        momentum: m,
        dampening: 0.0,
        nesterov,
        weight_decay: 0.0,
    };
    e.register_fn("sgd", move |w: Dynamic, lr: Dynamic| {
        make_opt(sgd(0.0, false), &w, &lr)
    });
    e.register_fn("sgd", move |w: Dynamic, lr: Dynamic, m: FLOAT| {
        make_opt(sgd(m as f32, false), &w, &lr)
    });
    e.register_fn("nesterov", move |w: Dynamic, lr: Dynamic, m: FLOAT| {
        make_opt(sgd(m as f32, true), &w, &lr)
    });
    e.register_fn("adam", |w: Dynamic, lr: Dynamic| {
        make_opt(
            Algorithm::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                decoupled: false,
            },
            &w,
            &lr,
        )
    });
    e.register_fn(
        "adam",
        |w: Dynamic, lr: Dynamic, beta1: FLOAT, beta2: FLOAT| -> RResult<Opt> {
            if !((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2)) {
                return super::fail(format!(
                    "adam: betas must be in [0, 1), got {beta1} and {beta2}"
                ));
            }
            make_opt(
                Algorithm::Adam {
                    beta1: beta1 as f32,
                    beta2: beta2 as f32,
                    eps: 1e-8,
                    weight_decay: 0.0,
                    decoupled: false,
                },
                &w,
                &lr,
            )
        },
    );
    e.register_fn("adamw", |w: Dynamic, lr: Dynamic, wd: FLOAT| {
        make_opt(
            Algorithm::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: wd as f32,
                decoupled: true,
            },
            &w,
            &lr,
        )
    });
    e.register_fn("rmsprop", |w: Dynamic, lr: Dynamic| {
        make_opt(
            Algorithm::RmsProp {
                alpha: 0.99,
                eps: 1e-8,
                momentum: 0.0,
                weight_decay: 0.0,
            },
            &w,
            &lr,
        )
    });
    e.register_fn("adagrad", |w: Dynamic, lr: Dynamic| {
        make_opt(
            Algorithm::Adagrad {
                lr_decay: 0.0,
                weight_decay: 0.0,
                eps: 1e-10,
            },
            &w,
            &lr,
        )
    });
    e.register_fn("step", |o: &mut Opt| -> RResult<()> {
        o.0.borrow_mut().step().map_err(err)
    });
    e.register_fn("zero_grad", |o: &mut Opt| o.0.borrow().zero_grad());
    e.register_fn("lr", |o: &mut Opt| o.0.borrow().lr() as FLOAT);
    e.register_fn("set_lr", |o: &mut Opt, lr: FLOAT| {
        o.0.borrow_mut().set_lr(lr as f32)
    });

    // Losses.
    type L = fn(&Tensor, &Tensor, loss::Reduction) -> engine::Result<Tensor>;
    let losses: [(&str, L); 7] = [
        ("mse_loss", loss::mse),
        ("l1_loss", loss::l1),
        ("bce_loss", loss::binary_cross_entropy),
        ("bce_with_logits", loss::binary_cross_entropy_with_logits),
        ("cross_entropy", loss::cross_entropy),
        ("cross_entropy_probs", loss::cross_entropy_probs),
        ("nll_loss", loss::nll),
    ];
    for (name, f) in losses {
        e.register_fn(name, move |p: Tensor, t: Tensor| -> RResult<Tensor> {
            f(&p, &t, loss::Reduction::Mean).map_err(err)
        });
    }
    e.register_fn(
        "huber_loss",
        |p: Tensor, t: Tensor, d: FLOAT| -> RResult<Tensor> {
            loss::huber(&p, &t, d as f32, loss::Reduction::Mean).map_err(err)
        },
    );
    e.register_fn("kl_div", |lq: Tensor, p: Tensor| -> RResult<Tensor> {
        loss::kl_div(&lq, &p).map_err(err)
    });
    e.register_fn("gaussian_kl", |mu: Tensor, lv: Tensor| -> RResult<Tensor> {
        loss::gaussian_kl(&mu, &lv).map_err(err)
    });

    // Training.
    let h = host.clone();
    e.register_fn(
        "fit",
        move |m: Layer, o: Opt, loss: &str, tr: Dataset, opts: Map| {
            run_fit(&h, &m, &o, loss, &tr, None, &opts)
        },
    );
    let h = host.clone();
    e.register_fn(
        "fit",
        move |m: Layer, o: Opt, loss: &str, tr: Dataset, va: Dataset, opts: Map| {
            run_fit(&h, &m, &o, loss, &tr, Some(&va), &opts)
        },
    );
    e.register_fn(
        "evaluate",
        |m: Layer, d: Dataset, loss: &str, metrics: Array| -> RResult<Map> {
            let ms = metrics
                .iter()
                .map(|x| Metric::from_name(&x.to_string()).map_err(err))
                .collect::<RResult<Vec<_>>>()?;
            let logs = train::evaluate(
                m.0.as_ref(),
                &d,
                &Loss::from_name(loss).map_err(err)?,
                &ms,
                256,
            )
            .map_err(err)?;
            Ok(logs
                .into_iter()
                .map(|(k, v)| (k.into(), Dynamic::from_float(v)))
                .collect())
        },
    );
    e.register_fn("predict", |m: Layer, x: Tensor| -> RResult<Tensor> {
        train::predict(m.0.as_ref(), &x, 256).map_err(err)
    });
    e.register_fn(
        "accuracy",
        |out: Tensor, labels: Tensor| -> RResult<FLOAT> {
            train::metrics::compute(Metric::Accuracy, &out, &labels, 0.5).map_err(err)
        },
    );

    // Checkpoints.
    let h = host.clone();
    e.register_fn(
        "save_checkpoint",
        move |m: Layer, path: &str| -> RResult<()> {
            let p = h.borrow().writable(path)?;
            engine::io::checkpoint::save(p, m.0.as_ref(), None, &BTreeMap::new()).map_err(err)
        },
    );
    let h = host.clone();
    e.register_fn(
        "save_checkpoint",
        move |m: Layer, o: Opt, path: &str| -> RResult<()> {
            let p = h.borrow().writable(path)?;
            engine::io::checkpoint::save(p, m.0.as_ref(), Some(&o.0.borrow()), &BTreeMap::new())
                .map_err(err)
        },
    );
    let h = host.clone();
    e.register_fn(
        "load_checkpoint",
        move |m: Layer, path: &str| -> RResult<()> {
            let p = h.borrow().readable(path)?;
            engine::io::checkpoint::load(p, m.0.as_ref(), None)
                .map(|_| ())
                .map_err(err)
        },
    );
    let h = host;
    e.register_fn(
        "load_checkpoint",
        move |m: Layer, o: Opt, path: &str| -> RResult<()> {
            let p = h.borrow().readable(path)?;
            engine::io::checkpoint::load(p, m.0.as_ref(), Some(&mut o.0.borrow_mut()))
                .map(|_| ())
                .map_err(err)
        },
    );
}
