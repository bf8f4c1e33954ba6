"""GPU-machine check of the Hugging Face `kernels` layout (needs torch with CUDA and the
`kernels` package; not collected by pytest).

    python python/tests/gpu_kernels_loader.py [OUTDIR]

1. builds the layout with `python -m gpt_oss_kernels.build_kernels_layout OUTDIR`;
2. loads it with kernels.get_local_kernel(Path(OUTDIR)) (the version tools/setup.sh pins);
3. runs the seed README's four examples through the loaded module on "cuda" (and "cpu"),
   exactly as written apart from the loader line and the device string, SDPA compared on
   the query rows (1,000 draws on CUDA).
Exit status 0 when everything passed.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import kernels
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="gptoss-kernels-layout-")
    subprocess.check_call([sys.executable, "-m", "gpt_oss_kernels.build_kernels_layout", outdir])
    module = kernels.get_local_kernel(Path(outdir))
    print("loaded", module.__name__, "from", module.__file__)

    import test_seed_examples as examples
    # The examples call `gpt_oss_kernels.<op>`; point them at the module the loader returned.
    examples.gpt_oss_kernels = module

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    failures = 0
    for device in devices:
        for name in ("test_example1_matmul_torch", "test_example2_rmsnorm_torch", "test_example3_embeddings_torch",
                     "test_example4_sdpa_torch"):
            try:
                getattr(examples, name)(device)
                print("PASS", name, device)
            except Exception as e:  # report and go on
                failures += 1
                print("FAIL", name, device, type(e).__name__, e)
    if "cuda" in devices:
        try:
            examples.test_example4_sdpa_torch_1000_draws("cuda")
            print("PASS sdpa 1000 draws cuda")
        except Exception as e:
            failures += 1
            print("FAIL sdpa 1000 draws cuda", e)
        module.synchronize()
        print("backend:", module.backend_name("cuda"))
    print("failures:", failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
