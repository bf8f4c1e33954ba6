"""Integer tensors narrowed by the package are range-checked first, and every error raised
from the C side names the op (numpy, torch CPU, torch CUDA; the torch cases are skipped by
name when torch or CUDA is missing)."""
import re

import numpy as np
import pytest

import gpt_oss_kernels as g
import reference as ref

V, C = 8, 4  # vocabulary and channels of the embedding tables below


def _table(rng):
    return ref.rand_bf16(rng, (V, C))


def _assert_unwritten(lib, out):
    assert np.isnan(lib.get(out)).all(), "output was written"


# int64 token ids that do not fit the library's uint32 ids. Before the range check they
# were narrowed silently: 4294967301 read row 5, -4294967293 row 3, -1 was reported as
# 4294967295; the extremes wrap the same way.
@pytest.mark.parametrize("value, problem", [
    (4294967301, "does not fit in uint32"),
    (-4294967293, "is negative"),
    (-1, "is negative"),
    (2 ** 63 - 1, "does not fit in uint32"),
    (-2 ** 63, "is negative"),
])
def test_int64_token_id_out_of_uint32_range(lib, rng, value, problem):
    ids = rng.integers(0, V, size=6)
    print("ids", ids.tolist(), "bad value", value, "at index 4")
    ids = ids.astype(np.int64)
    ids[4] = value
    out = lib.nan((6, C))
    with pytest.raises(ValueError, match=r"^bf16_f32_embeddings: token_ids\[4\] = %s %s" % (value, problem)):
        g.bf16_f32_embeddings(lib.i64(ids), lib.bf16(_table(rng)), out)
    _assert_unwritten(lib, out)


def test_int64_token_id_index_of_a_matrix(lib, rng):
    """The index is given per dimension for a token_ids tensor of two dimensions."""
    ids = rng.integers(0, V, size=(2, 3)).astype(np.int64)
    ids[1, 2] = 2 ** 32
    out = lib.nan((6, C))
    with pytest.raises(ValueError, match=r"^bf16_f32_embeddings: token_ids\[1, 2\] = 4294967296 does not fit"):
        g.bf16_f32_embeddings(lib.i64(ids), lib.bf16(_table(rng)), out)
    _assert_unwritten(lib, out)


def test_int64_token_ids_in_range_still_work(lib, rng):
    """The largest uint32 passes the narrowing check and is then reported by the library
    (CPU) with its true value; ids below V give the table rows."""
    table = _table(rng)
    ids = rng.integers(0, V, size=5).astype(np.int64)
    print("ids", ids.tolist())
    out = lib.nan((5, C))
    g.bf16_f32_embeddings(lib.i64(ids), lib.bf16(table), out)
    lib.sync()
    np.testing.assert_array_equal(lib.get(out), ref.embeddings(ids, table))
    if lib.device == "cpu":  # CUDA reports ids >= V from synchronize() (test_errors.py)
        big = lib.nan((2, C))
        with pytest.raises(ValueError, match=r"^bf16_f32_embeddings: token_ids\[1\] = 4294967295 is not below "
                                             r"vocabulary_size 8"):
            g.bf16_f32_embeddings(lib.i64([0, 2 ** 32 - 1]), lib.bf16(table), big)
        _assert_unwritten(lib, big)


# Checks made only by the C library (Python passes the value on): each must come back
# naming the op first (the token id check: test_errors.py). (op, builder of (arguments, index of the output), expected message
# after "op: ").
def _rmsnorm(lib, rng):
    return (lib.f32(rng.standard_normal((2, C))), lib.bf16(ref.rand_bf16(rng, (C,))), lib.nan((2, C)), -1.0), 2


def _softmax(lib, rng):
    return (lib.f32(rng.standard_normal((1, V))), lib.u32([0]), lib.nan((1, V)), lib.nan((1,)), 1, V, 0.0), 2


def _rope(lib, rng):
    # attn_head_dim 3 is odd: pairs cannot be rotated.
    return (lib.f32(rng.standard_normal((1, 9))), 10000.0, 1.0, 0.0, 1.0, 1.0, 1, 1, 1, 3, 0), 0


C_ONLY_CHECKS = [
    ("f32_bf16w_rmsnorm", _rmsnorm, r"epsilon -1 is negative"),
    ("f32_softmax", _softmax, r"temperature 0 is not > 0"),
    ("f32_rope", _rope, r"head_dim 3 is not even"),
]


@pytest.mark.parametrize("op, build, message", C_ONLY_CHECKS, ids=[c[0] for c in C_ONLY_CHECKS])
def test_library_errors_name_the_op(lib, rng, op, build, message):
    args, out_index = build(lib, rng)
    before = lib.get(args[out_index])
    with pytest.raises(ValueError, match=r"^%s: %s" % (re.escape(op), message)) as raised:
        getattr(g, op)(*args)
    assert "(invalid_argument)" in str(raised.value), "the library's status is kept"
    np.testing.assert_array_equal(lib.get(args[out_index]), before, err_msg="the output was written")
