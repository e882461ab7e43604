"""bench/gpu.sh runs end to end on CPU with --smoke and reports a throughput number.

GPU machines for this project cannot install TensorFlow, so this CPU run (same script, same
bfloat16 + XLA train step, tiny model) is what keeps the prepared GPU script from rotting.
"""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "bench", "gpu.sh")


def _run(*args):
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    return subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=REPO)


def test_smoke_prints_images_per_second():
    result = _run("--smoke")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "model=resnet_tiny image_size=32 batch_size=16 bfloat16=True xla=True" in out
    assert "2,400 images/s on one A100" in out
    match = re.search(r"^images/s: (\d+\.\d)$", out, re.MULTILINE)
    assert match, out
    assert float(match.group(1)) > 0
    loss = float(re.search(r"mean loss (\S+)", out).group(1))
    assert 0 < loss < 100


def test_refuses_full_run_without_gpu_and_rejects_bad_flags():
    result = _run()
    assert result.returncode != 0
    assert "no GPU visible" in result.stderr and "--smoke" in result.stderr
    bad = _run("--smoke", "--batch_size", "0")
    assert bad.returncode == 2 and "--batch_size must be >= 1, got 0" in bad.stderr


def test_fixmatch_smoke_times_synthetic_and_real_input():
    result = _run("--smoke", "--program", "fixmatch")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert ("program=fixmatch model=resnet_tiny image_size=32 batch_size=4 uratio=5 "
            "images_per_step=44 bfloat16=True xla=True") in out
    rates = {name: float(re.search(rf"^{name} images/s: (\d+\.\d)", out, re.MULTILINE).group(1))
             for name in ("synthetic", "real input")}
    assert all(rate > 0 for rate in rates.values()), out
    pipeline = re.search(r"^input pipeline alone: (\d+\.\d) images/s .* using (\d+\.\d) of "
                         r"(\d+) cores$", out, re.MULTILINE)
    assert pipeline and float(pipeline.group(1)) > 0 and float(pipeline.group(2)) > 0, out
    verdict = re.search(r"^input-bound: (yes|no) ", out, re.MULTILINE)
    assert verdict and (verdict.group(1) == "yes") == (
        float(pipeline.group(1)) < rates["synthetic"]), out
