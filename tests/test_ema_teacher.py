"""`fixmatch.pseudo_label_model: ema`: the weak view is read by the EMA model in inference
mode. The objective on hand-built models against the loss written out; the training loop hands
the objective its EMA model (not the online one); a smoke training with each augmentation; the
hparam's validation and its place in TrainFixMatch's fingerprint (tests/test_train_thresholds.py).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fixmatch import hparams
from fixmatch.train import steps, thresholds
from fixtures.split_dirs import write_split
from stages import train_fixmatch

C = 4


def _dense(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    return keras.Model(inputs, keras.layers.Dense(
        C, kernel_regularizer=keras.regularizers.L2(1e-3))(inputs))


def _batch():
    rng = np.random.default_rng(5)
    batch = {"image": rng.normal(size=(4, 6)) * 3, "label": rng.integers(0, C, 4),
             "unsup_image": rng.normal(size=(8, 6)) * 3,
             "unsup_aug_image": rng.normal(size=(8, 6)) * 3, "unsup_label": rng.integers(0, C, 8)}
    return {k: tf.constant(v.astype(np.float32) if v.dtype == np.float64 else v)
            for k, v in batch.items()}


def test_pseudo_labels_come_from_the_teacher_and_the_loss_is_written_out():
    model, teacher, batch = _dense(1), _dense(2), _batch()
    labeler = thresholds.PseudoLabeler(thresholds.FixedThreshold(0.6))
    objective = steps.make_fixmatch_objective(wu=2.0, labeler=labeler, num_classes=C,
                                              ema_teacher=True)
    assert objective.uses_teacher
    total, sums = objective(model, batch, teacher=teacher)
    xe = tf.nn.sparse_softmax_cross_entropy_with_logits
    logits = model(tf.concat([batch["image"], batch["unsup_aug_image"]], 0), training=True)
    z_l, z_s = tf.split(logits, [4, 8])
    probs = tf.nn.softmax(teacher(batch["unsup_image"], training=False))
    mask = tf.cast(tf.reduce_max(probs, -1) >= 0.6, tf.float32)
    pseudo = tf.cast(tf.argmax(probs, -1), tf.int32)
    assert 0 < mask.numpy().sum() < 8
    # The online model's own reading of the weak view disagrees somewhere: the test can tell.
    online = tf.cast(tf.argmax(model(batch["unsup_image"]), -1), tf.int32)
    assert np.any(online.numpy() != pseudo.numpy())
    loss = (tf.reduce_mean(xe(labels=tf.cast(batch["label"], tf.int32), logits=z_l))
            + 2.0 * tf.reduce_mean(mask * xe(labels=pseudo, logits=z_s)) + tf.add_n(model.losses))
    np.testing.assert_allclose(total.numpy(), loss.numpy(), rtol=1e-6)
    np.testing.assert_allclose(sums["mask_sum"].numpy() / 4, mask.numpy().mean(), rtol=1e-6)
    hit = pseudo.numpy() == batch["unsup_label"].numpy()
    np.testing.assert_allclose(sums["pseudo_correct"].numpy(), (mask.numpy() * hit).sum())
    # Gradients reach the online model only, never the teacher.
    with tf.GradientTape() as tape:
        total, _ = objective(model, batch, teacher=teacher)
    grads = tape.gradient(total, model.trainable_variables + teacher.trainable_variables)
    assert all(g is not None for g in grads[:2]) and all(g is None for g in grads[2:])
    with pytest.raises(ValueError, match="teacher="):
        objective(model, batch)


def test_teacher_for_gives_the_ema_model_only_to_an_objective_that_asks():
    ema_model = _dense(3)
    reference = steps.make_fixmatch_objective(wu=1.0, confidence=0.9)
    teacher = steps.make_fixmatch_objective(wu=1.0, confidence=0.9, ema_teacher=True)
    assert steps.teacher_for(reference, ema_model) is None
    assert steps.teacher_for(teacher, ema_model) is ema_model
    with pytest.raises(ValueError, match="use_ema"):
        steps.teacher_for(teacher, None)


def test_ema_teacher_needs_use_ema():
    hp = hparams.resolve(program="fixmatch", preset="smoke",
                         overrides='"use_ema": false, "fixmatch": {"pseudo_label_model": "ema"}')
    with pytest.raises(hparams.HParamsError, match="use_ema"):
        hparams.check_program("fixmatch", hp)
    hparams.check_program("fixmatch", dict(hp, use_ema=True))
    with pytest.raises(hparams.HParamsError, match="pseudo_label_model"):
        hparams.resolve(program="fixmatch", overrides='"fixmatch": {"pseudo_label_model": "x"}')


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "tiny", unlabeled_per_class=8)


@pytest.mark.parametrize("augment", ["randaugment", "cta"])
def test_training_hands_the_objective_its_ema_model(tmp_path, split_dir, monkeypatch, augment):
    real = steps.make_fixmatch_objective
    calls = []

    def recording(**kwargs):
        objective = real(**kwargs)

        def wrapped(model, batch, teacher=None):
            calls.append((model, teacher))
            return objective(model, batch, teacher=teacher)
        for name in ("sum_keys", "sum_shapes", "labeler", "uses_teacher"):
            setattr(wrapped, name, getattr(objective, name))
        return wrapped

    monkeypatch.setattr(steps, "make_fixmatch_objective", recording)
    result = train_fixmatch.run(
        data=split_dir, model_dir=str(tmp_path), preset="smoke", log=lambda line: None,
        hparams=f'"augment": {{"type": "{augment}"}}, "fixmatch": {{"pseudo_label_model": '
                '"ema", "confidence": 0.34}')
    assert result["steps"] == 3 and np.isfinite(result["top1"]) and result["mask_rate"] > 0
    assert calls and all(teacher is not None and teacher is not model
                         for model, teacher in calls)
    # The teacher is the model the loop averages: after training it holds exactly the final
    # checkpoint's EMA tensors (written under the same key, so the names line up).
    _, teacher = calls[-1]
    saved = tf.train.load_checkpoint(str(tmp_path / f"checkpoint-{result['steps']}"))
    written = tf.train.load_checkpoint(
        tf.train.Checkpoint(ema_model=teacher).write(str(tmp_path / "teacher" / "t")))
    names = [n for n in written.get_variable_to_shape_map() if n.startswith("ema_model/")]
    assert len(names) == len(teacher.variables)
    for name in names:
        np.testing.assert_array_equal(written.get_tensor(name), saved.get_tensor(name), name)


def test_few_labels_preset_trains(tmp_path, split_dir):
    lines = []
    result = train_fixmatch.run(
        data=split_dir, model_dir=str(tmp_path), preset="few_labels", log=lines.append,
        hparams='"run": {"max_steps": 2, "steps_per_run": 2, "per_worker_batch_size": 8}')
    assert result["steps"] == 2 and np.isfinite(result["top1"])
    assert ("threshold fixed, dist_align labeled, pseudo-labels from the ema model"
            in lines[0]), lines[0]
