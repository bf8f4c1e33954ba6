"""Helpers of the Python tests that make their own inputs (numpy only, no torch): bf16
values are uint16 arrays of bit patterns, made by rounding float32 to nearest even. (The
ops' numeric tests use the C test modules' inputs, reference and tolerances: testops.py.)
"""
import numpy as np


def to_bf16(a):
    """float32 -> bf16 bits (uint16), round to nearest even (finite inputs)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16)


def from_bf16(b):
    """bf16 bits -> float64 (exact)."""
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def rand_bf16(rng, shape, scale=1.0):
    return to_bf16(rng.standard_normal(shape).astype(np.float32) * np.float32(scale))


def embeddings(ids, w):
    return from_bf16(w)[np.asarray(ids, dtype=np.int64)]


def routing(ids, num_experts):
    """expert_offsets and intra_expert_offsets of pairs routed to `ids`."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    counts = np.bincount(ids, minlength=num_experts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    intra = np.zeros(len(ids), dtype=np.int64)
    seen = np.zeros(num_experts, dtype=np.int64)
    for p, e in enumerate(ids):
        intra[p] = seen[e]
        seen[e] += 1
    return offsets, intra
