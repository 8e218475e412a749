//! Training end to end: the digits MLP, data-parallel equivalence, determinism, early stopping,
//! the non-finite diagnosis, weight penalties, metrics and the model summary.

use std::time::Instant;

use engine::data::{Dataset, Standardizer};
use engine::io::csv::load_csv;
use engine::nn::{self, Activation, Linear, Module, Sequential};
use engine::optim::Optimizer;
use engine::train::{self, evaluate, fit, Control, EarlyStopping, FitConfig, Loss, Metric};
use engine::{manual_seed, Tensor};

fn digits() -> (Dataset, Dataset, Dataset) {
    let d = load_csv(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tutorials/data/digits_8x8.csv"
    ))
    .unwrap()
    .into_dataset("label")
    .unwrap();
    let parts = d.split(&[0.7, 0.1, 0.2], 7).unwrap();
    let s = Standardizer::fit(&parts[0].x).unwrap();
    let fix = |p: &Dataset| Dataset::new(s.transform(&p.x).unwrap(), p.y.clone()).unwrap();
    (fix(&parts[0]), fix(&parts[1]), fix(&parts[2]))
}

fn mlp(seed: u64, sizes: &[usize]) -> Sequential {
    manual_seed(seed);
    let mut m = Sequential::new();
    for w in sizes.windows(2) {
        if !m.is_empty() {
            m = m.layer(Activation::ReLU);
        }
        m = m.layer(Linear::new(w[0], w[1]));
    }
    m
}

fn quiet(_: &train::Event) -> Control {
    Control::Continue
}

#[test]
fn digits_mlp_reaches_95_percent() {
    let (tr, va, te) = digits();
    let model = mlp(1, &[64, 64, 10]);
    let mut opt = Optimizer::adam(model.named_parameters(), 3e-3).unwrap();
    let cfg = FitConfig {
        epochs: 30,
        batch_size: 32,
        metrics: vec![Metric::Accuracy],
        early_stopping: Some(EarlyStopping::new(5)),
        ..Default::default()
    };
    let t0 = Instant::now();
    let h = fit(
        &model,
        &mut opt,
        &Loss::CrossEntropy,
        &tr,
        Some(&va),
        &cfg,
        &mut quiet,
    )
    .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let test = evaluate(&model, &te, &Loss::CrossEntropy, &[Metric::Accuracy], 256).unwrap();
    println!(
        "digits MLP 64-64-10: {} epochs in {secs:.2} s, test accuracy {:.4}",
        h.epochs(),
        test["accuracy"]
    );
    assert!(
        test["accuracy"] >= 0.95,
        "test accuracy {}",
        test["accuracy"]
    );
    assert!(h
        .get("val_accuracy")
        .unwrap()
        .iter()
        .all(|a| (0.0..=1.0).contains(a)));
}

fn tiny_regression() -> Dataset {
    let x = Tensor::randn_with([96, 3], 0.0, 1.0, &mut engine::Rng::seed(4));
    let y = x
        .select(1, 0)
        .unwrap()
        .mul(&x.select(1, 1).unwrap())
        .unwrap()
        .add(&x.select(1, 2).unwrap().sin())
        .unwrap();
    Dataset::new(x, y).unwrap()
}

fn train_with(shards: usize, seed: u64) -> (Vec<Vec<f32>>, f64) {
    let model = mlp(seed, &[3, 16, 1]);
    let mut opt = Optimizer::sgd(model.named_parameters(), 0.05, 0.9).unwrap();
    let cfg = FitConfig {
        epochs: 3,
        batch_size: 32,
        shards,
        seed,
        ..Default::default()
    };
    let h = fit(
        &model,
        &mut opt,
        &Loss::Mse,
        &tiny_regression(),
        None,
        &cfg,
        &mut quiet,
    )
    .unwrap();
    (
        model.parameters().iter().map(Tensor::to_vec).collect(),
        h.last("loss").unwrap(),
    )
}

#[test]
fn data_parallel_shards_match_the_single_run() {
    let (one, l1) = train_with(1, 9);
    for shards in [2, 3] {
        let (many, l2) = train_with(shards, 9);
        assert!(
            (l1 - l2).abs() < 1e-5 * l1.abs().max(1.0),
            "loss {l1} vs {l2}"
        );
        for (a, b) in one.iter().flatten().zip(many.iter().flatten()) {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "{shards} shards: {a} vs {b}"
            );
        }
    }
}

#[test]
fn same_seed_and_shards_give_identical_bits() {
    let (a, _) = train_with(2, 3);
    let (b, _) = train_with(2, 3);
    assert_eq!(a, b);
    let (c, _) = train_with(2, 4);
    assert_ne!(a, c);
}

#[test]
fn early_stopping_restores_the_best_weights() {
    let (tr, va, _) = digits();
    let model = mlp(2, &[64, 128, 10]);
    let mut opt = Optimizer::adam(model.named_parameters(), 1e-2).unwrap();
    let cfg = FitConfig {
        epochs: 40,
        batch_size: 16,
        early_stopping: Some(EarlyStopping::new(2)),
        ..Default::default()
    };
    let h = fit(
        &model,
        &mut opt,
        &Loss::CrossEntropy,
        &tr,
        Some(&va),
        &cfg,
        &mut quiet,
    )
    .unwrap();
    let best = h.best_epoch.unwrap();
    let val = h.get("val_loss").unwrap();
    assert!(
        h.stopped_early && h.epochs() < 40,
        "ran {} epochs",
        h.epochs()
    );
    assert_eq!(val[best], val.iter().copied().fold(f64::INFINITY, f64::min));
    let now = evaluate(&model, &va, &Loss::CrossEntropy, &[], 256).unwrap()["loss"];
    assert!(
        (now - val[best]).abs() < 1e-5,
        "restored weights give {now}, best epoch logged {}",
        val[best]
    );
}

#[test]
fn a_diverging_run_is_stopped_with_a_diagnosis() {
    let model = mlp(5, &[3, 16, 1]);
    let mut opt = Optimizer::sgd(model.named_parameters(), 1e6, 0.0).unwrap();
    let cfg = FitConfig {
        epochs: 5,
        batch_size: 32,
        shards: 1,
        ..Default::default()
    };
    let e = fit(
        &model,
        &mut opt,
        &Loss::Mse,
        &tiny_regression(),
        None,
        &cfg,
        &mut quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("fit: the loss became NaN or infinite at epoch 1, batch"),
        "{e}"
    );
    assert!(e.contains("learning rate"), "{e}");
}

#[test]
fn an_observer_can_stop_training() {
    let model = mlp(5, &[3, 8, 1]);
    let mut opt = Optimizer::sgd(model.named_parameters(), 0.01, 0.0).unwrap();
    let mut batches = 0;
    let mut stop_after_two = |e: &train::Event| {
        if let train::Event::Batch { .. } = e {
            batches += 1;
        }
        if batches >= 2 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let cfg = FitConfig {
        epochs: 50,
        batch_size: 8,
        ..Default::default()
    };
    let h = fit(
        &model,
        &mut opt,
        &Loss::Mse,
        &tiny_regression(),
        None,
        &cfg,
        &mut stop_after_two,
    )
    .unwrap();
    assert!(h.interrupted);
    assert_eq!(batches, 2);
}

#[test]
fn l2_penalty_shrinks_the_weights() {
    let norm = |l2: f32| {
        let model = mlp(6, &[3, 16, 1]);
        let mut opt = Optimizer::sgd(model.named_parameters(), 0.05, 0.0).unwrap();
        let cfg = FitConfig {
            epochs: 20,
            batch_size: 32,
            l2,
            ..Default::default()
        };
        fit(
            &model,
            &mut opt,
            &Loss::Mse,
            &tiny_regression(),
            None,
            &cfg,
            &mut quiet,
        )
        .unwrap();
        model
            .named_parameters()
            .iter()
            .filter(|(n, _)| n.ends_with("weight"))
            .map(|(_, w)| w.square().sum_all().item().unwrap())
            .sum::<f32>()
    };
    let (plain, penalised) = (norm(0.0), norm(0.05));
    assert!(
        penalised < 0.7 * plain,
        "L2 should shrink the weights: {plain} -> {penalised}"
    );
}

#[test]
fn metrics_on_hand_made_examples() {
    use engine::train::metrics::compute;
    let out = Tensor::from_vec(vec![0.9, 0.2, 0.7, 0.4], [4, 1]).unwrap();
    let y = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], [4]).unwrap();
    // Predictions 1, 0, 1, 0: TP 1, FP 1, FN 1.
    assert_eq!(compute(Metric::Accuracy, &out, &y, 0.5).unwrap(), 0.5);
    assert_eq!(compute(Metric::Precision, &out, &y, 0.5).unwrap(), 0.5);
    assert_eq!(compute(Metric::Recall, &out, &y, 0.5).unwrap(), 0.5);
    assert_eq!(compute(Metric::F1, &out, &y, 0.5).unwrap(), 0.5);
    let logits =
        Tensor::from_vec(vec![2.0, 0.0, 1.0, 0.0, 3.0, 1.0, 0.0, 0.0, 5.0], [3, 3]).unwrap();
    let cls = Tensor::from_vec(vec![0.0, 1.0, 1.0], [3]).unwrap();
    assert!((compute(Metric::Accuracy, &logits, &cls, 0.5).unwrap() - 2.0 / 3.0).abs() < 1e-12);
    let pred = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap();
    let truth = Tensor::from_vec(vec![1.0, 2.0, 4.0], [3]).unwrap();
    assert!((compute(Metric::Mse, &pred, &truth, 0.5).unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!(
        (compute(Metric::R2, &pred, &truth, 0.5).unwrap() - (1.0 - 1.0 / (14.0 / 3.0))).abs()
            < 1e-9
    );
}

#[test]
fn summary_lists_layers_shapes_and_parameters() {
    use engine::nn::{Conv2d, Flatten, MaxPool2d};
    use engine::ops::pool::PoolSpec;
    manual_seed(0);
    let cnn = Sequential::new()
        .layer(Conv2d::new(1, 4, 3, 1))
        .layer(Activation::ReLU)
        .layer(MaxPool2d(PoolSpec::square(2)))
        .layer(Flatten)
        .layer(Linear::new(4 * 4 * 4, 10));
    let s = nn::summary(&cnn, &Tensor::zeros([2, 1, 8, 8])).unwrap();
    let shapes: Vec<String> = s
        .layers
        .iter()
        .map(|l| l.output_shape.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(
        shapes,
        [
            "[2, 10]",
            "[2, 4, 8, 8]",
            "[2, 4, 8, 8]",
            "[2, 4, 4, 4]",
            "[2, 64]",
            "[2, 10]"
        ]
    );
    assert_eq!(s.total_params, 4 * 9 + 4 + 64 * 10 + 10);
    assert_eq!(s.layers[1].params, 40);
    let text = s.to_string();
    assert!(
        text.contains("  Conv2d(1, 4, kernel=(3, 3), stride=(1, 1), padding=(1, 1))")
            && text.contains("Total parameters: 690"),
        "{text}"
    );
}
