"""What a real FixMatch run does, checked against a recomputation (issue 22): the learning rate
it logs, which model scores the CTAugment probes, and its mask rate and pseudo-label accuracy.

One seeded smoke run per case (resnet_tiny at 16 px, the 3-class split of
tests/fixtures/split_dirs.py, one step per block); the tensors of the last step are recorded
with tf.Variables from inside the compiled step, as the CTA test in test_train_fixmatch does.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from fixmatch import losses
from fixmatch.models import build_model
from fixmatch.train import cta_hooks, steps
from fixtures.split_dirs import write_split
from stages import train_fixmatch

# 24 labeled images at batch 8: 3 steps per epoch; warm-up for 1 epoch, decay after epoch 1.
SCHEDULE = {"use_warmup": True, "warmup_epochs": 1, "decay_epochs": [1], "decay_rate": 0.1}
STEPS = 5


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "tiny", unlabeled_per_class=8)


def _recorder():
    recorded = {}

    def record(key, value):
        if key not in recorded:  # static shapes (fixed batch): liftable initial values
            recorded[key] = tf.Variable(tf.zeros(value.shape, value.dtype), trainable=False)
        recorded[key].assign(value)
    return recorded, record


def _run(tmp_path, split_dir, monkeypatch, *, ema_probe=True):
    """A seeded CTAugment FixMatch run of STEPS one-step blocks, recording the last step's
    weak-view logits, unlabeled true labels, probe images, labels and probe proximities."""
    recorded, record = _recorder()
    real_split, real_inputs, real_probe = (losses.split_logits, steps.model_inputs,
                                           cta_hooks.probe_update)

    def split_logits(logits, sizes):
        parts = real_split(logits, sizes)
        record("weak_logits", parts[1])
        return parts

    def model_inputs(batch, **kw):
        out = real_inputs(batch, **kw)
        if "unsup_label" in out:
            record("unsup_label", out["unsup_label"])
        return out

    def probe_update(batch, *, probe_model, state):
        record("probe_image", batch["probe_image"])
        record("probe_label", batch["label"])
        record("proximity", cta_hooks.probe_proximity(probe_model, batch["probe_image"],
                                                      batch["label"]))
        return real_probe(batch, probe_model=probe_model, state=state)

    monkeypatch.setattr(losses, "split_logits", split_logits)
    monkeypatch.setattr(steps, "model_inputs", model_inputs)
    monkeypatch.setattr(cta_hooks, "probe_update", probe_update)
    hp = {"augment": {"type": "cta", "use_ema_probe_image": ema_probe},
          "fixmatch": {"confidence": 0.34}, "num_epochs": 2, "learning_rate": SCHEDULE,
          "run": {"seed": 5, "max_steps": STEPS}}
    model_dir = tmp_path / "model"
    result = train_fixmatch.run(data=split_dir, model_dir=str(model_dir), preset="smoke",
                                steps_per_run=1, hparams=json.dumps(hp)[1:-1],
                                log=lambda line: None)
    assert result["steps"] == STEPS
    return result, model_dir, {k: v.numpy() for k, v in recorded.items()}


def _logged(model_dir, tag):
    """[(step, value)] of one scalar, read from the run's event files."""
    out = []
    log_dir = os.path.join(model_dir, "summaries")
    for name in sorted(os.listdir(log_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, name)):
            out += [(event.step, float(tf.make_ndarray(v.tensor)))
                    for v in event.summary.value if v.tag == tag]
    return [v for _, v in sorted(out)]


@pytest.fixture(scope="module")
def ema_probe_run(tmp_path_factory, split_dir):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _run(tmp_path_factory.mktemp("fm"), split_dir, monkeypatch)


def test_logged_learning_rate_is_base_lr_times_the_labeled_batch_with_warmup_and_decay(
        ema_probe_run):
    """Spec 7: base = base_lr x (global LABELED batch = 8) / 256 = 0.0125, not x the 40 images
    of a FixMatch step; warm-up over the first epoch (3 steps); at step 3 (epoch 1.0 = the
    boundary) still the full rate, decayed from step 4. Block k logs the rate of its step k-1."""
    _, model_dir, _ = ema_probe_run
    base = 0.4 * 8 / 256
    expected = [0.0, base / 3, 2 * base / 3, base, 0.1 * base]
    np.testing.assert_allclose(_logged(model_dir, "train/learning_rate"), expected,
                               rtol=1e-6, atol=1e-12)


def _proximity(checkpoint, part, images, labels):
    """softmax(model)[label] with the `part` ("model" / "ema_model") weights of a checkpoint."""
    model = build_model("resnet_tiny", num_classes=3, image_size=16)
    tf.train.Checkpoint(**{part: model}).restore(str(checkpoint)).expect_partial()
    probs = tf.nn.softmax(model(images, training=False)).numpy()
    return probs[np.arange(len(labels)), labels]


@pytest.mark.parametrize("ema_probe", [True, False], ids=["ema-probe", "online-probe"])
def test_cta_probes_are_scored_by_the_model_the_hparam_names(ema_probe_run, tmp_path,
                                                             split_dir, ema_probe):
    """The probe runs after step 5's optimizer update and before its EMA update: it must see
    the EMA weights of checkpoint-4 (use_ema_probe_image true) or the online weights of
    checkpoint-5 (false), and not the other model's."""
    if ema_probe:
        _, model_dir, rec = ema_probe_run
    else:
        with pytest.MonkeyPatch.context() as monkeypatch:
            _, model_dir, rec = _run(tmp_path, split_dir, monkeypatch, ema_probe=False)
    images, labels = rec["probe_image"], rec["probe_label"].astype(int)
    ema = _proximity(model_dir / f"checkpoint-{STEPS - 1}", "ema_model", images, labels)
    online = _proximity(model_dir / f"checkpoint-{STEPS}", "model", images, labels)
    assert np.abs(ema - online).max() > 1e-3  # the two models disagree: the test can fail
    wanted, other = (ema, online) if ema_probe else (online, ema)
    np.testing.assert_allclose(rec["proximity"], wanted, rtol=1e-4, atol=1e-6)
    assert np.abs(rec["proximity"] - other).max() > 1e-3


def test_mask_rate_and_pseudo_label_accuracy_equal_a_recomputation_from_the_batch(
        ema_probe_run):
    """The last block is one step: its mask rate is the share of that step's weak-view
    max-probabilities >= the confidence 0.34, and its pseudo-label accuracy the share of those
    whose argmax is the unlabeled image's true label."""
    result, model_dir, rec = ema_probe_run
    probs = tf.nn.softmax(rec["weak_logits"]).numpy()
    mask = probs.max(axis=1) >= 0.34
    right = probs.argmax(axis=1) == rec["unsup_label"]
    assert len(mask) == 16 and mask.any()
    assert result["mask_rate"] == pytest.approx(mask.mean(), abs=1e-6)
    assert result["pseudo_label_accuracy"] == pytest.approx(right[mask].mean(), abs=1e-6)
    assert _logged(model_dir, "train/mask_rate")[-1] == pytest.approx(mask.mean(), abs=1e-6)
