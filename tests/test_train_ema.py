"""EMA of all model variables, BN moving statistics included."""

import keras
import numpy as np
import pytest

from fixmatch.train import ema


def tiny_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(2, 3)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_update_formula_on_every_variable_including_bn_stats():
    online, averaged = tiny_model(0), tiny_model(1)
    for v in online.non_trainable_variables:  # make BN stats differ too
        v.assign(v.numpy() + 1.5)
    before = [v.numpy().copy() for v in averaged.variables]
    ema.ema_update(averaged.variables, online.variables, decay=0.9)
    names = [v.path for v in averaged.variables]
    assert any("moving_mean" in n for n in names) and any("moving_variance" in n for n in names)
    for old, new, w in zip(before, averaged.variables, online.variables):
        np.testing.assert_allclose(new.numpy(), old - 0.1 * (old - w.numpy()), rtol=1e-6,
                                   atol=1e-7)


def test_repeated_updates_converge_to_fixed_weights():
    online, averaged = tiny_model(0), tiny_model(1)
    for _ in range(200):
        ema.ema_update(averaged.variables, online.variables, decay=0.9)
    for a, w in zip(averaged.variables, online.variables):
        np.testing.assert_allclose(a.numpy(), w.numpy(), atol=1e-6)


def test_copy_weights_and_incompatible_models():
    online, averaged = tiny_model(0), tiny_model(1)
    ema.copy_weights(source=online, target=averaged)
    for a, w in zip(averaged.variables, online.variables):
        np.testing.assert_array_equal(a.numpy(), w.numpy())
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="same model_fn"):
        ema.copy_weights(source=online, target=other)
