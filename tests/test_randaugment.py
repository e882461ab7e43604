"""RandAugment: validation, sampling statistics (layers applied, levels, ops), application."""

import math

import numpy as np
import pytest
import tensorflow as tf

from fixmatch import hparams
from fixmatch.augment import registry
from fixmatch.augment.randaugment import RandAugment


def _image(seed=0, size=32):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))


def _draws(augmenter, n, seed):
    """n policies drawn inside tf.data (the real execution context), as numpy arrays."""
    tf.random.set_seed(seed)
    ds = tf.data.Dataset.range(n).map(lambda _: augmenter.sample()).batch(n)
    ops, levels, applied = next(iter(ds))
    return ops.numpy(), levels.numpy(), applied.numpy()


def _chi_square(observed, expected):
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    return float(((observed - expected) ** 2 / expected).sum())


def _chi_square_critical(dof, z=3.09):
    """Wilson-Hilferty upper quantile of chi-square (z = 3.09 ~ p = 0.001)."""
    return dof * (1 - 2 / (9 * dof) + z * np.sqrt(2 / (9 * dof))) ** 3


@pytest.mark.parametrize("kwargs,match", [
    ({"num_layers": -1}, "num_layers.*-1"), ({"num_layers": 1.5}, "num_layers.*1.5"),
    ({"magnitude": 1.2}, "magnitude.*1.2"), ({"prob_to_apply": 2}, "prob_to_apply.*2"),
    ({"num_levels": 0}, "num_levels.*0")])
def test_bad_arguments_are_rejected_with_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandAugment(**kwargs)


def test_from_hparams_uses_the_reference_defaults():
    hp = hparams.resolve(program="fixmatch", preset="imagenet")
    ra = RandAugment.from_hparams(hp["augment"])
    assert (ra.num_layers, ra.magnitude, ra.prob_to_apply, ra.num_levels) == (2, None, 0.5, 10)
    ra = RandAugment.from_hparams(dict(hp["augment"], randaugment_magnitude=0.3,
                                       randaugment_num_layers=3))
    assert (ra.num_layers, ra.magnitude) == (3, 0.3)


@pytest.mark.parametrize("image", [tf.zeros([8, 8, 3], tf.float32),
                                   tf.zeros([2, 8, 8, 3], tf.uint8),
                                   tf.zeros([8, 8, 4], tf.uint8)])
def test_rejects_anything_but_one_uint8_rgb_image(image):
    with pytest.raises(TypeError, match=r"one uint8 image \[H, W, 3\].*" + image.dtype.name):
        RandAugment()(image)


@pytest.mark.parametrize("num_layers,prob", [(2, 0.5), (3, 0.2)])
def test_number_of_applied_layers_is_binomial(num_layers, prob):
    n = 6000
    _, _, applied = _draws(RandAugment(num_layers=num_layers, prob_to_apply=prob), n, seed=1)
    counts = np.bincount(applied.sum(axis=1), minlength=num_layers + 1)
    pmf = np.array([math.comb(num_layers, k) * prob ** k * (1 - prob) ** (num_layers - k)
                    for k in range(num_layers + 1)])
    assert _chi_square(counts, n * pmf) < _chi_square_critical(num_layers)


def test_levels_cover_the_grid_uniformly_and_ops_the_pool():
    n = 6000
    ops, levels, _ = _draws(RandAugment(), n, seed=2)
    steps = np.round(levels.ravel() * 10).astype(int)
    np.testing.assert_allclose(levels.ravel(), steps / 10, atol=1e-6)
    assert levels.min() == 0.0 and levels.max() == 1.0
    level_counts = np.bincount(steps, minlength=11)
    assert _chi_square(level_counts, np.full(11, 2 * n / 11)) < _chi_square_critical(10)
    op_counts = np.bincount(ops.ravel(), minlength=16)
    assert len(op_counts) == len(registry.RANDAUGMENT_OPS) == 16
    assert _chi_square(op_counts, np.full(16, 2 * n / 16)) < _chi_square_critical(15)


def test_fixed_magnitude_is_used_for_every_layer():
    _, levels, _ = _draws(RandAugment(magnitude=0.7), 200, seed=3)
    np.testing.assert_allclose(levels, 0.7)


def test_apply_composes_the_registry_ops_and_skips_unapplied_layers():
    image = _image(4)
    ra = RandAugment()
    # Posterize then Solarize (deterministic ops), both applied.
    ops = tf.constant([registry.RANDAUGMENT_NAMES.index(n) for n in ("Posterize", "Solarize")])
    levels = tf.constant([0.5, 0.3])
    out = ra.apply(image, ops, levels, tf.constant([True, True]))
    expected = registry.randaugment_op("Solarize")(
        registry.randaugment_op("Posterize")(image, 0.5), 0.3)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    out = ra.apply(image, ops, levels, tf.constant([False, True]))
    np.testing.assert_array_equal(out.numpy(), registry.randaugment_op("Solarize")(image, 0.3))
    out = ra.apply(image, ops, levels, tf.constant([False, False]))
    np.testing.assert_array_equal(out.numpy(), image.numpy())


def test_call_inside_tf_data():
    images = tf.stack([_image(s) for s in range(24)])
    tf.random.set_seed(5)
    never = RandAugment(prob_to_apply=0.0)
    for original, out in zip(images, tf.data.Dataset.from_tensor_slices(images).map(never)):
        np.testing.assert_array_equal(out.numpy(), original.numpy())
    always = RandAugment(magnitude=1.0, prob_to_apply=1.0)
    outs = list(tf.data.Dataset.from_tensor_slices(images).map(always))
    assert all(o.shape == (32, 32, 3) and o.dtype == tf.uint8 for o in outs)
    unchanged = sum(np.array_equal(o.numpy(), i.numpy()) for o, i in zip(outs, images))
    assert unchanged <= 6  # only Identity twice (or rare self-cancelling pairs) leaves it unchanged


def test_zero_layers_is_the_identity():
    image = _image(6)
    np.testing.assert_array_equal(RandAugment(num_layers=0)(image).numpy(), image.numpy())


def test_posterize_keeps_at_least_one_bit_at_the_lowest_levels():
    # Level 0..0.2 give int(4 * level) = 0 bits; RandAugment's table clamps to 1 bit (the
    # reference's effective behaviour), so the strong view is never black.
    rng = np.random.default_rng(3)
    image = tf.constant(rng.integers(0, 256, (8, 8, 3)).astype("uint8"))
    for level in (0.0, 0.1, 0.2):
        out = registry.randaugment_op("Posterize")(image, tf.constant(level))
        np.testing.assert_array_equal(out.numpy(), image.numpy() & 0x80)
