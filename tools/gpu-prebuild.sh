#!/usr/bin/env bash
# Prepares, on the development machine, what a GPU session carries to the device machine
# (which has nvcc, the driver and PyTorch, but not this project's libraries, and no
# network): a CUDA build for Hopper (sm_90a) with PCRE2, jansson and libmicrohttpd linked
# statically, the binaries tools/gpu-session.sh runs (copied into .gpu/b, ~40 MB), the
# shared libraries they need that the device lacks (the GnuTLS chain of libmicrohttpd, into
# .gpu/lib) and a CUDA wheel of the Python package (.gpu/whl). Then, on the device (carry
# .gpu/b, .gpu/lib, .gpu/whl):
#
#   LD_LIBRARY_PATH=$PWD/.gpu/lib GPU_BUILD=.gpu/b GPU_WHEEL_DIR=.gpu/whl bash tools/gpu-session.sh
#
# Needs what tools/setup.sh installs (libpcre2-dev, libjansson-dev and libmicrohttpd-dev
# provide the static libraries) and nvcc. GPU_PREBUILD_DIR (default .gpu/build) is the
# build tree, kept between runs so that a rebuild compiles only what changed.
# GPU_PREV_REV=REV also builds a base revision's benchmark, CLI, harness and test_invariance
# into .gpu/prev for tools/gpu-ab.sh and tools/gpu-pending.sh (see the end).
# GPU_PREBUILD_SLIM=1: only what tools/gpu-ab.sh and tools/gpu-pending.sh run (the CLI, the
# kernel benchmark, harness, test_invariance, dump_logits; no wheel): a call carries at most
# 64 MiB with the working tree, and the full set with a base build is more. The labs go to
# .gpu/lab either way.
# GPU_PREBUILD_PACK=1: also pack .gpu/b, .gpu/lib, .gpu/whl, .gpu/prev and .gpu/alt (those present) into
# .gpu/carry.tar.xz, so that a call carries them all within its 64 MiB: carry
# [".gpu/carry.tar.xz"] and start the command with `bash tools/gpu-unpack.sh && ...` there.
# Every binary links the library statically, and xz -9's 64 MB window finds each copy of it
# in the others: the base, this tree and six candidates (~250 MB of binaries) pack into ~6 MB
# (~60 MB with gzip, whose 32 KB window does not; ~70 s on one core). GPU_PREBUILD_PACK_LABS="LAB ...": those labs
# (.gpu/lab/LAB) go into the archive too.
# GPU_PREBUILD_CMAKE_ARGS: more CMake arguments for this tree's build alone (a compile-time
# switch for an A/B against the same revision, e.g. -DGPTOSS_SDPA_TC_WARPS=8); the build
# tree's cache keeps them until set otherwise.
set -eu
cd "$(dirname "$0")/.."
B=${GPU_PREBUILD_DIR:-.gpu/build}
lib=/usr/lib/x86_64-linux-gnu
for a in "$lib/libpcre2-8.a" "$lib/libjansson.a" "$lib/libmicrohttpd.a"; do
    [ -f "$a" ] || { echo "gpu-prebuild: $a is missing (bash tools/setup.sh installs it)" >&2; exit 1; }
done
command -v nvcc >/dev/null || { echo "gpu-prebuild: nvcc is not on the PATH" >&2; exit 1; }

# the configuration of this tree and of a base revision's (below)
cmake_args=(-DGPTOSS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a-real -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DPCRE2_INCLUDE_DIR=/usr/include -DPCRE2_LIBRARY="$lib/libpcre2-8.a"
    -DJANSSON_INCLUDE_DIR=/usr/include -DJANSSON_LIBRARY="$lib/libjansson.a"
    -DMICROHTTPD_INCLUDE_DIR=/usr/include -DMICROHTTPD_LIBRARY="$lib/libmicrohttpd.a")
# shellcheck disable=SC2086
cmake -S . -B "$B" "${cmake_args[@]}" ${GPU_PREBUILD_CMAKE_ARGS:-} >/dev/null
cmake --build "$B" -j"$(nproc)"

rm -rf .gpu/b .gpu/lib .gpu/whl .gpu/lab
mkdir -p .gpu/b/bin .gpu/b/bench .gpu/b/tests/e2e .gpu/lib .gpu/whl .gpu/lab
cp "$B"/bin/gptoss .gpu/b/bin/
cp "$B"/bench/bench .gpu/b/bench/
cp "$B"/tests/harness "$B"/tests/test_invariance .gpu/b/tests/
cp "$B"/tests/e2e/dump_logits .gpu/b/tests/e2e/
# the labs (~4 MB each) in a folder of their own: with them .gpu/b, .gpu/lib and .gpu/whl pass
# the 64 MiB a call carries, so a call carries .gpu/lab when it runs them (GPU_LAB=.gpu/lab)
for lab in wgmma_lab wgmma_latency_lab step_floor decode_lab tc_gemv_lab gemv_one_lab region_ring_lab step_replay; do [ ! -x "$B"/bench/$lab ] || cp "$B"/bench/$lab .gpu/lab/; done
if [ -z "${GPU_PREBUILD_SLIM:-}" ]; then
    cp "$B"/tests/test_fused "$B"/tests/test_graph "$B"/tests/libgptoss_pytestops.so .gpu/b/tests/
    cp "$B"/tests/e2e/test_batch "$B"/tests/e2e/test_engine_alloc "$B"/tests/e2e/test_sampling \
        "$B"/tests/e2e/test_context .gpu/b/tests/e2e/
fi

# the shared libraries of gptoss beyond the C and C++ runtimes and CUDA's own
ldd .gpu/b/bin/gptoss | awk '$3 ~ /^\// {print $1, $3}' | while read -r name path; do
    case "$name" in
        libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | libstdc++.so* | libgcc_s.so* | libcudart.so* | \
            ld-linux*) ;;
        *) cp -L "$path" .gpu/lib/ ;;
    esac
done

[ -n "${GPU_PREBUILD_SLIM:-}" ] ||
    GPTOSS_CUDA=ON GPTOSS_CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=90a-real .venv/bin/pip wheel -q . -w .gpu/whl --no-deps

echo "gpu-prebuild: $(du -sh .gpu/b | cut -f1) of binaries in .gpu/b, $(ls .gpu/lib | wc -l) libraries in .gpu/lib," \
    "$(ls .gpu/whl)"

# A base revision to compare against (tools/gpu-ab.sh, tools/gpu-quick.sh): GPU_PREV_REV=REV
# builds REV the same way in a worktree (.gpu/prev-src, build tree .gpu/prev-build, kept) and
# copies its kernel benchmark, CLI, harness, test_invariance and dump_logits into .gpu/prev
# (~6 MB packed). GPU_ALT_REVS="NAME=REV ...": more revisions built the same way into
# .gpu/alt/NAME, one after the other in one worktree and build tree (.gpu/alt-src,
# .gpu/alt-build, kept: revisions that differ in a file or two rebuild only those), which
# tools/gpu-quick.sh runs beside the base and this tree: several candidate changes measured in
# one call.
build_rev() { # REV SRC BUILD DEST
    local rev src=$2 build=$3 dest=$4
    rev=$(git rev-parse --verify "$1^{commit}")
    if [ -d "$src" ]; then
        git -C "$src" checkout -q --detach "$rev"
    else
        git worktree add -q --detach "$src" "$rev"
    fi
    cmake -S "$src" -B "$build" "${cmake_args[@]}" >/dev/null
    cmake --build "$build" -j"$(nproc)" --target bench gptoss_cli harness test_invariance dump_logits
    rm -rf "$dest"
    mkdir -p "$dest/bin" "$dest/bench" "$dest/tests/e2e"
    cp "$build/bin/gptoss" "$dest/bin/"
    cp "$build/bench/bench" "$dest/bench/"
    cp "$build/tests/harness" "$build/tests/test_invariance" "$dest/tests/"
    cp "$build/tests/e2e/dump_logits" "$dest/tests/e2e/"
    echo "$rev" >"$dest/REV"
    echo "gpu-prebuild: $(git log -1 --format='%h %s' "$rev" | cut -c1-70) in $dest"
}
[ -z "${GPU_PREV_REV:-}" ] || build_rev "$GPU_PREV_REV" .gpu/prev-src .gpu/prev-build .gpu/prev
rm -rf .gpu/alt
for spec in ${GPU_ALT_REVS:-}; do
    name=${spec%%=*}
    case "$name" in
        "" | *[!A-Za-z0-9_-]* | "$spec")
            echo "gpu-prebuild: GPU_ALT_REVS takes NAME=REV (NAME of letters, digits, - and _): '$spec'" >&2
            exit 1
            ;;
    esac
    build_rev "${spec#*=}" .gpu/alt-src .gpu/alt-build ".gpu/alt/$name"
done

if [ -n "${GPU_PREBUILD_PACK:-}" ]; then
    parts=()
    for d in .gpu/b .gpu/lib .gpu/whl .gpu/prev .gpu/alt; do [ ! -d "$d" ] || parts+=("$d"); done
    for l in ${GPU_PREBUILD_PACK_LABS:-}; do [ ! -x ".gpu/lab/$l" ] || parts+=(".gpu/lab/$l"); done
    command -v xz >/dev/null || { echo "gpu-prebuild: xz is missing (apt-get install xz-utils)" >&2; exit 1; }
    rm -f .gpu/carry.tgz
    (set -o pipefail; tar -cf - "${parts[@]}" | xz -9 -T1 >.gpu/carry.tar.xz.tmp)
    mv .gpu/carry.tar.xz.tmp .gpu/carry.tar.xz
    echo "gpu-prebuild: ${parts[*]} in .gpu/carry.tar.xz ($(du -h .gpu/carry.tar.xz | cut -f1)): carry it, then bash tools/gpu-unpack.sh"
fi
