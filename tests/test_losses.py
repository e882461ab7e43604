"""Loss functions of spec section 6 against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from fixmatch import losses


def np_xe(labels, logits):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -logp[np.arange(len(labels)), labels]


def test_supervised_loss_is_mean_xe_plus_weight_decay():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype("float32")
    labels = rng.integers(0, 4, 6)
    total, parts = losses.supervised_loss(labels=labels, logits=logits,
                                          regularization_losses=[tf.constant(0.25),
                                                                 tf.constant(0.5)])
    assert float(parts["xe"]) == pytest.approx(np_xe(labels, logits).mean(), rel=1e-5)
    assert float(parts["wd"]) == pytest.approx(0.75)
    assert float(total) == pytest.approx(np_xe(labels, logits).mean() + 0.75, rel=1e-5)
    total0, parts0 = losses.supervised_loss(labels=labels, logits=logits,
                                            regularization_losses=[])
    assert float(parts0["wd"]) == 0.0


def test_loss_is_float32_for_bfloat16_logits():
    logits = tf.cast(tf.constant([[2.0, 0.0]]), tf.bfloat16)
    assert losses.cross_entropy([0], logits).dtype == tf.float32


def test_pseudo_label_loss_masks_but_averages_over_all_unlabeled():
    weak = np.array([[5.0, 0.0, 0.0], [0.1, 0.0, 0.0]], "float32")  # confident, not
    strong = np.array([[0.0, 1.0, 0.0], [3.0, 0.0, 0.0]], "float32")
    loss_u, mask = losses.pseudo_label_loss(logits_weak=weak, logits_strong=strong,
                                            confidence=0.7)
    np.testing.assert_array_equal(mask.numpy(), [1.0, 0.0])
    assert float(loss_u) == pytest.approx(np_xe(np.array([0]), strong[:1])[0] / 2, rel=1e-5)


def test_split_logits_and_replica_scaling():
    logits = tf.reshape(tf.range(14.0), (7, 2))
    a, b, c = losses.split_logits(logits, (1, 3, 3))
    assert a.shape == (1, 2) and b.shape == (3, 2) and c.shape == (3, 2)
    assert float(losses.scale_for_replicas(tf.constant(8.0), 4)) == 2.0


def test_fixmatch_loss_combines_terms_with_wu():
    rng = np.random.default_rng(1)
    z_l = rng.normal(size=(2, 3)).astype("float32")
    labels = np.array([0, 2])
    z_w = np.array([[9.0, 0.0, 0.0], [0.0, 0.0, 0.0]], "float32")  # one confident of two
    z_s = rng.normal(size=(2, 3)).astype("float32")
    total, parts = losses.fixmatch_loss(labels=labels, logits_labeled=z_l, logits_weak=z_w,
                                        logits_strong=z_s, confidence=0.7, wu=10.0,
                                        regularization_losses=[tf.constant(0.5)])
    xe = np_xe(labels, z_l).mean()
    xeu = 10.0 * np_xe(np.array([0]), z_s[:1])[0] / 2
    assert float(parts["xe"]) == pytest.approx(xe, rel=1e-5)
    assert float(parts["xeu"]) == pytest.approx(xeu, rel=1e-5)
    assert float(parts["mask"]) == pytest.approx(0.5)
    assert float(total) == pytest.approx(xe + xeu + 0.5, rel=1e-5)
