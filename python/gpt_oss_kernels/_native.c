/*
 * gpt_oss_kernels._native: the CPython extension (stable ABI, no libtorch).
 *
 * Two jobs only:
 *   1. dlpack_info(obj, stream): reads any object with __dlpack__ (old "dltensor" and
 *      versioned "dltensor_versioned" capsules) and returns a plain tuple describing it:
 *      (data_ptr, device_type, device_id, dtype_code, dtype_bits, dtype_lanes, shape,
 *       strides_in_elements_or_None, read_only). The capsule is consumed and its deleter
 *      called at once; the memory stays valid because the caller keeps obj alive.
 *   2. One function per kernel taking a backend capsule, raw addresses and scalars, and
 *      calling the C API; a failed status raises ValueError (invalid/unsupported argument)
 *      or RuntimeError (anything else) with the library's message and the status name
 *      (gpt_oss_kernels.ops puts the op's name in front).
 * All shape, dtype, device and alignment checks happen in gpt_oss_kernels/ops.py before
 * these calls; the C library then checks every size again.
 */
#define Py_LIMITED_API 0x03080000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include <gptoss/kernels.h>

/* ---- DLPack ABI (the structs of dlpack.h v1.0, written out: a stable C ABI) ----------- */

typedef struct { int32_t device_type; int32_t device_id; } DLDevice;
typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } DLDataType;
typedef struct {
    void* data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t* shape;
    int64_t* strides;
    uint64_t byte_offset;
} DLTensor;
typedef struct DLManagedTensor {
    DLTensor dl_tensor;
    void* manager_ctx;
    void (*deleter)(struct DLManagedTensor*);
} DLManagedTensor;
typedef struct { uint32_t major; uint32_t minor; } DLPackVersion;
typedef struct DLManagedTensorVersioned {
    DLPackVersion version;
    void* manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned*);
    uint64_t flags;
    DLTensor dl_tensor;
} DLManagedTensorVersioned;
#define DLPACK_FLAG_BITMASK_READ_ONLY (UINT64_C(1) << 0)

static PyObject* call_dlpack(PyObject* obj, PyObject* stream, int versioned) {
    PyObject* method = PyObject_GetAttrString(obj, "__dlpack__");
    if (method == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "expected a tensor with __dlpack__, got %S", (PyObject*) Py_TYPE(obj));
        return NULL;
    }
    PyObject* args = PyTuple_New(0);
    PyObject* kwargs = PyDict_New();
    PyObject* result = NULL;
    if (args != NULL && kwargs != NULL) {
        int ok = 0;
        if (stream != Py_None) ok |= PyDict_SetItemString(kwargs, "stream", stream);
        if (versioned) {
            PyObject* version = Py_BuildValue("(ii)", 1, 0);
            ok |= version == NULL ? -1 : PyDict_SetItemString(kwargs, "max_version", version);
            Py_XDECREF(version);
        }
        if (ok == 0) result = PyObject_Call(method, args, kwargs);
    }
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_DECREF(method);
    return result;
}

static PyObject* tensor_tuple(const DLTensor* t, int read_only) {
    PyObject* shape = PyTuple_New(t->ndim);
    if (shape == NULL) return NULL;
    for (int32_t i = 0; i < t->ndim; i++) PyTuple_SetItem(shape, i, PyLong_FromLongLong(t->shape[i]));
    PyObject* strides;
    if (t->strides == NULL) {
        strides = Py_None;
        Py_INCREF(strides);
    } else {
        strides = PyTuple_New(t->ndim);
        if (strides == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        for (int32_t i = 0; i < t->ndim; i++) PyTuple_SetItem(strides, i, PyLong_FromLongLong(t->strides[i]));
    }
    const uintptr_t address = (uintptr_t) t->data + (uintptr_t) t->byte_offset;
    return Py_BuildValue("(KiiiiiNNi)", (unsigned long long) address, (int) t->device.device_type,
                         (int) t->device.device_id, (int) t->dtype.code, (int) t->dtype.bits, (int) t->dtype.lanes,
                         shape, strides, read_only);
}

static PyObject* dlpack_info(PyObject* self, PyObject* args) {
    PyObject *obj, *stream = Py_None;
    if (!PyArg_ParseTuple(args, "O|O", &obj, &stream)) return NULL;
    PyObject* capsule = call_dlpack(obj, stream, 1);
    if (capsule == NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
        /* producer without max_version (DLPack < 1.0): the old capsule */
        PyErr_Clear();
        capsule = call_dlpack(obj, stream, 0);
    }
    if (capsule == NULL) return NULL;
    PyObject* result = NULL;
    if (PyCapsule_IsValid(capsule, "dltensor_versioned")) {
        DLManagedTensorVersioned* m = PyCapsule_GetPointer(capsule, "dltensor_versioned");
        if (m->version.major != 1) {
            PyErr_Format(PyExc_TypeError, "unsupported DLPack major version %u", (unsigned) m->version.major);
        } else {
            result = tensor_tuple(&m->dl_tensor, (m->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0);
        }
        PyCapsule_SetName(capsule, "used_dltensor_versioned");
        if (m->deleter != NULL) m->deleter(m);
    } else if (PyCapsule_IsValid(capsule, "dltensor")) {
        DLManagedTensor* m = PyCapsule_GetPointer(capsule, "dltensor");
        result = tensor_tuple(&m->dl_tensor, 0);
        PyCapsule_SetName(capsule, "used_dltensor");
        if (m->deleter != NULL) m->deleter(m);
    } else {
        PyErr_SetString(PyExc_TypeError, "__dlpack__ did not return a DLPack capsule");
    }
    Py_DECREF(capsule);
    return result;
}

/* ---- backends ---------------------------------------------------------------------- */

static void backend_destructor(PyObject* capsule) {
    gptoss_backend_t b = PyCapsule_GetPointer(capsule, "gptoss_backend");
    if (b != NULL) gptoss_backend_release(b);
}

/* "<the library's message> (<status>)"; the Python layer puts the op's name in front. */
static PyObject* raise_status(enum gptoss_status status) {
    PyObject* type = (status == gptoss_status_invalid_argument || status == gptoss_status_unsupported_argument)
                         ? PyExc_ValueError
                         : PyExc_RuntimeError;
    const char* message = gptoss_last_error();
    if (message[0] == '\0') message = "the library gave no message";
    PyErr_Format(type, "%s (%s)", message, gptoss_status_to_string(status));
    return NULL;
}

static PyObject* create_cpu_backend(PyObject* self, PyObject* args) {
    unsigned int threads = 0;
    if (!PyArg_ParseTuple(args, "|I", &threads)) return NULL;
    gptoss_backend_t b = NULL;
    enum gptoss_status s = gptoss_backend_create_cpu(threads, &b);
    if (s != gptoss_status_success) return raise_status(s);
    return PyCapsule_New(b, "gptoss_backend", backend_destructor);
}

static PyObject* create_cuda_backend(PyObject* self, PyObject* args) {
    int device;
    unsigned long long stream;
    if (!PyArg_ParseTuple(args, "iK", &device, &stream)) return NULL;
    gptoss_backend_t b = NULL;
    enum gptoss_status s = gptoss_backend_create_cuda(device, (void*) (uintptr_t) stream, &b);
    if (s != gptoss_status_success) return raise_status(s);
    return PyCapsule_New(b, "gptoss_backend", backend_destructor);
}

static gptoss_backend_t backend_of(PyObject* capsule) {
    return PyCapsule_GetPointer(capsule, "gptoss_backend");
}

static PyObject* backend_name(PyObject* self, PyObject* args) {
    PyObject* cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    gptoss_backend_t b = backend_of(cap);
    if (b == NULL) return NULL;
    return PyUnicode_FromString(gptoss_backend_get_name(b));
}

/* ---- kernels: (backend, addresses as ints, scalars) --------------------------------- */

#define P(x) ((void*) (uintptr_t) (x))
#define RUN(call)                                               \
    do {                                                        \
        enum gptoss_status status_;                             \
        Py_BEGIN_ALLOW_THREADS status_ = (call);                \
        Py_END_ALLOW_THREADS if (status_ != gptoss_status_success) return raise_status(status_); \
        Py_RETURN_NONE;                                         \
    } while (0)
#define BACKEND(cap)                          \
    gptoss_backend_t b = backend_of(cap);     \
    if (b == NULL) return NULL

typedef unsigned long long ull;

static PyObject* k_u32_fill_random(PyObject* self, PyObject* args) {
    PyObject* cap; ull out, n, seed, offset;
    if (!PyArg_ParseTuple(args, "OKKKK", &cap, &out, &n, &seed, &offset)) return NULL;
    BACKEND(cap);
    RUN(gptoss_u32_fill_random(b, P(out), n, seed, offset));
}

static PyObject* k_f32_fill_random(PyObject* self, PyObject* args) {
    PyObject* cap; ull out, n, seed, offset; float lo, hi;
    if (!PyArg_ParseTuple(args, "OKKKKff", &cap, &out, &n, &seed, &offset, &lo, &hi)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_fill_random(b, P(out), n, seed, offset, lo, hi));
}

static PyObject* k_bf16_fill_random(PyObject* self, PyObject* args) {
    PyObject* cap; ull out, n, seed, offset; float lo, hi;
    if (!PyArg_ParseTuple(args, "OKKKKff", &cap, &out, &n, &seed, &offset, &lo, &hi)) return NULL;
    BACKEND(cap);
    RUN(gptoss_bf16_fill_random(b, P(out), n, seed, offset, lo, hi));
}

static PyObject* k_mf4_f32_convert(PyObject* self, PyObject* args) {
    PyObject* cap; ull blocks, scales, out, n;
    if (!PyArg_ParseTuple(args, "OKKKK", &cap, &blocks, &scales, &out, &n)) return NULL;
    BACKEND(cap);
    RUN(gptoss_mf4_f32_convert(b, P(blocks), P(scales), P(out), n));
}

static PyObject* k_bf16_f32_embeddings(PyObject* self, PyObject* args) {
    PyObject* cap; ull ids, w, out; unsigned int t, c, v;
    if (!PyArg_ParseTuple(args, "OKKKIII", &cap, &ids, &w, &out, &t, &c, &v)) return NULL;
    BACKEND(cap);
    RUN(gptoss_bf16_f32_embeddings(b, P(ids), P(w), P(out), t, c, v));
}

static PyObject* k_f32_bf16w_rmsnorm(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, w, out; unsigned int t, c; float eps;
    if (!PyArg_ParseTuple(args, "OKKKIIf", &cap, &x, &w, &out, &t, &c, &eps)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_bf16w_rmsnorm(b, P(x), P(w), P(out), t, c, eps));
}

typedef enum gptoss_status (*matmul_fn)(gptoss_backend_t, const float*, const gptoss_bf16*, const gptoss_bf16*,
                                        float*, uint32_t, uint32_t, uint32_t);

static PyObject* matmul_common(PyObject* args, matmul_fn fn) {
    PyObject* cap; ull x, w, bias, out; unsigned int t, c, r;
    if (!PyArg_ParseTuple(args, "OKKKKIII", &cap, &x, &w, &bias, &out, &t, &c, &r)) return NULL;
    BACKEND(cap);
    RUN(fn(b, P(x), P(w), P(bias), P(out), t, c, r));
}

static PyObject* k_f32_bf16w_matmul(PyObject* s, PyObject* a) { return matmul_common(a, gptoss_f32_bf16w_matmul); }
static PyObject* k_f32_bf16w_matmul_add(PyObject* s, PyObject* a) {
    return matmul_common(a, gptoss_f32_bf16w_matmul_add);
}
static PyObject* k_f32_bf16w_dense_matmul_qkv(PyObject* s, PyObject* a) {
    return matmul_common(a, gptoss_f32_bf16w_dense_matmul_qkv);
}
static PyObject* k_f32_bf16w_dense_matmul_attn_output(PyObject* s, PyObject* a) {
    return matmul_common(a, gptoss_f32_bf16w_dense_matmul_attn_output);
}
static PyObject* k_f32_bf16w_dense_matmul_mlp_gate(PyObject* s, PyObject* a) {
    return matmul_common(a, gptoss_f32_bf16w_dense_matmul_mlp_gate);
}

static PyObject* k_f32_bf16w_matmul_qkv(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, w, bias, out, kv;
    unsigned int t, c, hq, hkv, d, off, maxt;
    float base, interp, yoff, yscale, ymul;
    if (!PyArg_ParseTuple(args, "OKKKKKIIIIIIIfffff", &cap, &x, &w, &bias, &out, &kv, &t, &c, &hq, &hkv, &d, &off,
                          &maxt, &base, &interp, &yoff, &yscale, &ymul)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_bf16w_matmul_qkv(b, P(x), P(w), P(bias), P(out), P(kv), t, c, hq, hkv, d, off, maxt, base, interp,
                                    yoff, yscale, ymul));
}

static PyObject* k_f32_rope(PyObject* self, PyObject* args) {
    PyObject* cap; ull x; float base, interp, yoff, yscale, ymul; unsigned int t, hq, hkv, d, off;
    if (!PyArg_ParseTuple(args, "OKfffffIIIII", &cap, &x, &base, &interp, &yoff, &yscale, &ymul, &t, &hq, &hkv, &d,
                          &off)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_rope(b, P(x), base, interp, yoff, yscale, ymul, t, hq, hkv, d, off));
}

static PyObject* k_f32_sdpa(PyObject* self, PyObject* args) {
    PyObject* cap; ull q, kv, sinks, out, kv_stride; unsigned int window, tq, tkv, hq, hkv, d; float scale;
    if (!PyArg_ParseTuple(args, "OKKKKIKIIIIIf", &cap, &q, &kv, &sinks, &out, &window, &kv_stride, &tq, &tkv, &hq,
                          &hkv, &d, &scale)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_sdpa(b, P(q), P(kv), P(sinks), P(out), window, kv_stride, tq, tkv, hq, hkv, d, scale));
}

static PyObject* k_f32_bf16w_matmul_qkv_varlen(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, w, bias, out, kv, pos, ids, tab, stride;
    unsigned int t, c, hq, hkv, d, bs, ts, ns;
    float base, interp, yoff, yscale, ymul;
    if (!PyArg_ParseTuple(args, "OKKKKKKKKIIIIIKIIIfffff", &cap, &x, &w, &bias, &out, &kv, &pos, &ids, &tab, &t, &c,
                          &hq, &hkv, &d, &stride, &bs, &ts, &ns, &base, &interp, &yoff, &yscale, &ymul)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_bf16w_matmul_qkv_varlen(b, P(x), P(w), P(bias), P(out), P(kv), P(pos), P(ids), P(tab), t, c, hq,
                                           hkv, d, stride, bs, ts, ns, base, interp, yoff, yscale, ymul));
}

static PyObject* k_f32_sdpa_varlen(PyObject* self, PyObject* args) {
    PyObject* cap; ull q, kv, sinks, out, pos, ids, tab, stride;
    unsigned int window, bs, ts, tq, ns, hq, hkv, d; float scale;
    if (!PyArg_ParseTuple(args, "OKKKKKKKIKIIIIIIIf", &cap, &q, &kv, &sinks, &out, &pos, &ids, &tab, &window, &stride,
                          &bs, &ts, &tq, &ns, &hq, &hkv, &d, &scale)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_sdpa_varlen(b, P(q), P(kv), P(sinks), P(out), P(pos), P(ids), P(tab), window, stride, bs, ts, tq,
                               ns, hq, hkv, d, scale));
}

static PyObject* k_f32_bf16w_unembedding(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, w, logits, argmax; unsigned int t, c, r;
    if (!PyArg_ParseTuple(args, "OKKKKIII", &cap, &x, &w, &logits, &argmax, &t, &c, &r)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_bf16w_unembedding(b, P(x), P(w), P(logits), P(argmax), t, c, r));
}

static PyObject* k_f32_topk(PyObject* self, PyObject* args) {
    PyObject* cap; ull scores, ids, probs; unsigned int t, e, k;
    if (!PyArg_ParseTuple(args, "OKKKIII", &cap, &scores, &ids, &probs, &t, &e, &k)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_topk(b, P(scores), P(ids), P(probs), t, e, k));
}

static PyObject* k_expert_routing_metadata(PyObject* self, PyObject* args) {
    PyObject* cap; ull ids, offsets, intra; unsigned int p, e;
    if (!PyArg_ParseTuple(args, "OKKKII", &cap, &ids, &offsets, &intra, &p, &e)) return NULL;
    BACKEND(cap);
    RUN(gptoss_expert_routing_metadata(b, P(ids), P(offsets), P(intra), p, e));
}

static PyObject* k_f32_scatter(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, ids, offsets, intra, out; unsigned int c, t, k, e;
    if (!PyArg_ParseTuple(args, "OKKKKKIIII", &cap, &x, &ids, &offsets, &intra, &out, &c, &t, &k, &e)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_scatter(b, P(x), P(ids), P(offsets), P(intra), P(out), c, t, k, e));
}

static PyObject* k_f32_mf4w_moe_matmul_swiglu(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, ids, blocks, scales, bias, stride, out; unsigned int t, k, e, c, r; float limit;
    if (!PyArg_ParseTuple(args, "OKKKKKKKIIIIIf", &cap, &x, &ids, &blocks, &scales, &bias, &stride, &out, &t, &k, &e,
                          &c, &r, &limit)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_mf4w_moe_matmul_swiglu(b, P(x), P(ids), P(blocks), P(scales), P(bias), (size_t) stride, P(out), t,
                                          k, e, c, r, limit));
}

static PyObject* k_f32_mf4w_moe_matmul(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, ids, blocks, scales, bias, stride, out; unsigned int t, k, e, c, r;
    if (!PyArg_ParseTuple(args, "OKKKKKKKIIIII", &cap, &x, &ids, &blocks, &scales, &bias, &stride, &out, &t, &k, &e,
                          &c, &r)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_mf4w_moe_matmul(b, P(x), P(ids), P(blocks), P(scales), P(bias), (size_t) stride, P(out), t, k, e,
                                   c, r));
}

static PyObject* k_f32_mf4w_moe_dense_matmul_swiglu(PyObject* self, PyObject* args) {
    PyObject* cap; ull offsets, x, blocks, scales, bias, stride, out; unsigned int t, k, e, c, r; float limit;
    if (!PyArg_ParseTuple(args, "OKKKKKKKIIIIIf", &cap, &offsets, &x, &blocks, &scales, &bias, &stride, &out, &t, &k,
                          &e, &c, &r, &limit)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_mf4w_moe_dense_matmul_swiglu(b, P(offsets), P(x), P(blocks), P(scales), P(bias), (size_t) stride,
                                                P(out), t, k, e, c, r, limit));
}

static PyObject* k_f32_mf4w_moe_dense_matmul(PyObject* self, PyObject* args) {
    PyObject* cap; ull offsets, x, blocks, scales, bias, stride, out; unsigned int t, k, e, c, r;
    if (!PyArg_ParseTuple(args, "OKKKKKKKIIIII", &cap, &offsets, &x, &blocks, &scales, &bias, &stride, &out, &t, &k,
                          &e, &c, &r)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_mf4w_moe_dense_matmul(b, P(offsets), P(x), P(blocks), P(scales), P(bias), (size_t) stride, P(out),
                                         t, k, e, c, r));
}

static PyObject* k_f32_gather_and_accumulate(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, ids, scores, offsets, intra, res; unsigned int c, t, k, e;
    if (!PyArg_ParseTuple(args, "OKKKKKKIIII", &cap, &x, &ids, &scores, &offsets, &intra, &res, &c, &t, &k, &e)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_gather_and_accumulate(b, P(x), P(ids), P(scores), P(offsets), P(intra), P(res), c, t, k, e));
}

static PyObject* k_f32_accumulate(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, scores, res; unsigned int c, t, k;
    if (!PyArg_ParseTuple(args, "OKKKIII", &cap, &x, &scores, &res, &c, &t, &k)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_accumulate(b, P(x), P(scores), P(res), c, t, k));
}

static PyObject* k_f32_accumulate_bf16w_rmsnorm(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, scores, res, w, out; unsigned int c, t, k; float eps;
    if (!PyArg_ParseTuple(args, "OKKKKKIIIf", &cap, &x, &scores, &res, &w, &out, &c, &t, &k, &eps)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_accumulate_bf16w_rmsnorm(b, P(x), P(scores), P(res), P(w), P(out), c, t, k, eps));
}

static PyObject* k_f32_bf16w_rmsnorm_matmul_topk(PyObject* self, PyObject* args) {
    PyObject* cap; ull x, nw, out, rw, rb, scores, ids, es; unsigned int t, c, e, k; float eps;
    if (!PyArg_ParseTuple(args, "OKKKKKKKKIIIIf", &cap, &x, &nw, &out, &rw, &rb, &scores, &ids, &es, &t, &c, &e, &k,
                          &eps)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_bf16w_rmsnorm_matmul_topk(b, P(x), P(nw), P(out), P(rw), P(rb), P(scores), P(ids), P(es), t, c, e,
                                             k, eps));
}

static PyObject* k_f32_softmax(PyObject* self, PyObject* args) {
    PyObject* cap; ull logits, argmax, prob, sum; unsigned int t, v; float temp;
    if (!PyArg_ParseTuple(args, "OKKKKIIf", &cap, &logits, &argmax, &prob, &sum, &t, &v, &temp)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_softmax(b, P(logits), P(argmax), P(prob), P(sum), t, v, temp));
}

static PyObject* k_f32_sample(PyObject* self, PyObject* args) {
    PyObject* cap; ull prob, sum, pred, seed, offset; unsigned int v;
    if (!PyArg_ParseTuple(args, "OKKKIKK", &cap, &prob, &sum, &pred, &v, &seed, &offset)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_sample(b, P(prob), P(sum), P(pred), v, seed, offset));
}

static PyObject* k_f32_apply_penalties(PyObject* self, PyObject* args) {
    PyObject* cap; ull logits, counts, out; unsigned int v; float presence, frequency;
    if (!PyArg_ParseTuple(args, "OKKKIff", &cap, &logits, &counts, &out, &v, &presence, &frequency)) return NULL;
    BACKEND(cap);
    RUN(gptoss_f32_apply_penalties(b, P(logits), P(counts), P(out), v, presence, frequency));
}

static PyObject* k_f32_sample_logits(PyObject* self, PyObject* args) {
    PyObject* cap; ull logits, pred, seed, offset; unsigned int v, top_k; float temp, top_p;
    if (!PyArg_ParseTuple(args, "OKKIfIfKK", &cap, &logits, &pred, &v, &temp, &top_k, &top_p, &seed, &offset)) {
        return NULL;
    }
    BACKEND(cap);
    RUN(gptoss_f32_sample_logits(b, P(logits), P(pred), v, temp, top_k, top_p, seed, offset));
}

static PyObject* set_row_order(PyObject* self, PyObject* args) {
    PyObject* cap;
    int order;
    if (!PyArg_ParseTuple(args, "Oi", &cap, &order)) return NULL;
    BACKEND(cap);
    RUN(gptoss_backend_set_row_order(b, (enum gptoss_row_order) order));
}

static PyObject* get_row_order(PyObject* self, PyObject* args) {
    PyObject* cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    BACKEND(cap);
    return PyLong_FromLong((long) gptoss_backend_get_row_order(b));
}

static PyObject* k_synchronize(PyObject* self, PyObject* args) {
    PyObject* cap;
    if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
    BACKEND(cap);
    RUN(gptoss_backend_synchronize(b));
}

#define K(name) {#name, k_##name, METH_VARARGS, NULL}
static PyMethodDef methods[] = {
    {"dlpack_info", dlpack_info, METH_VARARGS, "Describe a __dlpack__ tensor as a tuple."},
    {"create_cpu_backend", create_cpu_backend, METH_VARARGS, "CPU backend capsule."},
    {"create_cuda_backend", create_cuda_backend, METH_VARARGS, "CUDA backend capsule on (device, stream)."},
    {"backend_name", backend_name, METH_VARARGS, "Name of a backend."},
    {"set_row_order", set_row_order, METH_VARARGS, "gptoss_backend_set_row_order(backend, order)."},
    {"get_row_order", get_row_order, METH_VARARGS, "gptoss_backend_get_row_order(backend)."},
    K(synchronize),
    K(u32_fill_random), K(f32_fill_random), K(bf16_fill_random), K(mf4_f32_convert), K(bf16_f32_embeddings),
    K(f32_bf16w_rmsnorm), K(f32_bf16w_matmul), K(f32_bf16w_matmul_add), K(f32_bf16w_dense_matmul_qkv),
    K(f32_bf16w_dense_matmul_attn_output), K(f32_bf16w_dense_matmul_mlp_gate), K(f32_bf16w_matmul_qkv),
    K(f32_rope), K(f32_sdpa), K(f32_bf16w_matmul_qkv_varlen), K(f32_sdpa_varlen), K(f32_bf16w_unembedding), K(f32_topk), K(expert_routing_metadata), K(f32_scatter),
    K(f32_mf4w_moe_matmul_swiglu), K(f32_mf4w_moe_matmul), K(f32_mf4w_moe_dense_matmul_swiglu),
    K(f32_mf4w_moe_dense_matmul), K(f32_gather_and_accumulate), K(f32_accumulate), K(f32_softmax), K(f32_sample),
    K(f32_apply_penalties), K(f32_sample_logits), K(f32_accumulate_bf16w_rmsnorm), K(f32_bf16w_rmsnorm_matmul_topk),
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods, NULL, NULL, NULL, NULL};

/* built_with_cuda: 1 when setup.py linked the library's CUDA backend into this extension
 * (it defines GPTOSS_WITH_CUDA=1 for this file then), 0 for a CPU-only build. */
#ifndef GPTOSS_WITH_CUDA
#define GPTOSS_WITH_CUDA 0
#endif

PyMODINIT_FUNC PyInit__native(void) {
    PyObject* m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "built_with_cuda", GPTOSS_WITH_CUDA) != 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
