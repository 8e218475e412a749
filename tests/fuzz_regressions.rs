//! Panics found by fuzzing (`fuzz/fuzz_targets/op_sequences.rs`), kept as tests.

use engine::Tensor;

/// A scalar has no axes: ops that index an axis used to accept axis 0 of a scalar (as reductions
/// do) and then read past the end of its empty shape. Found by `op_sequences` on its first run.
#[test]
fn axis_ops_on_a_scalar_are_errors_not_panics() {
    let s = Tensor::scalar(2.0);
    let results = [
        ("narrow", s.narrow(0, 0, 1)),
        ("slice", s.slice(0, 0, 1)),
        ("select", s.select(0, 0)),
        ("index_select", s.index_select(0, &[0])),
        ("gather", s.gather(0, &Tensor::scalar(0.0))),
        ("concat", Tensor::concat(&[s.clone(), s.clone()], 0)),
        ("squeeze", s.squeeze(0)),
        ("transpose", s.transpose(0, -1)),
    ];
    for (op, r) in results {
        let e = r.expect_err(op);
        assert!(e.to_string().contains("scalar"), "{op}: {e}");
    }
    assert!(s.dim(0).is_err());
    // Reductions and softmax still accept axis 0 of a scalar, as PyTorch does.
    assert_eq!(s.sum(&[0], false).unwrap().item().unwrap(), 2.0);
    assert_eq!(s.softmax(0).unwrap().item().unwrap(), 1.0);
}

/// The variance of a scalar over its axis 0 read the extent of a missing axis. Found by
/// `op_sequences` on its second run.
#[test]
fn variance_of_a_scalar_is_an_error_not_a_panic() {
    let e = Tensor::scalar(2.0).var(&[0], false).unwrap_err();
    assert!(e.to_string().contains("needs more than 1 element"), "{e}");
    assert_eq!(
        Tensor::scalar(2.0)
            .var_with(&[0], 0, false)
            .unwrap()
            .item()
            .unwrap(),
        0.0
    );
}

/// A convolution with no input channels sliced past an empty column matrix. Found by
/// `op_sequences` on its third run.
#[test]
fn convolution_without_channels_is_an_error_not_a_panic() {
    use engine::ops::conv::Conv2dSpec;
    let x = Tensor::zeros([2, 0, 2, 2]);
    let w = Tensor::zeros([3, 0, 1, 1]);
    let e = x.conv2d(&w, None, Conv2dSpec::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("at least one input and one output channel"),
        "{e}"
    );
}

/// Attention over no keys normalised empty score rows (a panic in the softmax), and with width 0
/// split its output into empty blocks. Found by reading the code while changing it.
#[test]
fn attention_without_keys_or_width_is_an_error_not_a_panic() {
    let q = Tensor::zeros([2, 3, 4]);
    let no_keys = Tensor::zeros([2, 0, 4]);
    let e = q
        .multi_head_attention(&no_keys, &no_keys, 2, false)
        .unwrap_err();
    assert!(e.to_string().contains("at least one key position"), "{e}");
    let (q0, k0) = (Tensor::zeros([2, 3, 0]), Tensor::zeros([2, 5, 0]));
    let e = q0.multi_head_attention(&k0, &k0, 1, true).unwrap_err();
    assert!(e.to_string().contains("non-zero width"), "{e}");
    // The same for the packed form, and a last axis that is not three parts.
    let e = Tensor::zeros([2, 0, 12])
        .multi_head_self_attention(2, true)
        .unwrap_err();
    assert!(e.to_string().contains("at least one key position"), "{e}");
    let e = Tensor::zeros([2, 3, 0])
        .multi_head_self_attention(1, false)
        .unwrap_err();
    assert!(e.to_string().contains("non-zero width"), "{e}");
    let e = Tensor::zeros([2, 3, 8])
        .multi_head_self_attention(2, false)
        .unwrap_err();
    assert!(e.to_string().contains("[2, 3, 8]"), "{e}");
}
