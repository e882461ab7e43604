"""FixMatch's loss on hand-built logits (spec section 6): the threshold edge, masking, no
gradient through pseudo-labels, wu, replicas; and the objective's use of the two views."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fixmatch import losses
from fixmatch.train import steps


def np_xe(labels, logits):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -logp[np.arange(len(labels)), labels]


def test_threshold_is_inclusive():
    weak = np.zeros((1, 2), "float32")  # softmax exactly [0.5, 0.5]
    _, at = losses.pseudo_labels(logits_weak=weak, confidence=0.5)
    _, above = losses.pseudo_labels(logits_weak=weak, confidence=np.nextafter(
        np.float32(0.5), np.float32(1)))
    assert float(at[0]) == 1.0 and float(above[0]) == 0.0


def test_masked_samples_add_zero_but_count_in_the_mean():
    weak = np.array([[6.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], "float32")
    strong = np.array([[0.0, 2.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 9.0]], "float32")
    loss, mask = losses.pseudo_label_loss(logits_weak=weak, logits_strong=strong,
                                          confidence=0.9)
    np.testing.assert_array_equal(mask.numpy(), [1.0, 0.0, 0.0])
    assert float(loss) == pytest.approx(np_xe(np.array([0]), strong[:1])[0] / 3, rel=1e-6)
    changed = strong.copy()
    changed[1:] = [[0.0, 7.0, 0.0], [1.0, 1.0, 1.0]]  # only masked samples change
    loss2, _ = losses.pseudo_label_loss(logits_weak=weak, logits_strong=changed,
                                        confidence=0.9)
    assert float(loss2) == pytest.approx(float(loss), rel=1e-7)


def test_the_unlabeled_loss_sends_gradient_to_the_strong_view_only():
    """d L_u / d strong = mask * (softmax(strong) - onehot(pseudo)) / N; d L_u / d weak = 0.

    What this guards: the weak view only *selects* the targets (spec 6: hard pseudo-labels, no
    soft targets or confidence weights). tf.argmax and the >= threshold carry no gradient, so
    this holds with or without the stop_gradient in `losses.pseudo_labels`; that one is a guard
    for code that would use the probabilities themselves, and removing it changes nothing here.
    """
    weak = tf.Variable([[3.0, 0.0, 0.0], [0.0, 2.5, 0.0], [0.0, 0.0, 0.0]])
    strong = tf.Variable([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 1.0]])
    with tf.GradientTape() as tape:
        loss, mask = losses.pseudo_label_loss(logits_weak=weak, logits_strong=strong,
                                              confidence=0.5)
    g_weak, g_strong = tape.gradient(loss, [weak, strong])
    assert g_weak is None or not np.any(g_weak.numpy())
    np.testing.assert_array_equal(mask.numpy(), [1.0, 1.0, 0.0])  # row 3: max prob 1/3
    s = strong.numpy()
    softmax = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    onehot = np.eye(3)[[0, 1, 0]]
    expected = mask.numpy()[:, None] * (softmax - onehot) / 3
    np.testing.assert_allclose(g_strong.numpy(), expected, rtol=1e-5, atol=1e-7)


def _fixmatch_loss(wu, **kw):
    rng = np.random.default_rng(3)
    args = dict(labels=np.array([0, 2]), logits_labeled=rng.normal(size=(2, 3)).astype("f4"),
                logits_weak=np.array([[8.0, 0, 0], [0, 0, 0], [0, 7.0, 0], [0, 0, 0.1]], "f4"),
                logits_strong=rng.normal(size=(4, 3)).astype("f4"), confidence=0.9,
                regularization_losses=[tf.constant(0.3)])
    args.update(kw)
    return losses.fixmatch_loss(wu=wu, **args)


def test_wu_scales_only_the_unlabeled_term():
    total1, parts1 = _fixmatch_loss(1.0)
    total3, parts3 = _fixmatch_loss(3.0)
    assert float(parts3["xe"]) == float(parts1["xe"])
    assert float(parts3["wd"]) == pytest.approx(0.3)
    assert float(parts3["xeu"]) == pytest.approx(3 * float(parts1["xeu"]), rel=1e-6)
    assert float(total3 - total1) == pytest.approx(2 * float(parts1["xeu"]), rel=1e-5)


def test_two_replicas_on_halves_give_the_one_replica_loss():
    # Each replica computes the loss of its half (wd included) and scales it by 1/2; the
    # optimizer sums the replicas' gradients, so their sum must be the full-batch loss.
    rng = np.random.default_rng(5)
    labels = np.array([0, 2, 1, 1])
    z_l = rng.normal(size=(4, 3)).astype("f4")
    z_w = (rng.normal(size=(8, 3)) * 4).astype("f4")
    z_s = rng.normal(size=(8, 3)).astype("f4")
    common = dict(confidence=0.8, wu=2.0, regularization_losses=[tf.constant(0.2)])
    full, _ = losses.fixmatch_loss(labels=labels, logits_labeled=z_l, logits_weak=z_w,
                                   logits_strong=z_s, **common)
    halves = [losses.fixmatch_loss(labels=labels[i * 2:(i + 1) * 2],
                                   logits_labeled=z_l[i * 2:(i + 1) * 2],
                                   logits_weak=z_w[i * 4:(i + 1) * 4],
                                   logits_strong=z_s[i * 4:(i + 1) * 4], **common)[0]
              for i in range(2)]
    assert sum(float(losses.scale_for_replicas(h, 2)) for h in halves) == pytest.approx(
        float(full), rel=1e-5)


class LogitsModel:
    """A "model" whose logits are its input's per-channel means: images encode the logits."""

    def __init__(self):
        inputs = keras.Input((2, 2, 3))
        self.net = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
        self.losses = []

    def __call__(self, images, training):
        return self.net(images, training=training)


def as_images(logits):
    return np.broadcast_to(np.asarray(logits, "f4")[:, None, None, :],
                           (len(logits), 2, 2, 3)).copy()


def test_objective_takes_pseudo_labels_from_the_weak_view_and_trains_the_strong():
    labeled, labels = [[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]], np.array([0, 1])
    weak = [[9.0, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 8.0], [0.0, 7.0, 0.0]]
    strong = [[0.0, 3.0, 0.0], [6.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0]]
    batch = {"image": as_images(labeled), "label": labels, "unsup_image": as_images(weak),
             "unsup_aug_image": as_images(strong)}
    objective = steps.make_fixmatch_objective(wu=1.0, confidence=0.95)
    total, sums = objective(LogitsModel(), batch)

    def expected(pseudo_from, trained):
        probs = np.exp(pseudo_from) / np.exp(pseudo_from).sum(-1, keepdims=True)
        mask = probs.max(-1) >= 0.95
        xeu = (mask * np_xe(probs.argmax(-1), np.array(trained, "f4"))).mean()
        return np_xe(labels, np.array(labeled, "f4")).mean() + xeu

    weak, strong = np.array(weak, "f4"), np.array(strong, "f4")
    assert float(total) == pytest.approx(expected(weak, strong), rel=1e-5)
    assert float(sums["mask_sum"]) / float(sums["count"]) == pytest.approx(0.75)  # 3 of 4
    for wrong in (expected(strong, weak), expected(strong, strong), expected(weak, weak)):
        assert abs(wrong - float(total)) > 0.1  # swapped or same-view variants differ
