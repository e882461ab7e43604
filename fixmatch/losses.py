"""Loss functions of spec section 6, as pure functions of logits and labels.

Conventions shared by the supervised baseline and FixMatch:
- logits are float32 (the models cast before returning), so the losses are
  computed in float32 even under mixed_bfloat16;
- every function returns per-replica quantities; the engine divides the total
  by the number of replicas before taking gradients because gradients are
  SUMMED across replicas (see `scale_for_replicas`);
- weight decay is the coupled L2 term `L_wd = sum(model.losses)` that the
  model's kernel/bias regularizers produce.

FixMatch (`fixmatch_loss`): the caller runs ONE forward pass on
concat(labeled weak, unlabeled weak, unlabeled strong) and splits the logits
with `split_logits`; then L = L_x + wu * L_u + L_wd with L_u from
`pseudo_label_loss`.
"""

import tensorflow as tf


def cross_entropy(labels, logits):
    """Per-example softmax cross-entropy with integer labels, float32."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))


def weight_decay_loss(regularization_losses):
    """L_wd: the sum of the model's regularizer penalties (0 when there are none)."""
    losses = [tf.cast(l, tf.float32) for l in regularization_losses]
    return tf.add_n(losses) if losses else tf.constant(0.0, tf.float32)


def supervised_loss(*, labels, logits, regularization_losses):
    """Supervised baseline: L = L_x + L_wd. Returns (total, {"xe", "wd"})."""
    xe = tf.reduce_mean(cross_entropy(labels, logits))
    wd = weight_decay_loss(regularization_losses)
    return xe + wd, {"xe": xe, "wd": wd}


def split_logits(logits, sizes):
    """Splits the logits of a concatenated forward pass back into its parts."""
    return tf.split(logits, list(sizes), axis=0)


def pseudo_label_loss(*, logits_weak, logits_strong, confidence):
    """FixMatch L_u: hard pseudo-labels from the weak view, masked by confidence.

    The mean runs over ALL unlabeled samples (masked ones count as 0), as in the
    reference. Returns (L_u, mask) with mask in {0, 1} per sample.
    """
    labels, mask = pseudo_labels(logits_weak=logits_weak, confidence=confidence)
    return weighted_pseudo_label_loss(pseudo_labels=labels, weights=mask,
                                      logits_strong=logits_strong), mask


def weighted_pseudo_label_loss(*, pseudo_labels, weights, logits_strong):
    """L_u = mean over ALL unlabeled samples of w_b * H(pseudo_b, strong_b) (FixMatch eq. 4
    with the 0/1 mask generalised to a weight, SoftMatch eq. 2); no gradient through w."""
    return tf.reduce_mean(tf.stop_gradient(weights)
                          * cross_entropy(pseudo_labels, logits_strong))


def pseudo_labels(*, logits_weak, confidence):
    """(argmax of the weak view's softmax, 1 where its max >= confidence else 0), no gradient."""
    probs = tf.stop_gradient(tf.nn.softmax(tf.cast(logits_weak, tf.float32)))
    mask = tf.cast(tf.reduce_max(probs, axis=-1) >= confidence, tf.float32)
    return tf.argmax(probs, axis=-1), mask


def fixmatch_loss(*, labels, logits_labeled, logits_weak, logits_strong, confidence, wu,
                  regularization_losses):
    """FixMatch: L = L_x + wu * L_u + L_wd (spec section 6), the reference's fixed threshold.

    Returns (total, {"xe", "xeu" (already times wu), "wd", "mask" (mean of the mask)}).
    Pseudo-labels come from the same (online) forward pass, under stop_gradient.
    """
    pseudo, mask = pseudo_labels(logits_weak=logits_weak, confidence=confidence)
    return weighted_fixmatch_loss(labels=labels, logits_labeled=logits_labeled,
                                  logits_strong=logits_strong, pseudo_labels=pseudo,
                                  weights=mask, wu=wu,
                                  regularization_losses=regularization_losses)


def weighted_fixmatch_loss(*, labels, logits_labeled, logits_strong, pseudo_labels, weights,
                           wu, regularization_losses):
    """L = L_x + wu * L_u + L_wd with given pseudo-labels and per-sample weights (a 0/1 mask
    from a threshold rule, or SoftMatch's weights; fixmatch/train/thresholds.py).

    Returns (total, {"xe", "xeu" (already times wu), "wd", "mask" (mean weight)}).
    """
    xe = tf.reduce_mean(cross_entropy(labels, logits_labeled))
    xeu = wu * weighted_pseudo_label_loss(pseudo_labels=pseudo_labels, weights=weights,
                                          logits_strong=logits_strong)
    wd = weight_decay_loss(regularization_losses)
    return xe + xeu + wd, {"xe": xe, "xeu": xeu, "wd": wd, "mask": tf.reduce_mean(weights)}


def scale_for_replicas(loss, num_replicas):
    """Loss to differentiate: gradients are summed across replicas by the optimizer."""
    return loss / tf.cast(num_replicas, loss.dtype)
