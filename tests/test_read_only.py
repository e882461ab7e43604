"""A read-only output location fails at once, with its reason, before any work."""

import os
import subprocess
import sys

from fixtures.read_only import read_only_dir
from fixtures.split_dirs import write_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))


def test_read_only_root_fails_the_first_stage_with_its_reason(tmp_path):
    with read_only_dir(tmp_path / "ro") as ro:
        proc = run("-m", "luigi", "--module", "tests.cache_fixture_tasks", "Toy",
                   "--root", str(ro / "runs"), "--local-scheduler")
        assert f"root '{ro}/runs' cannot be written: {ro} is " in proc.stderr, proc.stderr[-3000:]
        assert "give a writable --root" in proc.stderr
        assert os.listdir(ro) == []


def test_read_only_out_and_model_dir_fail_before_any_work(tmp_path):
    split = write_split(tmp_path / "split")
    with read_only_dir(tmp_path / "ro") as ro:
        proc = run("-m", "stages.train_supervised", "--data", split, "--model_dir",
                   str(ro / "model"), "--preset", "smoke")
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1].startswith(
            f"train_supervised: error: --model_dir '{ro}/model' cannot be written: {ro} is ")
        proc = run("-m", "stages.demo_data", "--out", str(ro / "demo"))
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert f"--out '{ro}/demo' cannot be written" in proc.stderr.strip().splitlines()[-1]
        assert os.listdir(ro) == []
