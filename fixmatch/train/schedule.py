"""Learning-rate schedule measured in fractional labeled epochs (spec section 7).

An epoch is one pass over the *labeled* split, so the schedule is the same
function of training progress whatever the batch size or replica count:

    steps_per_epoch = N_labeled / B            (a float, B = global labeled batch)
    e               = step / steps_per_epoch
    base            = base_lr * B / 256
    lr(e)           = base * e / warmup_epochs                 if warm-up and e < warmup_epochs
                    = base * decay_rate ** floor(e / decay_epochs)   (staircase from epoch 0)
                    = base * decay_rate ** #{b in decay_epochs : e > b}   (list of boundaries)

A list of boundaries follows Keras' `PiecewiseConstantDecay`, as the reference: the rate at a
step whose epoch equals a boundary is still the old one, the decay comes after it. That
comparison is made on the step counter against `b * steps_per_epoch` in float64 (within 1e-6
of a step), so a boundary that falls on a whole step is not missed by float rounding.
"""

import math

import keras
import tensorflow as tf


def steps_per_epoch(*, num_labeled: int, global_batch_size: int) -> float:
    """Steps in one pass over the labeled split, as a float (not rounded)."""
    if num_labeled <= 0:
        raise ValueError(f"num_labeled must be > 0, got {num_labeled!r}; "
                         "is the split's labeled set empty?")
    if global_batch_size <= 0:
        raise ValueError(f"global_batch_size must be > 0, got {global_batch_size!r}")
    return num_labeled / global_batch_size


def stretch_for_min_steps(steps_per_epoch: float, *, num_epochs: float, min_steps=None) -> float:
    """Steps per schedule epoch so that `num_epochs` last at least `min_steps` steps.

    A split with few labels has few steps per pass, so a schedule in epochs would stop long
    before the model converges; stretching the epoch (rather than adding epochs) keeps the
    schedule's shape: warm-up, decays and the end stay at the same fraction of training.
    """
    if min_steps is None or steps_per_epoch * num_epochs >= min_steps:
        return steps_per_epoch
    return float(min_steps) / num_epochs


def total_steps(*, steps_per_epoch: float, num_epochs: float, max_steps=None) -> int:
    """ceil(steps_per_epoch * num_epochs), optionally capped by `max_steps`."""
    # The tolerance absorbs float error, e.g. a stretched (min_steps / num_epochs) * num_epochs.
    steps = int(math.ceil(steps_per_epoch * num_epochs - 1e-6))
    if max_steps is not None:
        steps = min(steps, int(max_steps))
    return max(steps, 1)


def scaled_base_lr(*, base_lr: float, global_batch_size: int) -> float:
    """The linear scaling rule of the reference: base_lr per 256 labeled images."""
    return base_lr * global_batch_size / 256.0


def create_learning_rate_fn(*, base_lr: float, global_batch_size: int,
                            steps_per_epoch: float, use_warmup: bool,
                            warmup_epochs: float, decay_rate: float, decay_epochs,
                            schedule: str = "staircase", total_epochs=None):
    """Returns `lr(step) -> float32 tensor`, a pure function of the step counter.

    `schedule="cosine"` replaces the staircase by the FixMatch paper's decay for its small
    data sets (Sohn et al., NeurIPS 2020, section 4): base * cos(7 pi e / (16 E)) with
    E = `total_epochs`, which ends at cos(7 pi / 16) = 0.195 of the base rate.
    """
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be > 0, got {steps_per_epoch!r}")
    if schedule not in ("staircase", "cosine"):
        raise ValueError(f"schedule must be 'staircase' or 'cosine', got {schedule!r}")
    if schedule == "cosine" and not (total_epochs and total_epochs > 0):
        raise ValueError(f"a cosine schedule needs total_epochs > 0, got {total_epochs!r}")
    base = scaled_base_lr(base_lr=base_lr, global_batch_size=global_batch_size)
    # Boundaries in steps (float64, plus a tolerance for float error): decay once step > b.
    boundaries = ([float(b) * steps_per_epoch + 1e-6 for b in decay_epochs]
                  if isinstance(decay_epochs, (list, tuple)) else None)
    warm = bool(use_warmup) and warmup_epochs > 0

    def learning_rate_fn(step):
        epoch = tf.cast(step, tf.float32) / tf.constant(steps_per_epoch, tf.float32)
        if schedule == "cosine":
            progress = tf.minimum(epoch / float(total_epochs), 1.0)
            lr = base * tf.cos(7.0 * math.pi / 16.0 * progress)
        else:
            if boundaries is None:
                num_decays = tf.floor(epoch / float(decay_epochs))
            else:
                step64 = tf.cast(step, tf.float64)
                num_decays = tf.add_n([tf.cast(step64 > b, tf.float32) for b in boundaries])
            lr = base * tf.pow(tf.constant(decay_rate, tf.float32), num_decays)
        if warm:
            lr = tf.where(epoch < warmup_epochs, base * epoch / float(warmup_epochs), lr)
        return lr

    return learning_rate_fn


class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Adapts a `learning_rate_fn` to the Keras optimizer (called with `iterations`)."""

    def __init__(self, learning_rate_fn, config=None):
        super().__init__()
        self._fn = learning_rate_fn
        self._config = dict(config or {})

    def __call__(self, step):
        return self._fn(step)

    def get_config(self):
        return dict(self._config)


def schedule_from_hparams(hp: dict, *, global_batch_size: int,
                          steps_per_epoch: float) -> EpochSchedule:
    """Builds the schedule from the reference's `learning_rate.*` hparams."""
    lr = hp["learning_rate"]
    config = dict(lr, global_batch_size=global_batch_size, steps_per_epoch=steps_per_epoch)
    return EpochSchedule(create_learning_rate_fn(
        base_lr=lr["base_lr"], global_batch_size=global_batch_size,
        steps_per_epoch=steps_per_epoch, use_warmup=lr["use_warmup"],
        warmup_epochs=lr["warmup_epochs"], decay_rate=lr["decay_rate"],
        decay_epochs=lr["decay_epochs"], schedule=lr.get("schedule", "staircase"),
        total_epochs=hp.get("num_epochs")), config)
