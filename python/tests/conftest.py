"""Test fixtures: the same tests run on numpy arrays (CPU), torch CPU tensors and torch CUDA
tensors (the torch ones are skipped with a reason when torch or CUDA is missing)."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import torch
except ImportError:  # numpy-only environment
    torch = None

import gpt_oss_kernels  # noqa: E402


def torch_cuda_available():
    return torch is not None and torch.cuda.is_available()


class NumpyLib(object):
    name = "numpy"
    device = "cpu"

    def f32(self, a):
        return np.array(a, dtype=np.float32, order="C", copy=True)

    def bf16(self, bits):
        return np.array(bits, dtype=np.uint16, order="C", copy=True)

    def u32(self, a):
        return np.array(a, dtype=np.uint32, order="C", copy=True)

    def i32(self, a):
        return np.array(a, dtype=np.int32, order="C", copy=True)

    def i64(self, a):
        return np.array(a, dtype=np.int64, order="C", copy=True)

    def u8(self, a):
        return np.array(a, dtype=np.uint8, order="C", copy=True)

    def nan(self, shape):
        return np.full(shape, np.nan, dtype=np.float32)

    def ids_out(self, shape):
        return np.full(shape, 0xFFFFFFFF, dtype=np.uint32)

    def T(self, t):
        return t.T

    def get(self, t):
        return np.array(t, copy=True)

    def sync(self):
        pass


class TorchLib(object):
    def __init__(self, device):
        self.device = device
        self.name = "torch-" + device.split(":")[0]

    def _put(self, a):
        # Always a copy: on CPU, from_numpy(...).to("cpu") would share memory with the
        # test's own numpy array (which the references read).
        return torch.from_numpy(np.array(a, order="C", copy=True)).to(self.device)

    def f32(self, a):
        return self._put(np.asarray(a, dtype=np.float32))

    def bf16(self, bits):
        return self._put(np.asarray(bits, dtype=np.uint16).view(np.int16)).view(torch.bfloat16)

    def u32(self, a):
        return self._put(np.asarray(a, dtype=np.uint32).view(np.int32))

    def i32(self, a):
        return self._put(np.asarray(a, dtype=np.int32))

    def i64(self, a):
        return self._put(np.asarray(a, dtype=np.int64))

    def u8(self, a):
        return self._put(np.asarray(a, dtype=np.uint8))

    def nan(self, shape):
        return torch.full(shape, float("nan"), dtype=torch.float32, device=self.device)

    def ids_out(self, shape):
        return torch.full(shape, -1, dtype=torch.int32, device=self.device)

    def T(self, t):
        return t.t()

    def get(self, t):
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16).copy()
        if t.dtype == torch.int32:
            return t.numpy().view(np.uint32).copy()
        return t.numpy().copy()

    def sync(self):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            gpt_oss_kernels.synchronize()


LIB_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("torch-cpu", id="torch-cpu",
                 marks=pytest.mark.skipif(torch is None, reason="torch is not installed")),
    pytest.param("torch-cuda", id="torch-cuda",
                 marks=pytest.mark.skipif(not torch_cuda_available(), reason="torch with a CUDA device is not available")),
]


@pytest.fixture(params=LIB_PARAMS)
def lib(request):
    if request.param == "numpy":
        return NumpyLib()
    if request.param == "torch-cpu":
        return TorchLib("cpu")
    return TorchLib("cuda")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
