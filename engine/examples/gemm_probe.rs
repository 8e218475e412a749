//! Times one GEMM shape in a loop, for profiling: `gemm_probe M K N [seconds] [ta] [tb]`.
use engine::kernels::gemm::{sgemm, MatMut, MatRef};
use std::time::Instant;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .take(3)
        .map(|s| s.parse().unwrap())
        .collect();
    let secs: f64 = std::env::args()
        .nth(4)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2.0);
    let (m, k, n) = (a[0], a[1], a[2]);
    let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let y: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; m * n];
    let t = Instant::now();
    let mut it = 0u64;
    while t.elapsed().as_secs_f64() < secs {
        for _ in 0..10 {
            sgemm(
                1.0,
                MatRef::row_major(&x, m, k),
                MatRef::row_major(&y, k, n),
                0.0,
                MatMut::row_major(&mut c, m, n),
            );
        }
        it += 10;
    }
    let dt = t.elapsed().as_secs_f64() / it as f64;
    println!(
        "{m}x{k}x{n}: {:.2} us, {:.1} GFLOP/s",
        dt * 1e6,
        2.0 * (m * k * n) as f64 / dt / 1e9
    );
}
