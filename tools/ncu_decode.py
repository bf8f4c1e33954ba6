#!/usr/bin/env python3
"""Per-kernel GPU time of the engine's decode step, measured with Nsight Compute.

    python3 tools/ncu_decode.py BUILD_DIR [--model 20b] [--tokens 4]

Runs `gptoss bench --random MODEL -p 1 -n 1 -r 1` (every forward pass has one token, so
every kernel is the decode variant: warm-up prefill + warm-up step + pp1 + tg1 = 4 tokens)
under `ncu --metrics gpu__time_duration.sum` with clocks and caches left alone, and prints
the summed duration per kernel per token, sorted. Kernels run one at a time under ncu, so
the sum is the GPU time without launch gaps or overlap: the floor the launch structure
(graphs, PDL) can approach. The random-weight fill kernels are not profiled. Batch invariance
is off for the run (GPTOSS_BATCH_INVARIANT=off): in the default mode the prompt's passes run
the kernels of row order many, which are not the decode step's.
"""
import argparse
import collections
import csv
import io
import os
import subprocess
import sys

KERNELS = ("accumulate|argmax|embeddings|gemv|gemm|moe_|qkv_|rmsnorm|routing|scatter|sdpa|topk|softmax|sample")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--model", default="20b")
    ap.add_argument("--tokens", type=int, default=4, help="forward passes the bench command runs")
    a = ap.parse_args()
    cmd = ["ncu", "--csv", "--metrics", "gpu__time_duration.sum", "--clock-control", "none", "--cache-control",
           "none", "--kernel-name", "regex:" + KERNELS,
           os.path.join(a.build, "bin", "gptoss"), "bench", "--random", a.model, "--backend", "cuda",
           "-p", "1", "-n", "1", "-r", "1"]
    # batch invariance off: with it on (the default) a prompt's rows run the kernels of row
    # order many (the tensor-core GEMMs and attention, one row or many), so the prompt passes
    # here would not be decode kernels; a drawn row's step is the same in both modes (row order
    # one of one token is the one-token call)
    env = dict(os.environ, GPTOSS_CUDA_GRAPHS="0", GPTOSS_BATCH_INVARIANT="off")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    text = p.stdout
    start = text.find('"ID"')
    if p.returncode != 0 or start < 0:
        print(p.stdout[-3000:], p.stderr[-3000:], file=sys.stderr)
        return 1
    total = collections.Counter()
    calls = collections.Counter()
    for row in csv.DictReader(io.StringIO(text[start:])):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = row["Kernel Name"].split("(")[0].replace("(anonymous namespace)::", "")
        value = float(row["Metric Value"].replace(",", ""))
        unit = row.get("Metric Unit", "nsecond")
        scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(unit, 1e-3)
        total[name] += value * scale
        calls[name] += 1
    all_us = sum(total.values())
    n = a.tokens
    print(f"decode kernels of random {a.model}, per token ({n} one-token forward passes), ncu, no launch gaps:")
    print(f"{'kernel':58s} {'calls/tok':>9s} {'us/tok':>9s} {'us/call':>8s} {'%':>6s}")
    for name, us in total.most_common():
        print(f"{name[:58]:58s} {calls[name] / n:9.1f} {us / n:9.1f} {us / calls[name]:8.2f} {100 * us / all_us:6.1f}")
    print(f"{'total':58s} {sum(calls.values()) / n:9.1f} {all_us / n:9.1f}  -> {1e6 / (all_us / n):.0f} tok/s "
          f"if back to back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
