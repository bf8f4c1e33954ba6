"""Lays the installed package out for the Hugging Face ``kernels`` loader.

    python -m gpt_oss_kernels.build_kernels_layout OUTDIR [--name gpt_oss_kernels]

writes

    OUTDIR/build/torch-universal/metadata.json
    OUTDIR/build/torch-universal/gpt_oss_kernels/__init__.py, ops.py, _tensors.py,
                                                 _native.abi3.so (the compiled extension)

so that ``kernels.get_local_kernel(Path(OUTDIR), "gpt_oss_kernels")`` (kernels < 0.11) or
``kernels.get_local_kernel(Path(OUTDIR))`` (newer releases, which read the package name
from metadata.json) returns a module with the seed's functions. The package uses only
relative imports, so it works under the module name the loader gives it. The variant is
"torch-universal" because nothing in it depends on a torch version or ABI (no libtorch;
tensors are taken through DLPack); the extension itself is built for this machine (CPU,
and CUDA when the wheel was built with it).
"""
import argparse
import json
import os
import shutil
import sys

VARIANT = "torch-universal"
PACKAGE_FILES = ("__init__.py", "ops.py", "_tensors.py")


def _package_dir():
    return os.path.dirname(os.path.abspath(__file__))


def _extension_path():
    from . import _native
    return os.path.abspath(_native.__file__)


def extension_has_cuda(path=None):
    """Whether the compiled extension contains the CUDA backend (it links the CUDA runtime
    statically, so the runtime's entry points are in the file)."""
    with open(path or _extension_path(), "rb") as f:
        data = f.read()
    return b"cudaLaunchKernel" in data or b"cudaGetDeviceCount" in data


def metadata(name, version, backend):
    """metadata.json of the variant. Old loaders read only "python-depends" (and
    "version"); newer ones (kernels_data's Metadata) require name (kebab-case), id,
    version, license, python-depends and backend.type (one of cpu, cuda, ...: there is
    no "universal" backend type; the variant directory name marks it universal)."""
    return {
        "name": name.replace("_", "-"),
        "id": "%s_%s" % (name, version.replace(".", "_")),
        "version": 1,
        "license": "Apache-2.0",
        "python-depends": [],
        "backend": {"type": backend},
    }


def build(outdir, name="gpt_oss_kernels", backend="auto"):
    from . import __version__
    variant_dir = os.path.join(os.path.abspath(outdir), "build", VARIANT)
    package_dir = os.path.join(variant_dir, name)
    if os.path.exists(package_dir):
        shutil.rmtree(package_dir)
    os.makedirs(package_dir)
    for filename in PACKAGE_FILES:
        shutil.copy2(os.path.join(_package_dir(), filename), os.path.join(package_dir, filename))
    extension = _extension_path()
    shutil.copy2(extension, os.path.join(package_dir, os.path.basename(extension)))
    if backend == "auto":
        backend = "cuda" if extension_has_cuda(extension) else "cpu"
    with open(os.path.join(variant_dir, "metadata.json"), "w") as f:
        json.dump(metadata(name, __version__, backend), f, indent=2)
        f.write("\n")
    return package_dir


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gpt_oss_kernels.build_kernels_layout",
                                     description="Write a Hugging Face kernels layout of gpt_oss_kernels.")
    parser.add_argument("outdir", help="repository directory to write (OUTDIR/build/%s/...)" % VARIANT)
    parser.add_argument("--name", default="gpt_oss_kernels", help="package name inside the variant directory")
    parser.add_argument("--backend", default="auto", choices=("auto", "cpu", "cuda"),
                        help="backend.type in metadata.json (auto: cuda if the extension was built with CUDA)")
    args = parser.parse_args(argv)
    package_dir = build(args.outdir, args.name, args.backend)
    print(package_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
