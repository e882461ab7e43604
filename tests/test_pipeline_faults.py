"""FullRun under faults, through the real `luigi` command: SIGKILL in every stage then a rerun
that completes and resumes training, and two FullRuns started at once on one root."""

import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = '{"image_size": 32, "train_per_class": 8, "val_per_class": 3, "num_classes": 3}'
STAGES = ("demo_data", "prepare_splits", "train_supervised", "train_fixmatch", "evaluate",
          "export", "report")
FINGERPRINT = re.compile(r"[0-9a-f]{64}")


#: The task whose run reaches each stage (its upstream stages already published).
TASK_OF = {"demo_data": ["PrepareSplits"], "prepare_splits": ["PrepareSplits"],
           "train_supervised": ["TrainSupervised"], "train_fixmatch": ["TrainFixMatch"],
           "evaluate": ["EvaluateSupervised"], "export": ["ExportFixMatch"],
           "report": ["Report"]}


def luigi(root, task=("FullRun",), *extra, **popen):
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", *task, *extra,
           "--local-scheduler",
           "--root", str(root), "--demo", DEMO, "--split", "frac50.seed1"]
    if task[0] != "PrepareSplits":
        # 12 steps, a checkpoint every 2: a kill after the first leaves steps to resume
        cmd += ["--preset", "smoke", "--hparams", '"num_epochs": 8, "run": {"max_steps": 12}']
    return subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                            start_new_session=True, text=True, **popen)


def published(root, stage):
    return [d for d in glob.glob(os.path.join(root, stage, "*"))
            if FINGERPRINT.fullmatch(os.path.basename(d))]


def assert_nothing_partial_looks_complete(root):
    """A fingerprint directory exists only once published: with its manifest, complete."""
    for stage in STAGES:
        for out in published(root, stage):
            assert os.path.exists(os.path.join(out, "manifest.json")), out


def in_progress(root, stage):
    """True once `stage` is working: a tmp dir, or a training's second checkpoint."""
    stage_dir = os.path.join(root, stage)
    if stage.startswith("train_"):
        return bool(glob.glob(os.path.join(stage_dir, "*.work", "checkpoint-2.index")))
    return bool(glob.glob(os.path.join(stage_dir, ".tmp-*")))


RESTORED = re.compile(r"restored \S+checkpoint-(\d+) \(step \d+\)")


@pytest.mark.slow
def test_sigkill_in_every_stage_then_full_run_completes(tmp_path):
    """Each stage is reached by a run of its own task and killed (the whole process group)
    at a random moment while it works; then FullRun completes from what is left."""
    rng = random.Random(14)
    root = tmp_path / "root"
    killed, restored = [], []
    for stage in STAGES:
        proc = luigi(root, TASK_OF[stage], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 600
        while not in_progress(root, stage):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.time() < deadline, f"{stage} did not start"
            time.sleep(0.02)
        # Small stages finish within a fraction of a second of starting: kill them sooner.
        time.sleep(rng.uniform(0.0, 0.3 if stage in ("prepare_splits", "train_supervised",
                                                      "train_fixmatch") else 0.02))
        os.killpg(proc.pid, signal.SIGKILL)
        restored += RESTORED.findall(proc.communicate()[1])
        assert_nothing_partial_looks_complete(root)
        if not published(root, stage):
            killed.append(stage)
    proc = luigi(root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-4000:]
    assert "| supervised |" in stdout and "| fixmatch |" in stdout
    for stage in STAGES:
        assert len(published(root, stage)) == (2 if stage == "evaluate" else 1), stage
    assert not glob.glob(str(root / "*" / ".tmp-*"))  # debris of the killed runs removed
    for stage in ("train_supervised", "train_fixmatch"):  # the full run, despite the kills
        (out,) = published(root, stage)
        metrics = json.load(open(os.path.join(out, "metrics.json")))
        assert metrics["steps"] == metrics["total_steps"] == 12, metrics
    assert killed == list(STAGES), killed  # every kill landed while its stage worked
    # Both trainings resumed from a checkpoint (step 2 or later), not from step 0.
    restored += RESTORED.findall(stderr)
    assert len(restored) >= 2 and all(int(step) >= 2 for step in restored), restored


@pytest.mark.slow
def test_two_full_runs_at_once_train_each_fingerprint_once(tmp_path):
    root = tmp_path / "root"
    # --no-lock: without it Luigi itself refuses a second identical command line while the
    # first runs (exit code 10, luigi.cfg [retcode] already_running); here both must run.
    procs = [luigi(root, ("FullRun",), "--no-lock", stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=1200) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr[-4000:]
        assert "| fixmatch |" in stdout
    for stage in STAGES:
        assert len(published(root, stage)) == (2 if stage == "evaluate" else 1), stage
    stderr = "".join(err for _, err in outputs)
    for program in ("supervised", "fixmatch"):
        assert len(re.findall(rf"^train_{program}: resnet_tiny on ", stderr, re.M)) == 1
