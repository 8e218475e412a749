//! gradbook's side of the PyTorch comparison (`benches/pytorch/compare.py`): the same workloads,
//! timed the same way, printed as the same CSV lines as `benches/pytorch/torch_workloads.py`:
//! `workload,threads,metric,unit,median,min,max,reps,extra`.
//!
//! ```text
//! cargo run --release -p gradbook-engine --example throughput -- WORKLOAD THREADS [REPS] [SECONDS]
//! ```
//! WORKLOAD: gemm mlp tiny lenet conv64 gpt_train gpt_infer ae gan

use std::time::Instant;

use engine::kernels::gemm::{sgemm, MatMut, MatRef};
use engine::nn::loss::{self, Reduction};
use engine::nn::{
    Activation, Conv2d, Embedding, Flatten, LayerNorm, Linear, MaxPool2d, Module, Sequential,
    TransformerBlock,
};
use engine::ops::pool::PoolSpec;
use engine::optim::{Algorithm, Optimizer};
use engine::{manual_seed, no_grad, Tensor};

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
        let per = t0.elapsed().as_secs_f64() / n as f64;
        let iters = ((self.rep_seconds / per) as usize).max(1);
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
        let median = vals[vals.len() / 2];
        println!(
            "{},{},{metric},{unit},{median:.6},{:.6},{:.6},{},{extra}",
            self.workload,
            self.threads,
            vals[0],
            vals[vals.len() - 1],
            vals.len()
        );
    }

    fn report_train(&self, times: &[f64], batch: usize, extra: &str) {
        self.out(
            "train_throughput",
            "samples/s",
            times.iter().map(|t| batch as f64 / t).collect(),
            extra,
        );
        self.out(
            "train_step_time",
            "us/step",
            times.iter().map(|t| t * 1e6).collect(),
            extra,
        );
    }
}

fn step_fn<'a>(
    model: &'a dyn Module,
    opt: &'a mut Optimizer,
    x: &'a Tensor,
    loss: impl Fn(&Tensor) -> Tensor + 'a,
) -> impl FnMut() + 'a {
    move || {
        opt.zero_grad();
        loss(&model.forward(x).expect("forward"))
            .backward()
            .expect("backward");
        opt.step().expect("step");
    }
}

fn mlp(sizes: &[usize], act: Activation) -> Sequential {
    let mut m = Sequential::new();
    for (i, w) in sizes.windows(2).enumerate() {
        if i > 0 {
            m = m.layer(act);
        }
        m = m.layer(Linear::new(w[0], w[1]));
    }
    m
}

fn labels(n: usize, classes: usize) -> Tensor {
    Tensor::from_vec((0..n).map(|i| ((i * 7919) % classes) as f32).collect(), [n]).expect("labels")
}

fn adam(params: Vec<(String, Tensor)>, lr: f32, beta1: f32) -> Optimizer {
    Optimizer::new(
        Algorithm::Adam {
            beta1,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        },
        lr,
        params,
    )
    .expect("optimizer")
}

/// The character-level GPT of the comparison: vocabulary 65, context 64, width 128, 4 heads,
/// 4 pre-norm blocks, untied linear head without bias.
struct Gpt {
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<TransformerBlock>,
    lnf: LayerNorm,
    head: Linear,
}

impl Gpt {
    fn forward(&self, idx: &Tensor) -> Tensor {
        let t = idx.dims()[1];
        let positions = Tensor::arange(0.0, t as f32, 1.0).expect("positions");
        let mut x = self
            .tok
            .forward(idx)
            .expect("tok")
            .add(&self.pos.forward(&positions).expect("pos"))
            .expect("add");
        for b in &self.blocks {
            x = b.forward(&x).expect("block");
        }
        self.head
            .forward(&self.lnf.forward(&x).expect("lnf"))
            .expect("head")
    }
    fn params(&self) -> Vec<(String, Tensor)> {
        let mut p = self.tok.named_parameters();
        p.extend(
            self.pos
                .named_parameters()
                .into_iter()
                .map(|(n, t)| (format!("pos.{n}"), t)),
        );
        for (i, b) in self.blocks.iter().enumerate() {
            p.extend(
                b.named_parameters()
                    .into_iter()
                    .map(|(n, t)| (format!("blocks.{i}.{n}"), t)),
            );
        }
        p.extend(
            self.lnf
                .named_parameters()
                .into_iter()
                .map(|(n, t)| (format!("lnf.{n}"), t)),
        );
        p.extend(
            self.head
                .named_parameters()
                .into_iter()
                .map(|(n, t)| (format!("head.{n}"), t)),
        );
        p
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args.first().cloned().unwrap_or_else(|| "mlp".into());
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    engine::threads::set_num_threads(threads).expect("threads");
    let b = Bench {
        workload: workload.clone(),
        threads,
        reps: args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7),
        rep_seconds: args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0.5),
    };
    manual_seed(0);
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
                let x = Tensor::randn([m, k]).to_vec();
                let y = Tensor::randn([k, n]).to_vec();
                let mut c = vec![0.0f32; m * n];
                let times = b.time(&mut || {
                    sgemm(
                        1.0,
                        MatRef::row_major(&x, m, k),
                        MatRef::row_major(&y, k, n),
                        0.0,
                        MatMut::row_major(&mut c, m, n),
                    )
                });
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
        "mlp" => {
            let bs = 128;
            let m = mlp(&[784, 256, 128, 10], Activation::ReLU);
            let (x, y) = (Tensor::randn([bs, 784]), labels(bs, 10));
            let ce = |o: &Tensor| loss::cross_entropy(o, &y, Reduction::Mean).expect("loss");
            let mut opt = Optimizer::sgd(m.named_parameters(), 0.01, 0.9).expect("opt");
            let times = b.time(&mut step_fn(&m, &mut opt, &x, ce));
            b.report_train(&times, bs, "SGD+momentum");
            let fl = 6.0 * bs as f64 * (784.0 * 256.0 + 256.0 * 128.0 + 128.0 * 10.0);
            b.out(
                "train_gflops",
                "GFLOP/s",
                times.iter().map(|t| fl / t / 1e9).collect(),
                "6*B*weights",
            );
            let mut opt = adam(m.named_parameters(), 1e-3, 0.9);
            let times = b.time(&mut step_fn(&m, &mut opt, &x, ce));
            b.out(
                "train_throughput_adam",
                "samples/s",
                times.iter().map(|t| bs as f64 / t).collect(),
                "Adam",
            );
        }
        "tiny" => {
            let bs = 32;
            let m = mlp(&[2, 8, 8, 1], Activation::Tanh);
            let (x, y) = (Tensor::randn([bs, 2]), Tensor::randn([bs, 1]));
            let mse = |o: &Tensor| loss::mse(o, &y, Reduction::Mean).expect("loss");
            let mut opt = Optimizer::sgd(m.named_parameters(), 0.03, 0.0).expect("opt");
            let times = b.time(&mut step_fn(&m, &mut opt, &x, mse));
            b.report_train(&times, bs, "SGD");
            let times = b.time(&mut || {
                no_grad(|| m.forward(&x).expect("forward"));
            });
            b.out(
                "fwd_nograd_time",
                "us/fwd",
                times.iter().map(|t| t * 1e6).collect(),
                "",
            );
        }
        "lenet" => {
            let bs = 64;
            let m = Sequential::new()
                .layer(Conv2d::new(1, 6, 5, 0))
                .layer(Activation::ReLU)
                .layer(MaxPool2d(PoolSpec::square(2)))
                .layer(Conv2d::new(6, 16, 5, 0))
                .layer(Activation::ReLU)
                .layer(MaxPool2d(PoolSpec::square(2)))
                .layer(Flatten)
                .layer(Linear::new(256, 120))
                .layer(Activation::ReLU)
                .layer(Linear::new(120, 84))
                .layer(Activation::ReLU)
                .layer(Linear::new(84, 10));
            let (x, y) = (Tensor::randn([bs, 1, 28, 28]), labels(bs, 10));
            let ce = |o: &Tensor| loss::cross_entropy(o, &y, Reduction::Mean).expect("loss");
            let mut opt = Optimizer::sgd(m.named_parameters(), 0.01, 0.9).expect("opt");
            let times = b.time(&mut step_fn(&m, &mut opt, &x, ce));
            b.report_train(&times, bs, "SGD+momentum");
            let times = b.time(&mut || {
                no_grad(|| m.forward(&x).expect("forward"));
            });
            b.out(
                "infer_throughput",
                "samples/s",
                times.iter().map(|t| bs as f64 / t).collect(),
                "",
            );
        }
        "conv64" => {
            let (bs, c, h) = (32, 64, 32);
            let conv = Conv2d::new(c, c, 3, 1);
            let x = Tensor::randn([bs, c, h, h]);
            let fl = 2.0 * (bs * c * h * h * c * 9) as f64;
            let times = b.time(&mut || {
                no_grad(|| conv.forward(&x).expect("conv"));
            });
            b.out(
                "fwd_gflops",
                "GFLOP/s",
                times.iter().map(|t| fl / t / 1e9).collect(),
                "NCHW",
            );
            let xg = x.requires_grad();
            let times = b.time(&mut || {
                conv.zero_grad();
                xg.zero_grad();
                conv.forward(&xg)
                    .expect("conv")
                    .sum_all()
                    .backward()
                    .expect("backward");
            });
            b.out(
                "fwd_bwd_gflops",
                "GFLOP/s",
                times.iter().map(|t| 3.0 * fl / t / 1e9).collect(),
                "fwd+dX+dW =3x",
            );
        }
        "gpt_train" | "gpt_infer" => {
            let (v, t, d, heads, layers, bs) = (65, 64, 128, 4, 4, 32);
            let gpt = Gpt {
                tok: Embedding::new(v, d),
                pos: Embedding::new(t, d),
                blocks: (0..layers)
                    .map(|_| TransformerBlock::new(d, heads, true, 0.0).expect("block"))
                    .collect(),
                lnf: LayerNorm::new(&[d]),
                head: Linear::with_init(d, v, false, engine::nn::Init::PyTorchDefault),
            };
            let idx = labels(bs * t, v)
                .reshape(&[bs as isize, t as isize])
                .expect("idx");
            let tgt = Tensor::from_vec(
                (0..bs * t).map(|i| ((i * 31 + 7) % v) as f32).collect(),
                [bs * t],
            )
            .expect("tgt");
            let nparams: usize = gpt.params().iter().map(|(_, p)| p.numel()).sum();
            if workload == "gpt_train" {
                let mut opt = Optimizer::adamw(gpt.params(), 3e-4, 0.01).expect("opt");
                let times = b.time(&mut || {
                    opt.zero_grad();
                    let logits = gpt
                        .forward(&idx)
                        .reshape(&[-1, v as isize])
                        .expect("reshape");
                    loss::cross_entropy(&logits, &tgt, Reduction::Mean)
                        .expect("loss")
                        .backward()
                        .expect("backward");
                    opt.step().expect("step");
                });
                b.out(
                    "train_tokens_per_s",
                    "tokens/s",
                    times.iter().map(|s| (bs * t) as f64 / s).collect(),
                    &format!("params={nparams} AdamW"),
                );
            } else {
                let times = b.time(&mut || {
                    no_grad(|| gpt.forward(&idx));
                });
                b.out(
                    "infer_tokens_per_s",
                    "tokens/s",
                    times.iter().map(|s| (bs * t) as f64 / s).collect(),
                    &format!("params={nparams}"),
                );
            }
        }
        "ae" => {
            let bs = 64;
            let m = mlp(&[784, 128, 32, 128, 784], Activation::ReLU).layer(Activation::Sigmoid);
            let x = Tensor::rand([bs, 784]);
            let mse = |o: &Tensor| loss::mse(o, &x, Reduction::Mean).expect("loss");
            let mut opt = adam(m.named_parameters(), 1e-3, 0.9);
            let times = b.time(&mut step_fn(&m, &mut opt, &x, mse));
            b.report_train(&times, bs, "Adam");
        }
        "gan" => {
            let bs = 64;
            let g = Sequential::new()
                .layer(Linear::new(64, 256))
                .layer(Activation::ReLU)
                .layer(Linear::new(256, 784))
                .layer(Activation::Tanh);
            let d = Sequential::new()
                .layer(Linear::new(784, 256))
                .layer(Activation::LeakyReLU(0.2))
                .layer(Linear::new(256, 1));
            let (mut og, mut od) = (
                adam(g.named_parameters(), 2e-4, 0.5),
                adam(d.named_parameters(), 2e-4, 0.5),
            );
            let real = Tensor::rand([bs, 784]).mul_scalar(2.0).sub_scalar(1.0);
            let (ones, zeros) = (Tensor::ones([bs, 1]), Tensor::zeros([bs, 1]));
            let bce = |o: &Tensor, t: &Tensor| {
                loss::binary_cross_entropy_with_logits(o, t, Reduction::Mean).expect("loss")
            };
            let times = b.time(&mut || {
                let fake = g.forward(&Tensor::randn([bs, 64])).expect("G");
                od.zero_grad();
                let ld = bce(&d.forward(&real).expect("D"), &ones)
                    .add(&bce(&d.forward(&fake.detach()).expect("D"), &zeros))
                    .expect("add");
                ld.backward().expect("backward");
                od.step().expect("step");
                og.zero_grad();
                d.zero_grad();
                bce(&d.forward(&fake).expect("D"), &ones)
                    .backward()
                    .expect("backward");
                og.step().expect("step");
            });
            b.report_train(&times, bs, "Adam; D(real+fake)+G step");
        }
        other => {
            eprintln!("unknown workload {other}");
            std::process::exit(2);
        }
    }
    // Peak resident memory of this process, for the comparison table.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0);
    println!(
        "{workload},{threads},peak_rss,MiB,{:.1},{:.1},{:.1},1,",
        hwm / 1024.0,
        hwm / 1024.0,
        hwm / 1024.0
    );
}
