"""CTAugment: rate update, probability table, checkpoints, sampling statistics, probes, strategy."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from fixmatch import hparams
from fixmatch.augment import registry
from fixmatch.augment.ctaugment import (NUM_OPS, CTAPolicy, CTAState, rates_to_probs,
                                        update_rates)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _chi_square_critical(dof, z=3.09):
    """Wilson-Hilferty upper quantile of chi-square (z = 3.09 ~ p = 0.001)."""
    return dof * (1 - 2 / (9 * dof) + z * np.sqrt(2 / (9 * dof))) ** 3


def _image(seed=0, size=32):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))


# --------------------------------------------------------------------------------------------
# Pure update functions.

def test_single_probe_moves_both_cells_with_the_decay():
    rates = np.full([NUM_OPS, 15], 0.6, np.float32)
    new = update_rates(rates, [[2, 10]], [[0.0, 0.999]], [0.9], decay=0.99, num_levels=15).numpy()
    expected = rates.copy()
    expected[2, 0] = expected[10, 14] = 0.6 + 0.01 * (0.9 - 0.6)
    np.testing.assert_allclose(new, expected, rtol=1e-6)


def test_repeated_hits_in_a_batch_are_averaged_not_summed():
    rates = np.ones([NUM_OPS, 15], np.float32)
    # Probes 0 and 1 hit cell (4, 7) (bin = int(15 * level)); probe 2 hits (4, 7) with both layers.
    ops = [[4, 0], [4, 1], [4, 4]]
    levels = [[7.2 / 15, 0.5 / 15], [7.9 / 15, 14.5 / 15], [7.5 / 15, 7.01 / 15]]
    proximity = [0.2, 0.5, 0.8]
    new = update_rates(rates, ops, levels, proximity, decay=0.9, num_levels=15).numpy()
    hits = [0.2, 0.5, 0.8, 0.8]
    assert new[4, 7] == pytest.approx(1 + 0.1 * (np.mean(hits) - 1), rel=1e-6)
    assert new[0, 0] == pytest.approx(1 + 0.1 * (0.2 - 1), rel=1e-6)
    assert new[1, 14] == pytest.approx(1 + 0.1 * (0.5 - 1), rel=1e-6)
    untouched = np.ones_like(new, bool)
    untouched[4, 7] = untouched[0, 0] = untouched[1, 14] = False
    assert (new[untouched] == 1).all()


def test_rates_converge_geometrically_to_the_observed_probability():
    rates = tf.ones([NUM_OPS, 15])
    for _ in range(30):
        rates = update_rates(rates, [[3, 3]], [[0.5, 0.5]], [0.25], decay=0.9, num_levels=15)
    assert float(rates[3, 7]) == pytest.approx(0.25 + 0.75 * 0.9 ** 30, rel=1e-4)


def test_levels_out_of_range_are_clipped_to_the_edge_bins():
    new = update_rates(tf.ones([NUM_OPS, 15]), [[5, 6]], [[1.0, -0.01]], [0.0], decay=0.5,
                       num_levels=15).numpy()
    assert new[5, 14] == 0.5 and new[6, 0] == 0.5 and (new == 0.5).sum() == 2


def test_mismatched_probe_shapes_are_reported():
    with pytest.raises(ValueError, match=r"proximity \[N\].*\(3, 2\).*\(3, 2\).*\(2,\)"):
        update_rates(tf.ones([NUM_OPS, 15]), tf.zeros([3, 2], tf.int32), tf.zeros([3, 2]),
                     tf.zeros([2]), decay=0.99, num_levels=15)
    with pytest.raises(ValueError, match="15 bins per op but num_levels=10"):
        update_rates(tf.ones([NUM_OPS, 15]), [[0, 1]], [[0.1, 0.2]], [0.5], decay=0.99,
                     num_levels=10)


def test_probability_table_follows_the_spec_row_rule():
    rates = np.ones([NUM_OPS, 15], np.float32)
    rates[0] = np.linspace(0.0, 0.9, 15)  # max 0.9; bins i/14 >= 0.85 survive (i = 12, 13, 14)
    rates[1, :] = -1.0  # floored at eps: all equal after scaling -> uniform
    probs = rates_to_probs(rates, confidence_threshold=0.85, epsilon=0.001).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs[2:], 1 / 15, rtol=1e-6)
    np.testing.assert_allclose(probs[1], 1 / 15, rtol=1e-6)
    scaled = np.maximum(rates[0], 0.001) / 0.9
    kept = np.where(scaled < 0.85, 0.0, scaled) + 0.001
    np.testing.assert_allclose(probs[0], kept / kept.sum(), rtol=1e-5)
    below = scaled < 0.85
    assert below.sum() == 12
    # Bins under the threshold all get the same epsilon mass.
    np.testing.assert_allclose(probs[0][below], 0.001 / kept.sum(), rtol=1e-5)
    assert probs[0][below].max() < 0.001


# --------------------------------------------------------------------------------------------
# State variables.

def test_state_defaults_update_and_checkpoint_round_trip(tmp_path):
    state = CTAState.from_hparams(hparams.resolve(program="fixmatch", preset="imagenet")["augment"])
    assert state.rates.shape == state.probs.shape == (NUM_OPS, 15)
    assert not state.rates.trainable and not state.probs.trainable
    np.testing.assert_allclose(state.rates.numpy(), 1.0)
    np.testing.assert_allclose(state.probs.numpy(), 1 / 15)
    ops = tf.constant([[0, 18], [7, 7], [10, 2]])
    levels = tf.constant([[0.1, 0.95], [0.3, 0.31], [0.6, 0.0]])
    proximity = tf.constant([0.1, 0.9, 0.4])
    expected = update_rates(tf.ones([NUM_OPS, 15]), ops, levels, proximity, decay=0.99,
                            num_levels=15)
    for _ in range(50):  # move far enough that some bins fall under the threshold
        probs = tf.function(state.update)(ops, levels, proximity)
    assert float(state.rates[0, 1]) == pytest.approx(0.1 + 0.9 * 0.99 ** 50, rel=1e-4)
    assert float(expected[0, 1]) == pytest.approx(1 + 0.01 * (0.1 - 1), rel=1e-6)
    np.testing.assert_allclose(state.probs.numpy(), probs.numpy())
    np.testing.assert_allclose(
        probs.numpy(), rates_to_probs(state.rates, confidence_threshold=0.85, epsilon=0.001))
    assert probs[0, 1] < 0.001  # under the threshold: epsilon mass only
    assert "AutoContrastBlend" in state.describe()

    path = tf.train.Checkpoint(cta=state).save(str(tmp_path / "ckpt"))
    restored = CTAState()
    tf.train.Checkpoint(cta=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored.rates.numpy(), state.rates.numpy())
    np.testing.assert_array_equal(restored.probs.numpy(), state.probs.numpy())


@pytest.mark.parametrize("kwargs,match", [
    ({"num_levels": 0}, "num_levels.*0"), ({"decay": 1.0}, "decay.*1.0"),
    ({"confidence_threshold": 0}, "confidence_threshold.*0"), ({"epsilon": -1}, "epsilon.*-1")])
def test_state_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CTAState(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_layers": -1}, "num_layers.*-1"), ({"prob_to_apply": 1.5}, "prob_to_apply.*1.5"),
    ({"num_levels": 2.5}, "num_levels.*2.5")])
def test_policy_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CTAPolicy(**kwargs)


def test_policy_refuses_to_be_created_inside_a_strategy_scope():
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        with pytest.raises(ValueError, match="outside strategy.scope"):
            CTAPolicy()


def test_set_probs_checks_the_shape():
    with pytest.raises(ValueError, match=r"\[19, 15\].*\[19, 10\]"):
        CTAPolicy().set_probs(tf.fill([NUM_OPS, 10], 0.1))


# --------------------------------------------------------------------------------------------
# Sampling.

def _draw(policy, n, seed):
    tf.random.set_seed(seed)
    ds = tf.data.Dataset.range(n).map(lambda _: policy.sample()).batch(n)
    ops, levels, applied = next(iter(ds))
    return ops.numpy(), levels.numpy(), applied.numpy()


def test_sampling_follows_the_probability_table():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(15, 3.0), size=NUM_OPS).astype(np.float32)
    augment_hp = hparams.resolve(program="fixmatch", preset="imagenet")["augment"]
    policy = CTAPolicy.from_hparams(augment_hp)
    policy.set_probs(probs)
    n = 15000
    ops, levels, applied = _draw(policy, n, seed=1)
    ops, levels = ops.ravel(), levels.ravel()
    bins = np.floor(levels * 15).astype(int)
    assert levels.min() >= 0 and levels.max() <= 1
    op_counts = np.bincount(ops, minlength=NUM_OPS)
    expected_ops = np.full(NUM_OPS, ops.size / NUM_OPS)
    chi_square = ((op_counts - expected_ops) ** 2 / expected_ops).sum()
    assert chi_square < _chi_square_critical(NUM_OPS - 1)
    observed = np.zeros([NUM_OPS, 15])
    np.add.at(observed, (ops, bins), 1)
    expected = op_counts[:, None] * probs
    stat = ((observed - expected) ** 2 / expected).sum()
    assert stat < _chi_square_critical(NUM_OPS * 14), stat
    # The per-layer application probability.
    assert abs(applied.mean() - 0.5) < 4 * np.sqrt(0.25 / applied.size)


def test_new_probs_reach_an_existing_pipeline():
    policy = CTAPolicy(num_levels=15)
    # A fixed 32-element prefetch buffer, not an autotuned one: autotuning grew it past 100
    # elements on a loaded machine, so the stale count below depended on the machine's load.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.inject_prefetch = False
    ds = tf.data.Dataset.range(10 ** 6).map(lambda _: policy.sample()[:2]).prefetch(32)
    iterator = iter(ds.with_options(options))
    _, first_levels = zip(*[next(iterator) for _ in range(300)])
    assert len({int(15 * float(l)) for ls in first_levels for l in ls}) == 15  # uniform at start
    only_bin_3 = np.zeros([NUM_OPS, 15], np.float32)
    only_bin_3[:, 3] = 1.0
    policy.set_probs(only_bin_3)
    # Elements already prefetched or in flight keep the old policy (as in the reference); tf.data
    # may compute them in parallel (the sampler's only stateful ops are random), so the stale
    # ones are bounded in number and position rather than a strict prefix; later ones use bin 3.
    _, levels = zip(*[next(iterator) for _ in range(300)])
    in_bin_3 = ((np.array(levels) >= 3 / 15) & (np.array(levels) < 4 / 15 + 1e-6)).all(axis=1)
    assert (~in_bin_3).sum() < 100 and in_bin_3[100:].all()


def test_probe_is_always_applied_and_records_its_ops():
    policy = CTAPolicy()
    image = _image(1)
    tf.random.set_seed(2)
    ds = tf.data.Dataset.range(24).map(lambda _: policy.probe(image))
    all_ops, all_levels = [], []
    for probed, ops, levels in ds:
        assert probed.shape == (32, 32, 3) and probed.dtype == tf.uint8
        assert ops.dtype == tf.int32 and levels.dtype == tf.float32 and ops.shape == (2,)
        replay = policy.apply(image, ops, levels)  # deterministic given the recorded ops and levels
        np.testing.assert_array_equal(probed.numpy(), replay.numpy())
        all_ops.append(ops.numpy())
        all_levels.append(levels.numpy())
    all_ops, all_levels = np.array(all_ops), np.array(all_levels)
    assert all_ops.min() >= 0 and all_ops.max() < NUM_OPS and len(np.unique(all_ops)) > 10
    assert all_levels.min() >= 0 and all_levels.max() < 1 and all_levels.std() > 0.15


def test_strong_view_inside_tf_data():
    policy = CTAPolicy(prob_to_apply=1.0)
    images = tf.stack([_image(s) for s in range(16)])
    outs = list(tf.data.Dataset.from_tensor_slices(images).map(policy.strong))
    assert all(o.shape == (32, 32, 3) and o.dtype == tf.uint8 for o in outs)
    assert sum(np.array_equal(o.numpy(), i.numpy()) for o, i in zip(outs, images)) <= 4
    never = CTAPolicy(prob_to_apply=0.0)
    for o, i in zip(tf.data.Dataset.from_tensor_slices(images).map(never.strong), images):
        np.testing.assert_array_equal(o.numpy(), i.numpy())


def test_apply_uses_the_cta_table():
    image = _image(3)
    policy = CTAPolicy()
    ops = tf.constant([registry.CTA_NAMES.index("Posterize"), registry.CTA_NAMES.index("Rotate")])
    out = policy.apply(image, ops, tf.constant([0.2, 0.75]), tf.constant([True, True]))
    expected = registry.cta_op("Rotate")(registry.cta_op("Posterize")(image, 0.2), 0.75)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


# --------------------------------------------------------------------------------------------
# Distribution strategy (needs two logical CPU devices, so it runs in a fresh process).

_STRATEGY_SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from fixmatch.augment.ctaugment import CTAState, update_rates, rates_to_probs
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
      state = CTAState(decay=0.9)
    # Replica 0 sees a probe on cell (1, 0) with proximity 0.0; replica 1 one on (2, 0) with 0.5.
    def inputs(ctx):
      r = ctx.replica_id_in_sync_group
      return (tf.constant([[1 + r, 1 + r]]), tf.constant([[0.0, 0.01]]),
              tf.constant([0.5 * r]))
    dist = strategy.experimental_distribute_values_from_function(inputs)
    tf.function(lambda a: strategy.run(state.update, args=a))(dist)
    rates = state.rates.numpy()
    # Increments averaged across replicas: each cell moved by half its replica's increment.
    assert abs(rates[1, 0] - (1 + 0.1 * (0.0 - 1) / 2)) < 1e-6, rates[1, 0]
    assert abs(rates[2, 0] - (1 + 0.1 * (0.5 - 1) / 2)) < 1e-6, rates[2, 0]
    assert (np.delete(rates.ravel(), [15, 30]) == 1).all()
    for component in state.rates.values:
      np.testing.assert_array_equal(component.numpy(), rates)
    np.testing.assert_allclose(state.probs.numpy(),
                               rates_to_probs(rates, confidence_threshold=0.85, epsilon=0.001))
    print("STRATEGY-OK")
""")


def test_update_under_mirrored_strategy_averages_replica_increments():
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", _STRATEGY_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert "STRATEGY-OK" in result.stdout, result.stderr[-3000:]
