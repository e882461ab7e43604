"""Exact contracts of the filter ops (ops_filter.py), beyond the Pillow agreement in
test_augment_ops.py: integer reference formulas, extreme values, tiny and rectangular images, and
constant factors inside tf.function (where Grappler folds constants) equal to eager mode."""

import numpy as np
import pytest
import tensorflow as tf

from fixmatch.augment import ops_filter, registry
from fixtures.augment_images import random_image

_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.int64)
_RING = np.ones((5, 5), np.int64)
_RING[1:4, 1:4] = 0


def _correlate(image, kernel, padding):
    """Integer correlation of an [H, W, C] image ('same' zero padding or 'valid')."""
    k = kernel.shape[0]
    values = image.astype(np.int64)
    if padding == "same":
        r = k // 2
        values = np.pad(values, [(r, r), (r, r), (0, 0)])
    height, width = values.shape[0] - k + 1, values.shape[1] - k + 1
    out = np.zeros((height, width, values.shape[2]), np.int64)
    for dy in range(k):
        for dx in range(k):
            out += kernel[dy, dx] * values[dy:dy + height, dx:dx + width]
    return out


def _images():
    noise = random_image(40, smooth=False)
    return {"smooth": random_image(41), "noise": noise, "white": np.full_like(noise, 255),
            "black": np.zeros_like(noise),
            "checker": (255 * ((np.indices(noise.shape[:2]).sum(0) % 2))[..., None]
                        * np.ones(3, int)).astype(np.uint8),
            "rectangular": noise[:9, :23]}


@pytest.mark.parametrize("kind", list(_images()))
def test_full_strength_blur_and_smooth_equal_the_rounded_integer_filter(kind):
    # floor(S / n + 1/2) in integers: the box sums are exact and (S + n/2) / n is never within
    # float32 error of an integer unless it is one, so no pixel may differ.
    image = _images()[kind]
    for op, kernel, divisor in ((ops_filter.smooth, _SMOOTH, 13), (ops_filter.blur, _RING, 16)):
        expected = (2 * _correlate(image, kernel, "same") + divisor) // (2 * divisor)
        np.testing.assert_array_equal(op(tf.constant(image), 1.0).numpy(), expected)


@pytest.mark.parametrize("kind", list(_images()))
def test_zero_factor_sharpness_is_the_truncated_smoothed_interior(kind):
    image = _images()[kind]
    expected = image.copy()
    expected[1:-1, 1:-1] = _correlate(image, _SMOOTH, "valid") // 13
    np.testing.assert_array_equal(ops_filter.sharpness(tf.constant(image), 0.0).numpy(), expected)


def _near_integer(values, tolerance=1e-3):
    return np.abs(values - np.round(values)) < tolerance


@pytest.mark.parametrize("factor", [0.05, 0.3, 0.5, 0.71, 0.9])
def test_partial_blends_equal_the_float64_formula_away_from_integer_ties(factor):
    # Only where the exact value lies within float32 error of an integer may truncation differ.
    image = random_image(42, smooth=False)
    x = image.astype(np.float64)
    for op, kernel, divisor in ((ops_filter.smooth, _SMOOTH, 13), (ops_filter.blur, _RING, 16)):
        exact = x + factor * (_correlate(image, kernel, "same") / divisor + 0.5 - x)
        ours = op(tf.constant(image), factor).numpy()
        agree = ours == np.floor(exact)
        assert (agree | _near_integer(exact)).all(), op.__name__
        assert agree.mean() > 0.99, op.__name__


@pytest.mark.parametrize("factor", [0.1, 0.6, 1.37, 2.0, 3.5])
def test_sharpness_equals_the_float64_formula_away_from_integer_ties(factor):
    image = random_image(43, smooth=False)
    x = image.astype(np.float64)
    smoothed = _correlate(image, _SMOOTH, "valid") / 13
    center = x[1:-1, 1:-1]
    exact = np.clip(smoothed + factor * (center - smoothed), 0, 255)
    ours = ops_filter.sharpness(tf.constant(image), factor).numpy()
    inner = ours[1:-1, 1:-1]
    agree = inner == np.floor(exact)
    assert (agree | _near_integer(exact)).all()
    if factor > 1:
        assert (inner == 0).any() and (inner == 255).any()  # extrapolation is clipped
    np.testing.assert_array_equal(ours[[0, -1]], image[[0, -1]])
    np.testing.assert_array_equal(ours[:, [0, -1]], image[:, [0, -1]])


@pytest.mark.parametrize("strength", [-0.5, 1.5])
def test_blur_and_smooth_clamp_the_strength(strength):
    image = random_image(44)
    for op in (ops_filter.smooth, ops_filter.blur):
        clamped = op(tf.constant(image), float(np.clip(strength, 0, 1))).numpy()
        np.testing.assert_array_equal(op(tf.constant(image), strength).numpy(), clamped)


@pytest.mark.parametrize("height,width", [(1, 1), (2, 3), (3, 3), (4, 2), (5, 7)])
def test_tiny_images(height, width):
    image = random_image(45, smooth=False)[:height, :width]
    for name in ("Smooth", "Blur", "Sharpness"):
        out = registry.REGISTRY[name](tf.constant(image), 0.3).numpy()
        assert out.shape == image.shape and out.dtype == np.uint8, name
    expected = (2 * _correlate(image, _RING, "same") + 16) // 32
    np.testing.assert_array_equal(ops_filter.blur(tf.constant(image), 1.0).numpy(), expected)
    if min(height, width) <= 2:  # no interior: Sharpness is the identity
        np.testing.assert_array_equal(ops_filter.sharpness(tf.constant(image), 0.0).numpy(), image)


@pytest.mark.parametrize("name", ["Blur", "Smooth", "Sharpness"])
def test_constant_levels_in_tf_function_and_tf_data_equal_eager(name):
    # Constant levels let Grappler fold the level-to-factor arithmetic into the ops' own
    # constants; the pixels must not change (the dense sweep in test_augment_ops uses a
    # variable level).
    image = tf.constant(random_image(46, size=48, smooth=False))
    levels = [float(v) for v in np.linspace(0.0, 1.0, 41, dtype=np.float32)]
    ops = [registry.cta_op(name)] + ([registry.randaugment_op(name)]
                                     if name in registry.RANDAUGMENT_NAMES else [])
    for op in ops:
        eager = np.stack([op(image, level).numpy() for level in levels])
        folded = tf.function(lambda: tf.stack([op(image, level) for level in levels]))().numpy()
        np.testing.assert_array_equal(folded, eager)
        mapped = tf.data.Dataset.range(1).map(
            lambda _: tf.stack([op(image, level) for level in levels]))
        np.testing.assert_array_equal(next(iter(mapped)).numpy(), eager)
