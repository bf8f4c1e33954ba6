"""Every op against a float64 numpy reference, on numpy / torch CPU / torch CUDA tensors."""
import numpy as np
import pytest

import gpt_oss_kernels as g
import reference as ref
from reference import assert_close, assert_dot_close, f64, from_bf16, rand_bf16

ROPE = dict(rope_base=150000.0, interpolation_scale=0.03125, yarn_offset=-0.86970079, yarn_scale=0.10746627,
            yarn_multiplier=1.3465736)


# ---- bf16-weight matmuls ---------------------------------------------------------------

@pytest.mark.parametrize("T,C,R", [(1, 1, 1), (2, 128, 64), (3, 37, 5), (5, 260, 6), (17, 100, 33)])
@pytest.mark.parametrize("layout", ["transposed_view", "in_out_contiguous"])
@pytest.mark.parametrize("add", [False, True])
def test_matmul(lib, rng, T, C, R, layout, add):
    x = rng.standard_normal((T, C)).astype(np.float32)
    w = rand_bf16(rng, (R, C))          # [out][in]
    b = rand_bf16(rng, (R,))
    y0 = rng.standard_normal((T, R)).astype(np.float32)
    W = lib.bf16(w)
    weight = lib.T(W) if layout == "transposed_view" else lib.bf16(np.ascontiguousarray(w.T))
    out = lib.f32(y0) if add else lib.nan((T, R))
    fn = g.f32_bf16w_matmul_add if add else g.f32_bf16w_matmul
    ret = fn(lib.f32(x), weight, lib.bf16(b), out, T, C, R, threadgroup_size=32)
    assert ret is out
    expect, bound = ref.matmul(x, w, b)
    if add:
        expect = expect + y0
        bound = bound + np.abs(y0)
    assert_dot_close(lib.get(out), expect, bound, what="matmul")


def test_matmul_no_bias(lib, rng):
    x = rng.standard_normal((4, 40)).astype(np.float32)
    w = rand_bf16(rng, (9, 40))
    out = lib.nan((4, 9))
    g.f32_bf16w_matmul(lib.f32(x), lib.T(lib.bf16(w)), None, out, 4, 40, 9)
    expect, bound = ref.matmul(x, w)
    assert_dot_close(lib.get(out), expect, bound)


@pytest.mark.parametrize("name", ["f32_bf16w_dense_matmul_qkv", "f32_bf16w_dense_matmul_attn_output",
                                  "f32_bf16w_dense_matmul_mlp_gate"])
@pytest.mark.parametrize("M,K,N", [(1, 8, 8), (7, 45, 19), (64, 64, 64), (70, 96, 40)])
def test_dense_matmul(lib, rng, name, M, K, N):
    x = rng.standard_normal((M, K)).astype(np.float32)
    w = rand_bf16(rng, (N, K))
    b = rand_bf16(rng, (N,))
    y0 = rng.standard_normal((M, N)).astype(np.float32)
    accumulate = name.endswith("attn_output")
    out = lib.f32(y0) if accumulate else lib.nan((M, N))
    ret = getattr(g, name)(lib.f32(x), lib.T(lib.bf16(w)), lib.bf16(b), out)
    assert ret is out
    expect, bound = ref.matmul(x, w, b)
    if accumulate:
        expect, bound = expect + y0, bound + np.abs(y0)
    assert_dot_close(lib.get(out), expect, bound, what=name)


def test_dense_matmul_in_out_copy(lib, rng):
    x = rng.standard_normal((5, 24)).astype(np.float32)
    w = rand_bf16(rng, (24, 16))  # the seed's [in][out], contiguous: copied transposed
    out = lib.nan((5, 16))
    g.f32_bf16w_dense_matmul_mlp_gate(lib.f32(x), lib.bf16(w), None, out)
    expect, bound = ref.matmul(x, np.ascontiguousarray(w.T))
    assert_dot_close(lib.get(out), expect, bound)


# ---- rmsnorm, embeddings ---------------------------------------------------------------

@pytest.mark.parametrize("T,C", [(1, 1), (3, 7), (4, 2880), (2, 1000)])
def test_rmsnorm(lib, rng, T, C):
    x = rng.standard_normal((T, C)).astype(np.float32)
    w = rand_bf16(rng, (C,))
    out = lib.nan((T, C))
    assert g.f32_bf16w_rmsnorm(lib.f32(x), lib.bf16(w), out, epsilon=1e-5) is out
    assert_close(lib.get(out), ref.rmsnorm(x, w, 1e-5), rtol=2e-5, atol=1e-6)


def test_rmsnorm_in_place(lib, rng):
    x = rng.standard_normal((3, 50)).astype(np.float32)
    w = rand_bf16(rng, (50,))
    t = lib.f32(x)
    g.f32_bf16w_rmsnorm(t, lib.bf16(w), t, 1e-5)
    assert_close(lib.get(t), ref.rmsnorm(x, w, 1e-5), rtol=2e-5)


@pytest.mark.parametrize("ids_kind", ["i32", "u32", "i64"])
@pytest.mark.parametrize("T,V,C", [(1, 1, 1), (16, 1024, 256), (5, 33, 7)])
def test_embeddings(lib, rng, ids_kind, T, V, C):
    ids = rng.integers(0, V, size=T)
    w = rand_bf16(rng, (V, C))
    out = lib.nan((T, C))
    assert g.bf16_f32_embeddings(getattr(lib, ids_kind)(ids), lib.bf16(w), out, threadgroup_size=32) is out
    np.testing.assert_array_equal(f64(lib.get(out)), ref.embeddings(ids, w))


# ---- rope, qkv, sdpa -------------------------------------------------------------------

@pytest.mark.parametrize("T,Hq,Hkv,D,offset", [(1, 1, 1, 2, 0), (2, 64, 8, 64, 7), (3, 6, 2, 10, 100)])
@pytest.mark.parametrize("params", ["yarn", "plain"])
def test_rope(lib, rng, T, Hq, Hkv, D, offset, params):
    p = dict(ROPE) if params == "yarn" else dict(rope_base=50000.0, interpolation_scale=1.0, yarn_offset=0.0,
                                                   yarn_scale=1.0, yarn_multiplier=1.0)
    qkv_dim = D * (Hq + 2 * Hkv)
    x = rng.standard_normal((T, qkv_dim)).astype(np.float32)
    t = lib.f32(x)
    ret = g.f32_rope(t, p["rope_base"], p["interpolation_scale"], p["yarn_offset"], p["yarn_scale"],
                     p["yarn_multiplier"], T, Hq, Hkv, D, offset, threadgroup_size=64)
    assert ret is t
    expect = ref.rope(x, Hq, Hkv, D, offset, **p)
    assert_close(lib.get(t), expect, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("T,C,Hq,Hkv,D,offset,max_tokens", [(1, 32, 2, 1, 4, 0, 1), (3, 64, 8, 2, 8, 5, 12),
                                                             (2, 100, 4, 4, 6, 1, 3)])
def test_matmul_qkv(lib, rng, T, C, Hq, Hkv, D, offset, max_tokens):
    qkv_dim = D * (Hq + 2 * Hkv)
    x = rng.standard_normal((T, C)).astype(np.float32)
    w = rand_bf16(rng, (qkv_dim, C))
    b = rand_bf16(rng, (qkv_dim,))
    out = lib.nan((T, qkv_dim))
    layer_floats = Hkv * max_tokens * 2 * D
    kv0 = rng.standard_normal(2 * layer_floats + 8).astype(np.float32)  # two layers + slack
    kv = lib.f32(kv0)
    offset_bytes = layer_floats * 4  # layer 1
    ret = g.f32_bf16w_matmul_qkv(lib.f32(x), lib.T(lib.bf16(w)), lib.bf16(b), out, kv, offset_bytes, T, C, Hq, Hkv,
                                 D, offset, max_tokens, ROPE["rope_base"], ROPE["interpolation_scale"],
                                 ROPE["yarn_offset"], ROPE["yarn_scale"], ROPE["yarn_multiplier"],
                                 threadgroup_size=0)
    assert ret is out
    y, bound = ref.matmul(x, w, b)
    rot = ref.rope(y, Hq, Hkv, D, offset, **ROPE)
    m = ROPE["yarn_multiplier"]
    assert_dot_close(lib.get(out), rot, bound * m * 2, rel=1e-4, atol=1e-4, what="qkv output")
    got_kv = f64(lib.get(kv))
    expect_kv = f64(kv0).copy()
    layer = expect_kv[layer_floats:2 * layer_floats].reshape(Hkv, max_tokens, 2, D)
    for t in range(T):
        for h in range(Hkv):
            layer[h, offset + t, 0] = rot[t, (Hq + h) * D:(Hq + h + 1) * D]
            layer[h, offset + t, 1] = rot[t, (Hq + Hkv + h) * D:(Hq + Hkv + h + 1) * D]
    assert_close(got_kv, expect_kv, rtol=1e-4, atol=1e-3, what="kv cache")


@pytest.mark.parametrize("Tq,N0,Hq,Hkv,D,window,sinks,extra", [
    (1, 0, 1, 1, 4, 0xFFFFFFFF, False, 0),
    (2, 3, 64, 8, 64, 5, True, 0),
    (3, 9, 6, 2, 12, 4, True, 3),
    (5, 2, 4, 4, 8, 1, True, 0),
    (4, 20, 8, 1, 16, 128, False, 10),
])
def test_sdpa(lib, rng, Tq, N0, Hq, Hkv, D, window, sinks, extra):
    qkv_dim = D * (Hq + 2 * Hkv)
    total = N0 + Tq
    max_tokens = total + extra
    kv_stride = 2 * D * max_tokens
    q = rng.standard_normal((Tq + 1) * qkv_dim).astype(np.float32)  # one spare row in front
    kv = rng.standard_normal(Hkv * kv_stride + 16).astype(np.float32)
    s = rand_bf16(rng, (Hq + 2,), 2.0) if sinks else None
    out = lib.nan((Tq + 1, Hq * D))
    scale = D ** -0.5
    ret = g.f32_sdpa(lib.f32(q), qkv_dim * 4, lib.f32(kv), 16 * 4, None if s is None else lib.bf16(s), 2 * 2, out,
                     Hq * D * 4, window, kv_stride, Tq, N0, Hq, Hkv, D)
    assert ret is out
    expect = ref.sdpa(q[qkv_dim:], kv[16:], None if s is None else s[2:], window, kv_stride, Tq, N0, Hq, Hkv, D,
                      scale)
    got = lib.get(out)
    assert np.isnan(got[0]).all(), "row before output_offset_bytes was written"
    assert_close(got[1:], expect, rtol=1e-4, atol=1e-5)


def test_sdpa_explicit_scale(lib, rng):
    Tq, N0, Hq, Hkv, D = 2, 2, 4, 2, 8
    qkv_dim = D * (Hq + 2 * Hkv)
    kv_stride = 2 * D * (N0 + Tq)
    q = rng.standard_normal(Tq * qkv_dim).astype(np.float32)
    kv = rng.standard_normal(Hkv * kv_stride).astype(np.float32)
    out = lib.nan((Tq, Hq * D))
    g.f32_sdpa(lib.f32(q), 0, lib.f32(kv), 0, None, 0, out, 0, 0xFFFFFFFF, kv_stride, Tq, N0, Hq, Hkv, D, scale=1.0)
    assert_close(lib.get(out), ref.sdpa(q, kv, None, 2 ** 32 - 1, kv_stride, Tq, N0, Hq, Hkv, D, 1.0), rtol=1e-4,
                 atol=1e-5)


# ---- unembedding, sampling -------------------------------------------------------------

@pytest.mark.parametrize("T,C,V", [(1, 1, 1), (3, 64, 1000), (2, 45, 77)])
def test_unembedding(lib, rng, T, C, V):
    x = rng.standard_normal((T, C)).astype(np.float32)
    w = rand_bf16(rng, (V, C))
    logits = lib.nan((T, V))
    am = lib.ids_out((T,))
    ret = g.f32_bf16w_unembedding(lib.f32(x), lib.bf16(w), logits, am, T, C, V)
    assert ret[0] is logits and ret[1] is am
    expect, bound = ref.unembedding(x, w)
    got = lib.get(logits)
    assert_dot_close(got, expect, bound)
    idx = lib.get(am).astype(np.int64)
    for t in range(T):
        assert got[t, idx[t]] == got[t].max()
        assert idx[t] == np.flatnonzero(got[t] == got[t].max())[0]


def test_softmax_and_sample(lib, rng):
    T, V = 3, 500
    logits = (rng.standard_normal((T, V)) * 3).astype(np.float32)
    argmax = logits.argmax(axis=1)
    prob = lib.nan((T, V))
    s = lib.nan((T,))
    temperature = 0.7
    ret = g.f32_softmax(lib.f32(logits), lib.u32(argmax), prob, s, T, V, temperature)
    assert ret[0] is prob and ret[1] is s
    lf = f64(logits)
    expect = np.exp((lf - lf.max(axis=1, keepdims=True)) / temperature)
    assert_close(lib.get(prob), expect, rtol=1e-5, atol=1e-7)
    assert_close(lib.get(s), expect.sum(axis=1), rtol=1e-5)
    # sample token 1's distribution
    p1 = lib.get(prob)[1]
    total = np.float32(lib.get(s)[1])
    for seed, offset in [(0, 0), (42, 7), (2 ** 64 - 1, 123456)]:
        pred = lib.ids_out((1,))
        assert g.f32_sample(lib.f32(p1), lib.f32([total]), pred, V, seed, offset) is pred
        i = int(lib.get(pred)[0])
        u = (ref.squares32(offset, seed) & 0xFFFFFF) * 2.0 ** -24
        target = max(u * float(total), 2.0 ** -149)
        cum = np.cumsum(f64(p1))
        assert 0 <= i < V
        assert cum[i] >= target * (1 - 1e-5)
        assert i == 0 or cum[i - 1] <= target * (1 + 1e-5)


# ---- MoE routing -----------------------------------------------------------------------

@pytest.mark.parametrize("T,E,k", [(1, 1, 1), (3, 32, 4), (5, 128, 4), (4, 7, 3), (2, 5, 5)])
def test_topk(lib, rng, T, E, k):
    scores = rng.standard_normal((T, E)).astype(np.float32)
    ids = lib.ids_out((T, k))
    sc = lib.nan((T, k))
    ret = g.f32_topk(lib.f32(scores), ids, sc, T, E, k)
    assert ret[0] is ids and ret[1] is sc
    eids, esc = ref.topk(scores, k)
    np.testing.assert_array_equal(lib.get(ids).astype(np.int64), eids)
    assert_close(lib.get(sc), esc, rtol=1e-6, atol=1e-7)


def test_topk_ties_lowest_index(lib):
    scores = np.array([[1.0, 3.0, 3.0, 0.0, 3.0, -0.0]], dtype=np.float32)
    ids = lib.ids_out((1, 4))
    sc = lib.nan((1, 4))
    g.f32_topk(lib.f32(scores), ids, sc, 1, 6, 4)
    np.testing.assert_array_equal(lib.get(ids).astype(np.int64)[0], [1, 2, 4, 0])


def _routing_case(rng, T, E, k):
    ids = np.stack([rng.choice(E, size=k, replace=False) for _ in range(T)])
    return ids


@pytest.mark.parametrize("T,E,k", [(1, 1, 1), (6, 32, 4), (9, 128, 4), (3, 5, 2)])
def test_routing_scatter_gather(lib, rng, T, E, k):
    C = 12
    P = T * k
    ids = _routing_case(rng, T, E, k)
    scores = rng.random((T, k)).astype(np.float32)
    offs = lib.ids_out((E + 1,))
    intra = lib.ids_out((P,))
    ret = g.expert_routing_metadata(lib.u32(ids.reshape(-1)), lib.f32(scores.reshape(-1)), offs, intra, P, E)
    assert ret[0] is offs and ret[1] is intra
    eoffs, eintra = ref.routing(ids, E)
    np.testing.assert_array_equal(lib.get(offs).astype(np.int64), eoffs)
    np.testing.assert_array_equal(lib.get(intra).astype(np.int64), eintra)

    x = rng.standard_normal((T, C)).astype(np.float32)
    out = lib.nan((P, C))
    ret = g.f32_scatter(lib.f32(x), lib.u32(ids.reshape(-1)), lib.f32(scores.reshape(-1)), offs, intra, out, C, P, k)
    assert ret is out
    np.testing.assert_array_equal(f64(lib.get(out)), ref.scatter(x, ids, eoffs, eintra, k))

    y = rng.standard_normal((P, C)).astype(np.float32)
    res0 = rng.standard_normal((T, C)).astype(np.float32)
    res = lib.f32(res0)
    ret = g.f32_gather_and_accumulate(lib.f32(y), lib.u32(ids.reshape(-1)), lib.f32(scores), offs, intra, res, C, T,
                                      k)
    assert ret is res
    assert_close(lib.get(res), ref.gather_and_accumulate(y, ids, scores, eoffs, eintra, res0, k), rtol=1e-5,
                 atol=1e-6)


@pytest.mark.parametrize("T,k,C", [(1, 1, 1), (3, 4, 2880), (5, 2, 17)])
def test_accumulate(lib, rng, T, k, C):
    y = rng.standard_normal((k, T, C)).astype(np.float32)
    scores = rng.random((T, k)).astype(np.float32)
    res0 = rng.standard_normal((T, C)).astype(np.float32)
    res = lib.f32(res0)
    assert g.f32_accumulate(lib.f32(y), lib.f32(scores), res, C, T, k, threadgroup_size=0) is res
    assert_close(lib.get(res), ref.accumulate(y, scores, res0, k), rtol=1e-5, atol=1e-6)


# ---- MoE MXFP4 matmuls -----------------------------------------------------------------

LIMIT = 7.0


@pytest.mark.parametrize("T,E,k,C,R", [(1, 1, 1, 32, 1), (3, 8, 4, 64, 24), (2, 5, 2, 96, 7)])
def test_moe_decode(lib, rng, T, E, k, C, R):
    ids = _routing_case(rng, T, E, k)
    up = ref.Experts(rng, E, 2 * R, C)
    x = (rng.standard_normal((T, C)) * 0.1).astype(np.float32)
    blocks, scales, bias = up.views(lib.u8)
    out = lib.nan((k, T, R))
    ret = g.f32_mf4w_moe_matmul_swiglu(lib.f32(x), lib.u32(ids), blocks, scales, bias, up.stride, out, T, k, E, C,
                                       R, LIMIT, threadgroup_size=0)
    assert ret is out
    expect = np.zeros((k, T, R))
    bound = np.zeros((k, T, R))
    for t in range(T):
        for j in range(k):
            yv, bd = up.project(ids[t, j], x[t])
            expect[j, t] = ref.swiglu(yv[0::2], yv[1::2], LIMIT)
            bound[j, t] = np.maximum(bd[0::2], bd[1::2]) * (LIMIT + 1) * 2
    assert_dot_close(lib.get(out), expect, bound, rel=1e-5, atol=1e-5, what="moe swiglu")

    # down projection: input [k][T][R'] with R' a multiple of 32
    Cd = 64
    down = ref.Experts(rng, E, 9, Cd)
    a = (rng.standard_normal((k, T, Cd)) * 0.1).astype(np.float32)
    blocks, scales, bias = down.views(lib.u8)
    out2 = lib.nan((k, T, 9))
    assert g.f32_mf4w_moe_matmul(lib.f32(a), lib.u32(ids), blocks, scales, bias, down.stride, out2, T, k, E, Cd,
                                 9) is out2
    expect2 = np.zeros((k, T, 9))
    bound2 = np.zeros((k, T, 9))
    for t in range(T):
        for j in range(k):
            expect2[j, t], bound2[j, t] = down.project(ids[t, j], a[j, t])
    assert_dot_close(lib.get(out2), expect2, bound2, rel=1e-5, atol=1e-5, what="moe down")


@pytest.mark.parametrize("T,E,k,C,R", [(1, 1, 1, 32, 1), (4, 8, 4, 64, 20), (3, 6, 2, 32, 33)])
def test_moe_dense(lib, rng, T, E, k, C, R):
    ids = _routing_case(rng, T, E, k)
    offsets, intra = ref.routing(ids, E)
    P = T * k
    expert_of_row = np.repeat(np.arange(E), np.diff(offsets))
    up = ref.Experts(rng, E, 2 * R, C)
    x = (rng.standard_normal((P, C)) * 0.1).astype(np.float32)
    blocks, scales, bias = up.views(lib.u8)
    out = lib.nan((P, R))
    ret = g.f32_mf4w_moe_dense_matmul_swiglu(lib.u32(offsets), lib.f32(x), blocks, scales, bias, up.stride, out, T,
                                             k, E, C, R, LIMIT)
    assert ret is out
    expect = np.zeros((P, R))
    bound = np.zeros((P, R))
    for r in range(P):
        yv, bd = up.project(expert_of_row[r], x[r])
        expect[r] = ref.swiglu(yv[0::2], yv[1::2], LIMIT)
        bound[r] = np.maximum(bd[0::2], bd[1::2]) * (LIMIT + 1) * 2
    assert_dot_close(lib.get(out), expect, bound, rel=1e-5, atol=1e-5, what="moe dense swiglu")

    down = ref.Experts(rng, E, 11, C)
    blocks, scales, bias = down.views(lib.u8)
    out2 = lib.nan((P, 11))
    assert g.f32_mf4w_moe_dense_matmul(lib.u32(offsets), lib.f32(x), blocks, scales, bias, down.stride, out2, T, k,
                                       E, C, 11) is out2
    expect2 = np.zeros((P, 11))
    bound2 = np.zeros((P, 11))
    for r in range(P):
        expect2[r], bound2[r] = down.project(expert_of_row[r], x[r])
    assert_dot_close(lib.get(out2), expect2, bound2, rel=1e-5, atol=1e-5, what="moe dense")


# ---- random fill, MXFP4 conversion -----------------------------------------------------

def test_u32_fill_random(lib):
    n = 1000
    out = lib.ids_out((n + 5,))
    seed, offset = 1019827666124465388, 77
    assert g.u32_fill_random(out, n, seed, offset) is out
    got = lib.get(out).astype(np.uint64)
    expect = np.array([ref.squares32(offset + i, seed) for i in range(n)], dtype=np.uint64)
    np.testing.assert_array_equal(got[:n], expect)
    assert (got[n:] == 0xFFFFFFFF).all()


@pytest.mark.parametrize("kind", ["f32", "bf16"])
def test_fill_random(lib, kind):
    n, seed, offset, lo, hi = 777, 1019827666124465388, 3, -1.0, 1.5
    words = np.array([ref.squares32(offset + i, seed) for i in range(n)], dtype=np.uint64)
    signed = words.astype(np.int64)
    signed[signed >= 2 ** 31] -= 2 ** 32
    scale = float(np.float32((hi - lo) * 2.0 ** -32))
    bias = float(np.float32((lo + hi) * 0.5))
    expect = signed.astype(np.float32).astype(np.float64) * scale + bias  # (float)(int32)w first
    if kind == "f32":
        out = lib.nan((n,))
        assert g.f32_fill_random(out, None, seed, offset, lo, hi) is out
        got = f64(lib.get(out))
        assert_close(got, expect, rtol=1.2e-7, atol=1e-9)
    else:
        out = lib.bf16(np.zeros(n, dtype=np.uint16))
        assert g.bf16_fill_random(out, n, seed, offset, lo, hi) is out
        got = from_bf16(lib.get(out))
        assert_close(got, expect, rtol=2 ** -8, atol=1e-9)
    assert (got >= lo).all() and (got <= hi).all()


def test_mf4_f32_convert(lib, rng):
    n = 32 * 13
    blocks = rng.integers(0, 256, size=n // 2, dtype=np.uint8)
    scales = rng.integers(100, 150, size=n // 32, dtype=np.uint8)
    out = lib.nan((n,))
    assert g.mf4_f32_convert(lib.u8(blocks), lib.u8(scales), out) is out
    expect = ref.mxfp4_decode(blocks.reshape(1, -1, 16), scales.reshape(1, -1)).reshape(-1)
    np.testing.assert_array_equal(f64(lib.get(out)), expect)


def test_backend_name():
    assert g.backend_name("cpu").startswith("cpu")
