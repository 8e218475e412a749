//! gradbook's side of the PyTorch comparison (`benches/pytorch/compare.py`): the workloads of
//! `engine::workloads`, timed as `benches/pytorch/torch_workloads.py` times PyTorch's, printed as
//! the same CSV lines: `workload,threads,metric,unit,median,min,max,reps,extra`.
//!
//! ```text
//! cargo run --release -p gradbook-engine --example throughput -- WORKLOAD THREADS [REPS] [SECONDS]
//! ```
//! WORKLOAD: gemm tiny mlp lenet conv64 ae gan gpt_train gpt_infer

use std::time::Instant;

// The same allocator as the gradbook binary (see `engine::kernels::alloc` for why).
#[global_allocator]
static ALLOC: engine::Allocator = engine::Allocator::new();

use engine::kernels::gemm::{sgemm, MatMut, MatRef};
use engine::workloads::build;
use engine::Rng;

struct Bench {
    workload: String,
    threads: usize,
    reps: usize,
    rep_seconds: f64,
}

impl Bench {
    /// Seconds per call of `step`, `reps` times, after a warm-up (as torch_workloads.py does).
    fn time(&self, step: &mut dyn FnMut()) -> Vec<f64> {
        let t0 = Instant::now();
        let mut n = 0;
        while t0.elapsed().as_secs_f64() < 0.5 || n < 3 {
            step();
            n += 1;
        }
        let iters = ((self.rep_seconds / (t0.elapsed().as_secs_f64() / n as f64)) as usize).max(1);
        (0..self.reps)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..iters {
                    step();
                }
                t.elapsed().as_secs_f64() / iters as f64
            })
            .collect()
    }

    fn out(&self, metric: &str, unit: &str, mut vals: Vec<f64>, extra: &str) {
        vals.sort_by(f64::total_cmp);
        println!(
            "{},{},{metric},{unit},{:.6},{:.6},{:.6},{},{extra}",
            self.workload,
            self.threads,
            vals[vals.len() / 2],
            vals[0],
            vals[vals.len() - 1],
            vals.len()
        );
    }

    /// Times a named workload and reports `metric` as items per second (or GFLOP/s, or µs).
    fn run(&self, name: &str, metric: &str, unit: &str) {
        let mut w = build(name).unwrap_or_else(|e| panic!("{e}"));
        let times = self.time(&mut w.step);
        let vals = times
            .iter()
            .map(|t| match unit {
                "GFLOP/s" => w.flops.unwrap_or(0.0) / t / 1e9,
                "us/step" | "us/fwd" => t * 1e6,
                _ => w.items as f64 / t,
            })
            .collect();
        self.out(metric, unit, vals, name);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args.first().cloned().unwrap_or_else(|| "mlp".into());
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    engine::threads::set_num_threads(threads).expect("threads");
    engine::threads::set_flush_denormal(true);
    let b = Bench {
        workload: workload.clone(),
        threads,
        reps: args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7),
        rep_seconds: args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0.5),
    };
    match workload.as_str() {
        "gemm" => {
            for (m, k, n, name) in [
                (64, 64, 64, "sq64"),
                (128, 128, 128, "sq128"),
                (256, 256, 256, "sq256"),
                (512, 512, 512, "sq512"),
                (1024, 1024, 1024, "sq1024"),
                (2048, 2048, 2048, "sq2048"),
                (128, 784, 256, "mlp1_128x784x256"),
                (128, 256, 10, "mlp_out_128x256x10"),
                (4096, 128, 128, "tall_4096x128x128"),
            ] {
                // An optional fifth argument picks shapes by name (for profiling one of them).
                if args
                    .get(4)
                    .is_some_and(|only| !name.contains(only.as_str()))
                {
                    continue;
                }
                // Drawn straight into the operands (a tensor and its copy would double the
                // process's peak memory at 2048³, which the comparison reports).
                let mut rng = Rng::seed(7);
                let mut normal =
                    |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
                let (x, y) = (normal(m * k), normal(k * n));
                let mut c = vec![0.0f32; m * n];
                let mut product = || {
                    sgemm(
                        1.0,
                        MatRef::row_major(&x, m, k),
                        MatRef::row_major(&y, k, n),
                        0.0,
                        MatMut::row_major(&mut c, m, n),
                    )
                };
                // Timed inside `threads::run`, as a training step's products run.
                let times = engine::threads::run(|| b.time(&mut product));
                b.out(
                    name,
                    "GFLOP/s",
                    times
                        .iter()
                        .map(|t| 2.0 * (m * n * k) as f64 / t / 1e9)
                        .collect(),
                    "",
                );
            }
        }
        "tiny" => {
            b.run("tiny", "train_throughput", "samples/s");
            b.run("tiny", "train_step_time", "us/step");
            b.run("tiny_infer", "fwd_nograd_time", "us/fwd");
        }
        "mlp" => {
            b.run("mlp", "train_throughput", "samples/s");
            b.run("mlp", "train_gflops", "GFLOP/s");
            b.run("mlp_adam", "train_throughput_adam", "samples/s");
        }
        "lenet" => {
            b.run("lenet", "train_throughput", "samples/s");
            b.run("lenet_infer", "infer_throughput", "samples/s");
        }
        "conv64" => {
            b.run("conv64_fwd", "fwd_gflops", "GFLOP/s");
            b.run("conv64_fwd_bwd", "fwd_bwd_gflops", "GFLOP/s");
        }
        "ae" | "gan" => b.run(&workload, "train_throughput", "samples/s"),
        "gpt_train" => b.run("gpt_train", "train_tokens_per_s", "tokens/s"),
        "gpt_infer" => b.run("gpt_infer", "infer_tokens_per_s", "tokens/s"),
        other => {
            eprintln!("unknown workload {other}");
            std::process::exit(2);
        }
    }
    // Peak resident memory of this process, for the comparison table.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    println!(
        "{workload},{threads},peak_rss,MiB,{:.1},{:.1},{:.1},1,",
        kb / 1024.0,
        kb / 1024.0,
        kb / 1024.0
    );
}
