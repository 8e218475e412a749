//! GEMM throughput at the shapes of the comparison (criterion reports elements/s = FLOP/s), on one
//! thread and on the engine's default pool. PyTorch's numbers for the same shapes come from
//! `benches/pytorch/compare.py gemm`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::kernels::gemm::{sgemm, MatMut, MatRef};
use engine::Tensor;

const SHAPES: [(usize, usize, usize); 9] = [
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

fn gemm(c: &mut Criterion) {
    for threads in [1, engine::threads::num_threads()] {
        engine::threads::set_num_threads(threads).expect("threads");
        let mut group = c.benchmark_group(format!("gemm_{threads}t"));
        group.sample_size(10);
        for (m, k, n) in SHAPES {
            let (a, b) = (
                Tensor::randn([m, k]).to_vec(),
                Tensor::randn([k, n]).to_vec(),
            );
            let mut out = vec![0.0f32; m * n];
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            group.bench_function(
                BenchmarkId::from_parameter(format!("{m}x{k}x{n}")),
                |bench| {
                    bench.iter(|| {
                        sgemm(
                            1.0,
                            MatRef::row_major(&a, m, k),
                            MatRef::row_major(&b, k, n),
                            0.0,
                            MatMut::row_major(&mut out, m, n),
                        )
                    })
                },
            );
        }
        group.finish();
    }
}

criterion_group!(benches, gemm);
criterion_main!(benches);
