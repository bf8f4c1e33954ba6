"""gpt_oss_kernels: the gpt-oss inference kernels on CPU and CUDA tensors.

The ops keep the names, argument orders and in-place outputs of the
``gpt_oss_metal_kernels`` package (kernels-community), and return their outputs; see
``gpt_oss_kernels.ops`` for the conventions (dtypes, the seed's ``[in][out]`` weights,
devices and streams, ignored ``threadgroup_size``). Tensors are taken through DLPack:
torch (CPU or CUDA), numpy (uint16 arrays stand for bf16), cupy, ... No libtorch is
linked; numpy is optional.

Only relative imports are used, so the package also loads from a Hugging Face
``kernels`` layout (``python -m gpt_oss_kernels.build_kernels_layout OUTDIR``).
"""

from . import ops
from ._tensors import backend_name, get_row_order, set_row_order, synchronize
from .ops import *  # noqa: F401,F403

__version__ = "0.1.0"

__all__ = list(ops.__all__) + ["ops", "synchronize", "backend_name", "set_row_order", "get_row_order"]
