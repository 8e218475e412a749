//! `threads::run`: a closure run on the engine's pool (where ops split their work with the caller
//! taking part) computes exactly what it computes on the calling thread. Its own test binary: `run`
//! keeps process-wide state (how long the last closure took), which other tests would disturb.

use engine::threads;
use engine::{manual_seed, Tensor};

/// A forward and backward pass big enough that every op splits its work across two threads.
fn pass() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    manual_seed(3);
    let x = Tensor::randn([384, 512]).requires_grad();
    let w = Tensor::randn([512, 640]).mul_scalar(0.05).requires_grad();
    let h = x.matmul(&w).unwrap().gelu();
    let y = h.softmax(-1).unwrap();
    y.mul(&h).unwrap().sum_all().backward().unwrap();
    (
        y.to_vec(),
        x.grad().unwrap().to_vec(),
        w.grad().unwrap().to_vec(),
    )
}

#[test]
fn run_on_the_pool_matches_the_calling_thread_bit_for_bit() {
    threads::set_num_threads(2).unwrap();
    let here = pass();
    // The first closure goes to the pool; after one that took no time the next runs on the
    // calling thread; after one that took milliseconds, on the pool again.
    assert!(threads::run(|| rayon::current_thread_index().is_some()));
    let on_caller = threads::run(|| {
        std::thread::sleep(std::time::Duration::from_millis(2));
        rayon::current_thread_index().is_none()
    });
    assert!(
        on_caller,
        "after a short closure, the next runs on the calling thread"
    );
    let (on_pool, pooled) = threads::run(|| (rayon::current_thread_index().is_some(), pass()));
    assert!(
        on_pool,
        "after a long closure, `run` hands the next to the pool"
    );
    assert!(here.0 == pooled.0, "outputs differ");
    assert!(here.1 == pooled.1, "input gradients differ");
    assert!(here.2 == pooled.2, "weight gradients differ");
    // Random draws inside continue the caller's stream, on the pool as on the caller.
    manual_seed(11);
    let expected: Vec<f32> = (0..3).flat_map(|_| Tensor::randn([5]).to_vec()).collect();
    manual_seed(11);
    // (Each closure takes 2 ms, so that the next one goes to the pool.)
    let first = threads::run(|| {
        std::thread::sleep(std::time::Duration::from_millis(2));
        Tensor::randn([5]).to_vec()
    });
    let (pooled, second) = threads::run(|| {
        let v = Tensor::randn([5]).to_vec();
        std::thread::sleep(std::time::Duration::from_millis(2));
        (rayon::current_thread_index().is_some(), v)
    });
    assert!(pooled);
    let third = Tensor::randn([5]).to_vec();
    assert_eq!([first, second, third].concat(), expected);
    // A panic inside propagates to the caller, and the pool still works after it.
    let caught = std::panic::catch_unwind(|| threads::run(|| panic!("inside run")));
    assert!(caught.is_err());
    let again = threads::run(pass);
    assert!(again.2 == here.2, "after a panic");
}

#[test]
fn predict_runs_batches_in_parallel_with_the_same_results() {
    use engine::nn::{Activation, Linear, Module, Sequential};
    threads::set_num_threads(2).unwrap();
    manual_seed(4);
    let m = Sequential::new()
        .layer(Linear::new(64, 256))
        .layer(Activation::GELU)
        .layer(Linear::new(256, 10));
    let x = Tensor::randn([300, 64]);
    // Batches of 128: three pieces on two threads, each computed as it would be alone.
    let y = engine::train::predict(&m, &x, 128).unwrap();
    let mut want = Vec::new();
    for s in (0..300).step_by(128) {
        let part = x.slice(0, s, (s + 128).min(300)).unwrap();
        want.extend(engine::no_grad(|| m.forward(&part).unwrap()).to_vec());
    }
    assert_eq!(y.dims(), &[300, 10]);
    assert!(
        y.to_vec() == want,
        "parallel batches differ from batches one by one"
    );
}
