"""bench/train_step.py runs end to end on tiny shapes: the FixMatch step with and without XLA
(a crash there went unnoticed because only the supervised XLA path had been run)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_fixmatch_step_with_xla_prints_its_ratio_to_the_step_without():
    proc = subprocess.run(
        [sys.executable, "bench/train_step.py", "--program", "fixmatch", "--xla", "--uratio", "1",
         "--image_size", "8", "--batch_size", "4", "--steps", "1", "--repeats", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "engine FixMatch, XLA" in proc.stdout
    assert "ratio engine FixMatch XLA / without XLA:" in proc.stdout
