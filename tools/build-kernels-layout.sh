#!/bin/sh
# Writes a Hugging Face `kernels` layout of the installed gpt_oss_kernels package:
#   OUTDIR/build/torch-universal/{metadata.json,gpt_oss_kernels/}
# Usage: tools/build-kernels-layout.sh OUTDIR [--backend auto|cpu|cuda]
# (install the package first: pip install .). PYTHON selects the interpreter.
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [--backend auto|cpu|cuda]" >&2
    exit 2
fi
exec "${PYTHON:-python3}" -m gpt_oss_kernels.build_kernels_layout "$@"
