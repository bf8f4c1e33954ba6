"""float64 numpy references for the gpt_oss_kernels tests (numpy only, no torch).

bf16 values are uint16 arrays of bit patterns, made by rounding float32 to nearest even.
"""
import math

import numpy as np

FP4 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


# ---- element types ---------------------------------------------------------------------

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


def f64(a):
    return np.asarray(a, dtype=np.float64)


# ---- tolerances ------------------------------------------------------------------------

def assert_dot_close(out, ref, bound, rel=1e-5, atol=1e-6, what=""):
    """f32 dot products: |out - ref| <= rel * bound + atol, bound = sum |x_i w_i|."""
    out = f64(out)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert np.all(np.isfinite(out)), "%s: non-finite output" % what
    err = np.abs(out - ref)
    lim = rel * bound + atol
    bad = err > lim
    assert not bad.any(), "%s: %d/%d elements off, worst %g (limit %g)" % (
        what, bad.sum(), bad.size, err.max(), lim.flat[np.argmax(err - lim)])


def assert_close(out, ref, rtol=1e-5, atol=1e-6, what=""):
    out = f64(out)
    ref = f64(ref)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert np.all(np.isfinite(out)), "%s: non-finite output" % what
    err = np.abs(out - ref)
    lim = atol + rtol * np.abs(ref)
    bad = err > lim
    assert not bad.any(), "%s: %d/%d elements off, worst abs error %g" % (what, bad.sum(), bad.size, err.max())


# ---- dense kernels ---------------------------------------------------------------------

def matmul(x, w_out_in, b=None):
    """x [T][C] f32, w [R][C] bf16 bits, b [R] bf16 bits -> (ref [T][R], error bound)."""
    xf = f64(x)
    wf = from_bf16(w_out_in)
    ref = xf @ wf.T
    bound = np.abs(xf) @ np.abs(wf).T
    if b is not None:
        bf = from_bf16(b)
        ref = ref + bf
        bound = bound + np.abs(bf)
    return ref, bound


def rmsnorm(x, w, eps):
    xf = f64(x)
    r = 1.0 / np.sqrt(np.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return xf * r * from_bf16(w)


def embeddings(ids, w):
    return from_bf16(w)[np.asarray(ids, dtype=np.int64)]


def rope_inv_freq(head_dim, rope_base, interpolation_scale, yarn_offset, yarn_scale):
    i = np.arange(head_dim // 2, dtype=np.float64)
    e = np.exp(i * (-math.log(rope_base) / (head_dim // 2)))
    ip = e * interpolation_scale
    a = np.clip(i * yarn_scale + yarn_offset, 0.0, 1.0)
    return e + (ip - e) * a


def rope(qkv, num_q_heads, num_kv_heads, head_dim, token_offset, rope_base, interpolation_scale, yarn_offset,
         yarn_scale, yarn_multiplier):
    """qkv [T][D*(Hq+2Hkv)] -> rotated copy (Q and K heads), float64."""
    out = f64(qkv).copy()
    T = out.shape[0]
    f = rope_inv_freq(head_dim, rope_base, interpolation_scale, yarn_offset, yarn_scale)
    for t in range(T):
        phi = (token_offset + t) * f
        c = np.cos(phi) * yarn_multiplier
        s = np.sin(phi) * yarn_multiplier
        for h in range(num_q_heads + num_kv_heads):
            v = out[t, h * head_dim:(h + 1) * head_dim]
            x = v[0::2].copy()
            y = v[1::2].copy()
            v[0::2] = x * c - y * s
            v[1::2] = x * s + y * c
    return out


def sdpa(q, kv, sinks, window, kv_stride, num_q_tokens, num_kv_tokens, num_q_heads, num_kv_heads, head_dim,
         scale):
    """q flat f32 (qkv rows), kv flat f32, sinks bf16 bits or None -> out [Tq][Hq*D] float64."""
    qkv_dim = head_dim * (num_q_heads + 2 * num_kv_heads)
    qf = f64(q).reshape(-1)
    kvf = f64(kv).reshape(-1)
    group = num_q_heads // num_kv_heads
    out = np.zeros((num_q_tokens, num_q_heads * head_dim))
    for i in range(num_q_tokens):
        P = num_kv_tokens + i
        lo = max(0, P + 1 - window)
        ts = np.arange(lo, P + 1)
        for hq in range(num_q_heads):
            h = hq // group
            qv = qf[i * qkv_dim + hq * head_dim:i * qkv_dim + (hq + 1) * head_dim]
            base = h * kv_stride + ts[:, None] * 2 * head_dim
            K = kvf[base + np.arange(head_dim)[None, :]]
            V = kvf[base + head_dim + np.arange(head_dim)[None, :]]
            s = scale * (K @ qv)
            S = -np.inf if sinks is None else from_bf16(sinks)[hq]
            M = max(S, s.max()) if len(s) else S
            e = np.exp(s - M)
            den = np.exp(S - M) + e.sum()
            out[i, hq * head_dim:(hq + 1) * head_dim] = (e @ V) / den
    return out


def unembedding(x, w):
    return matmul(x, w)


def topk(scores, k):
    s = f64(scores)
    T, E = s.shape
    ids = np.zeros((T, k), dtype=np.int64)
    sc = np.zeros((T, k))
    for t in range(T):
        order = sorted(range(E), key=lambda e: (-s[t, e], e))[:k]
        ids[t] = order
        v = s[t, order]
        e = np.exp(v - v[0])
        sc[t] = e / e.sum()
    return ids, sc


def routing(ids, num_experts):
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    counts = np.bincount(ids, minlength=num_experts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    intra = np.zeros(len(ids), dtype=np.int64)
    seen = np.zeros(num_experts, dtype=np.int64)
    for p, e in enumerate(ids):
        intra[p] = seen[e]
        seen[e] += 1
    return offsets, intra


def scatter(x, ids, offsets, intra, k):
    x = f64(x)
    T, C = x.shape
    out = np.full((T * k, C), np.nan)
    for p, e in enumerate(np.asarray(ids, dtype=np.int64).reshape(-1)):
        out[offsets[e] + intra[p]] = x[p // k]
    return out


def gather_and_accumulate(y, ids, scores, offsets, intra, residual, k):
    res = f64(residual).copy()
    y = f64(y)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    scores = f64(scores).reshape(-1)
    for t in range(res.shape[0]):
        for j in range(k):
            p = t * k + j
            res[t] += y[offsets[ids[p]] + intra[p]] * scores[p]
    return res


def accumulate(y, scores, residual, k):
    res = f64(residual).copy()
    T = res.shape[0]
    y = f64(y).reshape(k, T, -1)
    scores = f64(scores).reshape(T, k)
    for j in range(k):
        res += y[j] * scores[:, j:j + 1]
    return res


# ---- MXFP4 -----------------------------------------------------------------------------

def mxfp4_decode(blocks, raw_scales):
    """blocks u8 [rows][C/32][16], raw scales u8 [rows][C/32] (bias 127) -> [rows][C] f64."""
    blocks = np.asarray(blocks, dtype=np.uint8)
    lo = FP4[blocks & 0xF]
    hi = FP4[blocks >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(blocks.shape[0], blocks.shape[1], 32)
    mult = np.ldexp(1.0, np.asarray(raw_scales, dtype=np.int64) - 127)
    return (vals * mult[..., None]).reshape(blocks.shape[0], -1)


def swiglu(glu, lin, limit, alpha=1.702):
    g = np.minimum(glu, limit)
    l = np.clip(lin, -limit, limit)
    return g / (1.0 + np.exp(-alpha * g)) * (l + 1.0)


class Experts(object):
    """Random MXFP4 experts, interleaved per expert as in the model file:
    [blocks | scales (+14 bias) | pad | bias bf16] every `stride` bytes."""

    def __init__(self, rng, num_experts, rows, cols):
        self.E, self.rows, self.cols = num_experts, rows, cols
        nb = cols // 32
        self.blocks = rng.integers(0, 256, size=(num_experts, rows, nb, 16), dtype=np.uint8)
        self.raw_scales = rng.integers(120, 128, size=(num_experts, rows, nb), dtype=np.uint8)
        self.bias = rand_bf16(rng, (num_experts, rows), 0.5)
        self.blocks_bytes = rows * nb * 16
        self.scales_bytes = rows * nb
        self.bias_offset = (self.blocks_bytes + self.scales_bytes + 1) // 2 * 2
        self.stride = (self.bias_offset + rows * 2 + 15) // 16 * 16
        buf = np.zeros((num_experts, self.stride), dtype=np.uint8)
        for e in range(num_experts):
            buf[e, :self.blocks_bytes] = self.blocks[e].reshape(-1)
            buf[e, self.blocks_bytes:self.blocks_bytes + self.scales_bytes] = (self.raw_scales[e] + 14).reshape(-1)
            buf[e, self.bias_offset:self.bias_offset + rows * 2] = self.bias[e].view(np.uint8)
        self.buffer = buf.reshape(-1)
        self.dense = [mxfp4_decode(self.blocks[e], self.raw_scales[e]) for e in range(num_experts)]

    def views(self, put_u8):
        """(weight_blocks, weight_scales, bias) views of one device buffer."""
        buf = put_u8(self.buffer)
        return buf[0:], buf[self.blocks_bytes:], buf[self.bias_offset:]

    def project(self, e, x):
        """x [C] -> (W_e x + b_e, bound)."""
        w = self.dense[e]
        xf = f64(x)
        return w @ xf + from_bf16(self.bias[e]), np.abs(w) @ np.abs(xf) + np.abs(from_bf16(self.bias[e]))


# ---- RNG -------------------------------------------------------------------------------

M64 = (1 << 64) - 1


def squares32(offset, seed):
    def rot(x):
        return ((x >> 32) | (x << 32)) & M64
    y = (offset * seed) & M64
    z = (y + seed) & M64
    x = (y * y + y) & M64
    x = rot(x)
    x = (x * x + z) & M64
    x = rot(x)
    x = (x * x + y) & M64
    x = rot(x)
    x = (x * x + z) & M64
    return x >> 32
