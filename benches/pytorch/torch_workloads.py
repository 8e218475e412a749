#!/usr/bin/env python3
"""PyTorch CPU fp32 deep-learning workload throughput (training step = forward + backward + optimizer update).
gradbook's side is engine/examples/throughput.rs, which prints the same lines; benches/pytorch/compare.py runs
both. Adapted from the measurements in the project's shared peers folder, with a `gemm` workload added.
Usage: python torch_workloads.py WORKLOAD THREADS [reps] [seconds_per_rep]
WORKLOAD in: none gemm mlp tiny lenet conv64 gpt_train gpt_infer ae gan dispatch
Prints one CSV line per metric: workload,threads,metric,unit,median,min,max,reps,extra"""
import sys, time, os, statistics, math
import torch, torch.nn as nn, torch.nn.functional as F

wl = sys.argv[1]; nt = int(sys.argv[2])
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 7
REP_S = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
torch.set_num_threads(nt)
torch.manual_seed(0)

def out(metric, unit, vals, extra=""):
    vals = sorted(vals)
    print(f"{wl},{nt},{metric},{unit},{statistics.median(vals):.6g},{vals[0]:.6g},{vals[-1]:.6g},{len(vals)},{extra}", flush=True)

def time_steps(step, warm_s=1.0):
    """returns list (len REPS) of seconds per step"""
    t0 = time.perf_counter(); n = 0
    while time.perf_counter() - t0 < warm_s or n < 3: step(); n += 1
    per = (time.perf_counter() - t0) / n
    iters = max(1, int(REP_S / per))
    res = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        for _ in range(iters): step()
        res.append((time.perf_counter() - t0) / iters)
    return res

def train_step_fn(model, opt, lossf, x, y):
    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
    return step

def report_train(times, batch, unit="samples/s", extra=""):
    out("train_throughput", unit, [batch / t for t in times], extra)
    out("train_step_time", "us/step", [t * 1e6 for t in times], extra)

if wl == "gemm":
    for (m, k, n, name) in [(64, 64, 64, "sq64"), (128, 128, 128, "sq128"), (256, 256, 256, "sq256"), (512, 512, 512, "sq512"),
                            (1024, 1024, 1024, "sq1024"), (2048, 2048, 2048, "sq2048"), (128, 784, 256, "mlp1_128x784x256"),
                            (128, 256, 10, "mlp_out_128x256x10"), (4096, 128, 128, "tall_4096x128x128")]:
        a = torch.randn(m, k); b = torch.randn(k, n); c = torch.empty(m, n)
        times = time_steps(lambda: torch.mm(a, b, out=c), warm_s=0.3)
        out(name, "GFLOP/s", [2 * m * n * k / t / 1e9 for t in times])

elif wl == "none":
    print(f"{wl},{nt},import_only,-,0,0,0,0,", flush=True)

elif wl == "mlp":   # 784-256-128-10 ReLU, softmax CE, batch 128, SGD
    B = 128
    m = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    x = torch.randn(B, 784); y = torch.randint(0, 10, (B,))
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    fl = 6 * B * (784 * 256 + 256 * 128 + 128 * 10)
    times = time_steps(train_step_fn(m, opt, F.cross_entropy, x, y))
    report_train(times, B, extra="SGD+momentum")
    out("train_gflops", "GFLOP/s", [fl / t / 1e9 for t in times], "6*B*weights")
    # Adam variant
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    times = time_steps(train_step_fn(m, opt, F.cross_entropy, x, y))
    out("train_throughput_adam", "samples/s", [B / t for t in times], "Adam")

elif wl == "tiny":  # 2-8-8-1 tanh, MSE, batch 32, SGD  (TF-playground sized)
    B = 32
    m = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(B, 2); y = torch.randn(B, 1)
    opt = torch.optim.SGD(m.parameters(), lr=0.03)
    times = time_steps(train_step_fn(m, opt, F.mse_loss, x, y))
    report_train(times, B, extra="SGD")
    opt = torch.optim.SGD(m.parameters(), lr=0.03, foreach=False)
    times = time_steps(train_step_fn(m, opt, F.mse_loss, x, y))
    out("train_step_time_sgd_foreachFalse", "us/step", [t * 1e6 for t in times])
    with torch.no_grad():
        times = time_steps(lambda: m(x))
    out("fwd_nograd_time", "us/fwd", [t * 1e6 for t in times])

elif wl == "lenet":  # batch 64, SGD
    B = 64
    m = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    x = torch.randn(B, 1, 28, 28); y = torch.randint(0, 10, (B,))
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    times = time_steps(train_step_fn(m, opt, F.cross_entropy, x, y))
    fwd_fl = 2 * B * (6 * 24 * 24 * 25 + 16 * 8 * 8 * 150 + 256 * 120 + 120 * 84 + 84 * 10)
    report_train(times, B, extra="SGD+momentum")
    out("train_gflops", "GFLOP/s", [3 * fwd_fl / t / 1e9 for t in times], "3x fwd MACs*2")
    with torch.no_grad():
        times = time_steps(lambda: m(x))
    out("infer_throughput", "samples/s", [B / t for t in times])

elif wl == "conv64":  # conv2d 3x3 64->64, 32x32, pad 1, batch 32
    B, C, H = 32, 64, 32
    conv = nn.Conv2d(C, C, 3, padding=1)
    x = torch.randn(B, C, H, H)
    fl = 2 * B * C * H * H * C * 9
    with torch.no_grad():
        times = time_steps(lambda: conv(x))
    out("fwd_gflops", "GFLOP/s", [fl / t / 1e9 for t in times], f"fwd={fl/1e9:.3f}GFLOP")
    out("fwd_time", "ms", [t * 1e3 for t in times])
    xg = x.clone().requires_grad_(True)
    def fb():
        conv.zero_grad(set_to_none=True); xg.grad = None
        conv(xg).sum().backward()
    times = time_steps(fb)
    out("fwd_bwd_gflops", "GFLOP/s", [3 * fl / t / 1e9 for t in times], "fwd+dX+dW =3x")
    out("fwd_bwd_time", "ms", [t * 1e3 for t in times])
    # channels_last variant (oneDNN preferred layout)
    conv_cl = conv.to(memory_format=torch.channels_last); x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        times = time_steps(lambda: conv_cl(x_cl))
    out("fwd_gflops_channels_last", "GFLOP/s", [fl / t / 1e9 for t in times])
    xg_cl = x_cl.clone().requires_grad_(True)
    def fb_cl():
        conv_cl.zero_grad(set_to_none=True); xg_cl.grad = None
        conv_cl(xg_cl).sum().backward()
    times = time_steps(fb_cl)
    out("fwd_bwd_gflops_channels_last", "GFLOP/s", [3 * fl / t / 1e9 for t in times])

elif wl in ("gpt_train", "gpt_infer"):
    V, T, D, NH, NL, B = 65, 64, 128, 4, 4, 32
    class Block(nn.Module):
        def __init__(s):
            super().__init__()
            s.ln1 = nn.LayerNorm(D); s.qkv = nn.Linear(D, 3 * D); s.proj = nn.Linear(D, D)
            s.ln2 = nn.LayerNorm(D); s.fc = nn.Linear(D, 4 * D); s.fc2 = nn.Linear(4 * D, D)
        def forward(s, x):
            b, t, d = x.shape
            q, k, v = s.qkv(s.ln1(x)).split(D, dim=2)
            q, k, v = [z.view(b, t, NH, d // NH).transpose(1, 2) for z in (q, k, v)]
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + s.proj(y.transpose(1, 2).contiguous().view(b, t, d))
            return x + s.fc2(F.gelu(s.fc(s.ln2(x))))
    class GPT(nn.Module):
        def __init__(s):
            super().__init__()
            s.tok = nn.Embedding(V, D); s.pos = nn.Embedding(T, D)
            s.blocks = nn.Sequential(*[Block() for _ in range(NL)]); s.lnf = nn.LayerNorm(D); s.head = nn.Linear(D, V, bias=False)
        def forward(s, idx):
            x = s.tok(idx) + s.pos(torch.arange(idx.shape[1]))
            return s.head(s.lnf(s.blocks(x)))
    m = GPT()
    nparams = sum(p.numel() for p in m.parameters())
    idx = torch.randint(0, V, (B, T)); tgt = torch.randint(0, V, (B, T))
    if wl == "gpt_train":
        opt = torch.optim.AdamW(m.parameters(), lr=3e-4)
        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(idx).view(-1, V), tgt.view(-1)); loss.backward(); opt.step()
        times = time_steps(step)
        out("train_tokens_per_s", "tokens/s", [B * T / t for t in times], f"params={nparams} AdamW")
        out("train_step_time", "ms/step", [t * 1e3 for t in times])
    else:
        m.eval()
        with torch.inference_mode():
            times = time_steps(lambda: m(idx))
        out("infer_tokens_per_s", "tokens/s", [B * T / t for t in times], f"params={nparams} full-seq fwd B=32 T=64")
        out("infer_fwd_time", "ms/fwd", [t * 1e3 for t in times])

elif wl == "ae":  # 784-128-32-128-784, batch 64, Adam, MSE
    B = 64
    m = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 128), nn.ReLU(),
                      nn.Linear(128, 784), nn.Sigmoid())
    x = torch.rand(B, 784)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    times = time_steps(train_step_fn(m, opt, F.mse_loss, x, x))
    report_train(times, B, extra="Adam")

elif wl == "gan":  # G 64->256->784, D 784->256->1, batch 64, Adam; one step = D update (real+fake) + G update
    B = 64
    G = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 784), nn.Tanh())
    D = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))
    oG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999)); oD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(B, 784) * 2 - 1; ones = torch.ones(B, 1); zeros = torch.zeros(B, 1)
    bce = F.binary_cross_entropy_with_logits
    def step():
        z = torch.randn(B, 64)
        fake = G(z)
        oD.zero_grad(set_to_none=True)
        lD = bce(D(real), ones) + bce(D(fake.detach()), zeros); lD.backward(); oD.step()
        oG.zero_grad(set_to_none=True)
        lG = bce(D(fake), ones); lG.backward(); oG.step()
    times = time_steps(step)
    report_train(times, B, extra="Adam; D(real+fake)+G step")

elif wl == "dispatch":
    a = torch.randn(8); b = torch.randn(8)
    def run_add(n=10000):
        for _ in range(n): a + b
    times = time_steps(lambda: run_add(), warm_s=0.3)
    out("add_8elem", "us/op", [t / 10000 * 1e6 for t in times], "no grad")
    ag = a.clone().requires_grad_(True)
    def run_add_g(n=10000):
        for _ in range(n): ag + b
    times = time_steps(lambda: run_add_g(), warm_s=0.3)
    out("add_8elem_requires_grad", "us/op", [t / 10000 * 1e6 for t in times], "records graph")
    c = torch.empty(8)
    def run_add_out(n=10000):
        for _ in range(n): torch.add(a, b, out=c)
    times = time_steps(lambda: run_add_out(), warm_s=0.3)
    out("add_8elem_out", "us/op", [t / 10000 * 1e6 for t in times], "out= no alloc")
    # scalar autograd step: y = tanh(w*x + b); loss = (y - t)^2; backward; SGD update; zero grads
    w = torch.tensor(0.5, requires_grad=True); bb = torch.tensor(0.1, requires_grad=True)
    x = torch.tensor(1.5); tt = torch.tensor(0.3)
    def sstep():
        loss = (torch.tanh(w * x + bb) - tt) ** 2
        loss.backward()
        with torch.no_grad():
            w.sub_(0.01 * w.grad); bb.sub_(0.01 * bb.grad)
        w.grad = None; bb.grad = None
    def run_s(n=1000):
        for _ in range(n): sstep()
    times = time_steps(lambda: run_s(), warm_s=0.3)
    out("scalar_autograd_step", "us/step", [t / 1000 * 1e6 for t in times], "4 fwd ops + backward + 2 updates")
    def fwd_only(n=1000):
        for _ in range(n): (torch.tanh(w * x + bb) - tt) ** 2
    times = time_steps(lambda: fwd_only(), warm_s=0.3)
    out("scalar_fwd_only_graph", "us/fwd", [t / 1000 * 1e6 for t in times], "4 ops recording graph")
else:
    raise SystemExit("unknown workload " + wl)

import resource
print(f"{wl},{nt},peak_rss,MiB,{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f},0,0,1,", flush=True)
