//! `set_flush_denormal` makes results below 1.2e-38 zero on the calling thread and in the engine's
//! workers, and can be turned off again. (A test binary of its own: the setting is per thread.)

use engine::Tensor;

#[test]
fn denormals_flush_to_zero_only_when_asked() {
    let tiny = Tensor::scalar(1e-30);
    let product = || tiny.mul_scalar(1e-10).item().unwrap();
    assert!(product() > 0.0, "by default a denormal result is kept");
    engine::threads::set_flush_denormal(true);
    assert_eq!(product(), 0.0);
    let on_worker = engine::threads::pool().install(product);
    assert_eq!(on_worker, 0.0, "the engine's workers flush too");
    engine::threads::set_flush_denormal(false);
    assert!(product() > 0.0);
    assert!(engine::threads::pool().install(product) > 0.0);
}
