"""CTAugment, ImageNet variant of the reference (spec sections 4.4, 9 and 10).

Split in three so it works under a tf.distribute strategy and is testable without a model:

- `update_rates(...)` and `rates_to_probs(...)`: pure functions (no variables) of the update rule.
  They run per replica inside the compiled training step.
- `CTAState`: the learned state, non-trainable variables `rates[19, num_levels]` (init 1.0) and
  `probs[19, num_levels]` (init uniform). Created by the engine *inside* `strategy.scope()` and
  saved in checkpoints. `rates` aggregate with MEAN, so when every replica assigns
  `rates + its own increment` the stored value is `rates + mean of the increments` (spec 10);
  `probs` take the first replica's value.
- `CTAPolicy`: what the input pipeline runs. Holds the host-local `log_probs` table the strong
  augmentation samples from; the engine calls `set_probs(state.probs)` at the start of every block
  of `steps_per_run` steps, so the policy is constant within a block (spec 4.4 "hand-off"). It must
  be created *outside* any strategy scope: a mirrored or TPU variable cannot be read by tf.data.

Op indices are positions in `registry.CTA_OPS` (0 AutoContrastBlend ... 18 TranslateY). A level
in [0, 1) belongs to bin `int(num_levels * level)`.
"""

import math
import numbers

import tensorflow as tf

from fixmatch.augment import registry

NUM_OPS = len(registry.CTA_OPS)


def _check_int(owner, name, value, minimum):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{owner} {name} must be an integer >= {minimum}, got {value!r}")


def _check_fraction(owner, name, value, *, low_open=False, high_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
    if not ok:
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{owner} {name} must be a number in {interval}, got {value!r}")


def level_bins(levels, num_levels):
    """bin = int(num_levels * level), clipped to [0, num_levels - 1]."""
    bins = tf.cast(tf.cast(levels, tf.float32) * float(num_levels), tf.int32)
    return tf.clip_by_value(bins, 0, num_levels - 1)


def update_rates(rates, op_indices, levels, proximity, *, decay, num_levels):
    """One step of the rate update from a batch of probes; returns the new `rates`.

    Args:
      rates: float32 [num_ops, num_levels].
      op_indices: int [N, L], the ops of each probe (L = layers per probe).
      levels: float [N, L], their continuous levels in [0, 1).
      proximity: float [N], the model's probability of the true class for each probe.
      decay: rate EMA decay (0.99).
      num_levels: bins per op.

    Each probe gives its proximity to each of its (op, bin) cells; a cell touched in the batch moves
    by `(1 - decay) * mean_over_hits(proximity - rate)` (repeated hits are averaged, not summed);
    untouched cells are unchanged.
    """
    rates = tf.convert_to_tensor(rates, tf.float32)
    op_indices = tf.cast(op_indices, tf.int32)
    levels = tf.convert_to_tensor(levels, tf.float32)
    proximity = tf.cast(proximity, tf.float32)
    _check_update_shapes(rates, op_indices, levels, proximity, num_levels)
    num_cells = tf.size(rates)
    cells = tf.reshape(op_indices * num_levels + level_bins(levels, num_levels), [-1])
    hit_values = tf.reshape(tf.broadcast_to(proximity[:, None], tf.shape(op_indices)), [-1])
    sums = tf.math.unsorted_segment_sum(hit_values, cells, num_cells)
    hits = tf.math.unsorted_segment_sum(tf.ones_like(hit_values), cells, num_cells)
    flat = tf.reshape(rates, [-1])
    moved = flat + (1.0 - decay) * (sums / tf.maximum(hits, 1.0) - flat)
    return tf.reshape(tf.where(hits > 0, moved, flat), tf.shape(rates))


def _check_update_shapes(rates, op_indices, levels, proximity, num_levels):
    """Static shape checks (at trace time), so a mis-wired probe batch fails with its shapes."""
    if rates.shape.rank is not None and rates.shape[-1] is not None \
            and rates.shape[-1] != num_levels:
        raise ValueError(f"rates has {rates.shape[-1]} bins per op but num_levels={num_levels!r}")
    if not (op_indices.shape.rank in (None, 2) and levels.shape.rank in (None, 2)
            and proximity.shape.rank in (None, 1)
            and op_indices.shape.is_compatible_with(levels.shape)
            and op_indices.shape[:1].is_compatible_with(proximity.shape[:1])):
        raise ValueError(f"expected op_indices [N, L], levels [N, L] and proximity [N]; got "
                         f"{op_indices.shape}, {levels.shape} and {proximity.shape}")


def rates_to_probs(rates, *, confidence_threshold, epsilon):
    """The sampling table, row by row: floor at eps, scale by the row max, zero bins under the
    threshold, add eps, normalise. Bins under the threshold end with probability eps / row sum."""
    p = tf.maximum(tf.convert_to_tensor(rates, tf.float32), epsilon)
    p = p / tf.reduce_max(p, axis=1, keepdims=True)
    p = tf.where(p < confidence_threshold, tf.zeros_like(p), p) + epsilon
    return p / tf.reduce_sum(p, axis=1, keepdims=True)


class CTAState(tf.Module):
    """Checkpointed CTAugment state; create inside `strategy.scope()`."""

    def __init__(self, *, num_levels=15, decay=0.99, confidence_threshold=0.85, epsilon=0.001,
                 name="cta_state"):
        super().__init__(name=name)
        _check_int("CTAState", "num_levels", num_levels, 1)
        _check_fraction("CTAState", "decay", decay, high_open=True)
        _check_fraction("CTAState", "confidence_threshold", confidence_threshold, low_open=True)
        _check_fraction("CTAState", "epsilon", epsilon, low_open=True)
        self.num_levels = int(num_levels)
        self.decay = float(decay)
        self.confidence_threshold = float(confidence_threshold)
        self.epsilon = float(epsilon)
        shape = [NUM_OPS, self.num_levels]
        with self.name_scope:
            self.rates = tf.Variable(
                tf.ones(shape), trainable=False, name="rates",
                synchronization=tf.VariableSynchronization.ON_WRITE,
                aggregation=tf.VariableAggregation.MEAN)
            self.probs = tf.Variable(
                tf.fill(shape, 1.0 / self.num_levels), trainable=False, name="probs",
                synchronization=tf.VariableSynchronization.ON_WRITE,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    @classmethod
    def from_hparams(cls, augment_hparams):
        """From the `augment` section of the resolved hparams (keys `cta_<arg>`)."""
        return cls(num_levels=augment_hparams["cta_num_levels"],
                   decay=augment_hparams["cta_decay"],
                   confidence_threshold=augment_hparams["cta_confidence_threshold"],
                   epsilon=augment_hparams["cta_epsilon"])

    def update(self, op_indices, levels, proximity):
        """Moves `rates` toward the probes' proximities and recomputes `probs`; returns new probs.

        Call in replica context (inside `strategy.run`) or without a strategy.
        """
        new_rates = update_rates(self.rates, op_indices, levels, proximity,
                                 decay=self.decay, num_levels=self.num_levels)
        self.rates.assign(new_rates)
        probs = rates_to_probs(self.rates.read_value(),
                               confidence_threshold=self.confidence_threshold, epsilon=self.epsilon)
        self.probs.assign(probs)
        return probs

    def describe(self, top=3):
        """Human-readable summary for logs: per op, the `top` most probable bins and their probs."""
        probs = tf.convert_to_tensor(self.probs).numpy()
        lines = []
        for (name, _), row in zip(registry.CTA_OPS, probs):
            best = row.argsort()[::-1][:top]
            lines.append(f"{name:<18} " + " ".join(f"{b:2d}:{row[b]:.2f}" for b in best))
        return "\n".join(lines)


class CTAPolicy(tf.Module):
    """Host-local sampler of CTAugment strong views and probes; create outside strategy scopes."""

    def __init__(self, *, num_layers=2, prob_to_apply=0.5, num_levels=15, name="cta_policy"):
        super().__init__(name=name)
        if tf.distribute.has_strategy():
            raise ValueError(
                "CTAPolicy must be created outside strategy.scope(): its log_probs table is "
                "host-local input-pipeline state (create CTAState inside the scope and CTAPolicy "
                "next to the datasets, then call policy.set_probs(state.probs) at each block "
                "start)")
        _check_int("CTAPolicy", "num_layers", num_layers, 0)
        _check_fraction("CTAPolicy", "prob_to_apply", prob_to_apply)
        _check_int("CTAPolicy", "num_levels", num_levels, 1)
        self.num_layers = int(num_layers)
        self.prob_to_apply = float(prob_to_apply)
        self.num_levels = int(num_levels)
        with self.name_scope:
            self.log_probs = tf.Variable(
                tf.fill([NUM_OPS, self.num_levels], -math.log(self.num_levels)), trainable=False,
                name="log_probs")
            # Per-op cumulative distribution over the bins (last column exactly 1): what `sample`
            # reads. Inverse-CDF sampling from one uniform draw replaces tf.random.categorical,
            # which cost ~0.1-0.2 ms per image inside the input pipeline.
            self.cdf = tf.Variable(_cdf(tf.fill([NUM_OPS, self.num_levels], 1.0 / self.num_levels)),
                                   trainable=False, name="cdf")

    @classmethod
    def from_hparams(cls, augment_hparams):
        """From the `augment` section of the resolved hparams (keys `cta_<arg>`)."""
        return cls(num_layers=augment_hparams["cta_num_layers"],
                   prob_to_apply=augment_hparams["cta_prob_to_apply"],
                   num_levels=augment_hparams["cta_num_levels"])

    def set_probs(self, probs):
        """Overwrites the sampling table with log(probs) ([19, num_levels], rows sum to 1)."""
        probs = tf.convert_to_tensor(probs, tf.float32)
        expected = [NUM_OPS, self.num_levels]
        if probs.shape.rank is not None and probs.shape.as_list() != expected:
            raise ValueError(f"CTAPolicy.set_probs expects probs of shape {expected}, "
                             f"got {probs.shape.as_list()}")
        self.cdf.assign(_cdf(probs))
        return self.log_probs.assign(tf.math.log(probs))

    def sample(self):
        """One strong policy: (op_indices int32 [L], levels float32 [L], applied bool [L]).

        Op uniform over the 19; bin b ~ probs[op] (inverse CDF: the number of bins whose cumulative
        probability is below a uniform draw); level = (b + u) / num_levels. Every random number of
        the policy comes from one [4, L] uniform draw (each RNG op costs a few us in tf.data).
        """
        u = tf.random.uniform([4, self.num_layers])
        op_indices = _uniform_index(u[0], NUM_OPS)
        below = tf.cast(tf.gather(self.cdf, op_indices) <= u[1][:, None], tf.int32)
        bins = tf.minimum(tf.reduce_sum(below, axis=1), self.num_levels - 1)
        levels = tf.minimum((tf.cast(bins, tf.float32) + u[2]) / float(self.num_levels), 1.0)
        applied = u[3] < self.prob_to_apply
        return op_indices, levels, applied

    def apply(self, image, op_indices, levels, applied=None):
        """Applies layer i as `CTA_OPS[op_indices[i]]` at `levels[i]` (where `applied[i]`)."""
        registry.check_image(image)
        num_layers = op_indices.shape[0] if op_indices.shape[0] is not None else self.num_layers
        for layer in range(num_layers):
            index = op_indices[layer]
            if applied is not None:
                index = tf.where(applied[layer], index, registry.CTA_IDENTITY)
            image = registry.apply_indexed(registry.CTA_OPS, index, image, levels[layer])
        return image

    def strong(self, image):
        """CTAugment strong view of one uint8 image."""
        return self.apply(image, *self.sample())

    def probe(self, image):
        """Probe view: uniform ops and uniform levels in [0, 1), always applied.

        Returns (image, op_indices int32 [num_layers], levels float32 [num_layers]).
        """
        u = tf.random.uniform([2, self.num_layers])
        op_indices, levels = _uniform_index(u[0], NUM_OPS), u[1]
        return self.apply(image, op_indices, levels), op_indices, levels


def _uniform_index(u, n):
    """int32 uniform over {0, ..., n - 1} from float32 uniforms in [0, 1)."""
    return tf.minimum(tf.cast(u * float(n), tf.int32), n - 1)


def _cdf(probs):
    """Row-wise cumulative sums normalised so the last column is exactly 1 (float32 [19, L])."""
    cumulative = tf.cumsum(tf.convert_to_tensor(probs, tf.float32), axis=1)
    cumulative = cumulative / cumulative[:, -1:]
    return tf.concat([cumulative[:, :-1], tf.ones_like(cumulative[:, -1:])], axis=1)
