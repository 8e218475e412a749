//! Every benchmark workload (`engine::workloads`, shared by `cargo bench` and the PyTorch
//! comparison) builds and runs steps: they `expect` their fixed shapes, so a change to an op or a
//! layer that broke one would otherwise only show up when someone benchmarks.

use engine::workloads::{build, NAMES};

#[test]
fn every_workload_builds_and_steps() {
    for name in NAMES {
        let mut w = build(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(w.items > 0, "{name}: no items per step");
        for _ in 0..2 {
            (w.step)();
        }
    }
}
