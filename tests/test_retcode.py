"""A failed `luigi --module pipeline ...` exits non-zero from any directory.

Luigi's own exit code is 0 even when a task failed; the pipeline package fills in the
`[retcode]` codes (pipeline/errors.py RETCODES) that the user's configuration leaves unset. Run
from a temporary directory, so the repository's luigi.cfg is not read.
"""

import os
import subprocess
import sys

import pytest

from pipeline import errors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def luigi_in(cwd, *args):
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline", *args,
                           "--local-scheduler", "--root", str(cwd / "runs")], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("args,code", [
    # complete() raises (a bad split name): a scheduling error
    (("PrepareSplits", "--split", "frac10.seedX"), "scheduling_error"),
    # run() raises (PrepareSplits on a train/ folder without class folders): a failed task
    (("PrepareSplits", "--data-dir", "DATA", "--split", "frac10.seed1"), "task_failed"),
], ids=["scheduling_error", "task_failed"])
def test_a_failed_run_outside_the_repository_exits_non_zero(tmp_path, args, code):
    (tmp_path / "DATA" / "train").mkdir(parents=True)
    args = [str(tmp_path / a) if a == "DATA" else a for a in args]
    proc = luigi_in(tmp_path, *args)
    assert proc.returncode == errors.RETCODES[code], proc.stderr[-3000:]
    assert "pipeline: error: PrepareSplits: " in proc.stderr


def test_the_users_configuration_wins(tmp_path):
    (tmp_path / "luigi.cfg").write_text("[retcode]\nscheduling_error = 3\n")
    proc = luigi_in(tmp_path, "PrepareSplits", "--split", "frac10.seedX")
    assert proc.returncode == 3, proc.stderr[-3000:]
