//! The cost of recording ops on tiny tensors, where framework overhead is all there is.
//! PyTorch on this machine (`../shared/peers/RESULTS.md`): 0.72 µs for an 8-element add, 1.26 µs
//! when it records the graph, 51.9 µs for the scalar autograd step below. The goal here is
//! ≤ 0.3 µs for the recorded add.

use criterion::{criterion_group, criterion_main, Criterion};
use engine::Tensor;
use std::hint::black_box;

fn tape(c: &mut Criterion) {
    let a = Tensor::from_vec((0..8).map(|i| i as f32).collect(), [8]).unwrap();
    let b = Tensor::from_vec((0..8).map(|i| 0.5 * i as f32).collect(), [8]).unwrap();
    let a_grad = a.requires_grad();

    c.bench_function("add_8elem", |bench| {
        bench.iter(|| black_box(&a).add(black_box(&b)).unwrap())
    });
    c.bench_function("add_8elem_requires_grad", |bench| {
        bench.iter(|| black_box(&a_grad).add(black_box(&b)).unwrap())
    });

    // loss = (tanh(w·x + b) - t)², backward, two SGD updates, grads reset: PyTorch 51.9 µs.
    let w = Tensor::scalar(0.3).requires_grad();
    let bias = Tensor::scalar(-0.1).requires_grad();
    let (x, t) = (Tensor::scalar(1.5), Tensor::scalar(0.7));
    c.bench_function("scalar_autograd_step", |bench| {
        bench.iter(|| {
            let y = w.mul(&x).unwrap().add(&bias).unwrap().tanh();
            let loss = y.sub(&t).unwrap().square();
            loss.backward().unwrap();
            for p in [&w, &bias] {
                let g = p.grad().unwrap().data();
                p.update(|v| v[0] -= 0.01 * g[0]);
                p.zero_grad();
            }
        })
    });
}

criterion_group!(benches, tape);
criterion_main!(benches);
