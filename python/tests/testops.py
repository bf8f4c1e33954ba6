"""The C test modules (tests/ops/, through build/tests/libgptoss_pytestops.so) for the Python
tests: the kernels of the kernel list, their test cases, the inputs of a case, the arguments
of its call and the check of a call's outputs, so that the Python ops are tested with the
shapes, inputs, float64 reference and tolerances of the C harness (typed once, in C).

The library is found at $GPTOSS_PYTESTOPS_LIB, else build/tests/ of the repository (built
with the C tests: `bash tools/build.sh`); without it the Python tests cannot run (an error,
not a skip).

CALLS maps every kernel to the call of its Python op (gpt_oss_kernels) with the case's
buffers as tensors of one of the conftest libraries (numpy, torch CPU, torch CUDA)."""
import ctypes
import os

import numpy as np

import gpt_oss_kernels as g

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PATH = os.environ.get("GPTOSS_PYTESTOPS_LIB") or os.path.join(_REPO, "build", "tests", "libgptoss_pytestops.so")
if not os.path.exists(_PATH):
    raise RuntimeError("the C test modules are not built: %s is missing (run `bash tools/build.sh`, or set "
                       "GPTOSS_PYTESTOPS_LIB to libgptoss_pytestops.so of a build tree)" % _PATH)
_lib = ctypes.CDLL(_PATH)

_sig = {
    "tcpy_num_kernels": (ctypes.c_int, []),
    "tcpy_kernel_name": (ctypes.c_char_p, [ctypes.c_int]),
    "tcpy_num_params": (ctypes.c_int, [ctypes.c_int]),
    "tcpy_param_name": (ctypes.c_char_p, [ctypes.c_int, ctypes.c_int]),
    "tcpy_num_cases": (ctypes.c_size_t, []),
    "tcpy_case_name": (ctypes.c_char_p, [ctypes.c_size_t]),
    "tcpy_case_kernel": (ctypes.c_int, [ctypes.c_size_t]),
    "tcpy_case_flags": (ctypes.c_uint, [ctypes.c_size_t]),
    "tcpy_case_draws": (ctypes.c_uint, [ctypes.c_size_t]),
    "tcpy_create": (ctypes.c_void_p, [ctypes.c_size_t, ctypes.c_uint64]),
    "tcpy_destroy": (None, [ctypes.c_void_p]),
    "tcpy_num_buffers": (ctypes.c_int, [ctypes.c_void_p]),
    "tcpy_buffer_name": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
    "tcpy_buffer_role": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "tcpy_buffer_elem": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "tcpy_buffer_size": (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_int]),
    "tcpy_buffer_host": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]),
    "tcpy_draw": (None, [ctypes.c_void_p, ctypes.c_uint]),
    "tcpy_arg": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64),
                                ctypes.POINTER(ctypes.c_double)]),
    "tcpy_check": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p,
                                  ctypes.c_size_t]),
}
for _name, (_res, _args) in _sig.items():
    _f = getattr(_lib, _name)
    _f.restype = _res
    _f.argtypes = _args

# flags of tests/ops/ops.h
QUICK = 1 << 0
SEED_README = 1 << 6
BENCH_ONLY = 1 << 9
FAULT = 1 << 12  # inputs the kernel must refuse: judged by the harness's verify, not here

IN, OUT, INOUT = 0, 1, 2
_DTYPES = [np.float32, np.uint32, np.uint16, np.uint8]  # enum tc_elem: f32, u32, bf16, u8

KERNELS = [_lib.tcpy_kernel_name(k).decode() for k in range(_lib.tcpy_num_kernels())]
PARAMS = {KERNELS[k]: [_lib.tcpy_param_name(k, j).decode() for j in range(_lib.tcpy_num_params(k))]
          for k in range(len(KERNELS))}


class Case(object):
    def __init__(self, index):
        self.index = index
        self.name = _lib.tcpy_case_name(index).decode()
        self.kernel = KERNELS[_lib.tcpy_case_kernel(index)]
        self.flags = _lib.tcpy_case_flags(index)
        self.draws = _lib.tcpy_case_draws(index)


CASES = [Case(i) for i in range(_lib.tcpy_num_cases())]


class Buffer(object):
    def __init__(self, name, role, dtype, host):
        self.name, self.role, self.dtype, self.host = name, role, dtype, host


class Problem(object):
    """One case's inputs (from `seed`), its reference and tolerances (computed in C)."""

    def __init__(self, case, seed):
        self.case = case
        self._h = _lib.tcpy_create(case.index, seed)
        if not self._h:
            raise MemoryError("%s: out of host memory" % case.name)

    def close(self):
        _lib.tcpy_destroy(self._h)
        self._h = None

    def draw(self, d):
        _lib.tcpy_draw(self._h, d)

    def buffers(self):
        """The buffers of the call (a copy of the current host contents)."""
        out = []
        for i in range(_lib.tcpy_num_buffers(self._h)):
            dtype = _DTYPES[_lib.tcpy_buffer_elem(self._h, i)]
            size = _lib.tcpy_buffer_size(self._h, i)
            raw = (ctypes.c_uint8 * size).from_address(_lib.tcpy_buffer_host(self._h, i))
            host = np.frombuffer(raw, dtype=np.uint8).copy().view(dtype)
            out.append(Buffer(_lib.tcpy_buffer_name(self._h, i).decode(), _lib.tcpy_buffer_role(self._h, i), dtype,
                              host))
        return out

    def args(self):
        """{parameter: value}: numbers, or (buffer index, byte offset) for pointers (None for NULL)."""
        b, off, u, f = ctypes.c_int(), ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_double()
        out = {}
        for j, name in enumerate(PARAMS[self.case.kernel]):
            kind = _lib.tcpy_arg(self._h, j, ctypes.byref(b), ctypes.byref(off), ctypes.byref(u), ctypes.byref(f))
            out[name] = ((b.value, off.value) if b.value >= 0 else None) if kind == 0 else (u.value if kind == 1
                                                                                           else f.value)
        return out

    def check(self, outs):
        """outs[i]: numpy array of buffer i after the call (None for inputs). Returns the
        first failure, or "" when the outputs pass the case's checks."""
        keep = [None if o is None else np.ascontiguousarray(o) for o in outs]
        ptrs = (ctypes.c_void_p * len(keep))(*[None if o is None else o.ctypes.data for o in keep])
        msg = ctypes.create_string_buffer(1024)
        ok = _lib.tcpy_check(self._h, ptrs, msg, len(msg))
        return "" if ok else msg.value.decode()


class Call(object):
    """A case's arguments as tensors of library `lib`: t(name, shape) is the tensor view a
    pointer parameter points at (None for NULL), v(name) a number, in_out(...) a weight in
    the seed's [in][out] layout."""

    def __init__(self, lib, buffers, args):
        self.lib, self.args = lib, args
        self.contiguous_weights = False
        self.tensors = [{np.float32: lib.f32, np.uint32: lib.u32, np.uint16: lib.bf16, np.uint8: lib.u8}[b.dtype](b.host)
                        if b.role != OUT else self._poison(lib, b) for b in buffers]

    @staticmethod
    def _poison(lib, b):
        if b.dtype == np.float32:
            return lib.nan(b.host.shape)
        if b.dtype == np.uint32:
            return lib.ids_out(b.host.shape)
        return {np.uint16: lib.bf16, np.uint8: lib.u8}[b.dtype](np.full(b.host.shape, 0xFF, dtype=b.dtype))

    def v(self, name):
        return self.args[name]

    def in_out(self, name, rows, cols):
        """The [in][out] weight of an [out][in] buffer: W.t() (a view the op uses in place),
        or with contiguous_weights a contiguous transposed copy (which the op copies back)."""
        w = self.t(name, (rows, cols))
        if self.contiguous_weights:
            return self.lib.bf16(np.ascontiguousarray(self.lib.get(w).T))
        return self.lib.T(w)

    def t(self, name, shape=None):
        a = self.args[name]
        if a is None:
            return None
        buf, offset = a
        t = self.tensors[buf]
        if offset:  # a view from that byte on (numpy: itemsize, torch: element_size())
            t = t[offset // (t.itemsize if isinstance(t, np.ndarray) else t.element_size()):]
        return t if shape is None else t.reshape(shape)


def _calls():
    def matmul(fn):
        def call(L, c):
            T, C, R = c.v("num_tokens"), c.v("num_cols"), c.v("num_rows")
            out = c.t("output", (T, R))
            return fn(c.t("input", (T, C)), c.in_out("weight", R, C), c.t("bias"), out, T, C, R), out
        return call

    def dense(fn):
        def call(L, c):
            T, C, R = c.v("num_tokens"), c.v("num_cols"), c.v("num_rows")
            out = c.t("output", (T, R))
            return fn(c.t("input", (T, C)), c.in_out("weight", R, C), c.t("bias"), out), out
        return call

    def moe(fn, dense_rows, swiglu):
        def call(L, c):
            T, k, E, C, R = (c.v(n) for n in ("num_tokens", "num_active_experts", "num_experts", "num_cols",
                                              "num_rows"))
            # blocks, scales and bias: views of one uint8 buffer, as the model file interleaves them
            blocks, scales, bias = c.t("weight_blocks"), c.t("weight_scales"), c.t("bias")
            out = c.t("output")
            head = [c.t("expert_offsets"), c.t("input")] if dense_rows else [c.t("input"), c.t("expert_ids")]
            rest = [blocks, scales, bias, c.v("expert_stride"), out, T, k, E, C, R]
            return fn(*(head + rest + ([c.v("swiglu_limit")] if swiglu else []))), out
        return call

    def qkv(L, c):
        T, C = c.v("num_tokens"), c.v("num_cols")
        Hq, Hkv, D = c.v("num_q_heads"), c.v("num_kv_heads"), c.v("head_dim")
        rows = D * (Hq + 2 * Hkv)
        out = c.t("output", (T, rows))
        return g.f32_bf16w_matmul_qkv(c.t("input", (T, C)), c.in_out("weight", rows, C), c.t("bias"), out,
                                      c.t("kv_cache"), 0, T, C, Hq, Hkv, D, c.v("token_offset"), c.v("max_tokens"),
                                      c.v("rope_base"), c.v("interpolation_scale"), c.v("yarn_offset"),
                                      c.v("yarn_scale"), c.v("yarn_multiplier")), out

    def rope(L, c):
        x = c.t("activations")
        return g.f32_rope(x, c.v("rope_base"), c.v("interpolation_scale"), c.v("yarn_offset"), c.v("yarn_scale"),
                          c.v("yarn_multiplier"), c.v("num_tokens"), c.v("num_q_heads"), c.v("num_kv_heads"),
                          c.v("head_dim"), c.v("token_offset")), x

    def sdpa(L, c):
        out = c.t("output")
        return g.f32_sdpa(c.t("q"), 0, c.t("kv"), 0, c.t("sinks"), 0, out, 0, c.v("window"), c.v("kv_stride"),
                          c.v("num_q_tokens"), c.v("num_kv_tokens"), c.v("num_q_heads"), c.v("num_kv_heads"),
                          c.v("head_dim"), c.v("scale")), out

    def qkv_varlen(L, c):
        T, C = c.v("num_tokens"), c.v("num_cols")
        Hq, Hkv, D = c.v("num_q_heads"), c.v("num_kv_heads"), c.v("head_dim")
        rows = D * (Hq + 2 * Hkv)
        out = c.t("output", (T, rows))
        S, TS = c.v("num_seqs"), c.v("table_stride")
        return g.f32_bf16w_matmul_qkv_varlen(c.t("input", (T, C)), c.in_out("weight", rows, C), c.t("bias"), out,
                                             c.t("kv_cache"), c.t("positions"), c.t("seq_ids"),
                                             c.t("block_tables", (S, TS)), T, C, Hq, Hkv, D, c.v("kv_stride"),
                                             c.v("block_size"), TS, S, c.v("rope_base"), c.v("interpolation_scale"),
                                             c.v("yarn_offset"), c.v("yarn_scale"), c.v("yarn_multiplier")), out

    def sdpa_varlen(L, c):
        out = c.t("output")
        S, TS = c.v("num_seqs"), c.v("table_stride")
        return g.f32_sdpa_varlen(c.t("q"), c.t("kv"), c.t("sinks"), out, c.t("positions"), c.t("seq_ids"),
                                 c.t("block_tables", (S, TS)), c.v("window"), c.v("kv_stride"), c.v("block_size"), TS,
                                 c.v("num_q_tokens"), S, c.v("num_q_heads"), c.v("num_kv_heads"), c.v("head_dim"),
                                 c.v("scale")), out

    def rmsnorm(L, c):
        T, C = c.v("num_tokens"), c.v("num_channels")
        x, out = c.t("input", (T, C)), c.t("output", (T, C))
        if c.args["input"] == c.args["output"]:
            out = x  # in place: the same tensor
        return g.f32_bf16w_rmsnorm(x, c.t("weight"), out, c.v("epsilon")), out

    def embeddings(L, c):
        T, C, V = c.v("num_tokens"), c.v("num_channels"), c.v("vocabulary_size")
        out = c.t("output", (T, C))
        return g.bf16_f32_embeddings(c.t("token_ids"), c.t("weight", (V, C)), out), out

    def unembedding(L, c):
        T, C, R = c.v("num_tokens"), c.v("num_cols"), c.v("num_rows")
        logits, am = c.t("logits", (T, R)), c.t("argmax")
        return g.f32_bf16w_unembedding(c.t("input", (T, C)), c.t("weight", (R, C)), logits, am, T, C, R), (logits, am)

    def topk(L, c):
        ids, sc = c.t("expert_ids"), c.t("expert_scores")
        return g.f32_topk(c.t("scores"), ids, sc, c.v("num_tokens"), c.v("num_experts"),
                          c.v("num_active_experts")), (ids, sc)

    def metadata(L, c):
        offs, intra = c.t("expert_offsets"), c.t("intra_expert_offsets")
        return g.expert_routing_metadata(c.t("expert_ids"), None, offs, intra, c.v("num_pairs"),
                                         c.v("num_experts")), (offs, intra)

    def scatter(L, c):  # the seed's num_tokens counts pairs here
        out = c.t("output")
        k = c.v("num_active_experts")
        return g.f32_scatter(c.t("input"), c.t("expert_ids"), None, c.t("expert_offsets"),
                             c.t("intra_expert_offsets"), out, c.v("num_channels"), c.v("num_tokens") * k, k), out

    def gather(L, c):
        res = c.t("residual")
        return g.f32_gather_and_accumulate(c.t("input"), c.t("expert_ids"), c.t("expert_scores"),
                                           c.t("expert_offsets"), c.t("intra_expert_offsets"), res,
                                           c.v("num_channels"), c.v("num_tokens"), c.v("num_active_experts")), res

    def accumulate(L, c):
        res = c.t("residual")
        return g.f32_accumulate(c.t("input"), c.t("expert_scores"), res, c.v("num_channels"), c.v("num_tokens"),
                                c.v("num_active_experts")), res

    def softmax(L, c):
        prob, s = c.t("prob"), c.t("sum")
        return g.f32_softmax(c.t("logits"), c.t("argmax"), prob, s, c.v("num_tokens"), c.v("num_channels"),
                             c.v("temperature")), (prob, s)

    def sample(L, c):
        pred = c.t("prediction")
        return g.f32_sample(c.t("prob"), c.t("sum"), pred, c.v("num_channels"), c.v("rng_seed"),
                            c.v("rng_offset")), pred

    def penalties(L, c):
        out = c.t("output")  # in place: the logits tensor itself
        return g.f32_apply_penalties(c.t("logits"), c.t("counts"), out, c.v("num_channels"),
                                     c.v("presence_penalty"), c.v("frequency_penalty")), out

    def sample_logits(L, c):
        pred = c.t("prediction")
        return g.f32_sample_logits(c.t("logits"), pred, c.v("num_channels"), c.v("temperature"), c.v("top_k"),
                                   c.v("top_p"), c.v("rng_seed"), c.v("rng_offset")), pred

    def fill(fn, ranged):
        def call(L, c):
            out = c.t("output")
            extra = [c.v("min"), c.v("max")] if ranged else []
            return fn(out, c.v("num_elements"), c.v("seed"), c.v("offset"), *extra), out
        return call

    def convert(L, c):
        out = c.t("output")
        return g.mf4_f32_convert(c.t("blocks"), c.t("scales"), out, c.v("num_elements")), out

    def accumulate_rmsnorm(L, c):
        res, out = c.t("residual"), c.t("output")
        return g.f32_accumulate_bf16w_rmsnorm(c.t("input"), c.t("expert_scores"), res, c.t("weight"), out,
                                              c.v("num_channels"), c.v("num_tokens"), c.v("num_active_experts"),
                                              c.v("epsilon")), (res, out)

    def gate(L, c):
        T, C, E = c.v("num_tokens"), c.v("num_channels"), c.v("num_experts")
        outs = (c.t("output"), c.t("scores"), c.t("expert_ids"), c.t("expert_scores"))
        return g.f32_bf16w_rmsnorm_matmul_topk(c.t("input"), c.t("norm_weight"), outs[0],
                                               c.t("router_weight", (E, C)), c.t("router_bias"), outs[1], outs[2],
                                               outs[3], T, C, E, c.v("num_active_experts"), c.v("epsilon")), outs

    return {
        "u32_fill_random": fill(g.u32_fill_random, False),
        "f32_fill_random": fill(g.f32_fill_random, True),
        "bf16_fill_random": fill(g.bf16_fill_random, True),
        "mf4_f32_convert": convert,
        "bf16_f32_embeddings": embeddings,
        "f32_bf16w_rmsnorm": rmsnorm,
        "f32_bf16w_matmul": matmul(g.f32_bf16w_matmul),
        "f32_bf16w_matmul_add": matmul(g.f32_bf16w_matmul_add),
        "f32_bf16w_dense_matmul_qkv": dense(g.f32_bf16w_dense_matmul_qkv),
        "f32_bf16w_dense_matmul_attn_output": dense(g.f32_bf16w_dense_matmul_attn_output),
        "f32_bf16w_dense_matmul_mlp_gate": dense(g.f32_bf16w_dense_matmul_mlp_gate),
        "f32_bf16w_matmul_qkv": qkv,
        "f32_rope": rope,
        "f32_sdpa": sdpa,
        "f32_bf16w_matmul_qkv_varlen": qkv_varlen,
        "f32_sdpa_varlen": sdpa_varlen,
        "f32_bf16w_unembedding": unembedding,
        "f32_topk": topk,
        "expert_routing_metadata": metadata,
        "f32_scatter": scatter,
        "f32_mf4w_moe_matmul_swiglu": moe(g.f32_mf4w_moe_matmul_swiglu, False, True),
        "f32_mf4w_moe_matmul": moe(g.f32_mf4w_moe_matmul, False, False),
        "f32_mf4w_moe_dense_matmul_swiglu": moe(g.f32_mf4w_moe_dense_matmul_swiglu, True, True),
        "f32_mf4w_moe_dense_matmul": moe(g.f32_mf4w_moe_dense_matmul, True, False),
        "f32_gather_and_accumulate": gather,
        "f32_accumulate": accumulate,
        "f32_softmax": softmax,
        "f32_sample": sample,
        "f32_apply_penalties": penalties,
        "f32_sample_logits": sample_logits,
        "f32_accumulate_bf16w_rmsnorm": accumulate_rmsnorm,
        "f32_bf16w_rmsnorm_matmul_topk": gate,
    }


CALLS = _calls()


def run(lib, problem, call=None, seed_offset=0):
    """Runs every draw of a problem through the Python op (CALLS, or `call`) on library
    `lib`; returns the first failure ("" if none) and the outputs of the last draw."""
    call = call or CALLS[problem.case.kernel]
    outs = None
    for d in range(problem.case.draws):
        problem.draw(d)
        buffers = problem.buffers()
        c = Call(lib, buffers, problem.args())
        ret, expected = call(lib, c)
        if isinstance(expected, tuple):
            if not (isinstance(ret, tuple) and len(ret) == len(expected) and all(a is b for a, b in zip(ret, expected))):
                return "%s returned %r, not its outputs" % (problem.case.kernel, type(ret)), None
        elif ret is not expected:
            return "%s returned %r, not its output" % (problem.case.kernel, type(ret)), None
        lib.sync()
        outs = [None if b.role == IN else np.ascontiguousarray(lib.get(t)).view(b.dtype).reshape(-1)
                for b, t in zip(buffers, c.tensors)]
        for b, t in zip(buffers, c.tensors):  # bit for bit (inputs may hold NaN)
            if b.role == IN and not np.array_equal(np.ascontiguousarray(lib.get(t)).view(np.uint8).reshape(-1),
                                                   b.host.view(np.uint8)):
                return "input %s was modified" % b.name, None
        failure = problem.check(outs)
        if failure:
            return failure, None
    return "", outs
