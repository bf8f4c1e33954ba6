"""The Hugging Face `kernels` layout: built with `python -m gpt_oss_kernels.build_kernels_layout`,
imported the way the loader imports it (a module name of its own, from the variant dir),
and through kernels.get_local_kernel when the `kernels` package is installed."""
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SEED_OPS = ["f32_bf16w_matmul", "f32_bf16w_matmul_add", "f32_bf16w_dense_matmul_qkv",
            "f32_bf16w_dense_matmul_attn_output", "f32_bf16w_dense_matmul_mlp_gate", "f32_bf16w_rmsnorm",
            "bf16_f32_embeddings", "f32_rope", "f32_bf16w_matmul_qkv", "f32_sdpa", "f32_topk",
            "expert_routing_metadata", "f32_scatter"]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    out = tmp_path_factory.mktemp("kernels-repo")
    subprocess.check_call([sys.executable, "-m", "gpt_oss_kernels.build_kernels_layout", str(out)])
    return out


def _check_module(m):
    for name in SEED_OPS:
        assert callable(getattr(m, name)), name
    x = np.ones((1, 4), np.float32)
    w = np.full((4, 2), 0x3F80, np.uint16)  # bf16 1.0, [in][out]
    out = np.full((1, 2), np.nan, np.float32)
    assert m.f32_bf16w_matmul(x, w, None, out, 1, 4, 2) is out
    np.testing.assert_array_equal(out, [[4.0, 4.0]])


def test_layout_files(layout):
    variant = layout / "build" / "torch-universal"
    pkg = variant / "gpt_oss_kernels"
    assert (pkg / "__init__.py").exists() and (pkg / "ops.py").exists()
    assert list(pkg.glob("_native*.so"))
    meta = json.loads((variant / "metadata.json").read_text())
    assert meta["name"] == "gpt-oss-kernels" and meta["python-depends"] == []
    assert meta["backend"]["type"] in ("cpu", "cuda")
    # relative imports only
    for f in pkg.glob("*.py"):
        text = f.read_text()
        assert "import gpt_oss_kernels" not in text and "from gpt_oss_kernels" not in text, f


def test_layout_imports_under_another_name(layout):
    init = layout / "build" / "torch-universal" / "gpt_oss_kernels" / "__init__.py"
    name = "gpt_oss_kernels_layout_test"
    spec = importlib.util.spec_from_file_location(name, init)
    m = importlib.util.module_from_spec(spec)
    sys.modules[name] = m
    spec.loader.exec_module(m)
    assert m._native.__name__ == name + "._native"
    _check_module(m)


def load_with_kernels(path):
    """kernels.get_local_kernel across its API versions: (repo_path, package_name) in older
    releases, (repo_path) in newer ones (the name comes from metadata.json)."""
    import kernels
    params = inspect.signature(kernels.get_local_kernel).parameters
    if "package_name" in params:
        return kernels.get_local_kernel(Path(path), "gpt_oss_kernels")
    return kernels.get_local_kernel(Path(path))


def test_get_local_kernel(layout):
    pytest.importorskip("kernels", reason="the Hugging Face kernels package is not installed")
    try:
        m = load_with_kernels(layout)
    except (AssertionError, ImportError) as e:  # older kernels need torch with an accelerator
        pytest.skip("kernels cannot pick a build variant here: %s" % e)
    _check_module(m)
