import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
# openai-harmony reads o200k_base.tiktoken from here instead of downloading it.
os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(ROOT / "data"))

SEED = int(os.environ.get("GPTOSS_TEST_SEED", "20250805"))


def pytest_report_header(config):
    return f"harmony tests: seed {SEED} (GPTOSS_TEST_SEED to replay another)"
