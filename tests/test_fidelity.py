"""Fidelity to the reference's training step (issue 22): batch-norm moving variance and the
learning-rate decay at a list of boundaries."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from fixmatch import models
from fixmatch.models.batch_norm import UnbiasedBatchNormalization
from fixmatch.train import ema as ema_lib
from fixmatch.train import loop, schedule, steps

# --- batch norm: the fused kernel's unbiased moving variance --------------------------------


def test_one_training_call_moves_the_variance_towards_the_unbiased_batch_variance():
    # One channel, n = 2 images x 2 x 2 = 8 values 0..7: mean 3.5, biased variance 5.25,
    # unbiased 42 / 7 = 6.0.
    x = tf.reshape(tf.range(8, dtype=tf.float32), (2, 2, 2, 1))
    bn = UnbiasedBatchNormalization(momentum=0.9, epsilon=1e-5)
    out = bn(x, training=True)
    assert float(bn.moving_mean[0]) == pytest.approx(0.9 * 0.0 + 0.1 * 3.5, rel=1e-6)
    assert float(bn.moving_variance[0]) == pytest.approx(0.9 * 1.0 + 0.1 * 6.0, rel=1e-6)
    # The batch itself is normalised with the biased variance, as the reference did.
    expected = (np.arange(8.0) - 3.5) / np.sqrt(5.25 + 1e-5)
    np.testing.assert_allclose(out.numpy().ravel(), expected, rtol=1e-5)
    # Inference uses the moving statistics and changes nothing.
    inferred = bn(x, training=False)
    np.testing.assert_allclose(inferred.numpy().ravel(),
                               (np.arange(8.0) - 0.35) / np.sqrt(1.5 + 1e-5), rtol=1e-5)
    assert float(bn.moving_variance[0]) == pytest.approx(1.5, rel=1e-6)


def test_a_single_value_per_channel_keeps_the_biased_update():
    # n = 1: no unbiased estimate exists; the factor is taken as 1 (the batch variance is 0).
    bn = UnbiasedBatchNormalization(momentum=0.9)
    bn(tf.ones((1, 1, 1, 2)), training=True)
    np.testing.assert_allclose(bn.moving_variance.numpy(), [0.9, 0.9], rtol=1e-6)


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_every_model_of_the_family_uses_the_unbiased_layer(name):
    model = models.build_model(name, num_classes=4, image_size=64)
    bns = [layer for layer in model.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(isinstance(bn, UnbiasedBatchNormalization) for bn in bns)


def test_mixed_bfloat16_updates_in_float32_with_the_same_correction():
    model = models.build_model("resnet_tiny", num_classes=3, image_size=8,
                               dtype_policy="mixed_bfloat16")
    bn = model.get_layer("stem_bn")
    images = tf.constant(np.random.default_rng(4).uniform(-1, 1, (2, 8, 8, 3)), tf.float32)
    conv = keras.Model(model.input, model.get_layer("stem_conv").output)
    inputs = tf.cast(conv(images), tf.float32).numpy()  # bfloat16 conv output, as BN sees it
    model(images, training=True)
    assert bn.moving_variance.dtype == "float32"
    expected = 0.9 + 0.1 * inputs.reshape(-1, inputs.shape[-1]).var(axis=0, ddof=1)
    np.testing.assert_allclose(bn.moving_variance.numpy(), expected, rtol=1e-4)


def test_one_engine_step_updates_every_bn_layer_and_the_ema_inherits_it():
    """One step of the engine's compiled block (supervised objective, EMA update): every BN
    layer's moving variance is 0.9 * 1 + 0.1 * var(input, ddof=1) over images x H x W, down to
    the last stage's 4x4 maps (n = 64, where the biased update is 1.6% smaller), and the EMA
    model's variance moved towards that."""
    keras.utils.set_random_seed(3)
    model_fn = functools.partial(models.build_model, "resnet_tiny", num_classes=3,
                                 image_size=16)
    model, ema_model = model_fn(), model_fn()
    ema_lib.copy_weights(source=model, target=ema_model)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")
    batch = {"image": images, "label": np.array([0, 1, 2, 0])}
    bns = [layer for layer in model.layers if isinstance(layer, UnbiasedBatchNormalization)]
    # The inputs each BN sees in the step's training-mode forward pass (same weights), then
    # the moving statistics that this capture moved are put back to their initial values.
    capture = keras.Model(model.input, [bn.input for bn in bns])
    inputs = [t.numpy() for t in capture(images, training=True)]
    for bn in bns:
        bn.moving_mean.assign(tf.zeros_like(bn.moving_mean))
        bn.moving_variance.assign(tf.ones_like(bn.moving_variance))
    optimizer = loop.create_optimizer(learning_rate=0.1)
    optimizer.build(model.trainable_variables)
    strategy = tf.distribute.get_strategy()
    block = steps.make_train_block(
        strategy=strategy,
        replica_step=functools.partial(
            steps.train_step, model=model, optimizer=optimizer,
            grad_fn=functools.partial(steps.compute_gradients, model=model,
                                      objective=steps.supervised_objective, num_replicas=1)),
        after_update=steps.make_ema_update(ema_model=ema_model, model=model, decay=0.99),
        example_sums=dict.fromkeys(steps.TRAIN_SUM_KEYS))
    data = tf.data.Dataset.from_tensors(batch).repeat()
    block(iter(data), tf.constant(1, tf.int32))
    assert min(x.shape[1] for x in inputs) == 4
    for bn, x in zip(bns, inputs):
        flat = x.reshape(-1, x.shape[-1]).astype("float64")
        np.testing.assert_allclose(bn.moving_variance.numpy(),
                                   0.9 + 0.1 * flat.var(axis=0, ddof=1), rtol=2e-5,
                                   err_msg=bn.name)
        np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * flat.mean(axis=0),
                                   rtol=1e-4, atol=1e-6, err_msg=bn.name)
        ema_var = ema_model.get_layer(bn.name).moving_variance.numpy()
        np.testing.assert_allclose(ema_var, 0.99 + 0.01 * bn.moving_variance.numpy(),
                                   rtol=1e-6, err_msg=bn.name)


# --- learning rate: PiecewiseConstantDecay decays strictly after a boundary ----------------


def _boundaries_fn(**kw):
    args = dict(base_lr=0.1, global_batch_size=4, steps_per_epoch=4.0, use_warmup=False,
                warmup_epochs=0, decay_rate=0.1, decay_epochs=[3, 5])
    args.update(kw)
    return schedule.create_learning_rate_fn(**args)


@pytest.mark.parametrize("step,decays", [(11, 0), (12, 0), (13, 1), (19, 1), (20, 1), (21, 2),
                                         (400, 2)])
def test_the_rate_at_a_boundary_is_the_old_one(step, decays):
    # The example: 4 steps per epoch, boundaries [3, 5] = steps 12 and 20,
    # base 0.1 x 4 / 256 = 1.5625e-3; step 12 keeps it.
    assert float(_boundaries_fn()(step)) == pytest.approx(1.5625e-3 * 0.1 ** decays, rel=1e-6)


@pytest.mark.parametrize("step,expected", [(0, 0.0), (2, 0.5), (4, 1.0), (12, 1.0), (13, 0.1),
                                           (20, 0.1), (21, 0.01)])
def test_boundaries_with_warmup(step, expected):
    fn = _boundaries_fn(use_warmup=True, warmup_epochs=1, global_batch_size=256, base_lr=1.0)
    assert float(fn(step)) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_a_boundary_at_a_fractional_step_decays_at_the_next_whole_step():
    # 2.5 steps per epoch: boundary 3 = step 7.5, so step 7 keeps the rate and step 8 decays;
    # a boundary at a whole step reached through inexact floats (10/3 steps per epoch x 3 =
    # step 10) still keeps the rate at step 10.
    fn = _boundaries_fn(steps_per_epoch=2.5, global_batch_size=256, base_lr=1.0)
    assert [round(float(fn(s)), 6) for s in (7, 8)] == [1.0, 0.1]
    fn = _boundaries_fn(steps_per_epoch=10 / 3, global_batch_size=256, base_lr=1.0)
    assert [round(float(fn(s)), 6) for s in (10, 11)] == [1.0, 0.1]
