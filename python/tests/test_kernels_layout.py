"""The Hugging Face `kernels` layout: built with `python -m gpt_oss_kernels.build_kernels_layout`,
imported the way the loader imports it (a module name of its own, from the variant dir),
and through kernels.get_local_kernel (the version tools/setup.sh pins), running the seed's
first example through the module the loader returns. No network is used."""
import base64
import hashlib
import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpt_oss_kernels
import test_seed_examples as examples
from gpt_oss_kernels import _native
from test_seed_examples import TORCH_DEVICES

SEED_OPS = ["f32_bf16w_matmul", "f32_bf16w_matmul_add", "f32_bf16w_dense_matmul_qkv",
            "f32_bf16w_dense_matmul_attn_output", "f32_bf16w_dense_matmul_mlp_gate", "f32_bf16w_rmsnorm",
            "bf16_f32_embeddings", "f32_rope", "f32_bf16w_matmul_qkv", "f32_sdpa", "f32_topk",
            "expert_routing_metadata", "f32_scatter"]
PACKAGE_FILES = ["gpt_oss_kernels/__init__.py", "gpt_oss_kernels/_tensors.py", "gpt_oss_kernels/ops.py",
                 "gpt_oss_kernels/" + Path(_native.__file__).name]


def _build(out):
    subprocess.check_call([sys.executable, "-m", "gpt_oss_kernels.build_kernels_layout", str(out)])
    return out / "build" / "torch-universal"


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    out = tmp_path_factory.mktemp("kernels-repo")
    _build(out)
    return out


def _metadata(layout):
    return json.loads((layout / "build" / "torch-universal" / "metadata.json").read_text())


def test_layout_files(layout):
    variant = layout / "build" / "torch-universal"
    pkg = variant / "gpt_oss_kernels"
    assert sorted(str(p.relative_to(variant)) for p in variant.rglob("*") if p.is_file()) == \
        sorted(PACKAGE_FILES + ["metadata.json"])
    meta = _metadata(layout)
    assert meta["name"] == "gpt-oss-kernels" and meta["python-depends"] == []
    # relative imports only
    for f in pkg.glob("*.py"):
        text = f.read_text()
        assert "import gpt_oss_kernels" not in text and "from gpt_oss_kernels" not in text, f


def test_layout_records_the_built_backend(layout):
    """backend.type is what the extension was built with; built_with_cuda tells the truth:
    a CPU-only extension refuses to create a CUDA backend because it has none."""
    expected = "cuda" if _native.built_with_cuda else "cpu"
    assert _metadata(layout)["backend"] == {"type": expected}
    if not _native.built_with_cuda:
        with pytest.raises(RuntimeError, match="this build has no CUDA backend"):
            _native.create_cuda_backend(0, 0)


def test_layout_digest_matches_the_files(layout):
    """The digest lists every file but metadata.json: SHA-256, base64 (recomputed here
    with hashlib; the loader's own check is in test_get_local_kernel)."""
    variant = layout / "build" / "torch-universal"
    digest = _metadata(layout)["digest"]
    assert digest["algorithm"] == "sha256"
    assert sorted(digest["files"]) == sorted(PACKAGE_FILES)
    for relative, value in digest["files"].items():
        assert value == base64.b64encode(hashlib.sha256((variant / relative).read_bytes()).digest()).decode()


def test_layout_rebuild_replaces_the_variant(tmp_path):
    """A rebuild over an old layout leaves no stray file (a stray file fails the digest)
    and no staging directory."""
    variant = _build(tmp_path)
    (variant / "gpt_oss_kernels" / "stale.py").write_text("x = 1\n")
    _build(tmp_path)
    assert not (variant / "gpt_oss_kernels" / "stale.py").exists()
    assert [p.name for p in (tmp_path / "build").iterdir()] == ["torch-universal"]


def test_layout_imports_under_another_name(layout):
    init = layout / "build" / "torch-universal" / "gpt_oss_kernels" / "__init__.py"
    name = "gpt_oss_kernels_layout_test"
    spec = importlib.util.spec_from_file_location(name, init)
    m = importlib.util.module_from_spec(spec)
    sys.modules[name] = m
    spec.loader.exec_module(m)
    assert m._native.__name__ == name + "._native"
    for op in SEED_OPS:
        assert callable(getattr(m, op)), op


@pytest.fixture(scope="module")
def loaded(layout):
    """The module kernels.get_local_kernel returns for the layout: the README's call."""
    kernels = pytest.importorskip("kernels", reason="the Hugging Face kernels package is not installed "
                                                    "(tools/setup.sh installs it)")
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("kernels")
    logger.addHandler(handler)
    try:
        module = kernels.get_local_kernel(Path(layout))
    finally:
        logger.removeHandler(handler)
    # e.g. "the metadata does not record a digest, so its integrity cannot be verified"
    assert [r.getMessage() for r in records] == [], "the loader warned"
    return module


def test_get_local_kernel(loaded, layout):
    assert Path(loaded.__file__).parent == layout / "build" / "torch-universal" / "gpt_oss_kernels"
    assert loaded is not gpt_oss_kernels and loaded._native is not _native
    for op in SEED_OPS:
        assert callable(getattr(loaded, op)), op


def test_get_local_kernel_seed_example1_numpy(loaded, monkeypatch):
    monkeypatch.setattr(examples, "gpt_oss_kernels", loaded)
    examples.test_example1_matmul_numpy()


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_get_local_kernel_seed_example1_torch(loaded, monkeypatch, device):
    monkeypatch.setattr(examples, "gpt_oss_kernels", loaded)
    examples.test_example1_matmul_torch(device)


def test_get_local_kernel_refuses_a_changed_file(tmp_path):
    """The loader checks the digest: a modified file does not load."""
    kernels = pytest.importorskip("kernels", reason="the Hugging Face kernels package is not installed "
                                                    "(tools/setup.sh installs it)")
    variant = _build(tmp_path)
    with open(variant / "gpt_oss_kernels" / "ops.py", "a") as f:
        f.write("\n# changed\n")
    with pytest.raises(RuntimeError, match="do not match the digest"):
        kernels.get_local_kernel(tmp_path)
