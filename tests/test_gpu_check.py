"""bench/gpu_check.py: on a CUDA GPU in float16 when there is one; everywhere as a dry run on the CPU,
so the script a GPU machine will run does not rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
import torch  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("ok ", "all checks passed"))]
    assert len(lines) == 6 and lines[-1].startswith("all checks passed"), done.stdout
    return done.stdout


def test_the_checks_pass_as_a_dry_run_on_the_cpu():
    out = _run("--device", "cpu", "--dtype", "float32")
    assert "pixel caught the planted colour" in out and "3 character references" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_checks_pass_on_a_gpu_in_float16():
    out = _run("--device", "cuda", "--dtype", "float16")
    assert "GPU memory" in out
