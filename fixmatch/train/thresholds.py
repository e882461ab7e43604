"""Which unlabeled predictions count, and how much: the pseudo-label rules of FixMatch.

FixMatch (Sohn et al., NeurIPS 2020, eq. 4) keeps an unlabeled image when the weak view's
max class probability reaches a fixed threshold. With few labels that rule lets many wrong
pseudo-labels through (or, set high, very few right ones), so two self-adaptive rules and
distribution alignment are offered beside it (hparams `fixmatch.threshold`,
`fixmatch.dist_align`):

- `FixedThreshold`: the reference, weight 1 where max p >= `fixmatch.confidence`.
- `FreeMatchThreshold`: FreeMatch (Wang et al., ICLR 2023, sec. 3.2): a global threshold that
  is an EMA of the batches' mean max-confidence (eq. 5, tau_0 = 1/C), times a class-wise
  factor MaxNorm of an EMA of the mean probability vector (eqs. 6-7); plus its self-adaptive
  fairness term (sec. 3.3), `fairness_loss`.
- `SoftMatchWeights`: SoftMatch (Chen et al., ICLR 2023, sec. 3.2): a weight of 1 above the
  EMA mean of the max-confidence, a Gaussian of the distance below it, its variance an EMA
  of the unbiased batch variance (eqs. 7-8, mu_0 = 1/C, sigma_0^2 = 1).
- `DistributionAlignment`: ReMixMatch (Berthelot et al., ICLR 2020, sec. 3.2) and SoftMatch's
  uniform alignment (sec. 3.3): p <- Normalize(p * target / running mean of p), applied to the
  weak view before the pseudo-label and the confidence are taken.

Each is a tf.Module whose state (O(number of classes) float32 variables) is created inside
the strategy scope, checkpointed with the model and updated only from the weak view of the
unlabeled batch, inside the replica step. Batch statistics are summed over the replicas
before the update (`global_sums`), so N replicas hold exactly the state one replica would
on the global batch. Evaluation never reads them. A call updates the state first and then
uses it, in the papers' order.
"""

import tensorflow as tf

from fixmatch.hparams import DIST_ALIGN, THRESHOLDS  # noqa: F401 (the option names)


def _state(value, name):
    """A non-trainable float32 variable that every replica assigns the same value to."""
    return tf.Variable(tf.cast(value, tf.float32), trainable=False, name=name,
                       synchronization=tf.VariableSynchronization.ON_WRITE,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def global_sums(*values):
    """Sums of per-replica values over all replicas (replica context; one replica: as is)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None:  # cross-replica context: the caller already holds global values
        return list(values)
    return list(ctx.all_reduce(tf.distribute.ReduceOp.SUM, list(values)))


def _ema(variable, value, momentum):
    variable.assign(momentum * variable + (1.0 - momentum) * value)


def _confidence(probs):
    return tf.reduce_max(probs, axis=-1), tf.argmax(probs, axis=-1)


class FixedThreshold(tf.Module):
    """The reference's rule: weight 1 where max p >= confidence, else 0. No state."""

    kind = "fixed"

    def __init__(self, confidence):
        super().__init__(name="fixed_threshold")
        self.confidence = float(confidence)
        self.num_classes = None

    def __call__(self, probs):
        """(pseudo-labels, weights) of a batch of weak-view probabilities [N, C]."""
        confidence, pseudo = _confidence(probs)
        return pseudo, tf.cast(confidence >= self.confidence, tf.float32)

    def thresholds(self, num_classes):
        """The threshold in force for each class, [C]."""
        return tf.fill([num_classes], tf.constant(self.confidence, tf.float32))


class FreeMatchThreshold(tf.Module):
    """FreeMatch's self-adaptive thresholds (Wang et al., ICLR 2023, eqs. 5-7).

    tau_t = m tau_{t-1} + (1 - m) mean_b max(q_b);  p_t = m p_{t-1} + (1 - m) mean_b q_b;
    tau_t(c) = p_t(c) / max_c' p_t(c') * tau_t. An image counts when max q >= tau_t(argmax q).
    Both start at 1/C. `label_histogram` (an EMA of the batches' pseudo-label histogram, from
    1/C) serves the fairness term only.
    """

    kind = "freematch"

    def __init__(self, num_classes, *, momentum=0.999):
        super().__init__(name="freematch_threshold")
        self.num_classes, self.momentum = int(num_classes), float(momentum)
        uniform = tf.fill([self.num_classes], 1.0 / self.num_classes)
        self.global_threshold = _state(1.0 / self.num_classes, "global_threshold")
        self.class_confidence = _state(uniform, "class_confidence")
        self.label_histogram = _state(uniform, "label_histogram")

    def update(self, probs):
        confidence, pseudo = _confidence(probs)
        count, conf_sum, prob_sum, hist_sum = global_sums(
            tf.cast(tf.shape(probs)[0], tf.float32), tf.reduce_sum(confidence),
            tf.reduce_sum(probs, axis=0),
            tf.reduce_sum(tf.one_hot(pseudo, self.num_classes, dtype=tf.float32), axis=0))
        _ema(self.global_threshold, conf_sum / count, self.momentum)
        _ema(self.class_confidence, prob_sum / count, self.momentum)
        _ema(self.label_histogram, hist_sum / count, self.momentum)

    def thresholds(self, num_classes=None):
        """tau_t(c) = MaxNorm(p_t)(c) * tau_t (eq. 7), [C]."""
        p = tf.convert_to_tensor(self.class_confidence)
        return p / tf.reduce_max(p) * self.global_threshold

    def __call__(self, probs):
        self.update(probs)
        confidence, pseudo = _confidence(probs)
        return pseudo, tf.cast(confidence >= tf.gather(self.thresholds(), pseudo), tf.float32)

    def fairness_loss(self, probs_strong, weights):
        """FreeMatch's self-adaptive fairness term L_f (sec. 3.3), added as w_f * L_f.

        L_f = -H(a, b) = sum_c a_c log b_c, with a = SumNorm(p_t / h_t) from the state (no
        gradient) and b = SumNorm(pbar / hbar) from the strong views of the images that
        passed: pbar their mean probability vector, hbar the histogram of their argmax. A class
        with an empty histogram drops out of its distribution (its ratio is taken as 0, as in
        the authors' release), so a collapsed batch gives a finite value. 0 when none passed.
        """
        mask = tf.stop_gradient(weights)[:, None]
        passed = tf.reduce_sum(mask)
        pbar = tf.math.divide_no_nan(tf.reduce_sum(probs_strong * mask, axis=0), passed)
        hbar = tf.math.divide_no_nan(tf.reduce_sum(
            tf.one_hot(tf.argmax(probs_strong, axis=-1), self.num_classes) * mask, axis=0),
            passed)
        batch = _sum_norm(tf.math.divide_no_nan(pbar, hbar))
        model = tf.stop_gradient(_sum_norm(tf.math.divide_no_nan(
            tf.convert_to_tensor(self.class_confidence), self.label_histogram)))
        return tf.reduce_sum(model * tf.math.log(batch + 1e-12)) * tf.cast(passed > 0,
                                                                           tf.float32)


def _sum_norm(x):
    return tf.math.divide_no_nan(x, tf.reduce_sum(x))


class SoftMatchWeights(tf.Module):
    """SoftMatch's truncated-Gaussian sample weights (Chen et al., ICLR 2023, eqs. 7-8).

    lambda(p) = lambda_max                                      if max p >= mu_t
              = lambda_max exp(-(max p - mu_t)^2 / (2 sigma_t^2)) otherwise,
    mu_t = m mu_{t-1} + (1 - m) mean_b max p,
    sigma_t^2 = m sigma_{t-1}^2 + (1 - m) B/(B-1) var_b max p   (mu_0 = 1/C, sigma_0^2 = 1).
    The pseudo-label is argmax p, as in FixMatch; mu_t is reported as its threshold.
    """

    kind = "softmatch"

    def __init__(self, num_classes, *, momentum=0.999, lambda_max=1.0):
        super().__init__(name="softmatch_weights")
        self.num_classes, self.momentum = int(num_classes), float(momentum)
        self.lambda_max = float(lambda_max)
        self.mean = _state(1.0 / self.num_classes, "confidence_mean")
        self.variance = _state(1.0, "confidence_variance")

    def update(self, probs):
        confidence, _ = _confidence(probs)
        count, conf_sum = global_sums(tf.cast(tf.shape(probs)[0], tf.float32),
                                      tf.reduce_sum(confidence))
        batch_mean = conf_sum / count
        (sq_sum,) = global_sums(tf.reduce_sum(tf.square(confidence - batch_mean)))
        _ema(self.mean, batch_mean, self.momentum)
        _ema(self.variance, sq_sum / tf.maximum(count - 1.0, 1.0), self.momentum)

    def thresholds(self, num_classes):
        return tf.fill([num_classes], tf.convert_to_tensor(self.mean))

    def __call__(self, probs):
        self.update(probs)
        confidence, pseudo = _confidence(probs)
        gauss = tf.exp(-tf.square(confidence - self.mean) / (2.0 * self.variance))
        return pseudo, self.lambda_max * tf.where(confidence < self.mean, gauss, 1.0)


class DistributionAlignment(tf.Module):
    """p <- Normalize(p * target / ptilde), ptilde an EMA of the batches' mean p (from 1/C).

    ReMixMatch (Berthelot et al., ICLR 2020, sec. 3.2) aligns towards the labeled set's class
    prior, with ptilde its running average of the unlabeled predictions; SoftMatch's uniform
    alignment (Chen et al., ICLR 2023, eq. 9) towards the uniform distribution, with an EMA.
    ptilde is updated from the raw (not aligned) weak-view probabilities.
    """

    def __init__(self, target, *, momentum=0.999):
        super().__init__(name="distribution_alignment")
        target = tf.convert_to_tensor(target, tf.float32)
        self.target = target / tf.reduce_sum(target)
        self.num_classes = int(target.shape[0])
        self.running_mean = _state(tf.fill([self.num_classes], 1.0 / self.num_classes),
                                   "prediction_mean")
        self.momentum = float(momentum)

    def __call__(self, probs):
        count, prob_sum = global_sums(tf.cast(tf.shape(probs)[0], tf.float32),
                                      tf.reduce_sum(probs, axis=0))
        _ema(self.running_mean, prob_sum / count, self.momentum)
        aligned = probs * (self.target / self.running_mean)
        return aligned / tf.reduce_sum(aligned, axis=-1, keepdims=True)


def alignment_target(kind, *, num_classes, labeled_counts=None):
    """The class distribution `fixmatch.dist_align` aligns towards, or None for 'none'."""
    if kind == "none":
        return None
    if kind == "uniform":
        return [1.0 / num_classes] * num_classes
    if kind == "labeled":
        if not labeled_counts or len(labeled_counts) != num_classes or min(labeled_counts) < 0:
            raise ValueError(
                f"fixmatch.dist_align 'labeled' needs the labeled set's count of each of the "
                f"{num_classes} classes, got {labeled_counts!r}; rebuild the split with "
                "prepare_splits (its split.json lists counts_per_class) or use 'uniform'")
        total = float(sum(labeled_counts))
        return [n / total for n in labeled_counts]
    raise ValueError(f"fixmatch.dist_align must be one of {list(DIST_ALIGN)}, got {kind!r}")


def make_rule(kind, *, num_classes, confidence, momentum, lambda_max=1.0):
    """The threshold rule `fixmatch.threshold` names (create inside the strategy scope)."""
    if kind == "fixed":
        return FixedThreshold(confidence)
    if kind == "freematch":
        return FreeMatchThreshold(num_classes, momentum=momentum)
    if kind == "softmatch":
        return SoftMatchWeights(num_classes, momentum=momentum, lambda_max=lambda_max)
    raise ValueError(f"fixmatch.threshold must be one of {list(THRESHOLDS)}, got {kind!r}")


class PseudoLabeler(tf.Module):
    """The threshold rule and the optional alignment together: the state one run checkpoints.

    `__call__(probs_weak)` -> (pseudo-labels, weights, aligned probabilities).
    """

    def __init__(self, rule, align=None, *, fairness_weight=0.0):
        super().__init__(name="pseudo_labeler")
        if fairness_weight and not isinstance(rule, FreeMatchThreshold):
            raise ValueError("the fairness term (fixmatch.fairness_weight > 0) belongs to "
                             "FreeMatch: set fixmatch.threshold to 'freematch' or the weight 0")
        self.rule, self.align, self.fairness_weight = rule, align, float(fairness_weight)

    @property
    def stateful(self) -> bool:
        return bool(self.variables)

    def __call__(self, probs):
        if self.align is not None:
            probs = self.align(probs)
        pseudo, weights = self.rule(probs)
        return pseudo, weights, probs
