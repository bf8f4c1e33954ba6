"""Lays the installed package out for the Hugging Face ``kernels`` loader.

    python -m gpt_oss_kernels.build_kernels_layout OUTDIR [--name gpt_oss_kernels]

writes

    OUTDIR/build/torch-universal/metadata.json
    OUTDIR/build/torch-universal/gpt_oss_kernels/__init__.py, ops.py, _tensors.py,
                                                 _native.abi3.so (the compiled extension)

so that ``kernels.get_local_kernel(Path(OUTDIR))`` (kernels 0.19: the path, then keywords
only, such as ``backend="cpu"``; the package name comes from metadata.json) returns a
module with the seed's functions. The package uses only relative imports, so it works
under the module name the loader gives it. The variant is "torch-universal" because
nothing in it depends on a torch version or ABI (no libtorch; tensors are taken through
DLPack). metadata.json records

* backend.type: "cuda" when the extension was built with the CUDA backend (it then also
  runs CPU tensors), else "cpu" (from the extension itself: ``_native.built_with_cuda``);
* digest: the SHA-256 of every file of the variant (base64, by path relative to the
  variant directory; metadata.json itself excluded), which the loader checks: a changed,
  missing or extra file refuses to load.

The variant directory is written beside the old one and then renamed over it, so a
failed run leaves the old layout as it was.
"""
import argparse
import base64
import hashlib
import json
import os
import shutil
import sys
import tempfile

VARIANT = "torch-universal"
PACKAGE_FILES = ("__init__.py", "ops.py", "_tensors.py")


def _package_dir():
    return os.path.dirname(os.path.abspath(__file__))


def built_backend():
    """"cuda" if the installed extension contains the CUDA backend, else "cpu"."""
    from . import _native
    return "cuda" if _native.built_with_cuda else "cpu"


def file_digest(path):
    """SHA-256 of a file, base64 (standard alphabet, padded), as the loader writes it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return base64.b64encode(h.digest()).decode("ascii")


def variant_digest(variant_dir):
    """{"algorithm": "sha256", "files": {relative path: digest}} of every file under
    variant_dir except metadata.json and __pycache__ directories (the loader skips both)."""
    files = {}
    for root, dirs, names in os.walk(variant_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, variant_dir).replace(os.sep, "/")
            if relative != "metadata.json":
                files[relative] = file_digest(path)
    return {"algorithm": "sha256", "files": files}


def metadata(name, version, backend, digest):
    """metadata.json of the variant. The loader (kernels 0.19) requires name (kebab-case),
    id, version, license, python-depends and backend.type (cpu, cuda, ...: there is no
    "universal" backend type; the variant directory name marks it universal), and warns
    when there is no digest."""
    return {
        "name": name.replace("_", "-"),
        "id": "%s_%s" % (name, version.replace(".", "_")),
        "version": 1,
        "license": "Apache-2.0",
        "python-depends": [],
        "backend": {"type": backend},
        "digest": digest,
    }


def build(outdir, name="gpt_oss_kernels"):
    """Writes OUTDIR/build/torch-universal; returns the package directory in it."""
    from . import __version__, _native
    build_dir = os.path.join(os.path.abspath(outdir), "build")
    variant_dir = os.path.join(build_dir, VARIANT)
    os.makedirs(build_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".%s-new-" % VARIANT, dir=build_dir)
    try:
        package_dir = os.path.join(staging, name)
        os.makedirs(package_dir)
        for filename in PACKAGE_FILES:
            shutil.copy2(os.path.join(_package_dir(), filename), os.path.join(package_dir, filename))
        extension = os.path.abspath(_native.__file__)
        shutil.copy2(extension, os.path.join(package_dir, os.path.basename(extension)))
        meta = metadata(name, __version__, built_backend(), variant_digest(staging))
        with open(os.path.join(staging, "metadata.json"), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        os.chmod(staging, 0o755)  # mkdtemp made it 0700
        if not os.path.exists(variant_dir):
            os.rename(staging, variant_dir)
        else:
            old = tempfile.mkdtemp(prefix=".%s-old-" % VARIANT, dir=build_dir)
            os.rename(variant_dir, os.path.join(old, VARIANT))
            try:
                os.rename(staging, variant_dir)
            except BaseException:
                os.rename(os.path.join(old, VARIANT), variant_dir)
                os.rmdir(old)
                raise
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return os.path.join(variant_dir, name)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gpt_oss_kernels.build_kernels_layout",
                                     description="Write a Hugging Face kernels layout of gpt_oss_kernels "
                                                 "(load it with kernels.get_local_kernel(Path(OUTDIR))).")
    parser.add_argument("outdir", help="repository directory to write (OUTDIR/build/%s/...)" % VARIANT)
    parser.add_argument("--name", default="gpt_oss_kernels", help="package name inside the variant directory")
    args = parser.parse_args(argv)
    package_dir = build(args.outdir, args.name)
    print(package_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
