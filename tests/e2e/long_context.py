#!/usr/bin/env python3
"""A context of 131,072 positions end to end: the logits of the last prompt position (and of
a few greedy steps after it) on every backend named, against the first one.

What it does
  1. Makes a tiny random model whose context is --context positions (`gptoss make-model
     --preset tiny --context N --head-dim D`: 4 layers, two of them full attention over every
     position, two sliding windows of 16; head_dim 64 by default, gpt-oss's, which CUDA's
     fast attention paths need: the tiny preset's 16 runs its generic kernel).
  2. Runs tests/e2e/dump_logits on each backend with the same prompt of --tokens random
     text tokens (prefilled in chunks of --batch), then --steps greedy decode steps, and
     prints each run's wall time.
  3. Compares each later backend's logits with the first's at every dumped position:
     max |a - b| / max |b| <= --tol, the same greedy tokens unless the reference's top two
     are within 2 tol of each other (a near-tie), and stops comparing where the tokens
     differ (the sequences are no longer the same).

  4. With --ref64, also the logits of the dumped positions in float64 (forward_ref.py's
     model, a block of query rows at a time: ~12 minutes for 131,002 positions on 2 cores),
     and every backend against them: which backend is off, not just that two disagree.
     --keep DIR keeps the dumps; --dumps DIR compares kept ones (e.g. a GPU machine's CUDA
     dump against a CPU dump and the float64 logits made elsewhere: the model and the prompt
     follow from the seeds).

The tolerance (1e-4, as the engine's CUDA-vs-CPU check at short contexts): both backends
sum in f32 in different orders; a full-attention row of n keys adds n products in its
softmax sums, whose rounding grows like sqrt(n) 2^-24 relative (~2e-5 at 131,072), well
inside 1e-4, while a wrong key range, position or sink moves the logits by O(1).

usage (GPU machine, after a build):
  python3 tests/e2e/long_context.py --gptoss build/bin/gptoss --dump build/tests/e2e/dump_logits \\
      --backends cpu,cuda
  Anywhere: --backends cpu:avx512,cpu:avx2 (two CPU variants) with a smaller --tokens.
exit 0 = pass, 1 = fail, 77 = skipped (numpy missing).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not installed")
    sys.exit(77)

import forward_ref  # noqa: E402  (the dump reader)


def run_backend(args, model, spec, out):
    backend, _, isa = spec.partition(":")
    cmd = [args.dump, model, out, "--random-prompt", str(args.tokens), "--seed", str(args.seed), "--steps",
           str(args.steps), "--batch", str(args.batch), "--backend", backend]
    if isa:
        cmd += ["--isa", isa]
    if backend == "cpu" and args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dt = time.time() - t0
    if r.returncode != 0:
        print(f"FAIL {spec}: dump_logits exited {r.returncode}: {r.stdout.strip()[-600:]}")
        return None
    print(f"     {spec}: {args.tokens} prompt tokens + {args.steps} steps in {dt:.1f} s "
          f"({args.tokens / dt:.0f} tok/s of prefill, wall time including the model load)")
    return forward_ref.read_dump(out)


def compare(label, got, ref, tol):
    _, prompt_g, steps, _, logits_g, tokens_g = got
    _, prompt_r, _, _, logits_r, tokens_r = ref
    if prompt_g != prompt_r:
        print(f"FAIL {label}: the prompts differ")
        return False
    ok, worst = True, 0.0
    for i in range(steps + 1):
        a, b = logits_g[i], logits_r[i]
        scale = float(np.max(np.abs(b)))
        err = float(np.max(np.abs(a - b))) / scale if scale > 0 else float("inf")
        worst = max(worst, err)
        if not np.all(np.isfinite(a)) or not err <= tol:
            print(f"     {label}: position {len(prompt_r) - 1 + i}: max |a - b| / max |b| = {err:.3e} > {tol:g}")
            ok = False
        if i < steps and tokens_g[i] != tokens_r[i]:
            srt = np.sort(b)
            margin = (srt[-1] - srt[-2]) / scale
            if margin > 2 * tol:
                print(f"     {label}: step {i}: greedy token {tokens_g[i]} != {tokens_r[i]} (margin {margin:.2e})")
                ok = False
            else:
                print(f"     {label}: step {i}: near-tie ({margin:.2e}); later positions not compared")
            break
    print(f"{'PASS' if ok else 'FAIL'} {label}: {len(prompt_r)} prompt tokens, {steps} greedy steps, "
          f"max rel error {worst:.2e} (tol {tol:g})")
    return ok


def compare_ref64(path, specs, dumps, tol, cache=None):
    """Every backend against the float64 logits of the first one's token sequence, at the
    dumped positions up to where a backend's greedy tokens leave that sequence. cache: a
    file for those logits (kept with the dumps, reused when its sequence is the same)."""
    _, prompt, steps, _, _, tokens = dumps[0]
    seq = prompt + tokens[:steps]
    ref = None
    if cache and os.path.exists(cache):
        with np.load(cache) as z:
            if "angles" in z.files and str(z["angles"]) == forward_ref.ANGLES and list(z["seq"]) == seq:
                ref = z["logits"]
                print(f"     float64 reference: {len(seq)} positions, from {cache}")
    if ref is None:
        t0 = time.time()
        ref = forward_ref.Model(path).forward_last(seq, steps + 1)
        print(f"     float64 reference: {len(seq)} positions in {time.time() - t0:.0f} s")
        if cache:
            np.savez(cache, seq=np.asarray(seq, dtype=np.uint32), logits=ref, angles=forward_ref.ANGLES)
    ok = True
    for spec, (_, prompt_g, _, _, logits, toks) in zip(specs, dumps):
        if prompt_g != prompt:
            print(f"FAIL {spec} vs float64: the prompts differ")
            ok = False
            continue
        errs = []
        for i in range(steps + 1):
            scale = float(np.max(np.abs(ref[i])))
            errs.append(float(np.max(np.abs(logits[i] - ref[i]))) / scale)
            if i < steps and toks[i] != tokens[i]:
                break
        good = all(e <= tol for e in errs)
        ok &= good
        print(f"{'PASS' if good else 'FAIL'} {spec} vs float64: max |a - ref| / max |ref| at positions "
              f"{len(prompt) - 1}..{len(prompt) - 2 + len(errs)}: " + ", ".join(f"{e:.2e}" for e in errs) + f" (tol {tol:g})")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gptoss", required=True, help="the gptoss CLI (makes the model)")
    ap.add_argument("--dump", required=True, help="tests/e2e/dump_logits")
    ap.add_argument("--backends", default="cpu,cuda", help="comma-separated: cpu, cpu:ISA, cuda; the first is the reference")
    ap.add_argument("--tokens", type=int, default=131000, help="prompt tokens (default 131000)")
    ap.add_argument("--context", type=int, default=131072, help="the model's context (default 131072)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512, help="prefill chunk (rows per forward step)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    ap.add_argument("--head-dim", type=int, default=64,
                    help="the model's head_dim (default 64, gpt-oss's: CUDA's fast attention paths need it)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--keep", metavar="DIR", help="keep the model file's recipe and each backend's dump in DIR "
                    "(N.lg, N = the backend's place in --backends) for --ref64 elsewhere")
    ap.add_argument("--ref64", action="store_true",
                    help="also compute the dumped positions' logits in float64 (forward_ref.Model.forward_last: "
                         "numpy, independent of the library; minutes at 131,000 tokens) and compare every backend "
                         "with them")
    ap.add_argument("--dumps", metavar="DIR", help="compare the dumps kept in DIR (--keep) instead of running the "
                    "backends (the model is made again from the same seed)")
    args = ap.parse_args()
    if args.tokens + args.steps + 8 > args.context:
        ap.error(f"--tokens {args.tokens} + --steps {args.steps} + 8 must fit --context {args.context}")
    specs = [s for s in args.backends.split(",") if s]
    if len(specs) < 2 and not (args.keep or args.ref64):
        ap.error("--backends needs two or more (or one with --keep or --ref64)")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "tiny-long.bin")
        r = subprocess.run([args.gptoss, "make-model", "--preset", "tiny", "--context", str(args.context),
                            "--head-dim", str(args.head_dim), "--seed", "5", "--quiet", model],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            print(f"FAIL make-model: {r.stdout.strip()[-600:]}")
            return 1
        if args.dumps:
            dumps = [forward_ref.read_dump(os.path.join(args.dumps, f"{i}.lg")) for i in range(len(specs))]
        else:
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
            where = args.keep or tmp
            dumps = [run_backend(args, model, s, os.path.join(where, f"{i}.lg")) for i, s in enumerate(specs)]
        if any(d is None for d in dumps):
            return 1
        ok = all([compare(f"{s} vs {specs[0]}", d, dumps[0], args.tol) for s, d in zip(specs[1:], dumps[1:])])
        if args.ref64:
            where = args.dumps or args.keep
            ok &= compare_ref64(model, specs, dumps, args.tol, os.path.join(where, "ref64.npz") if where else None)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
