//! Property tests: broadcasting shape rules, reshape/permute round trips, reduction identities.

use engine::{Rng, Shape, Tensor};
use proptest::prelude::*;

fn small_shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 0..4)
}

fn tensor_of(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn_with(shape.to_vec(), 0.0, 1.0, &mut Rng::seed(seed))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Two shapes broadcast iff, aligned at the right, each extent pair is equal or has a 1; the
    /// result takes the larger extent, and adding gives that shape with a[i] + b[j] at each place.
    #[test]
    fn broadcasting_matches_the_numpy_rule(a in small_shape(), b in small_shape(), seed in 0u64..1000) {
        let rank = a.len().max(b.len());
        let pad = |s: &[usize]| { let mut v = vec![1; rank - s.len()]; v.extend_from_slice(s); v };
        let (pa, pb) = (pad(&a), pad(&b));
        let ok = pa.iter().zip(&pb).all(|(x, y)| x == y || *x == 1 || *y == 1);
        let (ta, tb) = (tensor_of(&a, seed), tensor_of(&b, seed + 1));
        match ta.add(&tb) {
            Ok(sum) => {
                prop_assert!(ok);
                let expect: Vec<usize> = pa.iter().zip(&pb).map(|(x, y)| *x.max(y)).collect();
                prop_assert_eq!(sum.dims(), &expect[..]);
                // Check every element against explicit index arithmetic.
                let out = sum.to_vec();
                let strides = Shape::new(&expect).strides();
                for (flat, v) in out.iter().enumerate() {
                    let idx: Vec<usize> = strides.iter().zip(&expect).map(|(s, d)| flat / s % d).collect();
                    let at = |t: &Tensor, p: &[usize]| {
                        let i: Vec<usize> = idx.iter().zip(p).map(|(i, d)| if *d == 1 { 0 } else { *i }).collect();
                        t.get(&i[rank - t.rank()..]).unwrap()
                    };
                    prop_assert_eq!(*v, at(&ta, &pa) + at(&tb, &pb));
                }
            }
            Err(e) => {
                prop_assert!(!ok);
                prop_assert!(e.to_string().starts_with("add: cannot broadcast"), "{}", e);
            }
        }
    }

    #[test]
    fn reshape_round_trips(shape in small_shape(), seed in 0u64..1000) {
        let t = tensor_of(&shape, seed);
        let flat = t.reshape(&[-1]).unwrap();
        prop_assert_eq!(flat.to_vec(), t.to_vec());
        let back = flat.reshape_to(t.shape().clone()).unwrap();
        prop_assert_eq!(back.dims(), t.dims());
        prop_assert_eq!(back.to_vec(), t.to_vec());
    }

    #[test]
    fn permute_then_inverse_is_identity(shape in prop::collection::vec(1usize..5, 1..5), seed in 0u64..1000) {
        let t = tensor_of(&shape, seed);
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        Rng::seed(seed).shuffle(&mut perm);
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() { inverse[p] = i; }
        let p = t.permute(&perm).unwrap();
        let expect: Vec<usize> = perm.iter().map(|&i| shape[i]).collect();
        prop_assert_eq!(p.dims(), &expect[..]);
        prop_assert_eq!(p.permute(&inverse).unwrap().to_vec(), t.to_vec());
    }

    /// Summing over axes in any grouping gives the same total; mean = sum / count; the max bounds
    /// every element; var = mean of squares - square of mean (population form).
    #[test]
    fn reduction_identities(shape in prop::collection::vec(1usize..5, 1..4), seed in 0u64..1000) {
        let t = tensor_of(&shape, seed);
        let total = t.sum_all().item().unwrap();
        let mut stepwise = t.clone();
        for _ in 0..shape.len() { stepwise = stepwise.sum(&[0], false).unwrap(); }
        prop_assert!((stepwise.item().unwrap() - total).abs() < 1e-4 * (1.0 + total.abs()));
        let n = t.numel() as f32;
        prop_assert!((t.mean_all().item().unwrap() - total / n).abs() < 1e-5 * (1.0 + total.abs()));
        let m = t.max_all().unwrap().item().unwrap();
        prop_assert!(t.to_vec().iter().all(|&v| v <= m));
        prop_assert!(t.to_vec().contains(&m));
        let last = shape.len() as isize - 1;
        let var = t.var_with(&[last], 0, false).unwrap();
        let alt = t.square().mean(&[last], false).unwrap().sub(&t.mean(&[last], false).unwrap().square()).unwrap();
        for (a, b) in var.to_vec().iter().zip(alt.to_vec()) {
            prop_assert!((a - b).abs() < 1e-4, "{} vs {}", a, b);
        }
        let am = t.argmax(last, false).unwrap();
        let mx = t.max(&[last], false).unwrap();
        let picked = t.gather(last, &am.unsqueeze(-1).unwrap()).unwrap().squeeze(-1).unwrap();
        prop_assert_eq!(picked.to_vec(), mx.to_vec());
    }
}
