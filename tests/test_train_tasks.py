"""TrainSupervised through the real Luigi scheduler on a tiny demo split."""

import json
import os

import luigi
import pytest

from pipeline import train_tasks

DEMO = {"image_size": 32, "train_per_class": 8, "val_per_class": 3, "num_classes": 3}


def task(root, **kw):
    return train_tasks.TrainSupervised(root=str(root), demo=DEMO, split="frac50.seed1",
                                       preset="smoke", **kw)


def test_train_supervised_task_publishes_metrics_and_checkpoint(tmp_path):
    t = task(tmp_path, hparams='"augment": {"type": "horizontal_flip"}')
    assert luigi.build([t], local_scheduler=True, log_level="WARNING")
    out = t.output().path
    result = t.manifest()["result"]
    assert result["steps"] >= 1 and 0.0 <= result["top1"] <= 1.0
    assert result["eval_examples"] == 9
    assert json.load(open(os.path.join(out, "metrics.json")))["steps"] == result["steps"]
    hp = json.load(open(os.path.join(out, "hparams.json")))
    assert hp["augment"]["type"] == "horizontal_flip" and hp["model"]["name"] == "resnet_tiny"
    import tensorflow as tf
    ckpt = tf.train.latest_checkpoint(os.path.join(out, "checkpoint"))
    assert ckpt and ckpt.endswith(f"checkpoint-{result['steps']}")
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:  # no .work/ paths
        assert json.load(f)["checkpoint"] == f"checkpoint/checkpoint-{result['steps']}"
    names = {n.split("/")[0] for n, _ in tf.train.list_variables(ckpt)}
    assert {"model", "ema_model", "optimizer"} <= names
    # The training state stays in the work dir (resumable), the split is reused.
    assert os.path.isdir(t.work_dir) and os.listdir(os.path.join(str(tmp_path), "prepare_splits"))
    # Same parameters (spelled differently) = same fingerprint = nothing to do.
    same = task(tmp_path, hparams='{"augment": {"type": "horizontal_flip"}}')
    assert same.fingerprint == t.fingerprint and same.complete()


def test_bad_hparams_fail_when_the_task_is_fingerprinted(tmp_path):
    from fixmatch.hparams import HParamsError
    with pytest.raises(HParamsError, match="augment.typo"):
        task(tmp_path, hparams='"augment": {"typo": 1}').fingerprint


def test_train_fixmatch_task_shares_the_split_and_publishes_its_diagnostics(tmp_path):
    sup = task(tmp_path)
    fm = train_tasks.TrainFixMatch(root=str(tmp_path), demo=DEMO, split="frac50.seed1",
                                   preset="smoke")
    # Independent trainings of one split: `--workers 2` runs them side by side.
    assert fm.requires().fingerprint == sup.requires().fingerprint
    assert fm.fingerprint != sup.fingerprint and fm.stage_name == "train_fixmatch"
    assert luigi.build([fm], local_scheduler=True, log_level="WARNING")
    result = fm.manifest()["result"]
    assert result["steps"] >= 1 and 0.0 <= result["mask_rate"] <= 1.0
    metrics = json.load(open(os.path.join(fm.output().path, "metrics.json")))
    assert metrics["checkpoint"] == f"checkpoint/checkpoint-{result['steps']}"
    hp = json.load(open(os.path.join(fm.output().path, "hparams.json")))
    assert hp["uratio"] == 2 and hp["augment"]["type"] == "randaugment"
    from fixmatch.hparams import HParamsError
    with pytest.raises(HParamsError, match="FixMatch needs a strong augmentation"):
        train_tasks.TrainFixMatch(root=str(tmp_path), demo=DEMO, preset="smoke",
                                  hparams='"augment": {"type": "noop"}').fingerprint
