//! A tensor larger than the memory cap is refused with the size it would need, instead of an
//! allocation abort. (Its own test binary: the cap is process-wide.)

use engine::tensor::budget::{memory_cap, set_memory_cap};
use engine::Tensor;

#[test]
fn oversized_results_are_refused_with_their_size() {
    // The default is half of physical memory; this product would need 37.3 GiB.
    assert!(memory_cap() > 0);
    let (tall, wide) = (Tensor::ones([100_000, 1]), Tensor::ones([1, 100_000]));
    let e = tall.matmul(&wide).unwrap_err().to_string();
    assert!(e.starts_with("matmul: a result of shape [100000, 100000] would need 37.3 GiB, more than the memory cap of"), "{e}");
    assert!(tall
        .add(&wide)
        .unwrap_err()
        .to_string()
        .starts_with("add: a result of shape [100000, 100000] would need 37.3 GiB"));

    set_memory_cap(1 << 20);
    let a = Tensor::ones([600, 1]);
    let e = a
        .broadcast_to(&engine::Shape::new(&[600, 600]))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "broadcast_to: a result of shape [600, 600] would need 1.4 MiB, more than the memory cap of 1.0 MiB (engine::tensor::budget::set_memory_cap changes it)");
    assert!(Tensor::arange(0.0, 1e6, 1.0)
        .unwrap_err()
        .to_string()
        .starts_with("arange: a result of shape [1000000] would need 3.8 MiB"));
    assert!(Tensor::concat(&[Tensor::ones([300, 600]), Tensor::ones([300, 600])], 0).is_err());
    // Under the cap, all is well.
    assert_eq!(
        a.broadcast_to(&engine::Shape::new(&[600, 100]))
            .unwrap()
            .dims(),
        &[600, 100]
    );
    set_memory_cap(usize::MAX);
    assert!(a.broadcast_to(&engine::Shape::new(&[600, 600])).is_ok());
}
