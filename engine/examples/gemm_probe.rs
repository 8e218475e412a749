//! Quick GEMM throughput probe: GFLOP/s per shape, for tuning. `cargo run --release --example gemm_probe`
use engine::kernels::gemm::{reference, sgemm, MatMut, MatRef};
use std::time::Instant;

fn main() {
    let shapes = [
        (64, 64, 64),
        (128, 128, 128),
        (256, 256, 256),
        (512, 512, 512),
        (1024, 1024, 1024),
        (2048, 2048, 2048),
        (128, 784, 256),
        (128, 256, 10),
        (4096, 128, 128),
    ];
    for (m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        let run = |f: &dyn Fn(&mut [f32])| {
            let mut c = vec![0.0f32; m * n];
            let reps = ((2e9 / flops) as usize).clamp(3, 20000);
            f(&mut c);
            let t = Instant::now();
            for _ in 0..reps {
                f(&mut c);
            }
            flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9
        };
        let ours = run(&|c| {
            sgemm(
                1.0,
                MatRef::row_major(&a, m, k),
                MatRef::row_major(&b, k, n),
                0.0,
                MatMut::row_major(c, m, n),
            )
        });
        let mm = run(&|c| {
            reference(
                1.0,
                MatRef::row_major(&a, m, k),
                MatRef::row_major(&b, k, n),
                0.0,
                MatMut::row_major(c, m, n),
            )
        });
        c[0] = 0.0;
        println!("{m:>5}x{k:>5}x{n:>5}: gradbook {ours:7.1} GFLOP/s   matrixmultiply {mm:7.1}");
    }
}
