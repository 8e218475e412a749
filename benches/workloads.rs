//! Training and inference steps of the lecture's workloads (`engine::workloads`): samples (or
//! tokens) per second, as criterion's element throughput. The same workloads run against PyTorch in
//! `benches/pytorch/compare.py`.

// The same allocator as the gradbook binary (see `engine::kernels::alloc` for why).
#[global_allocator]
static ALLOC: engine::Allocator = engine::Allocator::new();

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::workloads::{build, NAMES};

fn workloads(c: &mut Criterion) {
    engine::threads::set_flush_denormal(true);
    let mut group = c.benchmark_group("workloads");
    group.sample_size(10);
    for name in NAMES {
        let mut w = build(name).unwrap_or_else(|e| panic!("{e}"));
        group.throughput(Throughput::Elements(w.items as u64));
        group.bench_function(name, |b| b.iter(|| (w.step)()));
    }
    group.finish();
}

criterion_group!(benches, workloads);
criterion_main!(benches);
