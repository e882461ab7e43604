"""The pseudo-label rules of fixmatch/train/thresholds.py on hand-built probabilities:
closed forms after k updates, class-wise ordering, weights against a direct computation,
distribution alignment, and that the FixMatch objective updates the state from the weak view
of the unlabeled batch only and with `fixed` gives exactly the reference's loss."""

import numpy as np
import pytest
import tensorflow as tf

from fixmatch.train import steps, thresholds

C = 4
# A batch of weak-view probabilities (rows sum to 1), confidences 0.7, 0.4, 0.55, 0.9, 0.3.
PROBS = np.array([[0.7, 0.1, 0.1, 0.1],
                  [0.2, 0.4, 0.3, 0.1],
                  [0.15, 0.15, 0.55, 0.15],
                  [0.9, 0.05, 0.03, 0.02],
                  [0.3, 0.25, 0.25, 0.2]], np.float32)


def _feed(rule, probs, k):
    for _ in range(k):
        out = rule(tf.constant(probs))
    return out


@pytest.mark.parametrize("k", [1, 7])
def test_freematch_state_after_k_updates_is_the_closed_form(k):
    m = 0.9
    rule = thresholds.FreeMatchThreshold(C, momentum=m)
    _feed(rule, PROBS, k)
    # Same batch k times: x_k = m^k x_0 + (1 - m^k) batch mean  (FreeMatch eqs. 5-6).
    decay = m ** k
    np.testing.assert_allclose(rule.global_threshold.numpy(),
                               decay / C + (1 - decay) * PROBS.max(1).mean(), rtol=1e-5)
    np.testing.assert_allclose(rule.class_confidence.numpy(),
                               decay / C + (1 - decay) * PROBS.mean(0), rtol=1e-5)
    hist = np.bincount(PROBS.argmax(1), minlength=C) / len(PROBS)
    np.testing.assert_allclose(rule.label_histogram.numpy(), decay / C + (1 - decay) * hist,
                               rtol=1e-5)
    p = rule.class_confidence.numpy()
    np.testing.assert_allclose(rule.thresholds().numpy(),
                               p / p.max() * rule.global_threshold.numpy(), rtol=1e-6)


@pytest.mark.parametrize("k", [1, 7])
def test_softmatch_state_after_k_updates_is_the_closed_form(k):
    m = 0.8
    rule = thresholds.SoftMatchWeights(C, momentum=m)
    _feed(rule, PROBS, k)
    conf = PROBS.max(1)
    decay = m ** k
    # SoftMatch eq. 8: mu_0 = 1/C, sigma_0^2 = 1, the unbiased batch variance.
    np.testing.assert_allclose(rule.mean.numpy(), decay / C + (1 - decay) * conf.mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(rule.variance.numpy(),
                               decay * 1.0 + (1 - decay) * conf.var(ddof=1), rtol=1e-5)


@pytest.mark.parametrize("k", [1, 7])
def test_alignment_running_mean_after_k_updates_is_the_closed_form(k):
    m = 0.7
    align = thresholds.DistributionAlignment([1.0] * C, momentum=m)
    _feed(align, PROBS, k)
    np.testing.assert_allclose(align.running_mean.numpy(),
                               m ** k / C + (1 - m ** k) * PROBS.mean(0), rtol=1e-5)


def test_freematch_class_thresholds_order_the_classes_as_their_mean_probability():
    rule = thresholds.FreeMatchThreshold(C, momentum=0.5)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, C)) + np.array([2.0, 0.5, -1.0, 1.0])  # class 0 easiest
    probs = tf.nn.softmax(logits).numpy().astype(np.float32)
    _feed(rule, probs, 5)
    level, mean = rule.thresholds().numpy(), rule.class_confidence.numpy()
    assert list(np.argsort(level)) == list(np.argsort(mean)) == [2, 1, 3, 0]
    # The best-learned class gets the global threshold, the others less (MaxNorm, eq. 7).
    np.testing.assert_allclose(level.max(), rule.global_threshold.numpy(), rtol=1e-6)
    assert level.min() < 0.8 * level.max()


def test_weights_equal_a_direct_computation():
    probs = tf.constant(PROBS)
    conf, arg = PROBS.max(1), PROBS.argmax(1)

    pseudo, w = thresholds.FixedThreshold(0.55)(probs)
    np.testing.assert_array_equal(w.numpy(), (conf >= 0.55).astype(np.float32))
    np.testing.assert_array_equal(pseudo.numpy(), arg)

    free = thresholds.FreeMatchThreshold(C, momentum=0.5)
    _feed(free, PROBS, 3)
    before = free.thresholds().numpy()  # the call below updates first, then thresholds
    _, w = free(probs)
    tau = free.thresholds().numpy()
    assert not np.allclose(before, tau)
    np.testing.assert_array_equal(w.numpy(), (conf >= tau[arg]).astype(np.float32))
    assert 0 < w.numpy().sum() < len(PROBS)  # the batch is split: the comparison means something

    soft = thresholds.SoftMatchWeights(C, momentum=0.5, lambda_max=0.9)
    _, w = soft(probs)
    mu, var = soft.mean.numpy(), soft.variance.numpy()
    expected = np.where(conf < mu, 0.9 * np.exp(-(conf - mu) ** 2 / (2 * var)), 0.9)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)
    assert (expected < 0.9).any() and (expected == 0.9).any()


def test_alignment_renormalises_and_moves_towards_its_target():
    target = np.array([0.4, 0.3, 0.2, 0.1], np.float32)
    align = thresholds.DistributionAlignment(target * 5, momentum=0.0)  # any scale: normalised
    skewed = np.tile(np.array([[0.1, 0.2, 0.3, 0.4]], np.float32), (8, 1))
    skewed[::2] = [0.05, 0.15, 0.3, 0.5]
    out = align(tf.constant(skewed)).numpy()
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-6)
    # ReMixMatch eq.: p * target / running mean, renormalised.
    direct = skewed * target / skewed.mean(0)
    np.testing.assert_allclose(out, direct / direct.sum(1, keepdims=True), rtol=1e-5)
    assert np.abs(out.mean(0) - target).sum() < 0.2 * np.abs(skewed.mean(0) - target).sum()
    # With momentum the running mean moves from uniform towards the predictions' mean.
    slow = thresholds.DistributionAlignment(target, momentum=0.9)
    gaps = []
    for _ in range(3):
        slow(tf.constant(skewed))
        gaps.append(np.abs(slow.running_mean.numpy() - skewed.mean(0)).sum())
    assert gaps[0] > gaps[1] > gaps[2]


def test_alignment_target_and_errors():
    assert thresholds.alignment_target("none", num_classes=3) is None
    assert thresholds.alignment_target("uniform", num_classes=4) == [0.25] * 4
    assert thresholds.alignment_target("labeled", num_classes=2, labeled_counts=(1, 3)) == [
        0.25, 0.75]
    with pytest.raises(ValueError, match="counts_per_class"):
        thresholds.alignment_target("labeled", num_classes=3, labeled_counts=())
    with pytest.raises(ValueError, match="fairness term .* FreeMatch"):
        thresholds.PseudoLabeler(thresholds.FixedThreshold(0.9), fairness_weight=0.1)


def test_fairness_loss_is_freematchs_formula_and_finite_on_a_collapse():
    free = thresholds.FreeMatchThreshold(C, momentum=0.5)
    _feed(free, PROBS, 2)
    strong = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.5, 0.3, 0.1, 0.1],
                       [0.2, 0.2, 0.2, 0.4], [0.25, 0.25, 0.4, 0.1]], np.float32)
    mask = np.array([1, 1, 1, 0, 1], np.float32)
    got = free.fairness_loss(tf.constant(strong), tf.constant(mask)).numpy()
    kept = strong[mask > 0]
    hbar = np.bincount(kept.argmax(1), minlength=C) / len(kept)  # class 3: empty
    ratio = np.divide(kept.mean(0), hbar, out=np.zeros(C), where=hbar > 0)
    b = ratio / ratio.sum()
    a = free.class_confidence.numpy() / free.label_histogram.numpy()
    a = a / a.sum()
    np.testing.assert_allclose(got, (a * np.log(b + 1e-12)).sum(), rtol=1e-5)
    collapsed = np.tile(np.array([[0.85, 0.05, 0.05, 0.05]], np.float32), (6, 1))
    assert np.isfinite(free.fairness_loss(tf.constant(collapsed), tf.ones([6])).numpy())
    assert free.fairness_loss(tf.constant(collapsed), tf.zeros([6])).numpy() == 0.0


# ---------------------------------------------------------------------------------------------
# Through the FixMatch objective: which images update the state, and the fixed rule's loss.
# ---------------------------------------------------------------------------------------------

def _model_and_batch(seed=0):
    import keras
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(
        C, kernel_regularizer=keras.regularizers.L2(1e-3))(inputs))
    rng = np.random.default_rng(seed)
    batch = {"image": rng.normal(size=(4, 6)).astype(np.float32) * 3,
             "label": rng.integers(0, C, 4),
             "unsup_image": rng.normal(size=(8, 6)).astype(np.float32) * 3,
             "unsup_aug_image": rng.normal(size=(8, 6)).astype(np.float32) * 3,
             "unsup_label": rng.integers(0, C, 8)}
    return model, {k: tf.constant(v) for k, v in batch.items()}


def _labeler(kind):
    if kind == "freematch":
        return thresholds.PseudoLabeler(thresholds.FreeMatchThreshold(C, momentum=0.5))
    if kind == "softmatch":
        return thresholds.PseudoLabeler(thresholds.SoftMatchWeights(C, momentum=0.5))
    return thresholds.PseudoLabeler(thresholds.FixedThreshold(0.5),
                                    thresholds.DistributionAlignment([1.0] * C, momentum=0.5))


def _state(labeler):
    return [v.numpy() for v in labeler.variables]


@pytest.mark.parametrize("kind", ["freematch", "softmatch", "align"])
def test_objective_updates_the_state_from_the_weak_view_only(kind):
    model, batch = _model_and_batch()
    labeler = _labeler(kind)
    objective = steps.make_fixmatch_objective(wu=1.0, labeler=labeler, num_classes=C)
    _, sums = objective(model, batch)

    def expected(view):
        reference = _labeler(kind)
        reference(tf.nn.softmax(model(batch[view])))
        return _state(reference)

    got = _state(labeler)
    for want, other in ((expected("unsup_image"), "same"),
                        (expected("unsup_aug_image"), "strong"), (expected("image"), "labeled")):
        same = all(np.allclose(g, w, rtol=1e-6) for g, w in zip(got, want))
        assert same == (other == "same"), f"state matches an update from the {other} view"
    # Loss and diagnostics use one weight vector: the mask sum equals the direct weights.
    pseudo, weights, _ = _labeler(kind)(tf.nn.softmax(model(batch["unsup_image"])))
    np.testing.assert_allclose(sums["mask_sum"].numpy() / 4, weights.numpy().mean(), rtol=1e-6)
    hit = (pseudo.numpy() == batch["unsup_label"].numpy())
    np.testing.assert_allclose(sums["pseudo_correct"].numpy(), (weights.numpy() * hit).sum(),
                               rtol=1e-6)
    np.testing.assert_allclose(sums["pseudo_hist"].numpy(), np.bincount(
        pseudo.numpy(), weights=weights.numpy(), minlength=C), rtol=1e-6)


def test_fixed_rule_gives_exactly_the_reference_loss():
    model, batch = _model_and_batch(seed=3)
    objective = steps.make_fixmatch_objective(wu=2.5, confidence=0.9, num_classes=C)
    total, sums = objective(model, batch)
    # The reference's loss written out (spec section 6): L_x + wu * mean(mask * H) + L_wd.
    logits = model(tf.concat([batch["image"], batch["unsup_image"],
                              batch["unsup_aug_image"]], 0), training=True)
    z_l, z_w, z_s = tf.split(logits, [4, 8, 8])
    xe = tf.nn.sparse_softmax_cross_entropy_with_logits
    probs = tf.stop_gradient(tf.nn.softmax(z_w))
    mask = tf.cast(tf.reduce_max(probs, -1) >= 0.9, tf.float32)
    assert 0 < mask.numpy().sum() < 8
    loss = (tf.reduce_mean(xe(labels=tf.cast(batch["label"], tf.int32), logits=z_l))
            + 2.5 * tf.reduce_mean(mask * xe(labels=tf.cast(tf.argmax(probs, -1), tf.int32),
                                              logits=z_s))
            + tf.add_n(model.losses))
    np.testing.assert_array_equal(total.numpy(), loss.numpy())
    np.testing.assert_allclose([sums["threshold_min_sum"], sums["threshold_max_sum"]], 3.6)
    assert not objective.labeler.stateful  # nothing new in the reference's checkpoints
