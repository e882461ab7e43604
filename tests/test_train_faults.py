"""Training faults with a tested outcome: NaN loss, unreadable checkpoints, exact restore,
SIGTERM (preemption) through the real program."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fixmatch.train import faults, loop
from fixtures.full_disk import preexec, small_disk
from fixtures.split_dirs import write_split
from fixtures.tiny_loop import run, tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkpoints(model_dir):
    return sorted(int(p.name.split("-")[1].split(".")[0])
                  for p in model_dir.glob("checkpoint-*.index"))


def test_nan_loss_stops_naming_the_step_and_saves_nothing(tmp_path):
    lines = []
    with pytest.raises(faults.TrainingDiverged,
                       match=r"loss is nan at step 15; .*not saved .*checkpoint-10\b"):
        run(tmp_path, total_steps=30, lines=lines, poison_step=15)
    assert checkpoints(tmp_path) == [10]
    assert not (tmp_path / "metrics.json").exists()
    with pytest.raises(faults.TrainingDiverged, match="at step 3; .*no checkpoint was saved"):
        run(tmp_path / "fresh", total_steps=30, lines=lines, poison_step=3)
    assert checkpoints(tmp_path / "fresh") == []


def _corrupt(model_dir, step):
    for data in model_dir.glob(f"checkpoint-{step}.data-*"):
        data.write_bytes(b"\0" * 16)


def test_unreadable_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    run(tmp_path, total_steps=20, lines=[])
    assert checkpoints(tmp_path) == [10, 20]
    _corrupt(tmp_path, 20)
    lines = []
    result = run(tmp_path, total_steps=30, lines=lines)
    assert any("checkpoint-20 cannot be restored" in line for line in lines), lines
    assert any(line.startswith("resuming from") and line.endswith("checkpoint-10 instead "
                                                                  "of the newest checkpoint")
               for line in lines), lines
    assert result["steps"] == 30 and result["steps_this_run"] == 20


def test_no_readable_checkpoint_is_an_error_not_a_silent_restart(tmp_path):
    run(tmp_path, total_steps=20, lines=[])
    _corrupt(tmp_path, 10)
    _corrupt(tmp_path, 20)
    with pytest.raises(faults.CheckpointError, match="no checkpoint .* can be restored"):
        run(tmp_path, total_steps=30, lines=[])


def test_resume_restores_weights_ema_momentum_and_step_exactly(tmp_path, monkeypatch):
    made = {"models": [], "optimizers": []}
    real_optimizer = loop.create_optimizer

    def model_fn():
        made["models"].append(tiny_model())
        return made["models"][-1]

    def create_optimizer(**kw):
        made["optimizers"].append(real_optimizer(**kw))
        return made["optimizers"][-1]

    monkeypatch.setattr(loop, "create_optimizer", create_optimizer)
    run(tmp_path, total_steps=10, lines=[], model_fn=model_fn)  # ends by saving step 10

    def state(i):
        online, ema = made["models"][2 * i: 2 * i + 2]
        optimizer = made["optimizers"][i]
        return [v.numpy() for v in online.variables + ema.variables + optimizer.variables]

    trained = state(0)
    lines = []
    run(tmp_path, total_steps=10, lines=lines, model_fn=model_fn)  # restore only
    assert lines[0].startswith("restored") and "(step 10)" in lines[0]
    restored = state(1)
    assert int(made["optimizers"][1].iterations.numpy()) == 10  # so the lr is lr(10) again
    assert len(trained) == len(restored) > 3 * len(made["models"][0].trainable_variables)
    for before, after in zip(trained, restored):
        np.testing.assert_array_equal(before, after)
    # The EMA model differs from the online one (so comparing it means something).
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in
               zip(made["models"][0].trainable_variables, made["models"][1].trainable_variables))


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    """A tiny split with unlabeled images, for either program."""
    return write_split(tmp_path_factory.mktemp("split") / "tiny", unlabeled_per_class=8)


@pytest.mark.parametrize("program", ["supervised", "fixmatch"])
def test_sigkill_then_restart_resumes_from_checkpoint(tmp_path, split_dir, program):
    model_dir = tmp_path / "model"
    cmd = [sys.executable, "-m", f"stages.train_{program}", "--data", split_dir,
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


def test_sigterm_saves_the_current_step_and_the_rerun_resumes_there(tmp_path, split_dir):
    model_dir = tmp_path / "model"
    cmd = [sys.executable, "-m", "stages.train_supervised", "--data", split_dir,
           "--model_dir", str(model_dir), "--preset", "smoke", "--steps_per_run", "40",
           "--hparams", '"run": {"max_steps": 400}, "num_epochs": 200']
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not checkpoints(model_dir) and time.time() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.1)
        time.sleep(0.5)  # inside the second block
        proc.send_signal(signal.SIGTERM)
        sent = time.time()
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert time.time() - sent < 10, "no exit within a preemption grace period"
    assert proc.returncode == faults.TrainingInterrupted.exit_code, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    match = re.fullmatch(r"train_supervised: error: stopped by SIGTERM at step (\d+): saved "
                         r"(\S+); rerun the same command to resume from it", last)
    assert match, last
    stopped = int(match[1])
    assert 40 < stopped < 400 and match[2].endswith(f"checkpoint-{stopped}")
    assert checkpoints(model_dir)[-1] == stopped
    assert not (model_dir / "metrics.json").exists()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = next(line for line in proc.stderr if line.startswith("restored"))
    finally:
        proc.kill()
        proc.wait()
    assert f"(step {stopped})" in first


def _damage_shard(directory, set_name):
    shard = next(directory.glob(f"{set_name}.tfrecord-*"))
    data = bytearray(shard.read_bytes())
    data[200:210] = b"x" * 10  # inside the first records: their CRC no longer matches
    shard.write_bytes(bytes(data))
    return shard


def test_damaged_shard_is_named_in_training_and_evaluation(tmp_path):
    from fixmatch import hparams
    from fixmatch.data import split_dir as split_dir_lib
    from fixmatch.evaluation import evaluate
    from fixmatch.models import build_model
    from stages import train_supervised

    directory = tmp_path / "split"
    write_split(directory)
    labeled = _damage_shard(directory, "labeled")
    with pytest.raises(split_dir_lib.SplitDirError,
                       match=rf"damaged TFRecord shard\(s\): {re.escape(str(labeled))} "
                             r"\(corrupted record at \d+\)\. Rebuild the split"):
        train_supervised.run(data=str(directory), model_dir=str(tmp_path / "m"), preset="smoke")
    validation = _damage_shard(directory, "validation")
    split = split_dir_lib.read_split(str(directory))
    hp = hparams.resolve(program="supervised", preset="smoke")
    model = build_model("resnet_tiny", num_classes=3, image_size=hp["input"]["image_size"])
    with pytest.raises(split_dir_lib.SplitDirError, match=re.escape(str(validation))):
        evaluate(model, hp=hp, split=split, batch_size=8)


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, split_dir):
    # Two smoke checkpoints fit on the tmpfs, not three.
    with small_disk(tmp_path / "disk", "2600k", fallback_limit=600_000) as (disk, limit):
        _fill_disk_while_checkpointing(disk, limit, split_dir)


def _fill_disk_while_checkpointing(disk, limit, split_dir):
    model_dir = disk / "model"
    cmd = [sys.executable, "-m", "stages.train_supervised", "--data", split_dir,
           "--model_dir", str(model_dir), "--preset", "smoke", "--steps_per_run", "2",
           "--hparams", '"run": {"max_steps": 40}, "num_epochs": 20']
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                          preexec_fn=preexec(limit))
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1, proc.stderr[-2000:]
    match = re.fullmatch(r"train_supervised: error: no space left on device while saving "
                         r"checkpoint-(\d+) in \S+: (.*); free some space .* rerun to "
                         r"resume", last)
    assert match, last
    import tensorflow as tf
    latest = tf.train.latest_checkpoint(str(model_dir))
    if limit is None:
        assert match[2] == f"the previous checkpoint {latest} is intact"
        assert latest.endswith(f"checkpoint-{int(match[1]) - 2}")
        assert tf.train.load_checkpoint(latest).get_variable_to_shape_map()
    else:
        assert match[2] == "no earlier checkpoint exists" and latest is None
    assert not list(model_dir.glob("*_temp")) and not (model_dir / "metrics.json").exists()
