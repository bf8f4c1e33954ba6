"""Tensor plumbing for gpt_oss_kernels.ops: DLPack description, argument checks, backends.

Everything here works on any object with ``__dlpack__`` (torch, numpy, cupy, jax, ...);
no array library is imported. Library-specific code is limited to the two conversions
the seed's conventions need (transposing an ``[in][out]`` weight, range-checking and
narrowing int64 token ids), done with the tensor's own library.
"""

import math
import operator
import os
import sys
import threading

from . import _native

# DLPack device types and dtype codes.
_DEVICE_CPU = 1
_DEVICE_CUDA = 2
_DEVICE_CUDA_HOST = 3
_DEVICE_CUDA_MANAGED = 13

_CODE_INT = 0
_CODE_UINT = 1
_CODE_FLOAT = 2
_CODE_BFLOAT = 4

_DTYPE_NAMES = {
    (_CODE_INT, 8): "int8", (_CODE_INT, 16): "int16", (_CODE_INT, 32): "int32", (_CODE_INT, 64): "int64",
    (_CODE_UINT, 8): "uint8", (_CODE_UINT, 16): "uint16", (_CODE_UINT, 32): "uint32", (_CODE_UINT, 64): "uint64",
    (_CODE_FLOAT, 16): "float16", (_CODE_FLOAT, 32): "float32", (_CODE_FLOAT, 64): "float64",
    (_CODE_BFLOAT, 16): "bfloat16", (6, 8): "bool",
}

# Accepted element types: name used in messages -> set of (code, bits).
F32 = ("float32", {(_CODE_FLOAT, 32)})
BF16 = ("bfloat16 (or uint16 holding bfloat16 bits)", {(_CODE_BFLOAT, 16), (_CODE_UINT, 16)})
U32 = ("int32 or uint32", {(_CODE_INT, 32), (_CODE_UINT, 32)})
U8 = ("uint8", {(_CODE_UINT, 8), (_CODE_INT, 8)})
# bf16 bias given as raw bytes of an interleaved MXFP4 expert buffer.
BF16_OR_BYTES = ("bfloat16, uint16 or uint8 (raw bytes)", {(_CODE_BFLOAT, 16), (_CODE_UINT, 16), (_CODE_UINT, 8)})
IDS = ("int32, uint32 or int64", {(_CODE_INT, 32), (_CODE_UINT, 32), (_CODE_INT, 64)})

U32_MAX = 0xFFFFFFFF
U64_MAX = 0xFFFFFFFFFFFFFFFF


def _dtype_name(code, bits, lanes):
    name = _DTYPE_NAMES.get((code, bits), "dtype(code=%d, bits=%d)" % (code, bits))
    return name if lanes == 1 else "%sx%d" % (name, lanes)


def _device_name(device):
    kind, index = device
    if kind == _DEVICE_CPU:
        return "cpu"
    if kind == _DEVICE_CUDA:
        return "cuda:%d" % index
    return "dlpack-device(%d, %d)" % (kind, index)


# ---------------------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------------------

def count(value, name, minimum=1, maximum=U32_MAX):
    """An integer argument in [minimum, maximum] (numpy/torch integer scalars accepted)."""
    if isinstance(value, bool):
        raise ValueError("%s must be an integer, got %r" % (name, value))
    try:
        v = operator.index(value)
    except TypeError:
        if hasattr(value, "item"):
            try:
                v = operator.index(value.item())
            except TypeError:
                raise ValueError("%s must be an integer, got %r" % (name, value)) from None
        else:
            raise ValueError("%s must be an integer, got %r" % (name, value)) from None
    if v < minimum or v > maximum:
        if minimum == 1 and v == 0:
            raise ValueError("%s must be at least 1, got 0" % name)
        raise ValueError("%s %d is out of range [%d, %d]" % (name, v, minimum, maximum))
    return v


def real(value, name):
    """A float argument (passed to C as f32)."""
    if isinstance(value, bool):
        raise ValueError("%s must be a number, got %r" % (name, value))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("%s must be a number, got %r" % (name, value)) from None


def threadgroup(value):
    """threadgroup_size: accepted for compatibility with the seed, ignored (each backend picks
    its own launch geometry). Must still be a non-negative integer."""
    return count(value, "threadgroup_size", minimum=0)


def library_error(op, error):
    """The exception for a failure the C library reported while running op: the same kind
    (ValueError for bad arguments, RuntimeError otherwise), the op's name in front of the
    library's message."""
    kind = ValueError if isinstance(error, ValueError) else RuntimeError
    return kind("%s: %s" % (op, error))


# ---------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------

_lock = threading.Lock()
_cpu_backend = None
_cuda_backends = {}
_ROW_ORDERS = ("auto", "one", "many")
_row_orders = {}  # "cpu" or a CUDA device index -> the order set by set_row_order


def cpu_backend():
    global _cpu_backend
    with _lock:
        if _cpu_backend is None:
            threads = int(os.environ.get("GPTOSS_CPU_THREADS", "0") or 0)
            _cpu_backend = _native.create_cpu_backend(threads)
            if _row_orders.get("cpu", 0):
                _native.set_row_order(_cpu_backend, _row_orders["cpu"])
        return _cpu_backend


def cuda_backend(device_index, stream):
    key = (device_index, stream)
    with _lock:
        backend = _cuda_backends.get(key)
        if backend is None:
            backend = _native.create_cuda_backend(device_index, stream)
            if _row_orders.get(device_index, 0):
                _native.set_row_order(backend, _row_orders[device_index])
            _cuda_backends[key] = backend
        return backend


def _device_key(device):
    text = str(device)
    if text.startswith("cuda"):
        return int(text.split(":")[1]) if ":" in text else 0
    if text.startswith("cpu"):
        return "cpu"
    raise ValueError(f"device {device!r} is not 'cpu' or 'cuda[:N]'")


def set_row_order(order, device="cpu"):
    """How the ops on `device` ("cpu" or "cuda:N") choose their arithmetic for several rows
    (tokens); the C library's gptoss_backend_set_row_order. "auto" (the default): the
    fastest kernels for each call's shape, a row's last bits may depend on how many rows
    share the call (CUDA). "one": every row bitwise as in a call of that row alone. "many":
    every row bitwise the same for any number of rows (the prefill kernels' arithmetic).
    On the CPU every order computes the same bits. Applies to the calls made after it,
    on every stream of that device."""
    if order not in _ROW_ORDERS:
        raise ValueError(f"row order {order!r} is not one of {', '.join(_ROW_ORDERS)}")
    key = _device_key(device)
    value = _ROW_ORDERS.index(order)
    with _lock:
        _row_orders[key] = value
        if key == "cpu":
            backends = [_cpu_backend] if _cpu_backend is not None else []
        else:
            backends = [b for (dev, _s), b in _cuda_backends.items() if dev == key]
    try:
        for backend in backends:
            _native.set_row_order(backend, value)
    except (ValueError, RuntimeError) as error:
        raise library_error("set_row_order", error) from None


def get_row_order(device="cpu"):
    """The row order of `device` (set_row_order): "auto", "one" or "many"."""
    with _lock:
        return _ROW_ORDERS[_row_orders.get(_device_key(device), 0)]


def cuda_stream(device_index):
    """The cudaStream_t (as an int) that work on this device goes to: torch's current
    stream when torch is imported, else 0 (the legacy default stream)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return int(torch.cuda.current_stream(device_index).cuda_stream)
        except Exception:  # torch without CUDA, or a device torch does not know
            return 0
    return 0


def synchronize(device=None):
    """Waits for the work enqueued by this package (all CUDA backends, or those of one
    device: an int index, "cuda:N" or a torch.device) and reports asynchronous errors
    (e.g. an out-of-range token id found by a CUDA kernel) as ValueError. CPU work is
    always complete when an op returns."""
    index = None
    if device is not None:
        if isinstance(device, int):
            index = device
        else:
            text = str(device)
            if text.startswith("cpu"):
                return
            index = int(text.split(":")[1]) if ":" in text else 0
    with _lock:
        items = list(_cuda_backends.items())
    for (dev, _stream), backend in items:
        if index is None or dev == index:
            try:
                _native.synchronize(backend)
            except (ValueError, RuntimeError) as error:
                raise library_error("synchronize", error) from None


def backend_name(device="cpu"):
    """Name of the backend used for tensors on `device` ("cpu" or "cuda:N")."""
    text = str(device)
    try:
        if text.startswith("cuda"):
            index = int(text.split(":")[1]) if ":" in text else 0
            return _native.backend_name(cuda_backend(index, cuda_stream(index)))
        return _native.backend_name(cpu_backend())
    except (ValueError, RuntimeError) as error:
        raise library_error("backend_name", error) from None


# ---------------------------------------------------------------------------------------
# Tensor descriptions
# ---------------------------------------------------------------------------------------

def _library(obj):
    return type(obj).__module__.split(".")[0]


def _is_torch(obj):
    return _library(obj) == "torch"


def _dlpack_device(obj):
    method = getattr(obj, "__dlpack_device__", None)
    if method is None:
        return None
    kind, index = method()
    return int(kind), int(index)


class Tensor(object):
    """What the checks need to know about one argument."""

    __slots__ = ("name", "obj", "address", "device", "code", "bits", "lanes", "shape", "strides", "read_only")

    @property
    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def itemsize(self):
        return (self.bits * self.lanes + 7) // 8

    @property
    def nbytes(self):
        return self.numel * self.itemsize

    @property
    def dtype(self):
        return _dtype_name(self.code, self.bits, self.lanes)

    def describe(self):
        return "%s (shape %s, %s)" % (self.name, tuple(self.shape), self.dtype)

    def is_contiguous(self):
        """C-contiguous: strides of dimensions of extent 1 do not matter."""
        if self.strides is None or self.numel == 0:
            return True
        expected = 1
        for extent, stride in zip(reversed(self.shape), reversed(self.strides)):
            if extent != 1 and stride != expected:
                return False
            expected *= extent
        return True


def _is_transposed_matrix(t):
    """A 2-D view whose transpose is C-contiguous (e.g. W.t() of a contiguous W)."""
    if len(t.shape) != 2:
        return False
    rows, cols = t.shape
    if t.strides is None:
        return rows == 1 or cols == 1
    s0, s1 = t.strides
    return (rows == 1 or s0 == 1) and (cols == 1 or s1 == rows)


class Call(object):
    """Collects the tensors of one op: checks each as it is added, keeps converted copies
    alive, and picks the backend of their common device."""

    def __init__(self, op):
        self.op = op
        self.device = None
        self.first = None
        self.keep = []          # temporaries that must live until the kernel has run
        self.foreign_copies = False  # CUDA temporaries not owned by torch's stream-ordered allocator
        self._stream = None

    # -- description ------------------------------------------------------------------

    def _describe(self, obj, name, writable):
        if obj is None:
            raise ValueError("%s: %s is None; a tensor is required" % (self.op, name))
        if _is_torch(obj) and getattr(obj, "requires_grad", False):
            obj = obj.detach()
        device = _dlpack_device(obj)
        stream = None
        if device is not None and device[0] == _DEVICE_CUDA:
            if self._stream is None:
                self._stream = cuda_stream(device[1])
            # DLPack: 1 names the legacy default stream (0 is reserved).
            stream = self._stream if self._stream != 0 else 1
        try:
            info = _native.dlpack_info(obj, stream)
        except BufferError as error:
            flags = getattr(obj, "flags", None)
            if flags is not None and not getattr(flags, "writeable", True):
                if writable:
                    raise ValueError("%s: %s is read-only; it is written in place" % (self.op, name)) from None
                # Older numpy cannot export read-only arrays: use a copy for an input.
                obj = obj.copy()
                info = _native.dlpack_info(obj, stream)
            else:
                raise ValueError("%s: %s cannot be exported through DLPack: %s" % (self.op, name, error)) from None
        except TypeError as error:
            raise ValueError("%s: %s: %s" % (self.op, name, error)) from None
        t = Tensor()
        t.name = name
        t.obj = obj
        (t.address, kind, index, t.code, t.bits, t.lanes, shape, strides, read_only) = info
        t.device = (kind, index)
        t.shape = tuple(shape)
        t.strides = None if strides is None else tuple(strides)
        flags = getattr(obj, "flags", None)
        t.read_only = bool(read_only) or (flags is not None and getattr(flags, "writeable", True) is False)
        return t

    def _check_device(self, t):
        kind = t.device[0]
        if kind not in (_DEVICE_CPU, _DEVICE_CUDA):
            raise ValueError("%s: %s is on %s; only CPU and CUDA tensors are supported"
                             % (self.op, t.name, _device_name(t.device)))
        if self.device is None:
            self.device = t.device
            self.first = t.name
        elif t.device != self.device:
            raise ValueError("%s: %s is on %s but %s is on %s; all tensors must be on the same device"
                             % (self.op, t.name, _device_name(t.device), self.first, _device_name(self.device)))

    def _check_dtype(self, t, dtype):
        label, accepted = dtype
        if t.lanes != 1 or (t.code, t.bits) not in accepted:
            raise ValueError("%s: %s has dtype %s; expected %s" % (self.op, t.name, t.dtype, label))

    def _check_alignment(self, t):
        size = t.itemsize
        if size > 1 and t.address % size != 0:
            raise ValueError("%s: %s address 0x%x is not %d-byte aligned" % (self.op, t.name, t.address, size))

    def tensor(self, obj, name, dtype, writable=False, contiguous=True):
        t = self._describe(obj, name, writable)
        self._check_device(t)
        self._check_dtype(t, dtype)
        if writable and t.read_only:
            raise ValueError("%s: %s is read-only; it is written in place" % (self.op, name))
        if contiguous and not t.is_contiguous():
            raise ValueError("%s: %s with shape %s and strides %s is not contiguous"
                             % (self.op, name, t.shape, t.strides))
        if t.numel == 0:
            raise ValueError("%s: %s is empty (shape %s)" % (self.op, name, t.shape))
        self._check_alignment(t)
        return t

    def optional(self, obj, name, dtype):
        return None if obj is None else self.tensor(obj, name, dtype)

    # -- shape checks -----------------------------------------------------------------

    def need(self, t, elements, what):
        """At least `elements` elements ("too small" otherwise); `what` explains the count."""
        if t.numel < elements:
            raise ValueError("%s: %s has %d elements (shape %s); %s = %d are needed"
                             % (self.op, t.name, t.numel, t.shape, what, elements))

    def matrix(self, t, rows, cols, rows_what, cols_what):
        """A row-major [rows][cols] buffer: the last dimension must be `cols` unless the
        tensor is 1-D; at least rows * cols elements."""
        if len(t.shape) >= 2 and t.shape[-1] != cols:
            raise ValueError("%s: %s has shape %s; its last dimension must be %s = %d"
                             % (self.op, t.name, t.shape, cols_what, cols))
        self.need(t, rows * cols, "%s x %s" % (rows_what, cols_what))

    def exact_shape(self, t, shape, what):
        if tuple(t.shape) != tuple(shape):
            raise ValueError("%s: %s has shape %s; expected %s %s" % (self.op, t.name, t.shape, tuple(shape), what))

    def offset(self, t, offset_bytes, offset_name, elements, what):
        """Address of t + offset_bytes after checking that elements of t's type starting there
        stay inside t."""
        off = count(offset_bytes, offset_name, minimum=0, maximum=U64_MAX)
        if off % t.itemsize != 0:
            raise ValueError("%s: %s %d is not a multiple of the %s element size %d"
                             % (self.op, offset_name, off, t.name, t.itemsize))
        need = off + elements * t.itemsize
        if need > t.nbytes:
            raise ValueError("%s: %s has %d bytes (shape %s); %s %d + %s = %d x %d bytes = %d bytes are needed"
                             % (self.op, t.name, t.nbytes, t.shape, offset_name, off, what, elements, t.itemsize,
                                need))
        return t.address + off

    def span(self, t, nbytes, what):
        if t.nbytes < nbytes:
            raise ValueError("%s: %s has %d bytes (shape %s); %s = %d bytes are needed"
                             % (self.op, t.name, t.nbytes, t.shape, what, nbytes))

    # -- conversions (with the tensor's own library) -------------------------------------

    def _note_copy(self, copy):
        self.keep.append(copy)
        if self.device is not None and self.device[0] == _DEVICE_CUDA and not _is_torch(copy):
            self.foreign_copies = True

    def weight_in_out(self, obj, name, num_cols, num_rows, cols_what="num_cols", rows_what="num_rows"):
        """The seed's [in][out] = [num_cols][num_rows] weight; returns the address of an
        [out][in] row-major copy of the data. A transposed view of a contiguous [out][in]
        tensor (W.t()) is used as it is; any other layout is copied transposed."""
        t = self.tensor(obj, name, BF16, contiguous=False)
        if tuple(t.shape) != (num_cols, num_rows):
            raise ValueError("%s: %s has shape %s; expected [%s][%s] = (%d, %d) (the seed's [in][out] layout, "
                             "y = x @ W + b; pass W.t() for an [out][in] tensor W)"
                             % (self.op, name, t.shape, cols_what, rows_what, num_cols, num_rows))
        if _is_transposed_matrix(t):
            return t.address
        copy = _transposed_copy(t.obj, self.op, name)
        self._note_copy(copy)
        c = self.tensor(copy, name + " (transposed copy)", BF16)
        if tuple(c.shape) != (num_rows, num_cols) or not c.is_contiguous():
            raise ValueError("%s: internal error: transposed copy of %s has shape %s" % (self.op, name, c.shape))
        return c.address

    def token_ids(self, obj, name):
        """u32 token ids; int64 ids are range-checked (each must fit in uint32), then
        narrowed to 32 bits (a copy)."""
        t = self.tensor(obj, name, IDS)
        if t.bits == 64:
            copy = _narrow_ids(t.obj, t.shape, self.op, name)
            self._note_copy(copy)
            t = self.tensor(copy, name + " (32-bit copy)", U32)
        return t

    # -- backend ----------------------------------------------------------------------

    def backend(self):
        if self.device is None or self.device[0] == _DEVICE_CPU:
            return cpu_backend()
        index = self.device[1]
        if self._stream is None:
            self._stream = cuda_stream(index)
        return cuda_backend(index, self._stream)

    def finish(self, backend):
        """After the kernel call: CUDA temporaries from allocators that are not ordered
        with our stream are kept alive until the work is done."""
        if self.foreign_copies:
            _native.synchronize(backend)
        self.keep = []


def _transposed_copy(obj, op, name):
    if _is_torch(obj):
        return obj.t().contiguous()
    module = sys.modules.get(_library(obj))
    ascontiguousarray = getattr(module, "ascontiguousarray", None)
    if ascontiguousarray is not None and hasattr(obj, "T"):
        return ascontiguousarray(obj.T)
    raise ValueError("%s: %s is not a transposed view of an [out][in] tensor and %s tensors cannot be "
                     "transposed here; pass W.T of a contiguous [out][in] W" % (op, name, _library(obj)))


def _index_text(index, shape):
    """A flat index as written for a tensor of this shape: "4", or "1, 2" for 2-D."""
    if len(shape) <= 1:
        return str(index)
    parts = []
    for extent in reversed(shape):
        index, rest = divmod(index, extent)
        parts.append(rest)
    return ", ".join(str(p) for p in reversed(parts))


def _narrow_ids(obj, shape, op, name):
    """A 32-bit copy of int64 token ids of this shape (torch: int32 holding the uint32 bits;
    others: uint32), made with the tensor's own library after checking that every id fits
    in uint32 (on CUDA the check waits for the device)."""
    torch = sys.modules.get("torch") if _is_torch(obj) else None
    if torch is None and not (hasattr(obj, "astype") and hasattr(obj, "argmax")):
        raise ValueError("%s: %s is int64 and %s tensors cannot be converted here; pass int32 ids"
                         % (op, name, _library(obj)))
    flat = obj.reshape(-1)
    bad = (flat < 0) | (flat > U32_MAX)
    index = int((bad.to(torch.uint8) if torch is not None else bad).argmax())  # the first bad one, else 0
    value = int(flat[index])
    if value < 0 or value > U32_MAX:
        problem = "is negative" if value < 0 else "does not fit in uint32 (token ids are 0 .. %d)" % U32_MAX
        raise ValueError("%s: %s[%s] = %d %s" % (op, name, _index_text(index, shape), value, problem))
    return obj.to(torch.int32).contiguous() if torch is not None else obj.astype("uint32")


def default_scale(head_dim):
    return 1.0 / math.sqrt(head_dim)
