"""Timing the engine's training step outside a run: `--plan`'s wall-time estimate and the GPU bench.

Both need the step a run would take, without a split, a model_dir or checkpoints: the same
model, objective (supervised or FixMatch), SGD-Nesterov update and EMA update, compiled into one
block of steps as the engine compiles it (fixmatch.train.loop), fed either synthetic uint8
batches of the run's shape or a real input pipeline. Evaluation and checkpoints are left out:
they happen once per `steps_per_run`, not per step.
"""

import functools
import time

import numpy as np
import tensorflow as tf

from fixmatch.train import ema as ema_lib
from fixmatch.train import loop, steps


def make_objective(program: str, hp: dict):
    """The program's objective as the engine builds it for the default pseudo-label rule."""
    if program == "fixmatch":
        fm = hp["fixmatch"]
        return steps.make_fixmatch_objective(wu=fm["wu"], confidence=fm["confidence"],
                                             ema_teacher=fm["pseudo_label_model"] == "ema")
    return steps.supervised_objective


def build_train_block(*, model_fn, objective, learning_rate, use_xla, ema_decay=0.999,
                      strategy=None, scale_and_center=True):
    """(strategy, train_block): `train_block(iterator, num_steps) -> sums`, the engine's step.

    Each step: uint8 images scaled on the device, one forward pass of the objective, gradients
    (XLA-compiled when `use_xla`), SGD-Nesterov update, EMA update of all variables.
    `model_fn()` builds a model; it is called twice (online and EMA) inside the strategy scope.
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model, ema_model = model_fn(), model_fn()
        ema_lib.copy_weights(source=model, target=ema_model)
        optimizer = loop.create_optimizer(learning_rate=learning_rate)
        optimizer.build(model.trainable_variables)
    grad_fn = functools.partial(steps.compute_gradients, model=model, objective=objective,
                                num_replicas=strategy.num_replicas_in_sync,
                                teacher=steps.teacher_for(objective, ema_model))
    if use_xla:
        grad_fn = tf.function(grad_fn, jit_compile=True)
    replica_step = functools.partial(steps.train_step, model=model, optimizer=optimizer,
                                     grad_fn=grad_fn,
                                     sync_model_state=strategy.num_replicas_in_sync > 1,
                                     scale_and_center=scale_and_center)
    keys = getattr(objective, "sum_keys", steps.TRAIN_SUM_KEYS)
    shapes = getattr(objective, "sum_shapes", {})
    train_block = steps.make_train_block(
        strategy=strategy, replica_step=replica_step,
        after_update=steps.make_ema_update(ema_model=ema_model, model=model, decay=ema_decay),
        example_sums={k: shapes.get(k) for k in keys})
    return strategy, train_block


def synthetic_dataset(program: str, *, batch_size: int, image_size: int, num_classes: int,
                      uratio: int = 0) -> tf.data.Dataset:
    """One fixed random batch of uint8 images (the pipelines' dtype), repeated forever.

    FixMatch batches carry `batch_size` labeled images and `uratio * batch_size` weak and as
    many strong unlabeled ones, the keys the engine's FixMatch objective reads.
    """
    rng = np.random.default_rng(0)

    def images(n):
        return tf.constant(rng.integers(0, 256, (n, image_size, image_size, 3), np.uint8))

    batch = {"image": images(batch_size),
             "label": tf.constant(rng.integers(0, num_classes, batch_size), tf.int64)}
    if program == "fixmatch":
        batch.update(unsup_image=images(uratio * batch_size),
                     unsup_aug_image=images(uratio * batch_size))
    return tf.data.Dataset.from_tensors(batch).repeat().prefetch(2)


def time_block(train_block, iterator, *, warmup_steps: int, steps_timed: int):
    """(seconds per step, mean loss, warm-up seconds): `warmup_steps` untimed (tracing,
    compilation, autotuning), then `steps_timed` steps in one call, waited for."""
    start = time.perf_counter()
    train_block(iterator, tf.constant(warmup_steps, tf.int32))["loss_sum"].numpy()
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    sums = train_block(iterator, tf.constant(steps_timed, tf.int32))
    loss = float(sums["loss_sum"].numpy() / sums["count"].numpy())  # waits for the device
    return (time.perf_counter() - start) / steps_timed, loss, warmup_seconds
