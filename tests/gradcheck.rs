//! A finite-difference gradient check for every differentiable op, including broadcasting cases and
//! reductions over each axis. Each line names the op; the helper is in `common`.

mod common;

use common::{away_from_zero, gradcheck, positive};
use engine::{Rng, Tensor};

type Unary = fn(&Tensor) -> Tensor;
type Binary = fn(&Tensor, &Tensor) -> engine::Result<Tensor>;

fn rng() -> Rng {
    Rng::seed(2024)
}

#[test]
fn unary_ops() {
    let mut r = rng();
    let x = away_from_zero(&[3, 4], &mut r);
    let p = positive(&[3, 4], &mut r);
    let cases: Vec<(&str, &Tensor, Unary)> = vec![
        ("neg", &x, |t| t.neg()),
        ("abs", &x, |t| t.abs()),
        ("exp", &x, |t| t.exp()),
        ("log", &p, |t| t.log()),
        ("sqrt", &p, |t| t.sqrt()),
        ("sin", &x, |t| t.sin()),
        ("cos", &x, |t| t.cos()),
        ("tanh", &x, |t| t.tanh()),
        ("sigmoid", &x, |t| t.sigmoid()),
        ("relu", &x, |t| t.relu()),
        ("leaky_relu", &x, |t| t.leaky_relu(0.1)),
        ("elu", &x, |t| t.elu(1.5)),
        ("gelu", &x, |t| t.gelu()),
        ("softplus", &x, |t| t.softplus()),
        ("square", &x, |t| t.square()),
        ("clamp", &x, |t| t.clamp(Some(-0.5), Some(0.7))),
        ("clamp_min", &x, |t| t.clamp(Some(0.1), None)),
        ("add_scalar", &x, |t| t.add_scalar(2.0)),
        ("sub_scalar", &x, |t| t.sub_scalar(2.0)),
        ("rsub_scalar", &x, |t| t.rsub_scalar(2.0)),
        ("mul_scalar", &x, |t| t.mul_scalar(-3.0)),
        ("div_scalar", &x, |t| t.div_scalar(4.0)),
        ("rdiv_scalar", &p, |t| t.rdiv_scalar(2.0)),
        ("pow_scalar", &p, |t| t.pow_scalar(2.5)),
        ("pow_scalar_neg", &p, |t| t.pow_scalar(-1.5)),
    ];
    for (name, input, f) in cases {
        gradcheck(name, std::slice::from_ref(input), |a| Ok(f(&a[0])));
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let mut r = rng();
    // (left shape, right shape): equal, row vector, column × row, scalar, leading axes.
    let shapes: [(&[usize], &[usize]); 5] = [
        (&[3, 4], &[3, 4]),
        (&[3, 4], &[4]),
        (&[3, 1], &[1, 4]),
        (&[3, 4], &[]),
        (&[2], &[3, 2, 2]),
    ];
    let ops: Vec<(&str, Binary)> = vec![
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(b)),
        ("pow", |a, b| a.pow(b)),
        ("maximum", |a, b| a.maximum(b)),
        ("minimum", |a, b| a.minimum(b)),
    ];
    for (name, f) in ops {
        for (sa, sb) in shapes {
            let a = positive(sa, &mut r);
            let b = positive(sb, &mut r);
            gradcheck(&format!("{name} {sa:?} with {sb:?}"), &[a, b], |t| {
                f(&t[0], &t[1])
            });
        }
    }
}

#[test]
fn where_selects_and_routes_gradients() {
    let mut r = rng();
    let cond = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], [4]).unwrap();
    let a = away_from_zero(&[3, 4], &mut r);
    let b = away_from_zero(&[4], &mut r);
    gradcheck("where", &[a, b], |t| cond.where_(&t[0], &t[1]));
}

#[test]
fn reductions_over_each_axis() {
    let mut r = rng();
    let x = away_from_zero(&[2, 3, 4], &mut r);
    let axes: [&[isize]; 7] = [&[0], &[1], &[2], &[-1], &[0, 2], &[1, 2], &[]];
    for ax in axes {
        for keep in [false, true] {
            gradcheck(
                &format!("sum {ax:?} keepdim={keep}"),
                std::slice::from_ref(&x),
                |t| t[0].sum(ax, keep),
            );
            gradcheck(
                &format!("mean {ax:?} keepdim={keep}"),
                std::slice::from_ref(&x),
                |t| t[0].mean(ax, keep),
            );
            gradcheck(
                &format!("max {ax:?} keepdim={keep}"),
                std::slice::from_ref(&x),
                |t| t[0].max(ax, keep),
            );
            gradcheck(
                &format!("min {ax:?} keepdim={keep}"),
                std::slice::from_ref(&x),
                |t| t[0].min(ax, keep),
            );
            gradcheck(
                &format!("var {ax:?} keepdim={keep}"),
                std::slice::from_ref(&x),
                |t| t[0].var(ax, keep),
            );
            gradcheck(
                &format!("std {ax:?} keepdim={keep}"),
                std::slice::from_ref(&x),
                |t| t[0].std(ax, keep),
            );
        }
    }
    gradcheck("sum_all", std::slice::from_ref(&x), |t| Ok(t[0].sum_all()));
    gradcheck(
        "mean_all",
        std::slice::from_ref(&x),
        |t| Ok(t[0].mean_all()),
    );
    gradcheck("max_all", std::slice::from_ref(&x), |t| t[0].max_all());
    gradcheck("sum_to [1,3,1]", std::slice::from_ref(&x), |t| {
        t[0].sum_to(&engine::Shape::new(&[1, 3, 1]))
    });
    gradcheck("sum_to [4]", std::slice::from_ref(&x), |t| {
        t[0].sum_to(&engine::Shape::new(&[4]))
    });
}

#[test]
fn max_splits_the_gradient_between_ties() {
    let x = Tensor::from_vec(vec![1.0, 3.0, 3.0, 2.0], [4])
        .unwrap()
        .requires_grad();
    x.max_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), vec![0.0, 0.5, 0.5, 0.0]);
}

#[test]
fn shape_ops() {
    let mut r = rng();
    let x = away_from_zero(&[2, 3, 4], &mut r);
    let one = std::slice::from_ref(&x);
    gradcheck("reshape", one, |t| t[0].reshape(&[4, -1]));
    gradcheck("flatten", one, |t| t[0].flatten(1, 2));
    gradcheck("permute", one, |t| t[0].permute(&[2, 0, 1]));
    gradcheck("transpose", one, |t| t[0].transpose(0, 2));
    gradcheck("t", one, |t| t[0].t());
    gradcheck("unsqueeze", one, |t| t[0].unsqueeze(1));
    gradcheck("squeeze", one, |t| t[0].unsqueeze(-1)?.squeeze(-1));
    gradcheck("narrow axis 0 (view)", one, |t| t[0].narrow(0, 1, 1));
    gradcheck("narrow axis 1", one, |t| t[0].narrow(1, 1, 2));
    gradcheck("slice axis 2", one, |t| t[0].slice(2, 1, 3));
    gradcheck("select", one, |t| t[0].select(1, 2));
    gradcheck("index_select with repeats", one, |t| {
        t[0].index_select(2, &[3, 0, 3])
    });
    let idx = Tensor::from_vec(vec![0.0, 2.0, 2.0, 1.0, 0.0, 1.0], [2, 3, 1]).unwrap();
    gradcheck("gather", one, |t| t[0].gather(2, &idx));
    let y = away_from_zero(&[2, 1, 4], &mut r);
    gradcheck("concat", &[x.clone(), y.clone()], |t| {
        Tensor::concat(&[t[0].clone(), t[1].clone()], 1)
    });
    let z = away_from_zero(&[2, 3, 4], &mut r);
    gradcheck("stack", &[x.clone(), z], |t| {
        Tensor::stack(&[t[0].clone(), t[1].clone()], 1)
    });
    gradcheck("broadcast_to", &[y], |t| {
        t[0].broadcast_to(&engine::Shape::new(&[3, 2, 5, 4]))
    });
}

#[test]
fn matmul_variants() {
    let mut r = rng();
    let cases: [(&[usize], &[usize]); 7] = [
        (&[3, 4], &[4, 5]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[3, 4], &[2, 4, 5]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
        (&[4], &[4, 5]),
        (&[3, 4], &[4]),
    ];
    for (sa, sb) in cases {
        let a = away_from_zero(sa, &mut r);
        let b = away_from_zero(sb, &mut r);
        gradcheck(&format!("matmul {sa:?} x {sb:?}"), &[a, b], |t| {
            t[0].matmul(&t[1])
        });
    }
    let (a, b) = (away_from_zero(&[4], &mut r), away_from_zero(&[4], &mut r));
    gradcheck("matmul dot", &[a, b], |t| t[0].matmul(&t[1]));
}

#[test]
fn softmax_along_each_axis() {
    let mut r = rng();
    let x = away_from_zero(&[2, 3, 4], &mut r);
    for axis in [0, 1, 2, -1] {
        gradcheck(
            &format!("softmax axis {axis}"),
            std::slice::from_ref(&x),
            |t| t[0].softmax(axis),
        );
        gradcheck(
            &format!("log_softmax axis {axis}"),
            std::slice::from_ref(&x),
            |t| t[0].log_softmax(axis),
        );
    }
}

#[test]
fn fused_layer_norm_over_one_and_two_axes() {
    let mut r = rng();
    for (x_shape, norm) in [(vec![3, 5], vec![5]), (vec![2, 3, 4], vec![3, 4])] {
        let x = away_from_zero(&x_shape, &mut r);
        let w = away_from_zero(&norm, &mut r);
        let b = away_from_zero(&norm, &mut r);
        gradcheck(
            &format!("layer_norm {x_shape:?} over {norm:?}"),
            &[x, w, b],
            |t| t[0].layer_norm(&t[1], &t[2], 1e-5),
        );
    }
}

#[test]
fn fused_multi_head_attention() {
    let mut r = rng();
    // (batch, queries, keys, width, heads, causal): square causal, cross-attention with more keys
    // than queries, and causal over more than one block of 16 queries (the products skip the
    // blocks above the diagonal), square and with keys no query sees.
    for (b, t, s, e, h, causal) in [
        (2, 4, 4, 6, 2, true),
        (2, 3, 5, 4, 2, false),
        (1, 37, 37, 4, 2, true),
        (1, 20, 37, 2, 1, true),
    ] {
        let q = away_from_zero(&[b, t, e], &mut r);
        let k = away_from_zero(&[b, s, e], &mut r);
        let v = away_from_zero(&[b, s, e], &mut r);
        gradcheck(
            &format!("multi_head_attention T={t} S={s} causal={causal}"),
            &[q, k, v],
            |x| Ok(x[0].multi_head_attention(&x[1], &x[2], h, causal)?.0),
        );
    }
}

#[test]
fn fused_multi_head_self_attention() {
    let mut r = rng();
    // (batch, length, width, heads, causal): one causal block, more than one (the products skip
    // the blocks above the diagonal), and not causal.
    for (b, t, e, h, causal) in [(2, 4, 6, 2, true), (1, 37, 4, 2, true), (2, 5, 4, 1, false)] {
        let qkv = away_from_zero(&[b, t, 3 * e], &mut r);
        gradcheck(
            &format!("multi_head_self_attention T={t} causal={causal}"),
            &[qkv],
            |x| Ok(x[0].multi_head_self_attention(h, causal)?.0),
        );
    }
}

#[test]
fn composite_graph_reuses_a_tensor() {
    // x feeds several branches: gradients from each must add up.
    let mut r = rng();
    let x = away_from_zero(&[3, 3], &mut r);
    gradcheck("x*x + tanh(x)@x", &[x], |t| {
        let a = t[0].mul(&t[0])?;
        let b = t[0].tanh().matmul(&t[0])?;
        a.add(&b)?.sigmoid().mean(&[1], false)
    });
}

#[test]
fn linear_with_and_without_bias() {
    let mut r = rng();
    let (x, w, b) = (
        away_from_zero(&[2, 3, 4], &mut r),
        away_from_zero(&[5, 4], &mut r),
        away_from_zero(&[5], &mut r),
    );
    gradcheck("linear", &[x.clone(), w.clone(), b], |t| {
        t[0].linear(&t[1], Some(&t[2]))
    });
    gradcheck("linear without bias", &[x, w], |t| t[0].linear(&t[1], None));
}

/// Linear + ReLU fused into the GEMM. Pre-activations are kept away from the kink: small inputs
/// and weights, biases of ±2, so some outputs are always on and others always off.
#[test]
fn linear_relu_fused() {
    let mut r = rng();
    let x = away_from_zero(&[2, 3, 4], &mut r).mul_scalar(0.1);
    let w = away_from_zero(&[6, 4], &mut r).mul_scalar(0.1);
    let b = Tensor::from_vec(vec![2.0, -2.0, 2.0, -2.0, 2.0, -2.0], [6]).unwrap();
    gradcheck("linear_relu", &[x, w, b], |t| {
        t[0].linear_relu(&t[1], Some(&t[2]))
    });
}

#[test]
fn convolutions_and_pooling() {
    use engine::ops::conv::Conv2dSpec;
    use engine::ops::pool::PoolSpec;
    let mut r = rng();
    let x = away_from_zero(&[2, 4, 6, 5], &mut r);
    let specs = [
        (Conv2dSpec::default(), [3, 4, 3, 3]),
        (
            Conv2dSpec {
                stride: (2, 1),
                padding: (1, 2),
                ..Default::default()
            },
            [3, 4, 3, 2],
        ),
        (
            Conv2dSpec {
                dilation: (2, 1),
                padding: (1, 1),
                ..Default::default()
            },
            [2, 4, 2, 3],
        ),
        (
            Conv2dSpec {
                groups: 2,
                padding: (1, 1),
                ..Default::default()
            },
            [4, 2, 3, 3],
        ),
    ];
    for (spec, wshape) in specs {
        let w = away_from_zero(&wshape, &mut r);
        let b = away_from_zero(&[wshape[0]], &mut r);
        gradcheck(&format!("conv2d {spec:?}"), &[x.clone(), w, b], |t| {
            t[0].conv2d(&t[1], Some(&t[2]), spec)
        });
    }
    let (x1, w1) = (
        away_from_zero(&[2, 3, 9], &mut r),
        away_from_zero(&[4, 3, 3], &mut r),
    );
    gradcheck("conv1d", &[x1.clone(), w1], |t| {
        t[0].conv1d(&t[1], None, 2, 1, 1, 1)
    });
    // Distinct values so that no window has a tie for its maximum.
    let distinct = Tensor::from_vec(
        (0..2 * 4 * 6 * 5)
            .map(|i| ((i * 37) % 240) as f32 / 50.0 - 2.4)
            .collect(),
        [2, 4, 6, 5],
    )
    .unwrap();
    let one = std::slice::from_ref(&distinct);
    gradcheck("max_pool2d 2x2", one, |t| {
        t[0].max_pool2d(PoolSpec::square(2))
    });
    gradcheck("max_pool2d 3x3 stride 2 pad 1", one, |t| {
        t[0].max_pool2d(PoolSpec {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
        })
    });
    gradcheck("avg_pool2d 2x2", one, |t| {
        t[0].avg_pool2d(PoolSpec::square(2))
    });
    gradcheck("avg_pool2d 3x2 pad", one, |t| {
        t[0].avg_pool2d(PoolSpec {
            kernel: (3, 2),
            stride: (1, 2),
            padding: (1, 1),
        })
    });
    gradcheck("max_pool1d", std::slice::from_ref(&x1), |t| {
        t[0].max_pool1d(2, 2)
    });
}

#[test]
fn binary_cross_entropy_on_probabilities() {
    use engine::nn::loss::{binary_cross_entropy, Reduction};
    let mut r = rng();
    let p = Tensor::rand_with([2, 3], 0.1, 0.9, &mut r);
    let y = Tensor::rand_with([2, 3], 0.0, 1.0, &mut r);
    gradcheck("binary_cross_entropy (both inputs)", &[p, y], |t| {
        binary_cross_entropy(&t[0], &t[1], Reduction::None)
    });
    // Saturated probabilities give a large finite gradient, not NaN (PyTorch's formula).
    let sat = Tensor::from_vec(vec![0.0, 1.0, 1.0], [3])
        .unwrap()
        .requires_grad();
    let target = Tensor::from_vec(vec![1.0, 0.0, 1.0], [3]).unwrap();
    binary_cross_entropy(&sat, &target, Reduction::Sum)
        .unwrap()
        .backward()
        .unwrap();
    let g = sat.grad().unwrap().to_vec();
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    assert_eq!(g[2], 0.0);
}
