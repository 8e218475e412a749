#!/usr/bin/env python3
"""gradbook against PyTorch, side by side, on the same machine in the same run.

    python3 benches/pytorch/compare.py [--rounds R] [--reps N] [--seconds S] [--threads 1,2] [WORKLOAD ...]

Builds gradbook's throughput program (engine/examples/throughput.rs), then for each thread count and
workload runs gradbook and PyTorch (benches/pytorch/torch_workloads.py, needs `pip install torch`)
alternately for R rounds, and prints a table: the median over rounds of each side's median, the
ratio (gradbook over PyTorch; above 1 means gradbook is faster), and each process's peak resident
memory. Where PyTorch runs a workload in two memory layouts (the convolution: NCHW and
channels_last), the ratio is against its faster one, marked in the table. The machine should be otherwise idle; numbers vary from run to run, so compare ratios
measured in one run.
"""
import argparse
import collections
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
WORKLOADS = ["gemm", "tiny", "mlp", "lenet", "conv64", "ae", "gan", "gpt_train", "gpt_infer"]


def run(cmd, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), GRADBOOK_THREADS=str(threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    rows = {}
    for line in res.stdout.splitlines():
        parts = line.split(",")
        if len(parts) >= 8:
            rows[parts[2]] = (parts[3], float(parts[4]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.4)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("workloads", nargs="*", default=WORKLOADS)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gradbook-engine", "--example", "throughput"], cwd=ROOT, check=True)
    ours = os.path.join(ROOT, "target", "release", "examples", "throughput")
    theirs = [sys.executable, os.path.join(HERE, "torch_workloads.py")]
    print(f"{'workload':<10} {'thr':>3} {'metric':<28} {'unit':<10} {'gradbook':>12} {'PyTorch':>12} {'ratio':>7}")
    for threads in [int(t) for t in args.threads.split(",")]:
        for wl in args.workloads:
            g, t = collections.defaultdict(list), collections.defaultdict(list)
            units = {}
            for _ in range(args.rounds):
                for store, cmd in ((g, [ours]), (t, theirs)):
                    for metric, (unit, value) in run(cmd + [wl, str(threads), str(args.reps), str(args.seconds)], threads).items():
                        store[metric].append(value)
                        units[metric] = unit
            for metric in g:
                if metric not in t:
                    continue
                a, b = statistics.median(g[metric]), statistics.median(t[metric])
                # Where PyTorch also ran the workload in another memory layout (convolutions in
                # channels_last, oneDNN's preferred one), the comparison is with its faster layout.
                note = ""
                alt = t.get(metric + "_channels_last")
                if alt and statistics.median(alt) > b:
                    b, note = statistics.median(alt), "  (PyTorch channels_last)"
                unit = units[metric]
                lower_is_better = unit.startswith("us/") or unit.startswith("ms") or metric == "peak_rss"
                ratio = (b / a if a else float("inf")) if lower_is_better else (a / b if b else float("inf"))
                print(f"{wl:<10} {threads:>3} {metric:<28} {unit:<10} {a:>12.4g} {b:>12.4g} {ratio:>6.2f}x{note}", flush=True)


if __name__ == "__main__":
    main()
