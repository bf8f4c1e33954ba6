"""The gpt-oss kernels as Python functions, with the seed's names and argument orders.

Every op takes tensors exposing ``__dlpack__`` (torch on CPU or CUDA, numpy, cupy, ...),
writes its outputs **in place** and returns them. Conventions:

* float32 activations; bf16 tensors are ``torch.bfloat16`` (or any DLPack bfloat16), or
  uint16 arrays holding the bf16 bit patterns (numpy has no bfloat16); ids are int32 or
  uint32 (token ids may also be int64: each must fit in uint32, else ValueError, and they
  are copied to 32 bits first; on CUDA that check waits for the device).
* Tensors must be C-contiguous (except the seed's ``[in][out]`` weights, see below),
  naturally aligned, non-empty and on one device. The work runs where the tensors are:
  CPU tensors on a CPU backend (the op has finished when it returns), CUDA tensors on a
  CUDA backend of that device, enqueued on torch's current stream when torch is imported
  (else on the legacy default stream) without host synchronisation; ``synchronize()``
  waits and reports errors found by CUDA kernels (e.g. an out-of-range token id).
* Output tensors may be larger than needed (extra elements are left alone), never
  smaller; the checks happen before anything runs, and a failed check raises ValueError
  naming the op, the argument and the value, and leaves every output unwritten. Checks
  made by the C library come back the same way: ``"<op>: <message> (<status>)"``.
* Weights of the matmul ops are the seed's ``[in][out]`` (``y = x @ W + b``). When the
  weight is a transposed view of a contiguous ``[out][in]`` tensor (``W.t()`` in torch,
  ``W.T`` in numpy) its memory is used directly, with no copy. Any other layout (a
  contiguous ``[in][out]`` tensor) is first copied into ``[out][in]`` order with the
  tensor's own library (torch ``w.t().contiguous()``, numpy/cupy
  ``ascontiguousarray(w.T)``): correct, but it costs a copy on every call, so keep
  ``[out][in]`` weights and pass ``W.t()``.
* ``threadgroup_size`` arguments are accepted for compatibility with the seed and
  ignored: each backend chooses its own launch geometry. None of the seed's
  threadgroup restrictions (multiples of 32, ``num_cols >= 128``, 64/8/64 heads, ...)
  apply.
* Unlike the seed, tensors' own storage offsets are honoured (views such as ``x[1:]``
  work); the explicit byte offsets of ``f32_sdpa`` and ``f32_bf16w_matmul_qkv`` are added
  on top, after checking that the data stays inside the tensor.
"""

from . import _native
from ._tensors import (BF16, BF16_OR_BYTES, F32, U8, U32, U64_MAX, Call, count, default_scale, library_error,
                       real, threadgroup)

__all__ = [
    "f32_bf16w_matmul", "f32_bf16w_matmul_add",
    "f32_bf16w_dense_matmul_qkv", "f32_bf16w_dense_matmul_attn_output", "f32_bf16w_dense_matmul_mlp_gate",
    "f32_bf16w_rmsnorm", "bf16_f32_embeddings", "f32_rope", "f32_bf16w_matmul_qkv", "f32_sdpa",
    "f32_bf16w_matmul_qkv_varlen", "f32_sdpa_varlen",
    "f32_topk", "expert_routing_metadata", "f32_scatter",
    "f32_mf4w_moe_matmul_swiglu", "f32_mf4w_moe_matmul", "f32_mf4w_moe_dense_matmul_swiglu",
    "f32_mf4w_moe_dense_matmul", "f32_gather_and_accumulate", "f32_accumulate",
    "f32_bf16w_unembedding", "f32_softmax", "f32_sample", "f32_apply_penalties", "f32_sample_logits",
    "u32_fill_random", "f32_fill_random", "bf16_fill_random", "mf4_f32_convert",
    "f32_accumulate_bf16w_rmsnorm", "f32_bf16w_rmsnorm_matmul_topk",
]


def _run(call, fn, *args):
    """fn(backend, *args) on the backend of call's tensors; a failure reported by the C
    library is raised with the op's name in front of its message."""
    try:
        backend = call.backend()
        try:
            fn(backend, *args)
        finally:
            call.finish(backend)
    except (ValueError, RuntimeError) as error:
        raise library_error(call.op, error) from None


def _bias(call, bias, num_rows, name="bias_bf16", rows_what="num_rows"):
    if bias is None:
        return 0
    b = call.tensor(bias, name, BF16)
    if len(b.shape) != 1 or b.shape[0] != num_rows:
        raise ValueError("%s: %s has shape %s; expected (%s,) = (%d,)"
                             % (call.op, name, b.shape, rows_what, num_rows))
    return b.address


# ---------------------------------------------------------------------------------------
# bf16-weight matrix products
# ---------------------------------------------------------------------------------------

def _matmul(op, fn, input, weight_bf16, bias_bf16, output, num_tokens, num_cols, num_rows, threadgroup_size):
    T = count(num_tokens, "num_tokens")
    C = count(num_cols, "num_cols")
    R = count(num_rows, "num_rows")
    threadgroup(threadgroup_size)
    call = Call(op)
    x = call.tensor(input, "input", F32)
    call.matrix(x, T, C, "num_tokens", "num_cols")
    w = call.weight_in_out(weight_bf16, "weight_bf16", C, R)
    b = _bias(call, bias_bf16, R)
    y = call.tensor(output, "output", F32, writable=True)
    call.matrix(y, T, R, "num_tokens", "num_rows")
    _run(call, fn, x.address, w, b, y.address, T, C, R)
    return output


def f32_bf16w_matmul(input, weight_bf16, bias_bf16, output, num_tokens, num_cols, num_rows, threadgroup_size=0):
    """output[t][r] = sum_c input[t][c] * weight[c][r] + bias[r].

    input f32 [num_tokens][num_cols]; weight_bf16 bf16 [num_cols][num_rows] (the seed's
    [in][out]; a W.t() view of an [out][in] W is used without a copy, a contiguous
    [in][out] tensor is copied transposed); bias_bf16 bf16 [num_rows] or None; output f32
    [num_tokens][num_rows], written. Returns output. threadgroup_size is ignored."""
    return _matmul("f32_bf16w_matmul", _native.f32_bf16w_matmul, input, weight_bf16, bias_bf16, output,
                   num_tokens, num_cols, num_rows, threadgroup_size)


def f32_bf16w_matmul_add(input, weight_bf16, bias_bf16, output, num_tokens, num_cols, num_rows,
                         threadgroup_size=0):
    """output[t][r] += sum_c input[t][c] * weight[c][r] + bias[r] (residual add; the bias is
    added to the dot product first). Arguments as f32_bf16w_matmul; output is read and
    written. Returns output."""
    return _matmul("f32_bf16w_matmul_add", _native.f32_bf16w_matmul_add, input, weight_bf16, bias_bf16, output,
                   num_tokens, num_cols, num_rows, threadgroup_size)


def _dense(op, fn, input, weight_bf16, bias_bf16, output):
    call = Call(op)
    x = call.tensor(input, "input", F32)
    if len(x.shape) < 2:
        raise ValueError("%s: input has shape %s; expected [M][K] (2-D or more, K last)" % (op, x.shape))
    K = x.shape[-1]
    M = x.numel // K
    wt = call.tensor(weight_bf16, "weight_bf16", BF16, contiguous=False)
    if len(wt.shape) != 2 or wt.shape[0] != K:
        raise ValueError("%s: weight_bf16 has shape %s; expected [K][N] with K = input's last dimension %d "
                         "(the seed's [in][out] layout)" % (op, wt.shape, K))
    N = wt.shape[1]
    count(M, "M (rows of input)")
    count(K, "K (columns of input)")
    count(N, "N (columns of weight_bf16)")
    w = call.weight_in_out(weight_bf16, "weight_bf16", K, N, "K", "N")
    b = _bias(call, bias_bf16, N, rows_what="N")
    y = call.tensor(output, "output", F32, writable=True)
    if len(y.shape) < 2 or y.shape[-1] != N or y.numel != M * N:
        raise ValueError("%s: output has shape %s; expected [M][N] = (%d, %d)" % (op, y.shape, M, N))
    _run(call, fn, x.address, w, b, y.address, M, K, N)
    return output


def f32_bf16w_dense_matmul_qkv(input, weight_bf16, bias_bf16, output):
    """Prefill GEMM (plain, as the seed's: no RoPE, no KV write): output = input @ W + b.

    input f32 [M][K], weight_bf16 bf16 [K][N] (seed [in][out]; W.t() views used without a
    copy), bias_bf16 bf16 [N] or None, output f32 [M][N]; shapes taken from the tensors.
    Any M, N, K >= 1 (no tile-multiple restrictions). Returns output."""
    return _dense("f32_bf16w_dense_matmul_qkv", _native.f32_bf16w_dense_matmul_qkv, input, weight_bf16,
                  bias_bf16, output)


def f32_bf16w_dense_matmul_attn_output(input, weight_bf16, bias_bf16, output):
    """Prefill GEMM that accumulates: output += input @ W + b. Shapes as
    f32_bf16w_dense_matmul_qkv; output is read and written. Returns output."""
    return _dense("f32_bf16w_dense_matmul_attn_output", _native.f32_bf16w_dense_matmul_attn_output, input,
                  weight_bf16, bias_bf16, output)


def f32_bf16w_dense_matmul_mlp_gate(input, weight_bf16, bias_bf16, output):
    """Prefill GEMM: output = input @ W + b. Shapes as f32_bf16w_dense_matmul_qkv.
    Returns output."""
    return _dense("f32_bf16w_dense_matmul_mlp_gate", _native.f32_bf16w_dense_matmul_mlp_gate, input, weight_bf16,
                  bias_bf16, output)


# ---------------------------------------------------------------------------------------
# Normalisation, embeddings
# ---------------------------------------------------------------------------------------

def f32_bf16w_rmsnorm(input, weight_bf16, output, epsilon):
    """RMSNorm: output[t][c] = input[t][c] / sqrt(mean_c(input[t]^2) + epsilon) * weight[c].

    input f32 [T][C] (T = all leading dimensions), weight_bf16 bf16 [C], output f32 with
    input's element count and last dimension (may be input itself). Returns output."""
    op = "f32_bf16w_rmsnorm"
    eps = real(epsilon, "epsilon")
    call = Call(op)
    x = call.tensor(input, "input", F32)
    C = x.shape[-1] if x.shape else 1
    T = x.numel // C
    w = call.tensor(weight_bf16, "weight_bf16", BF16)
    if w.numel != C or len(w.shape) != 1:
        raise ValueError("%s: weight_bf16 has shape %s; expected (%d,) (input's last dimension)" % (op, w.shape, C))
    y = call.tensor(output, "output", F32, writable=True)
    if y.numel != x.numel or (len(y.shape) >= 1 and y.shape[-1] != C):
        raise ValueError("%s: output has shape %s; expected input's shape %s" % (op, y.shape, x.shape))
    count(T, "num_tokens (rows of input)")
    count(C, "num_channels (last dimension of input)")
    _run(call, _native.f32_bf16w_rmsnorm, x.address, w.address, y.address, T, C, eps)
    return output


def bf16_f32_embeddings(token_ids, weight_bf16, output, threadgroup_size=0):
    """output[t][c] = float(weight[token_ids[t]][c]).

    token_ids int32/uint32 (or int64, each id within uint32) of any shape, T = its element
    count; weight_bf16 bf16 [V][C]; output f32 [T][C]. A token id >= V raises ValueError
    (CUDA: reported by synchronize(), the row is written as NaN). Returns output.
    threadgroup_size is ignored."""
    op = "bf16_f32_embeddings"
    threadgroup(threadgroup_size)
    call = Call(op)
    ids = call.token_ids(token_ids, "token_ids")
    T = count(ids.numel, "num_tokens (elements of token_ids)")
    w = call.tensor(weight_bf16, "weight_bf16", BF16)
    if len(w.shape) != 2:
        raise ValueError("%s: weight_bf16 has shape %s; expected [vocabulary_size][num_channels]" % (op, w.shape))
    V, C = w.shape
    count(V, "vocabulary_size")
    count(C, "num_channels")
    y = call.tensor(output, "output", F32, writable=True)
    call.matrix(y, T, C, "num_tokens", "num_channels")
    _run(call, _native.bf16_f32_embeddings, ids.address, w.address, y.address, T, C, V)
    return output


# ---------------------------------------------------------------------------------------
# RoPE, QKV, attention
# ---------------------------------------------------------------------------------------

def _heads(num_q_heads, num_kv_heads, attn_head_dim):
    Hq = count(num_q_heads, "num_q_heads")
    Hkv = count(num_kv_heads, "num_kv_heads")
    D = count(attn_head_dim, "attn_head_dim")
    return Hq, Hkv, D, D * (Hq + 2 * Hkv)


def f32_rope(activations, rope_base, interpolation_scale, yarn_offset, yarn_scale, yarn_multiplier, num_tokens,
             num_q_heads, num_kv_heads, attn_head_dim, token_offset, threadgroup_size=0):
    """In-place RoPE (with YaRN) of the Q and K heads of qkv rows; V heads untouched.

    activations f32 [num_tokens][attn_head_dim * (num_q_heads + 2 * num_kv_heads)];
    token t is at position token_offset + t; adjacent pairs (2i, 2i+1) are rotated.
    attn_head_dim must be even. Returns activations. threadgroup_size is ignored."""
    op = "f32_rope"
    threadgroup(threadgroup_size)
    params = [real(v, n) for v, n in ((rope_base, "rope_base"), (interpolation_scale, "interpolation_scale"),
                                      (yarn_offset, "yarn_offset"), (yarn_scale, "yarn_scale"),
                                      (yarn_multiplier, "yarn_multiplier"))]
    T = count(num_tokens, "num_tokens")
    Hq, Hkv, D, qkv_dim = _heads(num_q_heads, num_kv_heads, attn_head_dim)
    off = count(token_offset, "token_offset", minimum=0)
    call = Call(op)
    x = call.tensor(activations, "activations", F32, writable=True)
    call.matrix(x, T, qkv_dim, "num_tokens", "attn_head_dim x (num_q_heads + 2 x num_kv_heads)")
    _run(call, _native.f32_rope, x.address, *(params + [T, Hq, Hkv, D, off]))
    return activations


def _rope_params(rope_base, interpolation_scale, yarn_offset, yarn_scale, yarn_multiplier):
    """The RoPE / YaRN parameters of the qkv ops, checked."""
    return [real(v, n) for v, n in ((rope_base, "rope_base"), (interpolation_scale, "interpolation_scale"),
                                    (yarn_offset, "yarn_offset"), (yarn_scale, "yarn_scale"),
                                    (yarn_multiplier, "yarn_multiplier"))]


def _qkv_projection(call, input, weight_bf16, bias_bf16, output, T, C, qkv_dim):
    """The projection's tensors of the qkv ops, checked: input, weight, bias, output."""
    what = "attn_head_dim x (num_q_heads + 2 x num_kv_heads)"
    x = call.tensor(input, "input", F32)
    call.matrix(x, T, C, "num_tokens", "num_cols")
    w = call.weight_in_out(weight_bf16, "weight_bf16", C, qkv_dim, "num_cols", what)
    b = _bias(call, bias_bf16, qkv_dim, rows_what=what)
    y = call.tensor(output, "output", F32, writable=True)
    call.matrix(y, T, qkv_dim, "num_tokens", what)
    return x, w, b, y


def f32_bf16w_matmul_qkv(input, weight_bf16, bias_bf16, output, kv_cache, kv_cache_offset_bytes, num_tokens,
                         num_cols, num_q_heads, num_kv_heads, attn_head_dim, token_offset, max_tokens, rope_base,
                         interpolation_scale, yarn_offset, yarn_scale, yarn_multiplier, threadgroup_size=0):
    """Fused QKV projection + RoPE + KV-cache write.

    input f32 [num_tokens][num_cols]; weight_bf16 bf16 [num_cols][QKV] with QKV =
    attn_head_dim * (num_q_heads + 2 * num_kv_heads) (seed [in][out]; W.t() views used
    without a copy); bias_bf16 bf16 [QKV] or None; output f32 [num_tokens][QKV] receives
    rotated Q, rotated K and V (all columns, unlike the seed); kv_cache f32, one layer
    [num_kv_heads][max_tokens][2][attn_head_dim] starting kv_cache_offset_bytes into the
    tensor, receives K and V at positions token_offset .. token_offset + num_tokens - 1.
    Requires token_offset + num_tokens <= max_tokens. Returns output."""
    op = "f32_bf16w_matmul_qkv"
    threadgroup(threadgroup_size)
    T = count(num_tokens, "num_tokens")
    C = count(num_cols, "num_cols")
    Hq, Hkv, D, qkv_dim = _heads(num_q_heads, num_kv_heads, attn_head_dim)
    off = count(token_offset, "token_offset", minimum=0)
    max_t = count(max_tokens, "max_tokens")
    if off + T > max_t:
        raise ValueError("%s: token_offset %d + num_tokens %d exceeds max_tokens %d" % (op, off, T, max_t))
    params = _rope_params(rope_base, interpolation_scale, yarn_offset, yarn_scale, yarn_multiplier)
    call = Call(op)
    x, w, b, y = _qkv_projection(call, input, weight_bf16, bias_bf16, output, T, C, qkv_dim)
    kv = call.tensor(kv_cache, "kv_cache", F32, writable=True)
    kv_address = call.offset(kv, kv_cache_offset_bytes, "kv_cache_offset_bytes", Hkv * max_t * 2 * D,
                             "num_kv_heads x max_tokens x 2 x attn_head_dim")
    _run(call, _native.f32_bf16w_matmul_qkv, x.address, w, b, y.address, kv_address, T, C, Hq, Hkv, D, off, max_t,
         *params)
    return output


def f32_sdpa(q, q_offset_bytes, kv, kv_offset_bytes, s_bf16, s_offset_bytes, output, output_offset_bytes, window,
             kv_stride, num_q_tokens, num_kv_tokens, num_q_heads, num_kv_heads, head_dim, scale=None):
    """Attention with sinks, sliding window and GQA over one layer of the KV cache.

    q: f32 qkv rows of head_dim * (num_q_heads + 2 * num_kv_heads) floats, num_q_tokens
    rows starting q_offset_bytes into the tensor (only the Q part is read); row i is the
    query at position num_kv_tokens + i. kv: f32, starting kv_offset_bytes in: kv head h,
    position t has K at [h * kv_stride + t * 2 * head_dim] and V right after it; kv_stride
    in floats, >= 2 * head_dim * (num_kv_tokens + num_q_tokens); K/V of the query
    positions must already be in the cache. s_bf16: bf16 [num_q_heads] sink logits at
    s_offset_bytes (None = no sinks). output: f32 [num_q_tokens][num_q_heads * head_dim]
    at output_offset_bytes, written. window >= 1 keys ending at the query's own position
    (0xFFFFFFFF = full causal). scale multiplies q.k; None = 1/sqrt(head_dim) (the
    standard softmax scale; the upstream model file folds it into Q/K: pass 1.0 there).
    Any GQA ratio; head_dim a multiple of 4. Returns output."""
    op = "f32_sdpa"
    win = count(window, "window")
    stride = count(kv_stride, "kv_stride", maximum=U64_MAX)
    Tq = count(num_q_tokens, "num_q_tokens")
    N0 = count(num_kv_tokens, "num_kv_tokens", minimum=0)
    Hq, Hkv, D, qkv_dim = _heads(num_q_heads, num_kv_heads, head_dim)
    sc = default_scale(D) if scale is None else real(scale, "scale")
    head_span = 2 * D * (N0 + Tq)
    if stride < head_span:
        raise ValueError("%s: kv_stride %d is below 2 x head_dim %d x (num_kv_tokens %d + num_q_tokens %d) = %d"
                         % (op, stride, D, N0, Tq, head_span))
    call = Call(op)
    qt = call.tensor(q, "q", F32)
    q_address = call.offset(qt, q_offset_bytes, "q_offset_bytes", Tq * qkv_dim,
                            "num_q_tokens x head_dim x (num_q_heads + 2 x num_kv_heads)")
    kvt = call.tensor(kv, "kv", F32)
    kv_address = call.offset(kvt, kv_offset_bytes, "kv_offset_bytes", (Hkv - 1) * stride + head_span,
                             "(num_kv_heads - 1) x kv_stride + 2 x head_dim x (num_kv_tokens + num_q_tokens)")
    if s_bf16 is None:
        s_address = 0
    else:
        st = call.tensor(s_bf16, "s_bf16", BF16)
        s_address = call.offset(st, s_offset_bytes, "s_offset_bytes", Hq, "num_q_heads")
    out = call.tensor(output, "output", F32, writable=True)
    out_address = call.offset(out, output_offset_bytes, "output_offset_bytes", Tq * Hq * D,
                              "num_q_tokens x num_q_heads x head_dim")
    _run(call, _native.f32_sdpa, q_address, kv_address, s_address, out_address, win, stride, Tq, N0, Hq, Hkv, D, sc)
    return output


def _paged(call, kv, kv_name, positions, seq_ids, block_tables, num_rows, num_kv_heads, head_dim, kv_stride,
           block_size, table_stride, num_seqs):
    """The checks of the paged cache of the varlen ops; returns the addresses of kv,
    positions, seq_ids and block_tables."""
    bs = count(block_size, "block_size")
    ts = count(table_stride, "table_stride")
    S = count(num_seqs, "num_seqs")
    stride = count(kv_stride, "kv_stride", maximum=U64_MAX)
    if stride % (2 * head_dim * bs) != 0:
        raise ValueError("%s: kv_stride %d is not a multiple of 2 x head_dim %d x block_size %d"
                         % (call.op, stride, head_dim, bs))
    kvt = call.tensor(kv, kv_name, F32, writable=kv_name == "kv_cache")
    call.need(kvt, num_kv_heads * stride, "num_kv_heads x kv_stride")
    pos = call.tensor(positions, "positions", U32)
    call.need(pos, num_rows, "the rows")
    ids = call.tensor(seq_ids, "seq_ids", U32)
    call.need(ids, num_rows, "the rows")
    tab = call.tensor(block_tables, "block_tables", U32)
    call.matrix(tab, S, ts, "num_seqs", "table_stride")
    return kvt.address, pos.address, ids.address, tab.address, stride, bs, ts, S


def f32_bf16w_matmul_qkv_varlen(input, weight_bf16, bias_bf16, output, kv_cache, positions, seq_ids, block_tables,
                                num_tokens, num_cols, num_q_heads, num_kv_heads, attn_head_dim, kv_stride, block_size,
                                table_stride, num_seqs, rope_base, interpolation_scale, yarn_offset, yarn_scale,
                                yarn_multiplier):
    """f32_bf16w_matmul_qkv for rows of many sequences over a paged KV cache (not a seed op).

    Row t is rotated at position positions[t] and its K and V go to the slot
    block_tables[s][p // block_size] * block_size + p % block_size (s = seq_ids[t],
    p = positions[t]) of kv_cache, f32 [num_kv_heads][kv_stride] (kv_stride floats per kv
    head, a multiple of 2 * attn_head_dim * block_size). positions, seq_ids int32/uint32
    [num_tokens]; block_tables int32/uint32 [num_seqs][table_stride]. Other arguments as
    f32_bf16w_matmul_qkv. Returns output."""
    op = "f32_bf16w_matmul_qkv_varlen"
    T = count(num_tokens, "num_tokens")
    C = count(num_cols, "num_cols")
    Hq, Hkv, D, qkv_dim = _heads(num_q_heads, num_kv_heads, attn_head_dim)
    params = _rope_params(rope_base, interpolation_scale, yarn_offset, yarn_scale, yarn_multiplier)
    call = Call(op)
    x, w, b, y = _qkv_projection(call, input, weight_bf16, bias_bf16, output, T, C, qkv_dim)
    kv, pos, ids, tab, stride, bs, ts, S = _paged(call, kv_cache, "kv_cache", positions, seq_ids, block_tables, T,
                                                  Hkv, D, kv_stride, block_size, table_stride, num_seqs)
    _run(call, _native.f32_bf16w_matmul_qkv_varlen, x.address, w, b, y.address, kv, pos, ids, tab, T, C, Hq, Hkv, D,
         stride, bs, ts, S, *params)
    return output


def f32_sdpa_varlen(q, kv, s_bf16, output, positions, seq_ids, block_tables, window, kv_stride, block_size,
                    table_stride, num_q_tokens, num_seqs, num_q_heads, num_kv_heads, head_dim, scale=None):
    """f32_sdpa for query rows of many sequences over a paged KV cache (not a seed op).

    Row i is the query of sequence seq_ids[i] at position positions[i]; it attends to
    that sequence's keys in its window, key t read from the slot
    block_tables[s][t // block_size] * block_size + t % block_size of kv, f32
    [num_kv_heads][kv_stride]. A row's result does not depend on the other rows. q f32
    [num_q_tokens][head_dim * (num_q_heads + 2 * num_kv_heads)] (only the Q part read);
    output f32 [num_q_tokens][num_q_heads * head_dim]; s_bf16 bf16 [num_q_heads] or None;
    window and scale as f32_sdpa. Returns output."""
    op = "f32_sdpa_varlen"
    win = count(window, "window")
    Tq = count(num_q_tokens, "num_q_tokens")
    Hq, Hkv, D, qkv_dim = _heads(num_q_heads, num_kv_heads, head_dim)
    sc = default_scale(D) if scale is None else real(scale, "scale")
    call = Call(op)
    qt = call.tensor(q, "q", F32)
    call.matrix(qt, Tq, qkv_dim, "num_q_tokens", "head_dim x (num_q_heads + 2 x num_kv_heads)")
    kva, pos, ids, tab, stride, bs, ts, S = _paged(call, kv, "kv", positions, seq_ids, block_tables, Tq, Hkv, D,
                                                   kv_stride, block_size, table_stride, num_seqs)
    s_address = 0
    if s_bf16 is not None:
        st = call.tensor(s_bf16, "s_bf16", BF16)
        call.need(st, Hq, "num_q_heads")
        s_address = st.address
    out = call.tensor(output, "output", F32, writable=True)
    call.matrix(out, Tq, Hq * D, "num_q_tokens", "num_q_heads x head_dim")
    _run(call, _native.f32_sdpa_varlen, qt.address, kva, s_address, out.address, pos, ids, tab, win, stride, bs, ts,
         Tq, S, Hq, Hkv, D, sc)
    return output


# ---------------------------------------------------------------------------------------
# Unembedding and sampling
# ---------------------------------------------------------------------------------------

def f32_bf16w_unembedding(input, weight_bf16, logits, argmax, num_tokens, num_cols, num_rows, threadgroup_size=0):
    """logits[t][v] = sum_c input[t][c] * weight[v][c] (no bias) and argmax[t] = index of the
    largest logit (lowest index on ties).

    input f32 [num_tokens][num_cols]; weight_bf16 bf16 [num_rows][num_cols] (the
    embedding-table layout [vocabulary][channels], as bf16_f32_embeddings takes it; NOT
    transposed); logits f32 [num_tokens][num_rows]; argmax int32/uint32 [num_tokens]
    (fully written, no pre-fill needed). Returns (logits, argmax)."""
    op = "f32_bf16w_unembedding"
    threadgroup(threadgroup_size)
    T = count(num_tokens, "num_tokens")
    C = count(num_cols, "num_cols")
    R = count(num_rows, "num_rows")
    call = Call(op)
    x = call.tensor(input, "input", F32)
    call.matrix(x, T, C, "num_tokens", "num_cols")
    w = call.tensor(weight_bf16, "weight_bf16", BF16)
    call.exact_shape(w, (R, C), "= [num_rows][num_cols]")
    lg = call.tensor(logits, "logits", F32, writable=True)
    call.matrix(lg, T, R, "num_tokens", "num_rows")
    am = call.tensor(argmax, "argmax", U32, writable=True)
    call.need(am, T, "num_tokens")
    _run(call, _native.f32_bf16w_unembedding, x.address, w.address, lg.address, am.address, T, C, R)
    return logits, argmax


def f32_softmax(logits, argmax, prob, sum, num_tokens, num_channels, temperature):
    """prob[t][i] = exp((logits[t][i] - logits[t][argmax[t]]) / temperature) (unnormalised)
    and sum[t] = sum_i prob[t][i].

    logits f32 [num_tokens][num_channels]; argmax int32/uint32 [num_tokens] (as written by
    f32_bf16w_unembedding); prob f32 [num_tokens][num_channels] and sum f32 [num_tokens]
    written. temperature > 0 divides (upstream multiplies). Returns (prob, sum)."""
    op = "f32_softmax"
    T = count(num_tokens, "num_tokens")
    V = count(num_channels, "num_channels")
    temp = real(temperature, "temperature")
    call = Call(op)
    lg = call.tensor(logits, "logits", F32)
    call.matrix(lg, T, V, "num_tokens", "num_channels")
    am = call.tensor(argmax, "argmax", U32)
    call.need(am, T, "num_tokens")
    p = call.tensor(prob, "prob", F32, writable=True)
    call.matrix(p, T, V, "num_tokens", "num_channels")
    s = call.tensor(sum, "sum", F32, writable=True)
    call.need(s, T, "num_tokens")
    _run(call, _native.f32_softmax, lg.address, am.address, p.address, s.address, T, V, temp)
    return prob, sum


def f32_sample(prob, sum, prediction, num_channels, rng_seed, rng_offset):
    """Draws one index from unnormalised probabilities: prob f32 [num_channels] with total
    sum (f32, first element used); prediction int32/uint32 (first element written): the
    smallest i whose inclusive prefix sum reaches u * sum, u from Squares32(rng_offset,
    rng_seed). Returns prediction."""
    op = "f32_sample"
    V = count(num_channels, "num_channels")
    seed = count(rng_seed, "rng_seed", minimum=0, maximum=U64_MAX)
    offset = count(rng_offset, "rng_offset", minimum=0, maximum=U64_MAX)
    call = Call(op)
    p = call.tensor(prob, "prob", F32)
    call.need(p, V, "num_channels")
    s = call.tensor(sum, "sum", F32)
    pr = call.tensor(prediction, "prediction", U32, writable=True)
    _run(call, _native.f32_sample, p.address, s.address, pr.address, V, seed, offset)
    return prediction


def f32_apply_penalties(logits, counts, output, num_channels, presence_penalty, frequency_penalty):
    """Presence and frequency penalties: output[i] = logits[i] - (presence_penalty +
    frequency_penalty * counts[i]) (f32) where counts[i] != 0, else logits[i].

    logits f32 [num_channels]; counts int32/uint32 [num_channels] (how often each token
    occurs in the context); output f32 [num_channels] written (it may be logits itself).
    Returns output."""
    op = "f32_apply_penalties"
    V = count(num_channels, "num_channels")
    presence = real(presence_penalty, "presence_penalty")
    frequency = real(frequency_penalty, "frequency_penalty")
    call = Call(op)
    lg = call.tensor(logits, "logits", F32)
    call.need(lg, V, "num_channels")
    c = call.tensor(counts, "counts", U32)
    call.need(c, V, "num_channels")
    out = call.tensor(output, "output", F32, writable=True)
    call.need(out, V, "num_channels")
    _run(call, _native.f32_apply_penalties, lg.address, c.address, out.address, V, presence, frequency)
    return output


def f32_sample_logits(logits, prediction, num_channels, temperature, top_k, top_p, rng_seed, rng_offset):
    """Draws one token from logits f32 [num_channels] with temperature (0: the argmax),
    top_k (0: off) and top_p (1: off), as the engine's sampler; prediction int32/uint32
    (first element written). u comes from Squares32(rng_offset, rng_seed); the same
    arguments give the same token on one backend (the C header kernels.h has the steps).
    Returns prediction."""
    op = "f32_sample_logits"
    V = count(num_channels, "num_channels")
    temp = real(temperature, "temperature")
    k = count(top_k, "top_k", minimum=0)
    p = real(top_p, "top_p")
    seed = count(rng_seed, "rng_seed", minimum=0, maximum=U64_MAX)
    offset = count(rng_offset, "rng_offset", minimum=0, maximum=U64_MAX)
    call = Call(op)
    lg = call.tensor(logits, "logits", F32)
    call.need(lg, V, "num_channels")
    pr = call.tensor(prediction, "prediction", U32, writable=True)
    _run(call, _native.f32_sample_logits, lg.address, pr.address, V, temp, k, p, seed, offset)
    return prediction


# ---------------------------------------------------------------------------------------
# Mixture of experts: routing
# ---------------------------------------------------------------------------------------

def f32_topk(scores, expert_ids, expert_scores, num_tokens, num_experts, num_active_experts):
    """Router: per token the num_active_experts largest scores (descending, ties: lowest
    expert index) and a softmax over them.

    scores f32 [num_tokens][num_experts]; expert_ids int32/uint32 and expert_scores f32,
    each [num_tokens][num_active_experts] (or flat), written. Any num_experts and
    1 <= num_active_experts <= num_experts (the seed handled only 128 experts).
    Returns (expert_ids, expert_scores)."""
    op = "f32_topk"
    T = count(num_tokens, "num_tokens")
    E = count(num_experts, "num_experts")
    k = count(num_active_experts, "num_active_experts")
    if k > E:
        raise ValueError("%s: num_active_experts %d exceeds num_experts %d" % (op, k, E))
    call = Call(op)
    s = call.tensor(scores, "scores", F32)
    call.matrix(s, T, E, "num_tokens", "num_experts")
    ids = call.tensor(expert_ids, "expert_ids", U32, writable=True)
    call.matrix(ids, T, k, "num_tokens", "num_active_experts")
    sc = call.tensor(expert_scores, "expert_scores", F32, writable=True)
    call.matrix(sc, T, k, "num_tokens", "num_active_experts")
    _run(call, _native.f32_topk, s.address, ids.address, sc.address, T, E, k)
    return expert_ids, expert_scores


def expert_routing_metadata(expert_ids, expert_scores, expert_offsets, intra_expert_offsets, num_tokens,
                            num_experts):
    """Groups (token, slot) pairs by expert.

    As in the seed, num_tokens is the number of PAIRS P (tokens x active experts).
    expert_ids int32/uint32 [P]; expert_scores f32 [P] (checked, not used; may be None);
    expert_offsets int32/uint32 [num_experts + 1] written with the exclusive prefix sum of
    the per-expert counts; intra_expert_offsets int32/uint32 [P] written with each pair's
    rank among its expert's pairs (in pair order: deterministic).
    Returns (expert_offsets, intra_expert_offsets)."""
    op = "expert_routing_metadata"
    P = count(num_tokens, "num_tokens (pairs)")
    E = count(num_experts, "num_experts", maximum=0xFFFFFFFE)
    call = Call(op)
    ids = call.tensor(expert_ids, "expert_ids", U32)
    call.need(ids, P, "num_tokens (pairs)")
    if expert_scores is not None:
        sc = call.tensor(expert_scores, "expert_scores", F32)
        call.need(sc, P, "num_tokens (pairs)")
    offs = call.tensor(expert_offsets, "expert_offsets", U32, writable=True)
    call.need(offs, E + 1, "num_experts + 1")
    intra = call.tensor(intra_expert_offsets, "intra_expert_offsets", U32, writable=True)
    call.need(intra, P, "num_tokens (pairs)")
    _run(call, _native.expert_routing_metadata, ids.address, offs.address, intra.address, P, E)
    return expert_offsets, intra_expert_offsets


def _num_experts_of(call, offs):
    E = offs.numel - 1
    if E < 1:
        raise ValueError("%s: expert_offsets has %d elements; expected num_experts + 1 >= 2" % (call.op, offs.numel))
    return E


def f32_scatter(input, expert_ids, expert_scores, expert_offsets, intra_expert_offsets, output, num_channels,
                num_tokens, num_active_experts):
    """Copies token rows to expert-grouped rows: for pair p = t * k + j,
    output[expert_offsets[expert_ids[p]] + intra_expert_offsets[p]] = input[t].

    As in the seed, num_tokens is the number of PAIRS P (a multiple of
    num_active_experts k; tokens T = P / k). input f32 [T][num_channels]; expert_ids
    [P]; expert_scores f32 [P] (checked, not used; may be None); expert_offsets
    [num_experts + 1] (num_experts = its length - 1); intra_expert_offsets [P]; output
    f32 [P][num_channels] (really P rows: the seed's size check was wrong). Returns
    output."""
    op = "f32_scatter"
    C = count(num_channels, "num_channels")
    P = count(num_tokens, "num_tokens (pairs)")
    k = count(num_active_experts, "num_active_experts")
    if P % k != 0:
        raise ValueError("%s: num_tokens (pairs) %d is not a multiple of num_active_experts %d" % (op, P, k))
    T = P // k
    call = Call(op)
    x = call.tensor(input, "input", F32)
    call.matrix(x, T, C, "num_tokens / num_active_experts", "num_channels")
    ids = call.tensor(expert_ids, "expert_ids", U32)
    call.need(ids, P, "num_tokens (pairs)")
    if expert_scores is not None:
        sc = call.tensor(expert_scores, "expert_scores", F32)
        call.need(sc, P, "num_tokens (pairs)")
    offs = call.tensor(expert_offsets, "expert_offsets", U32)
    E = _num_experts_of(call, offs)
    intra = call.tensor(intra_expert_offsets, "intra_expert_offsets", U32)
    call.need(intra, P, "num_tokens (pairs)")
    y = call.tensor(output, "output", F32, writable=True)
    call.matrix(y, P, C, "num_tokens (pairs)", "num_channels")
    _run(call, _native.f32_scatter, x.address, ids.address, offs.address, intra.address, y.address, C, T, k, E)
    return output


def f32_gather_and_accumulate(input, expert_ids, expert_scores, expert_offsets, intra_expert_offsets, residual,
                              num_channels, num_tokens, num_active_experts):
    """residual[t] += sum_j expert_scores[p] * input[expert_offsets[expert_ids[p]] +
    intra_expert_offsets[p]] over slots j (p = t * k + j, fma chain in slot order).

    Here num_tokens counts TOKENS T (not pairs as in f32_scatter; P = T * k).
    input f32 [P][num_channels] (expert-grouped rows); expert_ids, expert_scores f32,
    intra_expert_offsets: [P]; expert_offsets [num_experts + 1]; residual f32
    [T][num_channels], read and written. Returns residual."""
    op = "f32_gather_and_accumulate"
    C = count(num_channels, "num_channels")
    T = count(num_tokens, "num_tokens")
    k = count(num_active_experts, "num_active_experts")
    P = T * k
    call = Call(op)
    x = call.tensor(input, "input", F32)
    call.matrix(x, P, C, "num_tokens x num_active_experts", "num_channels")
    ids = call.tensor(expert_ids, "expert_ids", U32)
    call.need(ids, P, "num_tokens x num_active_experts")
    sc = call.tensor(expert_scores, "expert_scores", F32)
    call.need(sc, P, "num_tokens x num_active_experts")
    offs = call.tensor(expert_offsets, "expert_offsets", U32)
    E = _num_experts_of(call, offs)
    intra = call.tensor(intra_expert_offsets, "intra_expert_offsets", U32)
    call.need(intra, P, "num_tokens x num_active_experts")
    res = call.tensor(residual, "residual", F32, writable=True)
    call.matrix(res, T, C, "num_tokens", "num_channels")
    _run(call, _native.f32_gather_and_accumulate, x.address, ids.address, sc.address, offs.address, intra.address,
         res.address, C, T, k, E)
    return residual


def f32_accumulate(input, expert_scores, residual, num_channels, num_tokens, num_active_experts,
                   threadgroup_size=0):
    """residual[t][c] += sum_j expert_scores[t * k + j] * input[j][t][c] (fma chain in slot
    order). input f32 [k][num_tokens][num_channels] (decode, slot-major); expert_scores f32
    [num_tokens][k]; residual f32 [num_tokens][num_channels], read and written.
    Returns residual. threadgroup_size is ignored."""
    op = "f32_accumulate"
    threadgroup(threadgroup_size)
    C = count(num_channels, "num_channels")
    T = count(num_tokens, "num_tokens")
    k = count(num_active_experts, "num_active_experts")
    call = Call(op)
    x = call.tensor(input, "input", F32)
    call.matrix(x, k * T, C, "num_active_experts x num_tokens", "num_channels")
    sc = call.tensor(expert_scores, "expert_scores", F32)
    call.need(sc, T * k, "num_tokens x num_active_experts")
    res = call.tensor(residual, "residual", F32, writable=True)
    call.matrix(res, T, C, "num_tokens", "num_channels")
    _run(call, _native.f32_accumulate, x.address, sc.address, res.address, C, T, k)
    return residual


# ---------------------------------------------------------------------------------------
# The fusions of the decode step (not upstream ops)
# ---------------------------------------------------------------------------------------

def f32_accumulate_bf16w_rmsnorm(input, expert_scores, residual, weight_bf16, output, num_channels, num_tokens,
                                 num_active_experts, epsilon):
    """f32_accumulate(input, expert_scores, residual, ...) then output =
    f32_bf16w_rmsnorm(residual, weight_bf16, epsilon), in one call and bit-identical to the
    two. input f32 [k][num_tokens][num_channels]; expert_scores f32 [num_tokens][k];
    residual f32 [num_tokens][num_channels], read and written; weight_bf16 bf16
    [num_channels]; output f32 [num_tokens][num_channels], written (no overlap with the
    others). Returns (residual, output)."""
    op = "f32_accumulate_bf16w_rmsnorm"
    C = count(num_channels, "num_channels")
    T = count(num_tokens, "num_tokens")
    k = count(num_active_experts, "num_active_experts")
    eps = real(epsilon, "epsilon")
    call = Call(op)
    x = call.tensor(input, "input", F32)
    call.matrix(x, k * T, C, "num_active_experts x num_tokens", "num_channels")
    sc = call.tensor(expert_scores, "expert_scores", F32)
    call.need(sc, T * k, "num_tokens x num_active_experts")
    res = call.tensor(residual, "residual", F32, writable=True)
    call.matrix(res, T, C, "num_tokens", "num_channels")
    w = call.tensor(weight_bf16, "weight_bf16", BF16)
    call.need(w, C, "num_channels")
    y = call.tensor(output, "output", F32, writable=True)
    call.matrix(y, T, C, "num_tokens", "num_channels")
    _run(call, _native.f32_accumulate_bf16w_rmsnorm, x.address, sc.address, res.address, w.address, y.address, C, T,
         k, eps)
    return residual, output


def f32_bf16w_rmsnorm_matmul_topk(input, norm_weight_bf16, output, router_weight_bf16, router_bias_bf16, scores,
                                  expert_ids, expert_scores, num_tokens, num_channels, num_experts,
                                  num_active_experts, epsilon):
    """The MoE gate in one call, bit-identical to f32_bf16w_rmsnorm(input, norm_weight_bf16,
    output), the router matmul of output into scores and f32_topk(scores, expert_ids,
    expert_scores). input f32 [num_tokens][num_channels]; norm_weight_bf16 bf16
    [num_channels]; output f32 [num_tokens][num_channels]; router_weight_bf16 bf16
    [num_experts][num_channels] (the checkpoint's [out][in] layout, NOT the seed's
    [in][out]); router_bias_bf16 bf16 [num_experts] or None; scores f32
    [num_tokens][num_experts]; expert_ids int32/uint32 and expert_scores f32
    [num_tokens][num_active_experts]. The four outputs are written and must not overlap
    each other or an input. Returns (output, scores, expert_ids, expert_scores)."""
    op = "f32_bf16w_rmsnorm_matmul_topk"
    T = count(num_tokens, "num_tokens")
    C = count(num_channels, "num_channels")
    E = count(num_experts, "num_experts")
    k = count(num_active_experts, "num_active_experts")
    if k > E:
        raise ValueError("%s: num_active_experts %d exceeds num_experts %d" % (op, k, E))
    eps = real(epsilon, "epsilon")
    call = Call(op)
    x = call.tensor(input, "input", F32)
    call.matrix(x, T, C, "num_tokens", "num_channels")
    nw = call.tensor(norm_weight_bf16, "norm_weight_bf16", BF16)
    call.need(nw, C, "num_channels")
    y = call.tensor(output, "output", F32, writable=True)
    call.matrix(y, T, C, "num_tokens", "num_channels")
    rw = call.tensor(router_weight_bf16, "router_weight_bf16", BF16)
    call.matrix(rw, E, C, "num_experts", "num_channels")
    rb = _bias(call, router_bias_bf16, E, "router_bias_bf16", "num_experts")
    s = call.tensor(scores, "scores", F32, writable=True)
    call.matrix(s, T, E, "num_tokens", "num_experts")
    ids = call.tensor(expert_ids, "expert_ids", U32, writable=True)
    call.matrix(ids, T, k, "num_tokens", "num_active_experts")
    es = call.tensor(expert_scores, "expert_scores", F32, writable=True)
    call.matrix(es, T, k, "num_tokens", "num_active_experts")
    _run(call, _native.f32_bf16w_rmsnorm_matmul_topk, x.address, nw.address, y.address, rw.address, rb, s.address,
         ids.address, es.address, T, C, E, k, eps)
    return output, scores, expert_ids, expert_scores


# ---------------------------------------------------------------------------------------
# Mixture of experts: MXFP4 matrix products
# ---------------------------------------------------------------------------------------

def _moe_weights(call, weight_blocks, weight_scales, bias, expert_stride, num_experts, weight_rows, num_cols):
    stride = count(expert_stride, "expert_stride", minimum=0, maximum=U64_MAX)
    if num_experts > 1 and stride % 2 != 0:
        raise ValueError("%s: expert_stride %d is odd (the bf16 bias of expert 1 would be misaligned)"
                         % (call.op, stride))
    span = (num_experts - 1) * stride
    blocks = call.tensor(weight_blocks, "weight_blocks", U8)
    call.span(blocks, span + weight_rows * num_cols // 2,
              "(num_experts - 1) x expert_stride + rows x num_cols / 2")
    scales = call.tensor(weight_scales, "weight_scales", U8)
    call.span(scales, span + weight_rows * num_cols // 32,
              "(num_experts - 1) x expert_stride + rows x num_cols / 32")
    b = call.tensor(bias, "bias", BF16_OR_BYTES)
    if b.address % 2 != 0:
        raise ValueError("%s: bias address 0x%x is not 2-byte aligned" % (call.op, b.address))
    call.span(b, span + weight_rows * 2, "(num_experts - 1) x expert_stride + rows x 2")
    return blocks.address, scales.address, b.address, stride


_MOE_DOC = """
    MXFP4 expert weights: expert e's blocks, scales and bf16 bias start expert_stride
    BYTES after expert e-1's (one stride for all three, as the model file interleaves
    them; they may be three views of one uint8 buffer). Per expert: weight_blocks uint8
    [rows][num_cols / 32][16], weight_scales uint8 [rows][num_cols / 32] with the model
    file's +14 bias, bias bf16 [rows] (bf16, uint16, or uint8 raw bytes); rows =
    2 * num_rows for the SwiGLU variants (glu = row 2o, linear = row 2o + 1), num_rows
    otherwise. num_cols must be a multiple of 32. SwiGLU: alpha 1.702, limit
    swiglu_limit (7.0 in gpt-oss)."""


def f32_mf4w_moe_matmul_swiglu(input, expert_ids, weight_blocks, weight_scales, bias, expert_stride, output,
                               num_tokens, num_active_experts, num_experts, num_cols, num_rows, swiglu_limit,
                               threadgroup_size=0):
    op = "f32_mf4w_moe_matmul_swiglu"
    threadgroup(threadgroup_size)
    T, k, E, C, R = _moe_sizes(op, num_tokens, num_active_experts, num_experts, num_cols, num_rows)
    limit = real(swiglu_limit, "swiglu_limit")
    call = Call(op)
    x = call.tensor(input, "input", F32)
    call.matrix(x, T, C, "num_tokens", "num_cols")
    ids = call.tensor(expert_ids, "expert_ids", U32)
    call.need(ids, T * k, "num_tokens x num_active_experts")
    blocks, scales, b, stride = _moe_weights(call, weight_blocks, weight_scales, bias, expert_stride, E, 2 * R, C)
    y = call.tensor(output, "output", F32, writable=True)
    call.matrix(y, k * T, R, "num_active_experts x num_tokens", "num_rows")
    _run(call, _native.f32_mf4w_moe_matmul_swiglu, x.address, ids.address, blocks, scales, b, stride, y.address, T,
         k, E, C, R, limit)
    return output


f32_mf4w_moe_matmul_swiglu.__doc__ = """Decode MoE up-projection + SwiGLU:
    output[j][t][o] = swiglu(x[t] . W_e[2o] + b_e[2o], x[t] . W_e[2o+1] + b_e[2o+1]),
    e = expert_ids[t * k + j].

    f32_mf4w_moe_matmul_swiglu(input, expert_ids, weight_blocks, weight_scales, bias,
    expert_stride, output, num_tokens, num_active_experts, num_experts, num_cols, num_rows,
    swiglu_limit, threadgroup_size=0): input f32 [num_tokens][num_cols]; expert_ids
    int32/uint32 [num_tokens][k]; output f32 [k][num_tokens][num_rows] (slot-major).
    Returns output. threadgroup_size is ignored.""" + _MOE_DOC


def f32_mf4w_moe_matmul(input, expert_ids, weight_blocks, weight_scales, bias, expert_stride, output, num_tokens,
                        num_active_experts, num_experts, num_cols, num_rows, threadgroup_size=0):
    op = "f32_mf4w_moe_matmul"
    threadgroup(threadgroup_size)
    T, k, E, C, R = _moe_sizes(op, num_tokens, num_active_experts, num_experts, num_cols, num_rows)
    call = Call(op)
    x = call.tensor(input, "input", F32)
    call.matrix(x, k * T, C, "num_active_experts x num_tokens", "num_cols")
    ids = call.tensor(expert_ids, "expert_ids", U32)
    call.need(ids, T * k, "num_tokens x num_active_experts")
    blocks, scales, b, stride = _moe_weights(call, weight_blocks, weight_scales, bias, expert_stride, E, R, C)
    y = call.tensor(output, "output", F32, writable=True)
    call.matrix(y, k * T, R, "num_active_experts x num_tokens", "num_rows")
    _run(call, _native.f32_mf4w_moe_matmul, x.address, ids.address, blocks, scales, b, stride, y.address, T, k, E,
         C, R)
    return output


f32_mf4w_moe_matmul.__doc__ = """Decode MoE down-projection:
    output[j][t][r] = input[j][t] . W_e[r] + b_e[r], e = expert_ids[t * k + j].

    f32_mf4w_moe_matmul(input, expert_ids, weight_blocks, weight_scales, bias, expert_stride,
    output, num_tokens, num_active_experts, num_experts, num_cols, num_rows,
    threadgroup_size=0): input f32 [k][num_tokens][num_cols]; expert_ids [num_tokens][k];
    output f32 [k][num_tokens][num_rows]. Returns output.""" + _MOE_DOC


def _moe_sizes(op, num_tokens, num_active_experts, num_experts, num_cols, num_rows):
    T = count(num_tokens, "num_tokens")
    k = count(num_active_experts, "num_active_experts")
    E = count(num_experts, "num_experts")
    C = count(num_cols, "num_cols")
    R = count(num_rows, "num_rows")
    if k > E:
        raise ValueError("%s: num_active_experts %d exceeds num_experts %d" % (op, k, E))
    if C % 32 != 0:
        raise ValueError("%s: num_cols %d is not a multiple of the MXFP4 block size 32" % (op, C))
    return T, k, E, C, R


def _moe_dense(op, fn, expert_offsets, input, weight_blocks, weight_scales, bias, expert_stride, output, num_tokens,
               num_active_experts, num_experts, num_cols, num_rows, swiglu_limit):
    T, k, E, C, R = _moe_sizes(op, num_tokens, num_active_experts, num_experts, num_cols, num_rows)
    P = T * k
    call = Call(op)
    offs = call.tensor(expert_offsets, "expert_offsets", U32)
    call.need(offs, E + 1, "num_experts + 1")
    x = call.tensor(input, "input", F32)
    call.matrix(x, P, C, "num_tokens x num_active_experts", "num_cols")
    rows = 2 * R if swiglu_limit is not None else R
    blocks, scales, b, stride = _moe_weights(call, weight_blocks, weight_scales, bias, expert_stride, E, rows, C)
    y = call.tensor(output, "output", F32, writable=True)
    call.matrix(y, P, R, "num_tokens x num_active_experts", "num_rows")
    args = [offs.address, x.address, blocks, scales, b, stride, y.address, T, k, E, C, R]
    if swiglu_limit is not None:
        args.append(swiglu_limit)
    _run(call, fn, *args)
    return output


def f32_mf4w_moe_dense_matmul_swiglu(expert_offsets, input, weight_blocks, weight_scales, bias, expert_stride,
                                     output, num_tokens, num_active_experts, num_experts, num_cols, num_rows,
                                     swiglu_limit):
    return _moe_dense("f32_mf4w_moe_dense_matmul_swiglu", _native.f32_mf4w_moe_dense_matmul_swiglu, expert_offsets,
                      input, weight_blocks, weight_scales, bias, expert_stride, output, num_tokens,
                      num_active_experts, num_experts, num_cols, num_rows, real(swiglu_limit, "swiglu_limit"))


f32_mf4w_moe_dense_matmul_swiglu.__doc__ = """Prefill MoE up-projection + SwiGLU over
    expert-grouped rows (f32_scatter's output).

    f32_mf4w_moe_dense_matmul_swiglu(expert_offsets, input, weight_blocks, weight_scales,
    bias, expert_stride, output, num_tokens, num_active_experts, num_experts, num_cols,
    num_rows, swiglu_limit): num_tokens counts TOKENS T, P = T * k rows; expert_offsets
    int32/uint32 [num_experts + 1], non-decreasing from 0 to P (rows expert_offsets[e] ..
    expert_offsets[e+1] - 1 use expert e); input f32 [P][num_cols]; output f32
    [P][num_rows]. Returns output.""" + _MOE_DOC


def f32_mf4w_moe_dense_matmul(expert_offsets, input, weight_blocks, weight_scales, bias, expert_stride, output,
                              num_tokens, num_active_experts, num_experts, num_cols, num_rows):
    return _moe_dense("f32_mf4w_moe_dense_matmul", _native.f32_mf4w_moe_dense_matmul, expert_offsets, input,
                      weight_blocks, weight_scales, bias, expert_stride, output, num_tokens, num_active_experts,
                      num_experts, num_cols, num_rows, None)


f32_mf4w_moe_dense_matmul.__doc__ = """Prefill MoE down-projection over expert-grouped rows:
    output[r] = input[r] . W_e[.] + b_e for rows r of expert e.

    f32_mf4w_moe_dense_matmul(expert_offsets, input, weight_blocks, weight_scales, bias,
    expert_stride, output, num_tokens, num_active_experts, num_experts, num_cols, num_rows):
    as f32_mf4w_moe_dense_matmul_swiglu without SwiGLU (weights have num_rows rows).
    Returns output.""" + _MOE_DOC


# ---------------------------------------------------------------------------------------
# Random fill, MXFP4 conversion
# ---------------------------------------------------------------------------------------

def _fill_count(t, num_elements):
    n = t.numel if num_elements is None else count(num_elements, "num_elements", maximum=U64_MAX)
    return n


def u32_fill_random(output, num_elements=None, seed=0, offset=0):
    """output[i] = squares32(offset + i, seed) for i < num_elements (None = all of output).
    output int32/uint32. Bit-identical on every backend. Returns output."""
    call = Call("u32_fill_random")
    y = call.tensor(output, "output", U32, writable=True)
    n = _fill_count(y, num_elements)
    call.need(y, n, "num_elements")
    _run(call, _native.u32_fill_random, y.address, n, count(seed, "seed", 0, U64_MAX),
         count(offset, "offset", 0, U64_MAX))
    return output


def f32_fill_random(output, num_elements=None, seed=0, offset=0, min=-1.0, max=1.0):
    """output[i] = a value in [min, max] from squares32(offset + i, seed) (KERNELS.md 3.2),
    i < num_elements (None = all of output). output float32. Returns output."""
    call = Call("f32_fill_random")
    y = call.tensor(output, "output", F32, writable=True)
    n = _fill_count(y, num_elements)
    call.need(y, n, "num_elements")
    _run(call, _native.f32_fill_random, y.address, n, count(seed, "seed", 0, U64_MAX),
         count(offset, "offset", 0, U64_MAX), real(min, "min"), real(max, "max"))
    return output


def bf16_fill_random(output, num_elements=None, seed=0, offset=0, min=-1.0, max=1.0):
    """As f32_fill_random, each value rounded to bf16 (nearest even). output bf16 or uint16.
    Returns output."""
    call = Call("bf16_fill_random")
    y = call.tensor(output, "output", BF16, writable=True)
    n = _fill_count(y, num_elements)
    call.need(y, n, "num_elements")
    _run(call, _native.bf16_fill_random, y.address, n, count(seed, "seed", 0, U64_MAX),
         count(offset, "offset", 0, U64_MAX), real(min, "min"), real(max, "max"))
    return output


def mf4_f32_convert(blocks, scales, output, num_elements=None):
    """Dequantises MXFP4: output[32b + e] = fp4(nibble e of block b) * 2^(scales[b] - 127).

    blocks uint8 [num_elements / 2] (element 2j = low nibble of byte j); scales uint8
    [num_elements / 32], RAW E8M0 (bias 127, as in the checkpoint, not the model file's
    +14 scales); output float32 [num_elements]. num_elements (None = output's size) a
    multiple of 32. Returns output."""
    op = "mf4_f32_convert"
    call = Call(op)
    y = call.tensor(output, "output", F32, writable=True)
    n = _fill_count(y, num_elements)
    if n % 32 != 0:
        raise ValueError("%s: num_elements %d is not a multiple of 32" % (op, n))
    call.need(y, n, "num_elements")
    b = call.tensor(blocks, "blocks", U8)
    call.need(b, n // 2, "num_elements / 2")
    s = call.tensor(scales, "scales", U8)
    call.need(s, n // 32, "num_elements / 32")
    _run(call, _native.mf4_f32_convert, b.address, s.address, y.address, n)
    return output
