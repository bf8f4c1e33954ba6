"""Bad arguments raise ValueError naming the argument, and no output is written."""
import numpy as np
import pytest

import gpt_oss_kernels as g
import reference as ref
from conftest import torch, torch_cuda_available


def _matmul_args(lib, rng, T=2, C=16, R=8):
    x = lib.f32(rng.standard_normal((T, C)))
    w = lib.T(lib.bf16(ref.rand_bf16(rng, (R, C))))
    b = lib.bf16(ref.rand_bf16(rng, (R,)))
    out = lib.nan((T, R))
    return x, w, b, out, T, C, R


def _assert_unwritten(lib, out):
    assert np.isnan(lib.get(out)).all(), "output was written"


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


def test_wrong_dtype(lib, rng):
    x, w, b, out, T, C, R = _matmul_args(lib, rng)
    x64 = lib.f32(rng.standard_normal((T, C)))
    x64 = x64.astype(np.float64) if lib.name == "numpy" else x64.double()
    _raises(r"input has dtype float64; expected float32", g.f32_bf16w_matmul, x64, w, b, out, T, C, R)
    _raises(r"weight_bf16 has dtype float32", g.f32_bf16w_matmul, x, lib.T(lib.f32(np.zeros((R, C)))), b, out, T,
            C, R)
    _raises(r"bias_bf16 has dtype float32", g.f32_bf16w_matmul, x, w, lib.f32(np.zeros(R)), out, T, C, R)
    _raises(r"token_ids has dtype float32", g.bf16_f32_embeddings, lib.f32([1.0]),
            lib.bf16(np.zeros((4, 8), np.uint16)), out)
    _assert_unwritten(lib, out)


def test_wrong_shape(lib, rng):
    x, w, b, out, T, C, R = _matmul_args(lib, rng)
    # weight given [out][in] (shape (R, C)) where the seed's [in][out] (C, R) is expected
    _raises(r"weight_bf16 has shape \(8, 16\); expected \[num_cols\]\[num_rows\] = \(16, 8\)", g.f32_bf16w_matmul, x,
            lib.bf16(ref.rand_bf16(rng, (R, C))), b, out, T, C, R)
    _raises(r"input has shape \(2, 16\); its last dimension must be num_cols = 15", g.f32_bf16w_matmul, x, w, b, out,
            T, 15, R)
    _raises(r"bias_bf16 has shape \(7,\)", g.f32_bf16w_matmul, x, w, lib.bf16(np.zeros(7, np.uint16)), out, T, C, R)
    _raises(r"weight_bf16 has shape \(16,\)", g.f32_bf16w_rmsnorm, lib.f32(np.ones((2, 8))),
            lib.bf16(np.zeros(16, np.uint16)), lib.nan((2, 8)), 1e-5)
    _raises(r"num_tokens must be at least 1", g.f32_bf16w_matmul, x, w, b, out, 0, C, R)
    _assert_unwritten(lib, out)


def test_non_contiguous(lib, rng):
    x, w, b, out, T, C, R = _matmul_args(lib, rng)
    wide = lib.f32(rng.standard_normal((T, 2 * C)))
    _raises(r"input with shape \(2, 16\) and strides \(32, 2\) is not contiguous", g.f32_bf16w_matmul,
            wide[:, ::2], w, b, out, T, C, R)
    out_wide = lib.nan((T, 2 * R))
    _raises(r"output with shape .* is not contiguous", g.f32_bf16w_matmul, x, w, b, out_wide[:, ::2], T, C, R)
    _assert_unwritten(lib, out)
    _assert_unwritten(lib, out_wide)


def test_too_small_output(lib, rng):
    x, w, b, out, T, C, R = _matmul_args(lib, rng)
    small = lib.nan((T - 1, R))
    _raises(r"output has 8 elements .*num_tokens x num_rows = 16 are needed", g.f32_bf16w_matmul, x, w, b, small, T,
            C, R)
    _assert_unwritten(lib, small)
    # the seed's scatter bug: output sized [T][C] instead of [P][C]
    T2, k, E, Cs = 3, 2, 4, 5
    P = T2 * k
    ids = np.array([[0, 1], [2, 3], [1, 0]])
    offs, intra = ref.routing(ids, E)
    out_tc = lib.nan((T2, Cs))
    _raises(r"f32_scatter: output has 15 elements .*num_tokens \(pairs\) x num_channels = 30 are needed",
            g.f32_scatter, lib.f32(np.ones((T2, Cs))), lib.u32(ids.reshape(-1)), None, lib.u32(offs),
            lib.u32(intra), out_tc, Cs, P, k)
    _assert_unwritten(lib, out_tc)
    # sdpa: the output offset pushes the output past the end of its tensor
    q = lib.f32(np.ones(2 * 8 * 4))
    kv = lib.f32(np.ones(2 * 8 * 2))
    out_s = lib.nan((2, 8))
    _raises(r"output has 64 bytes .*output_offset_bytes 4 \+ num_q_tokens x num_q_heads x head_dim = 16 x 4 bytes",
            g.f32_sdpa, q, 0, kv, 0, None, 0, out_s, 4, 2, 2 * 8 * 2, 2, 0, 2, 1, 4)
    _assert_unwritten(lib, out_s)


def test_read_only_output(rng):
    from conftest import NumpyLib
    lib = NumpyLib()
    x, w, b, out, T, C, R = _matmul_args(lib, rng)
    out.flags.writeable = False
    _raises(r"output is read-only", g.f32_bf16w_matmul, x, w, b, out, T, C, R)
    _assert_unwritten(lib, out)
    ids = np.zeros(4, np.uint32)
    scores = np.full(4, np.nan, np.float32)
    ids.flags.writeable = False
    _raises(r"expert_ids is read-only", g.f32_topk, np.ones((1, 8), np.float32), ids, scores, 1, 8, 4)
    assert np.isnan(scores).all()


def test_read_only_input_is_fine(rng):
    from conftest import NumpyLib
    lib = NumpyLib()
    x, w, b, out, T, C, R = _matmul_args(lib, rng)
    x.flags.writeable = False
    g.f32_bf16w_matmul(x, w, b, out, T, C, R)
    assert np.isfinite(out).all()


def test_misaligned():
    buf = np.frombuffer(bytearray(4 * 17), dtype=np.uint8)
    start = 1 if buf.ctypes.data % 4 == 0 else 0
    mis = np.ndarray((4, 4), dtype=np.float32, buffer=buf[start:start + 64].data)
    assert mis.ctypes.data % 4 != 0
    w = np.zeros((4, 4), np.uint16).T
    out = np.full((4, 4), np.nan, np.float32)
    _raises(r"input address 0x[0-9a-f]+ is not 4-byte aligned", g.f32_bf16w_matmul, mis, w, None, out, 4, 4, 4)
    assert np.isnan(out).all()


def test_offsets_checked(lib, rng):
    Tq, N0, Hq, Hkv, D = 1, 1, 2, 1, 4
    qkv_dim = D * (Hq + 2 * Hkv)
    q = lib.f32(np.ones(qkv_dim))
    kv = lib.f32(np.ones(2 * D * 2))
    out = lib.nan((Hq * D,))
    _raises(r"q_offset_bytes 2 is not a multiple of the q element size 4", g.f32_sdpa, q, 2, kv, 0, None, 0, out, 0,
            1, 2 * D * 2, Tq, N0, Hq, Hkv, D)
    _raises(r"kv has 64 bytes .*kv_offset_bytes 4", g.f32_sdpa, q, 0, kv, 4, None, 0, out, 0, 1, 2 * D * 2, Tq, N0,
            Hq, Hkv, D)
    _raises(r"s_bf16 has 4 bytes", g.f32_sdpa, q, 0, kv, 0, lib.bf16(np.zeros(2, np.uint16)), 2, out, 0, 1,
            2 * D * 2, Tq, N0, Hq, Hkv, D)
    _raises(r"kv_stride 8 is below", g.f32_sdpa, q, 0, kv, 0, None, 0, out, 0, 1, 8, Tq, N0, Hq, Hkv, D)
    _raises(r"window must be at least 1", g.f32_sdpa, q, 0, kv, 0, None, 0, out, 0, 0, 16, Tq, N0, Hq, Hkv, D)
    _assert_unwritten(lib, out)


def test_library_checks_reach_python(lib, rng):
    """A check only the C library makes (token id out of range, CPU) comes back as ValueError."""
    if lib.device != "cpu":
        pytest.skip("token ids are checked on the device on CUDA (reported by synchronize)")
    out = lib.nan((2, 8))
    _raises(r"^bf16_f32_embeddings: token_ids\[1\] = 9 .*\(invalid_argument\)$", g.bf16_f32_embeddings,
            lib.i32([1, 9]), lib.bf16(np.zeros((4, 8), np.uint16)), out)
    _assert_unwritten(lib, out)


def test_not_a_tensor():
    out = np.full((1, 1), np.nan, np.float32)
    with pytest.raises((ValueError, TypeError), match="input"):
        g.f32_bf16w_matmul([[1.0]], np.zeros((1, 1), np.uint16), None, out, 1, 1, 1)
    _raises(r"input is None", g.f32_bf16w_matmul, None, np.zeros((1, 1), np.uint16), None, out, 1, 1, 1)


@pytest.mark.skipif(not torch_cuda_available(), reason="torch with a CUDA device is not available")
def test_mixed_devices(rng):
    x = torch.randn(2, 16, device="cuda")
    w = torch.randn(8, 16, dtype=torch.bfloat16)  # CPU
    out = torch.full((2, 8), float("nan"), device="cuda")
    _raises(r"weight_bf16 is on cpu but input is on cuda:0", g.f32_bf16w_matmul, x, w.t(), None, out, 2, 16, 8)
    _raises(r"output is on cpu but input is on cuda:0", g.f32_bf16w_matmul, x, w.cuda().t(), None,
            torch.empty(2, 8), 2, 16, 8)
    assert torch.isnan(out).all()


@pytest.mark.skipif(not torch_cuda_available(), reason="torch with a CUDA device is not available")
def test_cuda_bad_token_reported_by_synchronize():
    ids = torch.tensor([0, 99], dtype=torch.int32, device="cuda")
    w = torch.zeros(4, 8, dtype=torch.bfloat16, device="cuda")
    out = torch.zeros(2, 8, device="cuda")
    g.bf16_f32_embeddings(ids, w, out)
    with pytest.raises(ValueError, match=r"^synchronize: a kernel met invalid device-side input \(a token id >= "
                                         r"vocabulary_size\).*\(invalid_argument\)$"):
        g.synchronize()
    g.synchronize()  # the error is reported once
