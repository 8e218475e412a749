//! Shape, axis and index mistakes give an error that names the op and the shapes.

use engine::Tensor;

fn z(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape.to_vec())
}

fn msg(r: engine::Result<Tensor>) -> String {
    r.expect_err("this call should have been refused")
        .to_string()
}

#[test]
fn messages_name_the_op_and_the_shapes() {
    assert_eq!(
        msg(z(&[32, 784]).matmul(&z(&[10, 256]))),
        "matmul: cannot multiply [32, 784] by [10, 256]: inner dimensions 784 and 10 differ"
    );
    assert_eq!(
        msg(z(&[2, 3, 4]).matmul(&z(&[3, 4, 5]))),
        "matmul: cannot multiply [2, 3, 4] by [3, 4, 5]: batch axes [2] and [3] do not broadcast"
    );
    assert_eq!(msg(z(&[3, 2]).add(&z(&[4]))), "add: cannot broadcast [3, 2] with [4]: extents 2 and 4 at axis 1 of the result differ and neither is 1");
    assert_eq!(msg(z(&[3, 2]).mul(&z(&[2, 3]))), "mul: cannot broadcast [3, 2] with [2, 3]: extents 3 and 2 at axis 0 of the result differ and neither is 1");
    assert_eq!(
        msg(z(&[2, 3]).reshape(&[4, 2])),
        "reshape: cannot reshape [2, 3] (6 elements) into [4, 2] (8 elements)"
    );
    assert_eq!(
        msg(z(&[2, 3]).reshape(&[4, -1])),
        "reshape: cannot reshape [2, 3] (6 elements) into [4, -1]"
    );
    assert_eq!(
        msg(z(&[2, 3]).sum(&[2], false)),
        "sum: axis 2 is out of range for a tensor with 2 axes (valid: -2 to 1)"
    );
    assert_eq!(
        msg(z(&[2, 3]).sum(&[1, -1], false)),
        "sum: axis 1 is listed twice in [1, -1]"
    );
    assert_eq!(
        msg(z(&[2, 3]).permute(&[0, 0])),
        "permute: [0, 0] is not a permutation of the 2 axes of shape [2, 3]"
    );
    assert_eq!(
        msg(z(&[2, 3]).narrow(1, 2, 2)),
        "narrow: entries 2..4 are out of range for axis 1 of extent 3 (shape [2, 3])"
    );
    assert_eq!(
        msg(z(&[2, 3]).index_select(0, &[0, 2])),
        "index_select: index 2 is out of range for axis 0 of extent 2 (shape [2, 3])"
    );
    assert_eq!(
        msg(z(&[2, 3]).squeeze(1)),
        "squeeze: axis 1 has extent 3, not 1 (shape [2, 3])"
    );
    assert_eq!(
        msg(Tensor::concat(&[z(&[2, 3]), z(&[3, 3])], 1)),
        "concat: cannot join shape [2, 3] with shape [3, 3] along axis 1: the other extents must agree"
    );
    assert_eq!(
        msg(z(&[2, 3]).broadcast_to(&engine::Shape::new(&[3]))),
        "broadcast_to: cannot broadcast [2, 3] to [3]: a tensor only grows along axes of extent 1 and new leading axes"
    );
    let idx = Tensor::from_vec(vec![5.0], [1, 1]).unwrap();
    assert_eq!(
        msg(z(&[2, 3]).gather(1, &idx)),
        "gather: index 5 is not a whole number in 0..3"
    );
    assert_eq!(
        msg(Tensor::from_vec(vec![1.0; 5], [2, 3])),
        "from_vec: 5 values cannot fill shape [2, 3] (6 elements)"
    );
    assert_eq!(
        z(&[2, 3]).item().unwrap_err().to_string(),
        "item: only a one-element tensor has an item; this one has shape [2, 3]"
    );
    assert_eq!(
        msg(z(&[]).matmul(&z(&[3]))),
        "matmul: cannot multiply [] by [3]: both operands need at least one axis"
    );
    assert_eq!(
        msg(z(&[2, 0]).max(&[1], false)),
        "max: cannot reduce an empty tensor of shape [2, 0]"
    );
}

#[test]
#[should_panic(expected = "mul: cannot broadcast [3, 2] with [2, 3]")]
fn mul_operator_panics_with_the_op_message() {
    let _ = &z(&[3, 2]) * &z(&[2, 3]);
}

#[test]
#[should_panic(expected = "add: cannot broadcast [2, 3] with [4]")]
fn add_operator_panics_with_the_op_message() {
    let _ = &z(&[2, 3]) + &z(&[4]);
}
