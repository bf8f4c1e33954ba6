"""Builds gpt_oss_kernels._native (CPython stable ABI, abi3 wheel for 3.8+) against the
static C library, which is built here with CMake from the repository root.

Environment:
  GPTOSS_CUDA=ON|OFF      force the CUDA backend on or off (default: on when nvcc is found)
  GPTOSS_CMAKE_BUILD_DIR  reuse this CMake build directory (default: a fresh temp dir)
  GPTOSS_CMAKE_ARGS       extra arguments for the CMake configure step
  CMAKE_BUILD_PARALLEL_LEVEL  build jobs (default: number of CPUs)
"""
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def _find_nvcc():
    for candidate in (os.environ.get("CUDACXX"), shutil.which("nvcc"),
                      os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return None


def _cuda_setting():
    """(enabled, nvcc path)."""
    value = os.environ.get("GPTOSS_CUDA", "").strip().upper()
    nvcc = _find_nvcc()
    if value in ("OFF", "0", "NO", "FALSE"):
        return False, None
    if value in ("ON", "1", "YES", "TRUE"):
        if nvcc is None:
            sys.exit("GPTOSS_CUDA=ON but nvcc was not found (set CUDACXX or CUDA_HOME)")
        return True, nvcc
    return nvcc is not None, nvcc


def _cuda_lib_dir(nvcc):
    root = os.path.dirname(os.path.dirname(nvcc))
    for sub in ("lib64", "lib", os.path.join("targets", "x86_64-linux", "lib"),
                os.path.join("targets", "sbsa-linux", "lib")):
        d = os.path.join(root, sub)
        if os.path.exists(os.path.join(d, "libcudart_static.a")) or os.path.exists(os.path.join(d, "libcudart.so")):
            return d
    return os.path.join(root, "lib64")


class CMakeBuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        # The library is rebuilt by CMake every time; never reuse a stale extension from
        # an earlier build (e.g. one made with the other GPTOSS_CUDA setting).
        self.force = True

    def build_extension(self, ext):
        cuda, nvcc = _cuda_setting()
        build_dir = os.environ.get("GPTOSS_CMAKE_BUILD_DIR")
        temporary = build_dir is None
        if temporary:
            build_dir = tempfile.mkdtemp(prefix="gptoss-cmake-")
        try:
            configure = [
                "cmake", "-S", ROOT, "-B", build_dir,
                "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DGPTOSS_BUILD_TESTS=OFF", "-DGPTOSS_BUILD_BENCH=OFF", "-DGPTOSS_BUILD_ENGINE=OFF",
                "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
                "-DGPTOSS_CUDA=" + ("ON" if cuda else "OFF"),
            ]
            if cuda:
                configure.append("-DCMAKE_CUDA_COMPILER=" + nvcc)
            configure += shlex.split(os.environ.get("GPTOSS_CMAKE_ARGS", ""))
            jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
            print("gpt_oss_kernels: CUDA backend %s" % ("ON (%s)" % nvcc if cuda else "OFF"))
            subprocess.check_call(configure)
            subprocess.check_call(["cmake", "--build", build_dir, "--target", "gptoss", "-j", jobs])
            library = os.path.join(build_dir, "libgptoss.a")
            if not os.path.exists(library):
                sys.exit("gpt_oss_kernels: CMake did not produce %s" % library)
            ext.include_dirs.append(os.path.join(ROOT, "include"))
            ext.extra_objects = [library]
            ext.libraries = ["pthread", "m"]
            if cuda:
                ext.define_macros.append(("GPTOSS_WITH_CUDA", "1"))  # _native.built_with_cuda
                ext.library_dirs.append(_cuda_lib_dir(nvcc))
                # Static CUDA runtime: the module needs only the driver (libcuda.so) at run time.
                ext.libraries = ["cudart_static", "stdc++", "dl", "rt"] + ext.libraries
            super().build_extension(ext)
        finally:
            if temporary:
                shutil.rmtree(build_dir, ignore_errors=True)


setup(
    ext_modules=[
        Extension(
            "gpt_oss_kernels._native",
            sources=["python/gpt_oss_kernels/_native.c"],
            py_limited_api=True,
        )
    ],
    cmdclass={"build_ext": CMakeBuildExt},
    options={"bdist_wheel": {"py_limited_api": "cp38"}},
)
