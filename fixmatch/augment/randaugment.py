"""RandAugment, ImageNet variant of the reference (spec section 4.3).

`num_layers` sequential layers; each layer independently draws a level (k / num_levels with k
uniform in {0, ..., num_levels}, or the fixed `magnitude`), an op uniformly from the 16-op pool
`registry.RANDAUGMENT_OPS`, and applies it with probability `prob_to_apply` (else the layer is the
identity). No Cutout on ImageNet.

Sampling and application are split (`sample()` then `apply(...)`) so the random draws can be tested
in bulk and the application checked deterministically; `__call__` is just the two together. A
skipped layer is dispatched to the Identity branch of the same `tf.switch_case`, so one layer costs
exactly one op (or nothing) whatever the pool size.
"""

import numbers

import tensorflow as tf

from fixmatch.augment import registry


class RandAugment:
    """Callable strong augmentation: `RandAugment()(image uint8 [H, W, 3]) -> uint8 [H, W, 3]`."""

    def __init__(self, *, num_layers=2, magnitude=None, prob_to_apply=0.5, num_levels=10):
        if not isinstance(num_layers, numbers.Integral) or isinstance(num_layers, bool) \
                or num_layers < 0:
            raise ValueError(f"RandAugment num_layers must be an integer >= 0 (0 = no strong ops), "
                             f"got {num_layers!r}")
        if not isinstance(num_levels, numbers.Integral) or isinstance(num_levels, bool) \
                or num_levels < 1:
            raise ValueError(f"RandAugment num_levels must be an integer >= 1, got {num_levels!r}")
        if magnitude is not None and not (isinstance(magnitude, numbers.Real)
                                          and 0.0 <= magnitude <= 1.0):
            raise ValueError(f"RandAugment magnitude must be None (random level per layer) or a "
                             f"number in [0, 1], got {magnitude!r}")
        if prob_to_apply is None:
            prob_to_apply = 1.0  # the reference's "always apply"
        if not (isinstance(prob_to_apply, numbers.Real) and 0.0 <= prob_to_apply <= 1.0):
            raise ValueError(f"RandAugment prob_to_apply must be in [0, 1] (or None = always), got "
                             f"{prob_to_apply!r}")
        self.num_layers = int(num_layers)
        self.magnitude = None if magnitude is None else float(magnitude)
        self.prob_to_apply = float(prob_to_apply)
        self.num_levels = int(num_levels)

    @classmethod
    def from_hparams(cls, augment_hparams):
        """From the `augment` section of the resolved hparams (keys `randaugment_<arg>`)."""
        return cls(num_layers=augment_hparams["randaugment_num_layers"],
                   magnitude=augment_hparams["randaugment_magnitude"],
                   prob_to_apply=augment_hparams["randaugment_prob_to_apply"])

    def __repr__(self):
        return (f"RandAugment(num_layers={self.num_layers}, magnitude={self.magnitude}, "
                f"prob_to_apply={self.prob_to_apply}, num_levels={self.num_levels})")

    def sample(self):
        """Draws one policy: (op_indices int32 [L], levels float32 [L], applied bool [L])."""
        # One [3, L] uniform draw for every choice of the policy (each RNG op costs a few us per
        # image inside tf.data): row 0 picks the ops, row 1 the levels, row 2 the application.
        u = tf.random.uniform([3, self.num_layers])
        op_indices = _uniform_index(u[0], len(registry.RANDAUGMENT_OPS))
        if self.magnitude is None:
            steps = _uniform_index(u[1], self.num_levels + 1)
            levels = tf.cast(steps, tf.float32) / float(self.num_levels)
        else:
            levels = tf.fill([self.num_layers], tf.constant(self.magnitude, tf.float32))
        applied = u[2] < self.prob_to_apply
        return op_indices, levels, applied

    def apply(self, image, op_indices, levels, applied):
        """Applies layer i as `RANDAUGMENT_OPS[op_indices[i]]` at `levels[i]` where `applied[i]`."""
        registry.check_image(image)
        for layer in range(self.num_layers):
            index = tf.where(applied[layer], op_indices[layer], registry.RANDAUGMENT_IDENTITY)
            image = registry.apply_indexed(registry.RANDAUGMENT_OPS, index, image, levels[layer])
        return image

    def __call__(self, image):
        return self.apply(image, *self.sample())


def _uniform_index(u, n):
    """int32 uniform over {0, ..., n - 1} from float32 uniforms in [0, 1)."""
    return tf.minimum(tf.cast(u * float(n), tf.int32), n - 1)
