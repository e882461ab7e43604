"""stages.train_supervised: validation before work, a smoke run, kill + resume.

The split directory is written directly in the data contract of design
section 3 (schema.make_example shards + classes.txt + split.json counts),
tiny: 3 classes, 16 px images.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from fixmatch import hparams
from fixtures.split_dirs import write_split
from fixmatch.data import split_dir as split_dir_lib
from fixmatch.train import experiment
from stages import train_supervised

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "tiny")


def test_bad_hparams_fail_before_anything_is_built(tmp_path):
    with pytest.raises(hparams.HParamsError, match="learning_rate.base_lr"):
        train_supervised.run(data=str(tmp_path / "absent"), model_dir=str(tmp_path / "m"),
                             preset="smoke", hparams='"learning_rate": {"base_lr": -1}')
    with pytest.raises(hparams.HParamsError, match="run.steps_per_run"):
        train_supervised.run(data=str(tmp_path), model_dir=str(tmp_path / "m"),
                             preset="smoke", steps_per_run=0)
    with pytest.raises(hparams.HParamsError, match="unknown preset 'smok'"):
        train_supervised.run(data=str(tmp_path), model_dir=str(tmp_path / "m"), preset="smok")
    assert not (tmp_path / "m").exists()


def test_bad_split_directories_are_named(tmp_path, split_dir):
    with pytest.raises(split_dir_lib.SplitDirError, match="is not a directory"):
        train_supervised.run(data=str(tmp_path / "nope"), model_dir=str(tmp_path / "m"),
                             preset="smoke")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "classes.txt").write_text("a\nb\n")
    with pytest.raises(split_dir_lib.SplitDirError, match="split.json"):
        train_supervised.run(data=str(tmp_path / "half"), model_dir=str(tmp_path / "m"),
                             preset="smoke")
    (tmp_path / "half" / "split.json").write_text('{"counts": {"labeled": 4}}')
    with pytest.raises(split_dir_lib.SplitDirError, match="counts.validation"):
        split_dir_lib.read_split(str(tmp_path / "half"))
    info = split_dir_lib.read_split(split_dir)
    assert info.num_classes == 3 and info.num_labeled == 24


def test_cli_reports_bad_flags_clearly(tmp_path):
    cmd = [sys.executable, "-m", "stages.train_supervised", "--data", str(tmp_path),
           "--model_dir", str(tmp_path / "m"), "--preset", "smoke",
           "--hparams", '"augment": {"type": "autoaugment"}']
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "augment.type" in proc.stderr and "autoaugment" in proc.stderr
    proc = subprocess.run(cmd[:5] + ["--preset", "large"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "large" in proc.stderr


def test_smoke_run_with_ctaugment_saves_state_and_refuses_other_hparams(tmp_path, split_dir):
    import tensorflow as tf

    model_dir = str(tmp_path / "model")
    lines = []
    result = train_supervised.run(data=split_dir, model_dir=model_dir, preset="smoke",
                                  hparams='"augment": {"type": "cta"}', log=lines.append)
    assert result["steps"] == 3 and result["eval_examples"] == 12  # ceil(24 / 8 * 1 epoch)
    saved = json.loads(open(os.path.join(model_dir, "hparams.json")).read())
    assert saved["augment"]["type"] == "cta" and saved["run"]["max_steps"] == 4
    assert "3 classes" in lines[0] and "steps/epoch" in lines[0]
    # The CTA rates were updated from the probes and checkpointed with the model.
    reader = tf.train.load_checkpoint(result["checkpoint"])
    rates = reader.get_tensor("cta/rates/.ATTRIBUTES/VARIABLE_VALUE")
    assert rates.shape == (19, 15) and rates.min() < 1.0 and rates.max() <= 1.0
    with pytest.raises(experiment.ModelDirError, match="augment.type"):
        train_supervised.run(data=split_dir, model_dir=model_dir, preset="smoke")


def test_sigkill_then_restart_resumes_from_checkpoint(tmp_path, split_dir):
    model_dir = tmp_path / "model"
    cmd = [sys.executable, "-m", "stages.train_supervised", "--data", split_dir,
           "--model_dir", str(model_dir), "--preset", "smoke", "--steps_per_run", "1",
           "--hparams", '"run": {"max_steps": 400}, "num_epochs": 200']
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not list(model_dir.glob("checkpoint-2.index")) and time.time() < deadline:
            assert proc.poll() is None, "training exited before its second checkpoint"
            time.sleep(0.2)
        assert list(model_dir.glob("checkpoint-2.index")), "no checkpoint within 240 s"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The newest checkpoint a restart will see is the one the state file names: a kill between
    # writing checkpoint-N.* and updating the state file leaves N-1 as the latest.
    state = (model_dir / "checkpoint").read_text()
    killed_at = int(re.search(r'^model_checkpoint_path: "checkpoint-(\d+)"', state, re.M)[1])
    assert killed_at < 400
    # Restart with the same arguments, but stop early: a max_steps override would change
    # hparams, so cap the rerun from outside by killing it once it has logged its resume.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        first_lines = []
        for line in proc.stderr:
            if line.startswith(("restored", "step ")):
                first_lines.append(line.strip())
            if len(first_lines) == 2:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert first_lines[0].startswith("restored") and f"(step {killed_at})" in first_lines[0]
    assert first_lines[1].startswith(f"step {killed_at + 1}/400")
