//! Reproducibility: the same seed and thread count give bit-identical results — two trainings save
//! byte-identical checkpoints — and a different number of data-parallel shards changes only the
//! order of floating-point sums, which stays within a stated tolerance.

use std::collections::BTreeMap;

use engine::data::{Dataset, Standardizer};
use engine::io::{checkpoint, csv::load_csv};
use engine::nn::{Activation, Dropout, Linear, Module, Sequential};
use engine::optim::Optimizer;
use engine::train::{fit, Control, FitConfig, Loss};
use engine::{manual_seed, Tensor};

fn data() -> Dataset {
    let d = load_csv(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tutorials/data/digits_8x8.csv"
    ))
    .unwrap()
    .into_dataset("label")
    .unwrap();
    let d = d.range(0, 600).unwrap();
    let s = Standardizer::fit(&d.x).unwrap();
    Dataset::new(s.transform(&d.x).unwrap(), d.y).unwrap()
}

/// Three epochs on the digits with a fixed seed and the given number of data-parallel shards.
fn fit_quietly(model: &Sequential, opt: &mut Optimizer, shards: usize) {
    let cfg = FitConfig {
        epochs: 3,
        batch_size: 64,
        seed: 5,
        shards,
        ..Default::default()
    };
    fit(
        model,
        opt,
        &Loss::CrossEntropy,
        &data(),
        None,
        &cfg,
        &mut |_| Control::Continue,
    )
    .unwrap();
}

/// Trains a small net with dropout (so random draws are involved too) and returns its checkpoint.
fn train(shards: usize) -> (Vec<u8>, Vec<Vec<f32>>) {
    manual_seed(11);
    let model = Sequential::new()
        .layer(Linear::new(64, 32))
        .layer(Activation::ReLU)
        .layer(Dropout::new(0.2).unwrap())
        .layer(Linear::new(32, 10));
    let mut opt = Optimizer::adam(model.named_parameters(), 3e-3).unwrap();
    fit_quietly(&model, &mut opt, shards);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("determinism-{shards}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    checkpoint::save(&path, &model, Some(&opt), &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (
        bytes,
        model.parameters().iter().map(Tensor::to_vec).collect(),
    )
}

#[test]
fn same_seed_and_shards_give_identical_checkpoints() {
    for shards in [1, 2] {
        let (a, _) = train(shards);
        let (b, _) = train(shards);
        assert!(
            a == b,
            "two runs with {shards} shard(s) saved different checkpoints"
        );
    }
}

#[test]
fn shard_counts_differ_only_by_summation_order() {
    // Dropout masks are drawn per shard, so compare without dropout: the same model, sharded or not.
    let run = |shards: usize| {
        manual_seed(12);
        let model = Sequential::new()
            .layer(Linear::new(64, 32))
            .layer(Activation::Tanh)
            .layer(Linear::new(32, 10));
        let mut opt = Optimizer::sgd(model.named_parameters(), 0.05, 0.9).unwrap();
        fit_quietly(&model, &mut opt, shards);
        model
            .parameters()
            .iter()
            .flat_map(Tensor::to_vec)
            .collect::<Vec<f32>>()
    };
    let one = run(1);
    for shards in [2, 4] {
        let many = run(shards);
        let worst = one
            .iter()
            .zip(&many)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
            .fold(0.0f32, f32::max);
        // Stated tolerance: 1e-4 relative after 30 steps.
        assert!(worst < 1e-4, "{shards} shards differ from one by {worst:e}");
    }
}

#[test]
fn gemm_is_bit_identical_across_thread_counts() {
    // Each element of C is summed by one thread in the same blocked order whatever the split.
    use engine::kernels::gemm::{sgemm, MatMut, MatRef};
    let (m, k, n) = (300, 700, 500);
    let a = Tensor::randn_with([m, k], 0.0, 1.0, &mut engine::Rng::seed(1)).to_vec();
    let b = Tensor::randn_with([k, n], 0.0, 1.0, &mut engine::Rng::seed(2)).to_vec();
    let product = |threads: usize| {
        engine::threads::set_num_threads(threads).unwrap();
        let mut c = vec![0.0f32; m * n];
        sgemm(
            1.0,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            0.0,
            MatMut::row_major(&mut c, m, n),
        );
        c
    };
    let one = product(1);
    assert!(one == product(2) && one == product(3));
}
