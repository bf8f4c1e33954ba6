"""Every kernel of the kernel list through the Python ops, on numpy / torch CPU / torch CUDA
tensors: the quick cases of the C test modules (tests/ops/, through testops.py), with the
inputs, float64 reference and tolerances the C harness uses; then the binding's own
behaviour (weight layouts, byte offsets, id dtypes, default arguments), compared bit for
bit with the plain call on the same backend (no tolerance involved).

Inputs come from $GPTOSS_TEST_SEED (default 1234), named in every failure."""
import os

import numpy as np
import pytest

import gpt_oss_kernels as g
from testops import BENCH_ONLY, CALLS, CASES, FAULT, KERNELS, QUICK, SEED_README, Problem, run

SEED = int(os.environ.get("GPTOSS_TEST_SEED", "1234"), 0)

# The seed README's SDPA example has its own test (test_seed_examples.py).
PY_CASES = [c for c in CASES if c.flags & QUICK and not c.flags & (SEED_README | BENCH_ONLY | FAULT)]
BY_NAME = {c.name: c for c in CASES}


def test_every_kernel_is_in_the_package_and_tested():
    assert set(CALLS) == set(KERNELS), "testops.CALLS differs from the kernel list"
    for name in KERNELS:
        assert name in g.__all__ and callable(getattr(g, name, None)), "gpt_oss_kernels has no op %s" % name
        assert any(c.kernel == name for c in PY_CASES), "kernel %s has no quick test case" % name


@pytest.mark.parametrize("case", PY_CASES, ids=[c.name for c in PY_CASES])
def test_case(lib, case):
    problem = Problem(case, SEED)
    try:
        failure, _ = run(lib, problem)
    finally:
        problem.close()
    assert not failure, "%s on %s (GPTOSS_TEST_SEED=%d): %s" % (case.name, lib.name, SEED, failure)


def same_bits(lib, name, variant):
    """Runs case `name` plainly and through `variant` (a CALLS-like function); both must pass
    the case's checks and give the same output bits."""
    problem = Problem(BY_NAME[name], SEED)
    try:
        failure, plain = run(lib, problem)
        assert not failure, failure
        failure, other = run(lib, problem, call=variant)
        assert not failure, failure
    finally:
        problem.close()
    for a, b in zip(plain, other):
        if a is not None:
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def _embed(lib, c, name, pad, fill):
    """Places the tensor of parameter `name` `pad` elements into a larger tensor (its head
    filled with `fill`); run() then reads the outputs back from the inner view. Returns
    (larger tensor, byte offset of the data)."""
    buf, _ = c.args[name]
    t = c.tensors[buf]
    host = lib.get(t)
    big = np.concatenate([np.full(pad, fill, dtype=host.dtype), host])
    big = {np.dtype(np.float32): lib.f32, np.dtype(np.uint16): lib.bf16}[big.dtype](big)
    c.tensors[buf] = big[pad:]
    return big, pad * host.dtype.itemsize


@pytest.mark.parametrize("name", ["matmul_odd_cols_19", "matmul_add_odd_3tok_2881x19", "dense_qkv_odd_19tok_2881x130"])
def test_contiguous_in_out_weight(lib, name):
    """The seed's [in][out] weight as a contiguous tensor (copied transposed by the op) or as
    W.t() of an [out][in] tensor (used in place): the same bits."""
    plain = CALLS[BY_NAME[name].kernel]

    def variant(L, c):
        c.contiguous_weights = True
        return plain(L, c)
    same_bits(lib, name, variant)


@pytest.mark.parametrize("kind", ["i32", "i64"])
def test_embeddings_id_dtypes(lib, kind):
    def variant(L, c):
        T, C, V = c.v("num_tokens"), c.v("num_channels"), c.v("vocabulary_size")
        ids = getattr(L, kind)(L.get(c.t("token_ids")).astype(np.int64))
        out = c.t("output", (T, C))
        return g.bf16_f32_embeddings(ids, c.t("weight", (V, C)), out, threadgroup_size=32), out
    same_bits(lib, "embeddings_seed_vocab1024_dim256_16tok", variant)


def test_sdpa_byte_offsets_and_default_scale(lib):
    """q, kv, sinks and output at byte offsets into larger tensors (the bytes before the
    output untouched), and scale left to its default 1/sqrt(head_dim) (the case's scale)."""
    untouched = []

    def variant(L, c):
        q, q_off = _embed(L, c, "q", 80, 7.0)
        kv, kv_off = _embed(L, c, "kv", 16, 7.0)
        s, s_off = _embed(L, c, "sinks", 2, 0x4000)
        out, out_off = _embed(L, c, "output", 64, np.nan)
        untouched.append((out, 64))
        assert c.v("scale") == c.v("head_dim") ** -0.5
        return g.f32_sdpa(q, q_off, kv, kv_off, s, s_off, out, out_off, c.v("window"), c.v("kv_stride"),
                          c.v("num_q_tokens"), c.v("num_kv_tokens"), c.v("num_q_heads"), c.v("num_kv_heads"),
                          c.v("head_dim")), out
    same_bits(lib, "sdpa_window1_self_only", variant)
    out, pad = untouched[-1]
    assert np.isnan(lib.get(out)[:pad]).all(), "f32_sdpa wrote before output_offset_bytes"


def test_qkv_kv_cache_offset(lib):
    """The KV cache as layer 1 of a two-layer tensor (kv_cache_offset_bytes): layer 0 untouched."""
    layers = []

    def variant(L, c):
        buf, _ = c.args["kv_cache"]
        layer = L.get(c.tensors[buf]).size
        kv, off = _embed(L, c, "kv_cache", layer, -3.0)
        layers.append((kv, layer))
        T, C = c.v("num_tokens"), c.v("num_cols")
        Hq, Hkv, D = c.v("num_q_heads"), c.v("num_kv_heads"), c.v("head_dim")
        rows = D * (Hq + 2 * Hkv)
        out = c.t("output", (T, rows))
        return g.f32_bf16w_matmul_qkv(c.t("input", (T, C)), c.in_out("weight", rows, C), c.t("bias"), out, kv,
                                      off, T, C, Hq, Hkv, D, c.v("token_offset"), c.v("max_tokens"),
                                      c.v("rope_base"), c.v("interpolation_scale"), c.v("yarn_offset"),
                                      c.v("yarn_scale"), c.v("yarn_multiplier")), out
    same_bits(lib, "qkv_gqa4_hd32_cols130", variant)
    kv, layer = layers[-1]
    assert (lib.get(kv)[:layer] == -3.0).all(), "f32_bf16w_matmul_qkv wrote outside its layer"


@pytest.mark.parametrize("name", ["u32_fill_random_19", "f32_fill_random_19_upstream_range", "bf16_fill_random_19"])
def test_fill_counts(lib, name):
    """num_elements left to its default (the output's size) gives the same bits; a longer
    output keeps its tail."""
    fn = getattr(g, BY_NAME[name].kernel)
    ranged = BY_NAME[name].kernel != "u32_fill_random"

    def whole(L, c):
        out = c.t("output")
        extra = dict(min=c.v("min"), max=c.v("max")) if ranged else {}
        return fn(out, None, c.v("seed"), c.v("offset"), **extra), out
    same_bits(lib, name, whole)

    tails = []

    def longer(L, c):
        buf, _ = c.args["output"]
        host = L.get(c.tensors[buf])
        big = np.concatenate([host, np.full(5, 0xFF if host.dtype == np.uint16 else 0, dtype=host.dtype)])
        big = {np.dtype(np.float32): L.f32, np.dtype(np.uint16): L.bf16, np.dtype(np.uint32): L.u32}[big.dtype](big)
        c.tensors[buf] = big[:host.size]
        tails.append((big, host.size))
        extra = dict(min=c.v("min"), max=c.v("max")) if ranged else {}
        return fn(big, c.v("num_elements"), c.v("seed"), c.v("offset"), **extra), big
    same_bits(lib, name, longer)
    big, n = tails[-1]
    tail = lib.get(big)[n:]
    assert (tail == tail.dtype.type(0xFF if tail.dtype == np.uint16 else 0)).all(), "wrote past num_elements"


def test_backend_name():
    assert g.backend_name("cpu").startswith("cpu")


def test_row_order_setting():
    assert g.get_row_order("cpu") == "auto"
    with pytest.raises(ValueError):
        g.set_row_order("some", "cpu")
    with pytest.raises(ValueError):
        g.set_row_order("one", "tpu")
    g.set_row_order("many", "cpu")
    try:
        assert g.get_row_order("cpu") == "many"
    finally:
        g.set_row_order("auto", "cpu")
    assert g.get_row_order("cpu") == "auto"


def test_row_orders(lib):
    """gpt_oss_kernels.set_row_order: in order "one" a block of 40 tokens gives each token's
    bits as a call of that token alone (order auto); in order "many" calls of 1, 5 and 17
    tokens give the bits of the same tokens in the block. On the CPU every order computes
    the same bits; on CUDA the orders choose the kernels (the 2880-column, 300-row shape
    takes the region GEMV alone and the tensor-core GEMM for many tokens)."""
    rng = np.random.default_rng(SEED)
    T, C, R = 40, 2880, 300
    x = rng.uniform(-1, 1, (T, C)).astype(np.float32)
    w = (rng.uniform(-0.05, 0.05, (R, C)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    bias = (rng.uniform(-1, 1, R).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    W, B = lib.T(lib.bf16(w)), lib.bf16(bias)  # [in][out] as a transposed view
    device = lib.device

    def matmul(t0, n, order):
        g.set_row_order(order, device)
        out = lib.nan((n, R))
        g.f32_bf16w_matmul(lib.f32(x[t0:t0 + n]), W, B, out, n, C, R)
        lib.sync()
        return lib.get(out)

    try:
        alone = np.concatenate([matmul(t, 1, "auto") for t in range(T)])
        np.testing.assert_array_equal(matmul(0, T, "one").view(np.uint32), alone.view(np.uint32))
        block = matmul(0, T, "many")
        for n in (1, 5, 17):
            np.testing.assert_array_equal(matmul(0, n, "many").view(np.uint32), block[:n].view(np.uint32))
        assert not np.isnan(alone).any()
    finally:
        g.set_row_order("auto", device)
