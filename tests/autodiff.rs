//! The tape's semantics: accumulation, no_grad, detach, freeing, threads, deep graphs.

use engine::{no_grad, Tensor};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape.to_vec()).unwrap()
}

#[test]
fn chain_rule_by_hand() {
    // y = tanh(w·x + b), L = (y - 1)²: dL/dw = 2(y - 1)(1 - y²) x.
    let w = t(&[0.5, -0.3], &[2]).requires_grad();
    let b = t(&[0.1], &[1]).requires_grad();
    let x = t(&[1.0, 2.0], &[2]);
    let z = w.mul(&x).unwrap().sum_all().add(&b).unwrap();
    let y = z.tanh();
    let loss = y.sub_scalar(1.0).square().sum_all();
    loss.backward().unwrap();
    let yv = (0.5f32 - 0.6 + 0.1).tanh();
    let dz = 2.0 * (yv - 1.0) * (1.0 - yv * yv);
    let gw = w.grad().unwrap().to_vec();
    assert!(
        (gw[0] - dz * 1.0).abs() < 1e-6 && (gw[1] - dz * 2.0).abs() < 1e-6,
        "{gw:?}"
    );
    assert!((b.grad().unwrap().item().unwrap() - dz).abs() < 1e-6);
}

#[test]
fn gradients_accumulate_until_zeroed() {
    let w = t(&[2.0], &[1]).requires_grad();
    for _ in 0..3 {
        w.mul_scalar(3.0).sum_all().backward().unwrap();
    }
    assert_eq!(w.grad().unwrap().to_vec(), vec![9.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
    w.mul_scalar(3.0).sum_all().backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec(), vec![3.0]);
}

#[test]
fn no_grad_and_detach_stop_recording() {
    let w = t(&[1.0, 2.0], &[2]).requires_grad();
    let y = no_grad(|| w.mul_scalar(2.0));
    assert!(!y.requires_grad_flag() && y.is_leaf());
    let d = w.mul_scalar(2.0).detach();
    assert!(!d.requires_grad_flag());
    // Gradient flows only through the attached branch.
    let loss = w.mul(&w.detach()).unwrap().sum_all();
    loss.backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec(), vec![1.0, 2.0]);
    assert!(engine::is_grad_enabled());
}

#[test]
fn backward_needs_a_scalar_and_a_graph() {
    let w = t(&[1.0, 2.0], &[2]).requires_grad();
    let e = w.mul_scalar(2.0).backward().unwrap_err();
    assert!(
        e.to_string()
            .starts_with("backward: backward() needs a one-element output (a loss), got shape [2]"),
        "{e}"
    );
    let c = t(&[1.0], &[1]);
    assert!(c
        .backward()
        .unwrap_err()
        .to_string()
        .contains("does not require grad"));
}

#[test]
fn the_graph_is_freed_by_backward() {
    let w = t(&[1.0, 2.0], &[2]).requires_grad();
    let loss = w.exp().sum_all();
    loss.backward().unwrap();
    let e = loss.backward().unwrap_err();
    assert!(e.to_string().contains("already freed"), "{e}");
}

#[test]
fn optimiser_style_update_is_seen_by_every_handle() {
    let w = t(&[1.0, 2.0], &[2]).requires_grad();
    let alias = w.clone();
    let loss = w.square().sum_all();
    loss.backward().unwrap();
    let g = w.grad().unwrap().data();
    w.update(|v| v.iter_mut().zip(g.iter()).for_each(|(p, g)| *p -= 0.1 * g));
    assert_eq!(alias.to_vec(), vec![0.8, 1.6]);
}

#[test]
fn values_saved_for_backward_survive_an_in_place_update() {
    // The graph keeps the numbers it was computed with, as a snapshot.
    let w = t(&[3.0], &[1]).requires_grad();
    let loss = w.square().sum_all();
    w.update(|v| v[0] = 100.0);
    loss.backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec(), vec![6.0]);
    assert_eq!(w.to_vec(), vec![100.0]);
}

#[test]
fn graphs_on_several_threads_at_once() {
    let w = t(&[1.0, -1.0, 0.5], &[3]).requires_grad();
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let w = w.clone();
            std::thread::spawn(move || {
                // Each thread records its own graph on the shared leaf.
                for _ in 0..100 {
                    let x = Tensor::full([3], k as f32);
                    let loss = w.mul(&x).unwrap().tanh().sum_all();
                    loss.backward().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Sum over threads k of 100 * k * (1 - tanh²(w_i k)).
    let expect: Vec<f32> = [1.0f32, -1.0, 0.5]
        .iter()
        .map(|&wi| {
            (0..4)
                .map(|k| 100.0 * k as f32 * (1.0 - (wi * k as f32).tanh().powi(2)))
                .sum()
        })
        .collect();
    for (g, e) in w.grad().unwrap().to_vec().iter().zip(expect) {
        assert!((g - e).abs() < 1e-3 * e.abs().max(1.0), "{g} vs {e}");
    }
}

#[test]
fn a_very_deep_graph_neither_overflows_backward_nor_drop() {
    let x = t(&[0.5], &[1]).requires_grad();
    let mut y = x.clone();
    for _ in 0..200_000 {
        y = y.mul_scalar(1.0);
    }
    y.sum_all().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), vec![1.0]);
    // And a deep graph dropped without backward.
    let mut z = x.clone();
    for _ in 0..200_000 {
        z = z.add_scalar(0.0);
    }
    drop(z);
}

/// A batched matmul big enough to run its products across the pool gives the same values and
/// gradients as the same products taken one by one.
#[test]
fn large_batched_matmul_matches_its_products_one_by_one() {
    let mut rng = engine::Rng::seed(41);
    let (bt, m, k, n) = (64, 32, 33, 31);
    let a = Tensor::randn_with([bt, m, k], 0.0, 1.0, &mut rng).requires_grad();
    let b = Tensor::randn_with([bt, k, n], 0.0, 1.0, &mut rng).requires_grad();
    let g = Tensor::randn_with([bt, m, n], 0.0, 1.0, &mut rng);
    let y = a.matmul(&b).unwrap();
    y.backward_with(&g).unwrap();
    let (ga, gb) = (a.grad().unwrap().to_vec(), b.grad().unwrap().to_vec());
    let (yv, av, bv, gv) = (y.to_vec(), a.to_vec(), b.to_vec(), g.to_vec());
    for i in 0..bt {
        let ai = Tensor::from_vec(av[i * m * k..(i + 1) * m * k].to_vec(), [m, k])
            .unwrap()
            .requires_grad();
        let bi = Tensor::from_vec(bv[i * k * n..(i + 1) * k * n].to_vec(), [k, n])
            .unwrap()
            .requires_grad();
        let yi = ai.matmul(&bi).unwrap();
        yi.backward_with(
            &Tensor::from_vec(gv[i * m * n..(i + 1) * m * n].to_vec(), [m, n]).unwrap(),
        )
        .unwrap();
        assert_eq!(yi.to_vec(), yv[i * m * n..(i + 1) * m * n], "product {i}");
        assert_eq!(
            ai.grad().unwrap().to_vec(),
            ga[i * m * k..(i + 1) * m * k],
            "dA {i}"
        );
        assert_eq!(
            bi.grad().unwrap().to_vec(),
            gb[i * k * n..(i + 1) * k * n],
            "dB {i}"
        );
    }
}
