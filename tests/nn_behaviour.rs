//! nn behaviour that fixtures do not cover: wrong loss pairings, initialisation statistics,
//! dropout in train and eval mode, nested parameter names, attention masks.

use engine::kernels::gemm::{with_isa, Isa};
use engine::nn::{
    self, loss, loss::Reduction, Activation, Dropout, Init, Linear, Module, MultiHeadAttention,
    Sequential, TransformerBlock,
};
use engine::train::Loss;
use engine::{manual_seed, Rng, Tensor};

fn t(v: &[f32], s: &[usize]) -> Tensor {
    Tensor::from_slice(v, s.to_vec()).unwrap()
}

#[test]
fn wrong_loss_pairings_are_explained() {
    let r = Reduction::Mean;
    let logits = t(&[2.5, -3.0, 0.3], &[3]);
    let y = t(&[1.0, 0.0, 1.0], &[3]);
    let e = loss::binary_cross_entropy(&logits, &y, r)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expects probabilities in [0, 1] but got values from -3 to 2.5")
            && e.contains("binary_cross_entropy_with_logits"),
        "{e}"
    );
    let e = loss::mse(&t(&[1.0, 2.0], &[2, 1]), &t(&[1.0, 2.0], &[2]), r)
        .unwrap_err()
        .to_string();
    assert!(e.contains("must have the same shape (broadcasting them would compare every prediction with every target)"), "{e}");
    let scores = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let e = loss::cross_entropy(&scores, &t(&[0.0, 1.0, 1.0, 0.0], &[2, 2]), r)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("for one-hot or probability targets use cross_entropy_probs"),
        "{e}"
    );
    let e = loss::cross_entropy(&scores, &t(&[0.0, 2.0], &[2]), r)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "cross_entropy: class index 2 is not a whole number in 0..2 (there are 2 classes)"
    );
    let e = loss::nll(&scores, &t(&[0.0, 1.0], &[2]), r)
        .unwrap_err()
        .to_string();
    assert!(e.contains("expects log-probabilities"), "{e}");
    let e = loss::binary_cross_entropy_with_logits(&logits, &t(&[2.0, 0.0, 1.0], &[3]), r)
        .unwrap_err()
        .to_string();
    assert!(e.contains("targets must lie in [0, 1]"), "{e}");
    // fit's losses line up [N] targets with [N, 1] outputs instead of broadcasting them.
    let l = Loss::Mse
        .compute(&t(&[1.0, 2.0], &[2, 1]), &t(&[1.0, 4.0], &[2]))
        .unwrap();
    assert_eq!(l.item().unwrap(), 2.0);
}

#[test]
fn extreme_scores_stay_finite() {
    let big = t(&[1000.0, -1000.0], &[2]);
    let y = t(&[0.0, 1.0], &[2]);
    let l = loss::binary_cross_entropy_with_logits(&big, &y, Reduction::Mean)
        .unwrap()
        .item()
        .unwrap();
    assert!((l - 1000.0).abs() < 1e-3, "{l}");
    let l = loss::cross_entropy(
        &t(&[1000.0, -1000.0], &[1, 2]),
        &t(&[1.0], &[1]),
        Reduction::Mean,
    )
    .unwrap()
    .item()
    .unwrap();
    assert!((l - 2000.0).abs() < 1e-2, "{l}");
    let p = t(&[1.0, 0.0], &[2]); // confidently wrong: -log 0 on both
    let l = loss::binary_cross_entropy(&p, &y, Reduction::Mean)
        .unwrap()
        .item()
        .unwrap();
    assert_eq!(l, 100.0, "log clamped at -100 as in PyTorch");
}

#[test]
fn initialisation_statistics() {
    manual_seed(0);
    let lin = Linear::new(400, 300);
    let b = 1.0 / 400f32.sqrt();
    assert!(lin.weight.to_vec().iter().all(|w| w.abs() <= b));
    let std = |t: &Tensor| t.std(&[], false).unwrap().item().unwrap();
    let he = Init::HeNormal.draw([400, 300], 300, 400, &mut Rng::seed(1));
    assert!((std(&he) - (2.0f32 / 300.0).sqrt()).abs() < 0.003);
    let xa = Init::XavierUniform.draw([400, 300], 300, 400, &mut Rng::seed(1));
    assert!((std(&xa) - (2.0f32 / 700.0).sqrt()).abs() < 0.003);
}

#[test]
fn dropout_in_train_and_eval_mode() {
    manual_seed(0);
    let d = Dropout::new(0.25).unwrap();
    let x = Tensor::ones([10_000]);
    let y = d.forward(&x).unwrap().to_vec();
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f32 / 10_000.0;
    assert!((zeros - 0.25).abs() < 0.02, "dropped {zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    d.eval();
    assert_eq!(d.forward(&x).unwrap().to_vec(), x.to_vec());
    assert!(Dropout::new(1.0).is_err());
}

struct AutoEncoder {
    encoder: Sequential,
    decoder: Sequential,
}

impl Module for AutoEncoder {
    fn forward(&self, x: &Tensor) -> engine::Result<Tensor> {
        self.decoder.call(&self.encoder.call(x)?)
    }
    fn describe(&self) -> String {
        "AutoEncoder".into()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("encoder".into(), &self.encoder),
            ("decoder".into(), &self.decoder),
        ]
    }
}

#[test]
fn nested_modules_are_named_like_pytorch() {
    manual_seed(0);
    let ae = AutoEncoder {
        encoder: Sequential::new()
            .layer(Linear::new(8, 4))
            .layer(Activation::ReLU)
            .layer(Linear::new(4, 2)),
        decoder: Sequential::new().layer(Linear::new(2, 8)),
    };
    let names: Vec<String> = ae.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "encoder.0.weight",
            "encoder.0.bias",
            "encoder.2.weight",
            "encoder.2.bias",
            "decoder.0.weight",
            "decoder.0.bias"
        ]
    );
    assert_eq!(ae.num_parameters(), 8 * 4 + 4 + 4 * 2 + 2 + 2 * 8 + 8);
    let block = TransformerBlock::new(8, 2, true, 0.0).unwrap();
    let names: Vec<String> = block
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names[..4],
        [
            "ln1.weight",
            "ln1.bias",
            "attn.in_proj_weight",
            "attn.in_proj_bias"
        ]
    );
    assert!(names.contains(&"mlp.2.bias".to_string()));
}

#[test]
fn causal_attention_never_looks_ahead() {
    manual_seed(0);
    let mha = MultiHeadAttention::new(8, 2, true).unwrap();
    let x = Tensor::randn([1, 5, 8]);
    let (_, w) = mha.attend(&x, &x, &x, None).unwrap();
    for h in 0..2 {
        for i in 0..5 {
            let row: Vec<f32> = (0..5).map(|j| w.get(&[0, h, i, j]).unwrap()).collect();
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(
                row[i + 1..].iter().all(|&v| v == 0.0),
                "row {i} looks ahead: {row:?}"
            );
        }
    }
    // Changing a later token cannot change an earlier output.
    let mut v = x.to_vec();
    v[4 * 8] += 10.0;
    let x2 = Tensor::from_vec(v, [1, 5, 8]).unwrap();
    let (a, b) = (mha.forward(&x).unwrap(), mha.forward(&x2).unwrap());
    assert_eq!(
        a.narrow(1, 0, 4).unwrap().to_vec(),
        b.narrow(1, 0, 4).unwrap().to_vec()
    );
    // A padding mask hides keys.
    let plain = MultiHeadAttention::new(8, 2, false).unwrap();
    let pad = t(&[0.0, 0.0, 0.0, 1.0, 1.0], &[1, 5]);
    let (_, w) = plain.attend(&x, &x, &x, Some(&pad)).unwrap();
    assert!(w
        .narrow(3, 3, 2)
        .unwrap()
        .to_vec()
        .iter()
        .all(|&v| v == 0.0));
    assert!(nn::summary(&block_model(), &Tensor::zeros([2, 4, 8]))
        .unwrap()
        .to_string()
        .contains("TransformerBlock(width=8, heads=2)"));
}

fn block_model() -> Sequential {
    Sequential::new().layer(TransformerBlock::new(8, 2, true, 0.1).unwrap())
}

/// The fused attention ops (taken without a key-padding mask: over Q, K and V packed side by side
/// when query, key and value are one tensor, else over three tensors) and the composed form (taken
/// with a mask; all zeros hides nothing) agree on outputs, weights and every parameter's gradient,
/// for a few queries and for 70 (rows of every length class in the causal softmax).
#[test]
fn fused_attention_matches_the_composed_form() {
    fused_attention_against_composed();
}

/// The same comparison with every instruction set the CPU has: the fused op's transposes, its
/// softmax over score rows written only where seen, and its products take each path.
#[test]
fn fused_attention_matches_the_composed_form_on_every_isa() {
    for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Portable] {
        if isa.supported() {
            with_isa(isa, fused_attention_against_composed).unwrap();
        }
    }
}

fn fused_attention_against_composed() {
    for (causal, t) in [(true, 5), (false, 5), (true, 70), (false, 70)] {
        engine::manual_seed(3);
        let mha = MultiHeadAttention::new(8, 2, causal).unwrap();
        let x = Tensor::randn([3, t, 8]);
        // The same numbers as another node, so that `attend` cannot take the self-attention path.
        let x_again = x.mul_scalar(1.0);
        let run = |kv: &Tensor, pad: Option<&Tensor>| {
            for (_, p) in mha.named_parameters() {
                p.set_grad(None).unwrap();
            }
            let (out, w) = mha.attend(&x, kv, kv, pad).unwrap();
            out.mul(&out).unwrap().sum_all().backward().unwrap();
            let grads: Vec<Vec<f32>> = mha
                .named_parameters()
                .iter()
                .map(|(_, p)| p.grad().unwrap().to_vec())
                .collect();
            (out.to_vec(), w.to_vec(), grads)
        };
        let packed = run(&x, None);
        let apart = run(&x_again, None);
        let composed = run(&x, Some(&Tensor::zeros([3, t])));
        let close = |a: &[f32], b: &[f32], what: &str| {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                    "{what} [{i}]: {x} vs {y}"
                );
            }
        };
        for fused in [packed, apart] {
            close(&fused.0, &composed.0, "output");
            close(&fused.1, &composed.1, "weights");
            for (g, c) in fused.2.iter().zip(&composed.2) {
                close(g, c, "gradient");
            }
        }
    }
}

/// A Sequential runs Linear + ReLU as one fused op (the ReLU inside the GEMM): the output and
/// every gradient equal the layer-by-layer computation bit for bit, and a summary (whose hooks
/// watch each layer) still lists the ReLU layers.
#[test]
fn linear_then_relu_is_fused_with_identical_results() {
    manual_seed(21);
    let model = Sequential::new()
        .layer(Linear::new(7, 9))
        .layer(Activation::ReLU)
        .layer(Linear::new(9, 5))
        .layer(Activation::ReLU)
        .layer(Linear::new(5, 3));
    let x = Tensor::randn([6, 7]);
    let y = model.forward(&x).unwrap();
    let pair = Sequential::new()
        .layer(Linear::new(7, 9))
        .layer(Activation::ReLU);
    assert_eq!(pair.forward(&x).unwrap().op_name(), Some("linear_relu"));
    y.square().sum_all().backward().unwrap();
    let fused: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|p| p.grad().unwrap().to_vec())
        .collect();
    model.zero_grad();
    let p = model.parameters();
    let mut h = x.clone();
    for (i, pair) in p.chunks(2).enumerate() {
        h = h.linear(&pair[0], Some(&pair[1])).unwrap();
        if i < 2 {
            h = h.relu();
        }
    }
    assert_eq!(y.to_vec(), h.to_vec(), "outputs");
    h.square().sum_all().backward().unwrap();
    for (i, (f, q)) in fused.iter().zip(&p).enumerate() {
        assert_eq!(f, &q.grad().unwrap().to_vec(), "gradient of parameter {i}");
    }
    let s = nn::summary(&model, &x).unwrap();
    assert_eq!(
        s.layers.iter().filter(|l| l.layer.contains("ReLU")).count(),
        2,
        "{s}"
    );
}

/// Without gradients, a Sequential runs Linear + GELU as one op (the GELU inside the GEMM): the
/// output equals the layer-by-layer computation without gradients bit for bit; with gradients it
/// records the two ops (GELU computed with its derivative, by another erf: within 3e-7 relative),
/// and the gradients match those of the composed form bit for bit.
#[test]
fn linear_then_gelu_is_fused_for_inference() {
    manual_seed(23);
    let model = Sequential::new()
        .layer(Linear::new(8, 16))
        .layer(Activation::GELU)
        .layer(Linear::new(16, 4));
    let x = Tensor::randn([5, 8]);
    let p = model.parameters();
    let composed = |x: &Tensor| {
        x.linear(&p[0], Some(&p[1]))
            .unwrap()
            .gelu()
            .linear(&p[2], Some(&p[3]))
            .unwrap()
    };
    let fused = engine::no_grad(|| model.forward(&x).unwrap());
    assert_eq!(fused.to_vec(), engine::no_grad(|| composed(&x)).to_vec());
    // With gradients, the pair is recorded as its two ops (GELU's backward needs the
    // pre-activation).
    let pair = Sequential::new()
        .layer(Linear::new(8, 16))
        .layer(Activation::GELU);
    assert_eq!(
        pair.forward(&x).unwrap().op_name(),
        Some("gelu"),
        "recorded as linear + gelu"
    );
    let y = model.forward(&x).unwrap();
    assert_eq!(y.to_vec(), composed(&x).to_vec());
    for (a, b) in y.to_vec().iter().zip(fused.to_vec()) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} against {b}");
    }
    y.square().sum_all().backward().unwrap();
    let grads: Vec<Vec<f32>> = p.iter().map(|q| q.grad().unwrap().to_vec()).collect();
    model.zero_grad();
    composed(&x).square().sum_all().backward().unwrap();
    for (i, (g, q)) in grads.iter().zip(&p).enumerate() {
        assert_eq!(g, &q.grad().unwrap().to_vec(), "gradient of parameter {i}");
    }
}
