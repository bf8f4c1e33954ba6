#!/usr/bin/env python3
"""Measured ceilings of the card, for the benchmark's percentages: device-to-device copy
bandwidth (read + write counted) and the f32 / tf32-off / bf16 matmul rates PyTorch
(cuBLAS) reaches, on random data, median of timed runs after warm-up (CUDA events)."""
import statistics
import torch


def timed(fn, reps=10):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    print("card:", torch.cuda.get_device_name(0))
    n = 1 << 28  # 1 GiB of f32
    src, dst = torch.randn(n, device="cuda"), torch.empty(n, device="cuda")
    t = timed(lambda: dst.copy_(src))
    print(f"copy bandwidth: {2 * 4 * n / t / 1e9:.0f} GB/s (read + write)")
    for m, k, nn in [(512, 2880, 5120), (2048, 2880, 5120), (8192, 8192, 8192)]:
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(m, k, device="cuda", dtype=dtype)
            w = torch.randn(k, nn, device="cuda", dtype=dtype)
            t = timed(lambda: x @ w)
            print(f"matmul {m}x{k}x{nn} {str(dtype).split('.')[-1]}: {2 * m * k * nn / t / 1e12:.1f} TFLOP/s")


if __name__ == "__main__":
    main()
