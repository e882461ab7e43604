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


def test_engine_ema_tracks_the_online_bn_statistics_step_by_step(tmp_path):
    """Through the real loop (one step per block): after every step the EMA model's BN moving
    statistics are decay * previous + (1 - decay) * the online model's."""
    from fixtures.tiny_loop import run, tiny_model as loop_model

    made, seen = [], []

    def model_fn():
        made.append(loop_model())
        return made[-1]

    def bn_stats(model):
        return [v.numpy().copy() for v in model.non_trainable_variables if "moving" in v.path]

    class Recorder(list):
        def append(self, line):  # the loop logs one line per block, after its EMA update
            if line.startswith("step"):
                seen.append((bn_stats(made[0]), bn_stats(made[1])))
            super().append(line)

    run(tmp_path, total_steps=4, lines=Recorder(), steps_per_run=1, model_fn=model_fn)
    assert len(seen) == 4 and len(seen[0][0]) >= 4  # moving mean + variance of >= 2 BN layers
    decay = 0.8  # the harness's ema_decay
    for (_, ema_before), (online, ema_after) in zip(seen, seen[1:]):
        for prev, cur, avg in zip(ema_before, online, ema_after):
            np.testing.assert_allclose(avg, decay * prev + (1 - decay) * cur, rtol=1e-5,
                                       atol=1e-6)
    moved = [not np.allclose(a, b) for a, b in zip(seen[0][1], seen[-1][1])]
    assert all(moved)  # the EMA statistics moved, every one of them
