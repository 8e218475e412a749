//! The nn library against PyTorch (values from `fixtures/make_nn_fixtures.py`): every layer's
//! output and gradients (batch norm in train and eval mode, with its running statistics after the
//! step), every loss and its gradient, the optimizers' first six steps, the schedules, clipping.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{assert_close, fixture, from_json};
use engine::nn::{self, loss, loss::Reduction, Module};
use engine::ops::conv::Conv2dSpec;
use engine::ops::pool::PoolSpec;
use engine::optim::{clip_grad_norm, Algorithm, LrSchedule, Optimizer};
use engine::Tensor;
use serde_json::Value;

fn layer(name: &str) -> Box<dyn Module> {
    match name {
        "linear" => Box::new(nn::Linear::new(5, 3)),
        "linear_3d_input" => Box::new(nn::Linear::new(4, 6)),
        "conv2d_stride_pad" => Box::new(nn::Conv2d::with_spec(
            3,
            4,
            (3, 3),
            Conv2dSpec {
                stride: (2, 2),
                padding: (1, 1),
                ..Default::default()
            },
            true,
        )),
        "conv2d_groups_dilation" => Box::new(nn::Conv2d::with_spec(
            4,
            6,
            (3, 2),
            Conv2dSpec {
                padding: (2, 1),
                dilation: (2, 1),
                groups: 2,
                ..Default::default()
            },
            true,
        )),
        "conv1d" => Box::new(nn::Conv1d::new(3, 5, 3, 1)),
        "maxpool2d" => Box::new(nn::MaxPool2d(PoolSpec::square(2))),
        "maxpool2d_3_2_1" => Box::new(nn::MaxPool2d(PoolSpec {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
        })),
        "avgpool2d" => Box::new(nn::AvgPool2d(PoolSpec::square(2))),
        "batchnorm1d_train" => Box::new(nn::BatchNorm::new_1d(4)),
        "batchnorm2d_train" => Box::new(nn::BatchNorm::new_2d(2)),
        "batchnorm2d_eval" => Box::new(nn::BatchNorm::new_2d(3)),
        "layernorm" => Box::new(nn::LayerNorm::new(&[6])),
        "embedding" => Box::new(nn::Embedding::new(10, 4)),
        "mha_causal" => Box::new(nn::MultiHeadAttention::new(8, 2, true).unwrap()),
        "transformer_block" => Box::new(nn::TransformerBlock::new(8, 2, true, 0.0).unwrap()),
        "residual_basic_block" => Box::new(nn::Residual::basic_block(3, 4, 2)),
        "inception" => Box::new(nn::Parallel::inception(3, 2, (2, 3), (2, 2), 2)),
        other => panic!("no gradbook layer for fixture `{other}`"),
    }
}

fn named(v: &Value) -> HashMap<String, Tensor> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), from_json(t)))
        .collect()
}

#[test]
fn layers_match_pytorch() {
    let doc = fixture("nn_fixtures.json");
    for case in doc["layers"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let m = layer(name);
        nn::load_state_dict(m.as_ref(), &named(&case["state"]), true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        m.train(case["train"].as_bool().unwrap());
        let grads = named(&case["grads"]);
        let x = from_json(&case["input"]);
        let x = if grads.contains_key("input") {
            x.requires_grad()
        } else {
            x
        };
        let out = if name == "mha_causal" {
            // Through `attend`, to check the attention weights too.
            let mha = nn::MultiHeadAttention::new(8, 2, true).unwrap();
            nn::load_state_dict(&mha, &named(&case["state"]), true).unwrap();
            let (out, w) = mha.attend(&x, &x, &x, None).unwrap();
            assert_close(
                &format!("{name} attention weights"),
                &w,
                &from_json(&case["attention_weights"]),
                1e-5,
                1e-6,
            );
            out.mul(&from_json(&case["r"]))
                .unwrap()
                .sum_all()
                .backward()
                .unwrap();
            for (k, p) in mha.named_parameters() {
                assert_close(
                    &format!("{name} grad {k}"),
                    &p.grad().unwrap(),
                    &grads[&k],
                    1e-4,
                    1e-5,
                );
            }
            assert_close(
                &format!("{name} grad input"),
                &x.grad().unwrap(),
                &grads["input"],
                1e-4,
                1e-5,
            );
            assert_close(
                &format!("{name} output"),
                &out,
                &from_json(&case["output"]),
                1e-5,
                1e-5,
            );
            continue;
        } else {
            m.forward(&x).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        assert_close(
            &format!("{name} output"),
            &out,
            &from_json(&case["output"]),
            1e-5,
            1e-5,
        );
        out.mul(&from_json(&case["r"]))
            .unwrap()
            .sum_all()
            .backward()
            .unwrap();
        for (k, p) in m.named_parameters() {
            let want = grads
                .get(&k)
                .unwrap_or_else(|| panic!("{name}: PyTorch has no gradient for {k}"));
            assert_close(
                &format!("{name} grad {k}"),
                &p.grad()
                    .unwrap_or_else(|| panic!("{name}: no gradient for {k}")),
                want,
                1e-4,
                1e-5,
            );
        }
        if let Some(want) = grads.get("input") {
            assert_close(
                &format!("{name} grad input"),
                &x.grad().unwrap(),
                want,
                1e-4,
                1e-5,
            );
        }
        let after = named(&case["state_after"]);
        for (k, t) in nn::state_dict(m.as_ref()) {
            assert_close(
                &format!("{name} state after the step: {k}"),
                &t,
                &after[&k],
                1e-5,
                1e-6,
            );
        }
    }
}

#[test]
fn losses_match_pytorch() {
    let doc = fixture("nn_fixtures.json");
    for case in doc["losses"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let pred = from_json(&case["pred"]).requires_grad();
        let target = from_json(&case["target"]);
        let r = if case["reduction"] == "sum" {
            Reduction::Sum
        } else {
            Reduction::Mean
        };
        let l = match name {
            "mse" | "mse_sum" => loss::mse(&pred, &target, r),
            "l1" => loss::l1(&pred, &target, r),
            "huber" => loss::huber(&pred, &target, 0.5, r),
            "bce" => loss::binary_cross_entropy(&pred, &target, r),
            "bce_with_logits" => loss::binary_cross_entropy_with_logits(&pred, &target, r),
            "cross_entropy" | "cross_entropy_sum" => loss::cross_entropy(&pred, &target, r),
            "cross_entropy_probs" => loss::cross_entropy_probs(&pred, &target, r),
            "nll" => loss::nll(&pred, &target, r),
            "kl_div" => loss::kl_div(&pred, &target),
            other => panic!("no gradbook loss for fixture `{other}`"),
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_close(
            &format!("{name} value"),
            &l,
            &Tensor::scalar(case["loss"].as_f64().unwrap() as f32),
            1e-5,
            1e-6,
        );
        l.backward().unwrap();
        assert_close(
            &format!("{name} gradient"),
            &pred.grad().unwrap(),
            &from_json(&case["grad"]),
            1e-5,
            1e-6,
        );
    }
}

fn algorithm(name: &str, cfg: &Value) -> (Algorithm, f32) {
    let f = |k: &str, d: f32| cfg.get(k).and_then(Value::as_f64).map_or(d, |v| v as f32);
    let lr = f("lr", 0.0);
    let wd = f("weight_decay", 0.0);
    let a = if name.starts_with("sgd") {
        Algorithm::Sgd {
            momentum: f("momentum", 0.0),
            dampening: f("dampening", 0.0),
            nesterov: cfg
                .get("nesterov")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            weight_decay: wd,
        }
    } else if name.starts_with("adagrad") {
        Algorithm::Adagrad {
            lr_decay: f("lr_decay", 0.0),
            weight_decay: wd,
            eps: 1e-10,
        }
    } else if name.starts_with("rmsprop") {
        Algorithm::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            momentum: f("momentum", 0.0),
            weight_decay: wd,
        }
    } else if name == "adamw" {
        Algorithm::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
            decoupled: true,
        }
    } else {
        Algorithm::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
            decoupled: false,
        }
    };
    (a, lr)
}

#[test]
fn optimizers_match_pytorch_step_by_step() {
    let doc = fixture("nn_fixtures.json");
    let o = &doc["optimizers"];
    let (p0, target, coeff) = (
        from_json(&o["p0"]),
        from_json(&o["target"]),
        from_json(&o["coeff"]),
    );
    for case in o["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (alg, lr) = algorithm(name, &case["config"]);
        let p = p0.detach().requires_grad();
        let mut opt = Optimizer::new(alg, lr, vec![("p".into(), p.clone())]).unwrap();
        for (step, want) in case["trajectory"].as_array().unwrap().iter().enumerate() {
            opt.zero_grad();
            let l = p
                .sub(&target)
                .unwrap()
                .square()
                .mul(&coeff)
                .unwrap()
                .sum_all()
                .add(&p.mul_scalar(3.0).sin().sum_all().mul_scalar(0.1))
                .unwrap();
            l.backward().unwrap();
            opt.step().unwrap();
            assert_close(
                &format!("{name} after step {}", step + 1),
                &p,
                &from_json(want),
                1e-5,
                1e-6,
            );
        }
    }
}

#[test]
fn optimizer_state_round_trips() {
    let p = Tensor::from_vec(vec![1.0, -2.0], [2])
        .unwrap()
        .requires_grad();
    let mut a = Optimizer::adam(vec![("w".into(), p.clone())], 0.1).unwrap();
    let step = |o: &mut Optimizer| {
        o.zero_grad();
        p.square().sum_all().backward().unwrap();
        o.step().unwrap();
    };
    step(&mut a);
    let (tensors, scalars) = a.state_dict();
    assert_eq!(
        tensors.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["w.exp_avg", "w.exp_avg_sq"]
    );
    let q = p.detach().requires_grad();
    let mut b = Optimizer::adam(vec![("w".into(), q.clone())], 0.1).unwrap();
    b.load_state_dict(&tensors, &scalars).unwrap();
    step(&mut a);
    b.zero_grad();
    q.square().sum_all().backward().unwrap();
    b.step().unwrap();
    assert_eq!(p.to_vec(), q.to_vec());
    let mut bad = BTreeMap::new();
    bad.insert("lr".to_string(), 0.1);
    assert!(b
        .load_state_dict(&tensors, &bad)
        .unwrap_err()
        .to_string()
        .contains("no step count"));
}

#[test]
fn schedules_match_pytorch() {
    let doc = fixture("nn_fixtures.json");
    let cases = [
        (
            "step",
            LrSchedule::Step {
                step_size: 3,
                gamma: 0.5,
            },
        ),
        ("exponential", LrSchedule::Exponential { gamma: 0.9 }),
        (
            "cosine",
            LrSchedule::Cosine {
                t_max: 10,
                eta_min: 0.001,
            },
        ),
        (
            "warmup_then_cosine",
            LrSchedule::Warmup {
                warmup: 4,
                then: Box::new(LrSchedule::Cosine {
                    t_max: 8,
                    eta_min: 0.0,
                }),
            },
        ),
    ];
    for (name, s) in cases {
        for (epoch, want) in doc["schedules"][name]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let (got, want) = (s.lr_at(0.1, epoch), want.as_f64().unwrap() as f32);
            assert!(
                (got - want).abs() <= 1e-6,
                "{name} epoch {epoch}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn gradient_clipping_matches_pytorch() {
    let doc = fixture("nn_fixtures.json");
    let c = &doc["clip"];
    let params: Vec<Tensor> = c["grads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let g = from_json(g);
            let p = Tensor::zeros(g.shape().clone()).requires_grad();
            p.set_grad(Some(g)).unwrap();
            p
        })
        .collect();
    let norm = clip_grad_norm(&params, c["max_norm"].as_f64().unwrap() as f32).unwrap();
    assert!((norm - c["norm"].as_f64().unwrap() as f32).abs() < 1e-5);
    for (p, want) in params.iter().zip(c["clipped"].as_array().unwrap()) {
        assert_close(
            "clipped gradient",
            &p.grad().unwrap(),
            &from_json(want),
            1e-5,
            1e-7,
        );
    }
}
