//! Checkpoints: round trip with the optimizer and metadata, every kind of corruption refused with
//! the model left unchanged, files written by Python's safetensors, a file for PyTorch to load, and
//! a process killed in the middle of saving.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use common::{assert_close, fixture, from_json};
use engine::io::checkpoint;
use engine::nn::{
    self, Activation, BatchNorm, Conv2d, Flatten, Linear, MaxPool2d, Module, Sequential,
};
use engine::ops::pool::PoolSpec;
use engine::optim::Optimizer;
use engine::{manual_seed, Tensor};

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cnn(seed: u64) -> Sequential {
    manual_seed(seed);
    Sequential::new()
        .layer(Conv2d::new(1, 4, 3, 1))
        .layer(BatchNorm::new_2d(4))
        .layer(Activation::ReLU)
        .layer(MaxPool2d(PoolSpec::square(2)))
        .layer(Flatten)
        .layer(Linear::new(64, 10))
}

fn train_a_little(model: &Sequential, opt: &mut Optimizer) {
    let x = Tensor::randn_with([8, 1, 8, 8], 0.0, 1.0, &mut engine::Rng::seed(1));
    let y = Tensor::from_vec((0..8).map(|i| (i % 10) as f32).collect(), [8]).unwrap();
    model.train(true);
    for _ in 0..3 {
        opt.zero_grad();
        nn::loss::cross_entropy(&model.forward(&x).unwrap(), &y, Default::default())
            .unwrap()
            .backward()
            .unwrap();
        opt.step().unwrap();
    }
    model.eval();
}

fn snapshot(m: &dyn Module) -> Vec<Vec<f32>> {
    nn::state_dict(m).iter().map(|(_, t)| t.to_vec()).collect()
}

#[test]
fn round_trip_with_optimizer_and_metadata() {
    let path = dir("roundtrip").join("model.safetensors");
    let a = cnn(1);
    let mut opt_a = Optimizer::adam(a.named_parameters(), 1e-2).unwrap();
    train_a_little(&a, &mut opt_a);
    let mut meta = BTreeMap::new();
    meta.insert("epoch".to_string(), "3".to_string());
    checkpoint::save(&path, &a, Some(&opt_a), &meta).unwrap();

    let b = cnn(2);
    let mut opt_b = Optimizer::adam(b.named_parameters(), 1e-2).unwrap();
    let back = checkpoint::load(&path, &b, Some(&mut opt_b)).unwrap();
    assert_eq!(back["epoch"], "3");
    assert_eq!(back["format"], checkpoint::FORMAT);
    assert_eq!(snapshot(&a), snapshot(&b));
    assert_eq!(opt_b.steps(), 3);
    // Both continue identically: the optimizer state came back too.
    train_a_little(&a, &mut opt_a);
    train_a_little(&b, &mut opt_b);
    assert_eq!(snapshot(&a), snapshot(&b));
}

fn expect_refused(path: &Path, want: &str) {
    let m = cnn(5);
    let before = snapshot(&m);
    let e = checkpoint::load(path, &m, None).unwrap_err().to_string();
    assert!(e.contains(want), "expected `{want}` in: {e}");
    assert_eq!(
        snapshot(&m),
        before,
        "a refused checkpoint must leave the model unchanged"
    );
}

#[test]
fn corrupt_files_are_refused_and_the_model_is_unchanged() {
    let d = dir("corrupt");
    let good = d.join("good.safetensors");
    checkpoint::save(&good, &cnn(1), None, &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    expect_refused(&d.join("missing.safetensors"), "cannot read");
    std::fs::write(d.join("truncated.safetensors"), &bytes[..bytes.len() - 100]).unwrap();
    expect_refused(
        &d.join("truncated.safetensors"),
        "is not a valid safetensors file",
    );
    std::fs::write(d.join("empty.safetensors"), b"").unwrap();
    expect_refused(
        &d.join("empty.safetensors"),
        "is not a valid safetensors file",
    );
    // A header that claims more bytes than the file holds.
    let mut lying = bytes.clone();
    lying[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(d.join("lying.safetensors"), &lying).unwrap();
    expect_refused(
        &d.join("lying.safetensors"),
        "is not a valid safetensors file",
    );
    // A header whose offsets point past the data.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let moved = header.replacen("\"data_offsets\":[0,", "\"data_offsets\":[999999,", 1);
    if moved != header {
        let mut b = (moved.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(moved.as_bytes());
        b.extend_from_slice(&bytes[8 + n..]);
        std::fs::write(d.join("offsets.safetensors"), &b).unwrap();
        expect_refused(
            &d.join("offsets.safetensors"),
            "is not a valid safetensors file",
        );
    }
    // Right format, wrong model: different shapes and names.
    manual_seed(0);
    let other = Sequential::new()
        .layer(Conv2d::new(1, 3, 3, 1))
        .layer(Linear::new(64, 10));
    checkpoint::save(d.join("other.safetensors"), &other, None, &BTreeMap::new()).unwrap();
    let m = cnn(5);
    let e = checkpoint::load(d.join("other.safetensors"), &m, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`0.weight` has shape [3, 1, 3, 3] in the file but [4, 1, 3, 3] in the model"),
        "{e}"
    );
    assert!(e.contains("missing `1.running_mean`"), "{e}");
    assert!(
        e.contains("unexpected `1.weight`") || e.contains("`1.weight` has shape"),
        "{e}"
    );
    // Asking for optimizer state that is not there.
    let mut opt = Optimizer::adam(m.named_parameters(), 0.1).unwrap();
    let e = checkpoint::load(&good, &m, Some(&mut opt))
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds no optimizer state"), "{e}");
}

#[test]
fn reads_a_file_written_by_python_safetensors() {
    // Sequential [Linear(4, 8), BatchNorm1d(8), ReLU, Linear(8, 3)], from make_checkpoint_fixture.py.
    manual_seed(0);
    let m = Sequential::new()
        .layer(Linear::new(4, 8))
        .layer(BatchNorm::new_1d(8))
        .layer(Activation::ReLU)
        .layer(Linear::new(8, 3));
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_written.safetensors");
    let meta = checkpoint::load(&path, &m, None).unwrap();
    assert!(meta["written_by"].starts_with("torch "));
    let io = fixture("torch_written.json");
    let out = engine::train::predict(&m, &from_json(&io["input"]), 64).unwrap();
    assert_close(
        "output of the model PyTorch saved",
        &out,
        &from_json(&io["output"]),
        1e-5,
        1e-6,
    );
}

#[test]
fn writes_a_checkpoint_for_pytorch() {
    // tests/fixtures/check_checkpoint_in_torch.py loads this into the same PyTorch model.
    let d = dir("gradbook-for-torch");
    let m = cnn(7);
    let mut opt = Optimizer::sgd(m.named_parameters(), 0.1, 0.9).unwrap();
    train_a_little(&m, &mut opt);
    checkpoint::save(
        d.join("model.safetensors"),
        &m,
        Some(&opt),
        &BTreeMap::new(),
    )
    .unwrap();
    let x = Tensor::randn_with([3, 1, 8, 8], 0.0, 1.0, &mut engine::Rng::seed(2));
    let y = engine::train::predict(&m, &x, 64).unwrap();
    let js = |t: &Tensor| serde_json::json!({"shape": t.dims(), "data": t.to_vec()});
    std::fs::write(
        d.join("io.json"),
        serde_json::json!({"input": js(&x), "output": js(&y)}).to_string(),
    )
    .unwrap();
    // And the file reads back here with int64 batch counters intact.
    let contents = checkpoint::read(d.join("model.safetensors")).unwrap();
    let counter: HashMap<_, _> = contents.tensors.into_iter().collect();
    assert_eq!(counter["1.num_batches_tracked"].item().unwrap(), 3.0);
}

/// Not a check by itself: the child process of `a_kill_during_save_leaves_a_whole_checkpoint`,
/// which saves in a loop until it is killed. Without its environment variable it returns at once.
#[test]
fn helper_child_saving_in_a_loop() {
    let Ok(path) = std::env::var("GRADBOOK_TEST_SAVE_LOOP") else {
        return;
    };
    let big = Linear::new(1024, 1024);
    for i in 1.. {
        big.weight.update(|w| w.fill(i as f32));
        checkpoint::save(&path, &big, None, &BTreeMap::new()).unwrap();
    }
}

#[test]
fn a_kill_during_save_leaves_a_whole_checkpoint() {
    let path = dir("kill").join("model.safetensors");
    let big = Linear::new(1024, 1024);
    big.weight.update(|w| w.fill(0.0));
    checkpoint::save(&path, &big, None, &BTreeMap::new()).unwrap();
    let mut seen = Vec::new();
    for delay_ms in [40, 90, 150, 230] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_child_saving_in_a_loop", "--nocapture"])
            .env("GRADBOOK_TEST_SAVE_LOOP", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        let m = Linear::new(1024, 1024);
        checkpoint::load(&path, &m, None)
            .unwrap_or_else(|e| panic!("after a kill at {delay_ms} ms: {e}"));
        let w = m.weight.to_vec();
        assert!(
            w.iter().all(|&v| v == w[0]),
            "a torn checkpoint: the weights mix two saves"
        );
        seen.push(w[0]);
    }
    // The children did get to save (so the kills landed while saves were going on).
    assert!(
        seen.iter().any(|&v| v > 0.0),
        "no child ever saved: {seen:?}"
    );
    eprintln!("save counts reached before each kill: {seen:?}");
}
