"""The four examples of the seed's README (gpt_oss_metal_kernels).

* numpy rewrites (always run): same shapes and calls, numpy arrays, bf16 as uint16.
* torch versions as written, apart from the loader line (`import gpt_oss_kernels as
  gptoss_kernels` instead of `get_kernel(...)`) and the device string ("cpu" / "cuda"
  instead of "mps"); skipped when torch (or CUDA) is missing.
* SDPA: the seed's example against the seed's own reference over 1,000 random draws, all
  of which must pass. (The seed "matched 97 % of the time" because it compared the wrong
  rows and its kernel had no softmax scale, KERNELS.md section 4; here scale defaults to
  1/sqrt(head_dim) and output row i is compared with reference row num_kv_tokens + i.)
"""
import numpy as np
import pytest

import gpt_oss_kernels
import reference as ref
from conftest import torch, torch_cuda_available

TORCH_DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(torch is None, reason="torch is not installed")),
    pytest.param("cuda", marks=pytest.mark.skipif(not torch_cuda_available(),
                                                  reason="torch with a CUDA device is not available")),
]


def np_assert_close(actual, expected, atol, rtol):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               atol=atol, rtol=rtol)


# ---- numpy rewrites --------------------------------------------------------------------

def test_example1_matmul_numpy():
    gptoss_kernels = gpt_oss_kernels
    rng = np.random.default_rng(0)
    batch, rows, cols = 2, 128, 1024
    activations = rng.standard_normal((batch, rows)).astype(np.float32)
    weights = ref.rand_bf16(rng, (rows, cols))      # [in][out], as in the seed
    bias = np.zeros(cols, dtype=np.uint16)
    out_ref = activations.astype(np.float64) @ ref.from_bf16(weights) + ref.from_bf16(bias)
    out_kernel = np.empty((batch, cols), dtype=np.float32)
    gptoss_kernels.f32_bf16w_matmul(activations, weights, bias, out_kernel, num_tokens=batch, num_cols=rows,
                                    num_rows=cols, threadgroup_size=32)
    np_assert_close(out_kernel, out_ref, atol=1e-3, rtol=1e-3)


def test_example2_rmsnorm_numpy():
    rng = np.random.default_rng(1)
    hidden, eps = 4096, 1e-5
    x = rng.standard_normal((4, hidden)).astype(np.float32)
    weight = ref.rand_bf16(rng, (hidden,))
    xf = x.astype(np.float64)
    out_ref = (xf / np.sqrt((xf ** 2).mean(axis=-1, keepdims=True) + eps)) * ref.from_bf16(weight)
    out_kernel = np.empty_like(x)
    gpt_oss_kernels.f32_bf16w_rmsnorm(x, weight, out_kernel, epsilon=eps)
    np_assert_close(out_kernel, out_ref, atol=1e-3, rtol=1e-3)


def test_example3_embeddings_numpy():
    rng = np.random.default_rng(2)
    vocab, dim = 1024, 256
    token_ids = rng.integers(0, vocab, size=16).astype(np.int32)
    emb_table = ref.rand_bf16(rng, (vocab, dim))
    out_ref = ref.from_bf16(emb_table)[token_ids]
    out_kernel = np.empty(out_ref.shape, dtype=np.float32)
    gpt_oss_kernels.bf16_f32_embeddings(token_ids, emb_table, out_kernel, threadgroup_size=32)
    np_assert_close(out_kernel, out_ref, atol=1e-4, rtol=1e-3)


def _seed_sdpa_reference_numpy(Q, K, V, S, sm_scale):
    """The seed's `sdpa` reference (sliding_window = 0), in numpy float64."""
    n_tokens, n_heads, q_mult, d_head = Q.shape
    mask = np.triu(np.full((n_tokens, n_tokens), -np.inf), k=1)
    QK = np.einsum("qhmd,khd->hmqk", Q, K) * sm_scale + mask[None, None]
    Sx = np.broadcast_to(S.reshape(n_heads, q_mult, 1, 1), (n_heads, q_mult, n_tokens, 1))
    QK = np.concatenate([QK, Sx], axis=-1)
    W = np.exp(QK - QK.max(axis=-1, keepdims=True))
    W = W / W.sum(axis=-1, keepdims=True)
    W = W[..., :-1]
    attn = np.einsum("hmqk,khd->qhmd", W, V)
    return attn.reshape(n_tokens, -1)


def _example4_numpy(rng):
    head_dim, kv_heads, qmul = 64, 8, 8
    num_q_heads = kv_heads * qmul
    history_tokens, num_q_tokens = 3, 2
    total_tokens = history_tokens + num_q_tokens
    max_tokens = total_tokens
    num_kv_tokens = history_tokens
    Q_chunk = rng.standard_normal((num_q_tokens, num_q_heads, head_dim)).astype(np.float32)
    K_all = rng.standard_normal((kv_heads, total_tokens, head_dim)).astype(np.float32)
    V_all = rng.standard_normal((kv_heads, total_tokens, head_dim)).astype(np.float32)
    qkv_dim = head_dim * (num_q_heads + 2 * kv_heads)
    q_buffer = np.zeros((num_q_tokens, qkv_dim), dtype=np.float32)
    for t in range(num_q_tokens):
        q_buffer[t, :num_q_heads * head_dim] = Q_chunk[t].reshape(-1)
        token_idx = history_tokens + t
        q_buffer[t, num_q_heads * head_dim:(num_q_heads + kv_heads) * head_dim] = K_all[:, token_idx].reshape(-1)
        q_buffer[t, (num_q_heads + kv_heads) * head_dim:] = V_all[:, token_idx].reshape(-1)
    token_stride = 2 * head_dim
    kv_stride = token_stride * max_tokens
    kv_cache = np.zeros((kv_heads, kv_stride), dtype=np.float32)
    kv_view = kv_cache.reshape(kv_heads, max_tokens, 2, head_dim)
    kv_view[:, :total_tokens, 0] = K_all
    kv_view[:, :total_tokens, 1] = V_all
    sink = np.full((num_q_heads,), ref.to_bf16(np.float32(-1e4)), dtype=np.uint16)
    output = np.empty((num_q_tokens, num_q_heads, head_dim), dtype=np.float32)
    gpt_oss_kernels.f32_sdpa(q_buffer, 0, kv_cache, 0, sink, 0, output, 0, window=total_tokens, kv_stride=kv_stride,
                             num_q_tokens=num_q_tokens, num_kv_tokens=num_kv_tokens, num_q_heads=num_q_heads,
                             num_kv_heads=kv_heads, head_dim=head_dim)
    Q_total = np.zeros((total_tokens, kv_heads, qmul, head_dim))
    Q_total[num_kv_tokens:] = q_buffer[:, :num_q_heads * head_dim].reshape(num_q_tokens, kv_heads, qmul, head_dim)
    K_total = kv_view[:, :, 0].transpose(1, 0, 2).astype(np.float64)
    V_total = kv_view[:, :, 1].transpose(1, 0, 2).astype(np.float64)
    output_ref = _seed_sdpa_reference_numpy(Q_total, K_total, V_total, ref.from_bf16(sink), head_dim ** -0.5)
    return output.reshape(num_q_tokens, -1), output_ref[num_kv_tokens:]


def test_example4_sdpa_numpy():
    out, out_ref = _example4_numpy(np.random.default_rng(3))
    np_assert_close(out, out_ref, atol=1e-3, rtol=1e-3)


def test_example4_sdpa_numpy_1000_draws():
    rng = np.random.default_rng(4)
    failures = 0
    for _ in range(1000):
        out, out_ref = _example4_numpy(rng)
        if not np.all(np.abs(out - out_ref) <= 1e-3 + 1e-3 * np.abs(out_ref)):
            failures += 1
    assert failures == 0, "%d of 1000 draws failed" % failures


# ---- torch, as written -----------------------------------------------------------------

@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_example1_matmul_torch(device):
    gptoss_kernels = gpt_oss_kernels  # instead of get_kernel("kernels-community/gpt-oss-metal-kernels")

    torch.manual_seed(0)
    batch, rows, cols = 2, 128, 1024

    activations = torch.randn(batch, rows, device=device, dtype=torch.float32)
    weights = torch.randn(rows, cols, device=device, dtype=torch.bfloat16)
    bias = torch.zeros(cols, device=device, dtype=torch.bfloat16)
    out_ref = activations @ weights.float() + bias.float()

    out_kernel = torch.empty(batch, cols, device=device, dtype=torch.float32)
    gptoss_kernels.f32_bf16w_matmul(
        activations,
        weights,
        bias,
        out_kernel,
        num_tokens=batch,
        num_cols=rows,
        num_rows=cols,
        threadgroup_size=32,
    )

    torch.testing.assert_close(out_kernel, out_ref, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_example2_rmsnorm_torch(device):
    gptoss_kernels = gpt_oss_kernels

    hidden = 4096
    eps = 1e-5
    x = torch.randn(4, hidden, device=device, dtype=torch.float32)
    weight = torch.randn(hidden, device=device, dtype=torch.bfloat16)

    variance = x.pow(2).mean(dim=-1, keepdim=True)
    out_ref = (x * torch.rsqrt(variance + eps)) * weight.float()

    out_kernel = torch.empty_like(x)
    gptoss_kernels.f32_bf16w_rmsnorm(x, weight, out_kernel, epsilon=eps)

    torch.testing.assert_close(out_kernel, out_ref, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_example3_embeddings_torch(device):
    gptoss_kernels = gpt_oss_kernels

    vocab, dim = 1024, 256
    token_ids = torch.randint(0, vocab, (16,), device=device, dtype=torch.int32)
    emb_table = torch.randn(vocab, dim, device=device, dtype=torch.bfloat16)

    out_ref = emb_table.float().index_select(0, token_ids.long())
    out_kernel = torch.empty_like(out_ref)
    gptoss_kernels.bf16_f32_embeddings(token_ids, emb_table, out_kernel, threadgroup_size=32)

    torch.testing.assert_close(out_kernel, out_ref, atol=1e-4, rtol=1e-3)


def _seed_sdpa_reference_torch(Q, K, V, S, sm_scale, sliding_window=0):
    # The seed README's reference, unchanged.
    Q = Q.reshape(Q.shape[0], Q.shape[1], -1, Q.shape[-1])
    n_tokens, n_heads, q_mult, d_head = Q.shape
    assert K.shape == (n_tokens, n_heads, d_head)
    assert V.shape == (n_tokens, n_heads, d_head)
    K = K[:, :, None, :].expand(-1, -1, q_mult, -1)
    V = V[:, :, None, :].expand(-1, -1, q_mult, -1)
    S = S.reshape(n_heads, q_mult, 1, 1).expand(-1, -1, n_tokens, -1)
    mask = torch.triu(Q.new_full((n_tokens, n_tokens), -float("inf")), diagonal=1)
    if sliding_window > 0:
        mask += torch.tril(mask.new_full((n_tokens, n_tokens), -float("inf")), diagonal=-sliding_window)
    QK = torch.einsum("qhmd,khmd->hmqk", Q, K)
    QK *= sm_scale
    QK += mask[None, None, :, :]
    QK = torch.cat([QK, S], dim=-1)
    W = torch.softmax(QK, dim=-1)
    W = W[..., :-1]
    attn = torch.einsum("hmqk,khmd->qhmd", W, V)
    return attn.reshape(n_tokens, -1)


def _example4_torch(device):
    gptoss_kernels = gpt_oss_kernels

    head_dim = 64
    kv_heads = 8
    qmul = 8
    num_q_heads = kv_heads * qmul
    history_tokens = 3
    num_q_tokens = 2
    total_tokens = history_tokens + num_q_tokens
    max_tokens = total_tokens
    num_kv_tokens = history_tokens

    # Generate Q/K/V tensors
    Q_chunk = torch.randn(num_q_tokens, num_q_heads, head_dim, device=device, dtype=torch.float32)
    K_all = torch.randn(kv_heads, total_tokens, head_dim, device=device, dtype=torch.float32)
    V_all = torch.randn(kv_heads, total_tokens, head_dim, device=device, dtype=torch.float32)

    qkv_dim = head_dim * (num_q_heads + 2 * kv_heads)
    q_buffer = torch.zeros(num_q_tokens, qkv_dim, device=device, dtype=torch.float32)
    for t in range(num_q_tokens):
        q_buffer[t, : num_q_heads * head_dim] = Q_chunk[t].reshape(-1)
        token_idx = history_tokens + t
        q_buffer[
            t,
            num_q_heads * head_dim : num_q_heads * head_dim + kv_heads * head_dim,
        ] = K_all[:, token_idx, :].reshape(-1)
        q_buffer[
            t,
            num_q_heads * head_dim + kv_heads * head_dim :,
        ] = V_all[:, token_idx, :].reshape(-1)

    token_stride = 2 * head_dim
    kv_stride = token_stride * max_tokens
    kv_cache = torch.zeros(kv_heads, kv_stride, device=device, dtype=torch.float32)
    for h in range(kv_heads):
        for t in range(total_tokens):
            base = t * token_stride
            kv_cache[h, base : base + head_dim] = K_all[h, t]
            kv_cache[h, base + head_dim : base + 2 * head_dim] = V_all[h, t]

    sink = torch.full((num_q_heads,), -1e4, device=device, dtype=torch.bfloat16)
    output = torch.empty(num_q_tokens, num_q_heads, head_dim, device=device, dtype=torch.float32)

    gptoss_kernels.f32_sdpa(
        q_buffer,
        0,
        kv_cache,
        0,
        sink,
        0,
        output,
        0,
        window=total_tokens,
        kv_stride=kv_stride,
        num_q_tokens=num_q_tokens,
        num_kv_tokens=num_kv_tokens,
        num_q_heads=num_q_heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
    )

    scale = head_dim ** -0.5
    q_buffer_cpu = q_buffer.detach().cpu()
    kv_cache_cpu = kv_cache.detach().cpu()
    sinks_cpu = sink.detach().to(torch.float32).cpu()

    Q_total_cpu = torch.zeros(total_tokens, kv_heads, qmul, head_dim, dtype=torch.float32)
    for idx, abs_idx in enumerate(range(num_kv_tokens, total_tokens)):
        q_flat = q_buffer_cpu[idx, : num_q_heads * head_dim]
        Q_total_cpu[abs_idx] = q_flat.view(kv_heads, qmul, head_dim)

    K_total_cpu = torch.empty(total_tokens, kv_heads, head_dim, dtype=torch.float32)
    V_total_cpu = torch.empty(total_tokens, kv_heads, head_dim, dtype=torch.float32)
    for t in range(total_tokens):
        base = t * token_stride
        K_total_cpu[t] = kv_cache_cpu[:, base : base + head_dim]
        V_total_cpu[t] = kv_cache_cpu[:, base + head_dim : base + 2 * head_dim]

    output_ref = _seed_sdpa_reference_torch(
        Q_total_cpu,
        K_total_cpu,
        V_total_cpu,
        sinks_cpu,
        scale,
        sliding_window=0,
    )
    # The comparison the seed left out: kernel row i is query position num_kv_tokens + i.
    return output.reshape(num_q_tokens, -1).cpu(), output_ref[num_kv_tokens:]


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_example4_sdpa_torch(device):
    torch.manual_seed(0)
    out, out_ref = _example4_torch(device)
    torch.testing.assert_close(out, out_ref, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_example4_sdpa_torch_1000_draws(device):
    torch.manual_seed(1)
    failures = 0
    for _ in range(1000):
        out, out_ref = _example4_torch(device)
        if not torch.all((out - out_ref).abs() <= 1e-3 + 1e-3 * out_ref.abs()):
            failures += 1
    assert failures == 0, "%d of 1000 draws failed" % failures
