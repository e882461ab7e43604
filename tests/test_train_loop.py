"""The engine end to end on synthetic data: loss goes down, outputs, resume."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from fixmatch.train import history as history_lib
from fixmatch.train import loop
from fixtures.tiny_loop import CLASSES, SIZE, TRAIN, run


def read_scalars(log_dir):
    tags = {}
    for name in os.listdir(log_dir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, name)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
    return tags


def test_training_lowers_loss_and_writes_outputs(tmp_path):
    lines = []
    result = run(tmp_path, total_steps=30, lines=lines)
    losses = [float(line.split(" loss ")[1].split()[0]) for line in lines]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert "step 30/30" in lines[-1] and "ETA" in lines[-1] and "img/s" in lines[-1]
    assert result["steps"] == 30 and result["eval_examples"] == 40
    for key in ("top1", "top5", "online_top1", "ema_top1", "ema_top5", "wall_time_s",
                "images_per_sec"):
        assert result[key] is not None
    assert 0.0 <= result["top1"] <= 1.0
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["steps"] == 30
    kept = sorted(p.name for p in tmp_path.glob("checkpoint-*.index"))
    assert kept == ["checkpoint-20.index", "checkpoint-30.index"]
    scalars = read_scalars(tmp_path / "summaries")
    for tag in ("train/loss", "train/accuracy", "train/learning_rate",
                "train/steps_per_second", "train/cur_epoch", "images/s", "test/loss",
                "test/accuracy", "test/accuracy_top5", "test/ema_accuracy",
                "test/ema_accuracy_top5"):
        assert len(scalars[tag]) == 3, tag
    # x-axis in thousandths of an epoch (6 steps per epoch): step 30 -> 5000.
    assert max(step for step, _ in scalars["train/cur_epoch"]) == 5000


def test_restart_resumes_from_checkpoint_and_finishes_exactly(tmp_path):
    lines = []
    run(tmp_path, total_steps=10, lines=lines, steps_per_run=4)
    assert [line.split()[1] for line in lines if line.startswith("step")] == [
        "4/10", "8/10", "10/10"]
    lines.clear()
    result = run(tmp_path, total_steps=14, lines=lines, steps_per_run=4)
    assert lines[0].startswith("restored") and "(step 10)" in lines[0]
    assert result["steps"] == 14 and result["steps_this_run"] == 4
    # One history line per block, across the restart, with train and test metrics.
    history = history_lib.read_history(str(tmp_path / history_lib.HISTORY_FILE))
    assert [h["step"] for h in history] == [4, 8, 10, 14]
    assert history[-1]["test"]["ema_accuracy"] == result["ema_top1"]
    assert history[-1]["train"]["steps"] == 4 and history[-1]["epoch"] == pytest.approx(14 / 6)


def test_history_drops_entries_past_the_restored_step(tmp_path):
    path = str(tmp_path / "history.jsonl")
    first = history_lib.History(path, restored_step=0)
    for step in (2, 4, 6):
        first.append({"step": step, "test": {"loss": float("nan")}})
    # A run killed after writing step 6 but before its checkpoint resumes from step 4.
    resumed = history_lib.History(path, restored_step=4)
    resumed.append({"step": 6, "test": {"loss": 0.5}})
    records = history_lib.read_history(path)
    assert [r["step"] for r in records] == [2, 4, 6]
    assert records[0]["test"]["loss"] is None and records[-1]["test"]["loss"] == 0.5


def test_loop_config_rejects_bad_values():
    with pytest.raises(ValueError, match="steps_per_run.*0"):
        loop.LoopConfig(model_dir="x", total_steps=1, steps_per_run=0, steps_per_epoch=1.0,
                        global_batch_size=1)
    with pytest.raises(ValueError, match="ema_decay.*1.5"):
        loop.LoopConfig(model_dir="x", total_steps=1, steps_per_run=1, steps_per_epoch=1.0,
                        global_batch_size=1, ema_decay=1.5)


def test_fixmatch_objective_one_forward_pass_over_the_concatenation():
    import keras

    from fixmatch.train import steps

    calls = []
    inputs = keras.Input((SIZE, SIZE, 3))
    base = keras.Model(inputs, keras.layers.Dense(CLASSES)(
        keras.layers.GlobalAveragePooling2D()(inputs)))

    def model(images, training):
        calls.append((int(images.shape[0]), training))
        return base(images, training=training)
    model.losses = []
    batch = {"image": TRAIN["image"][:2], "label": TRAIN["label"][:2],
             "unsup_image": TRAIN["image"][2:8], "unsup_aug_image": TRAIN["image"][8:14]}
    objective = steps.make_fixmatch_objective(wu=10.0, confidence=0.0)
    total, sums = objective(model, batch)
    assert calls == [(14, True)]
    assert set(sums) == set(objective.sum_keys)
    # confidence 0: every unlabeled sample is masked in.
    assert float(sums["mask_sum"]) == pytest.approx(2.0) and float(sums["count"]) == 2.0
    # The loss of spec 6, recomputed from the same model's logits of the three parts.
    def xe(labels, logits):
        z = logits - logits.max(-1, keepdims=True)
        return -(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(len(labels)), labels]
    z_l, z_w, z_s = (base(batch[k], training=True).numpy()
                     for k in ("image", "unsup_image", "unsup_aug_image"))
    expected = xe(batch["label"], z_l).mean() + 10.0 * xe(z_w.argmax(-1), z_s).mean()
    assert float(total) == pytest.approx(expected, rel=1e-5)
    assert float(sums["loss_sum"]) == pytest.approx(2 * expected, rel=1e-5)  # x labeled count
