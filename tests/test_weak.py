"""Contracts of the weak augmentation / eval preprocessing (spec 3.1, 4.1)."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from fixmatch.augment import weak


def _jpeg(height, width, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _expected_eval_window(height, width):
    side = int(0.875 * min(height, width))
    return [((height - side) + 1) // 2, ((width - side) + 1) // 2, side, side]


def _resize_u8(pixels, size):
    resized = tf.image.resize(pixels, [size, size], method="bicubic")
    return tf.saturate_cast(resized, tf.uint8).numpy()


@pytest.mark.parametrize("height,width", [(30, 40), (48, 64), (375, 500), (500, 375),
                                          (33, 33), (41, 64), (64, 41), (8, 7)])
def test_center_crop_window_follows_reference_formula(height, width):
    got = weak.center_crop_window(height, width).numpy().tolist()
    assert got == _expected_eval_window(height, width)


def test_center_crop_window_never_empty_on_tiny_images():
    # int(0.875 * 1) == 0 would be an empty (undecodable) window.
    assert weak.center_crop_window(1, 7).numpy().tolist() == [0, 3, 1, 1]


def test_random_crop_window_respects_area_and_aspect_ranges():
    shape = tf.constant([375, 500, 3])
    sample = tf.function(lambda s: weak.random_crop_window(shape, seed=s))
    areas, aspects, centered = [], [], 0
    center = _expected_eval_window(375, 500)
    for i in range(300):
        y, x, h, w = sample(tf.constant([i, 7], tf.int64)).numpy().tolist()
        assert 0 <= y and 0 <= x and y + h <= 375 and x + w <= 500 and h > 0 and w > 0
        if [y, x, h, w] == center:
            centered += 1
            continue
        areas.append(h * w / (375 * 500))
        aspects.append(w / h)
    areas, aspects = np.array(areas), np.array(aspects)
    # Box sides are rounded to whole pixels, hence the small tolerances.
    assert areas.min() >= 0.08 - 0.005 and areas.max() <= 1.0
    assert aspects.min() >= 0.75 - 0.01 and aspects.max() <= 4 / 3 + 0.01
    # The samples really spread over the ranges (not a fixed crop).
    assert areas.min() < 0.2 and areas.max() > 0.8
    assert aspects.min() < 0.8 and aspects.max() > 1.25
    assert centered < 30  # fallback is the exception on a 4:3 image


def test_crop_min_area_raises_the_smallest_crop():
    shape = tf.constant([375, 500, 3])
    sample = tf.function(lambda s: weak.random_crop_window(shape, seed=s, min_area=0.5))
    center = _expected_eval_window(375, 500)
    areas = []
    for i in range(200):
        y, x, h, w = sample(tf.constant([i, 3], tf.int64)).numpy().tolist()
        if [y, x, h, w] != center:
            areas.append(h * w / (375 * 500))
    assert len(areas) > 150 and min(areas) >= 0.5 - 0.005 and max(areas) > 0.9


def test_random_crop_window_falls_back_to_center_crop():
    # 1000x10: no box with aspect in [3/4, 4/3] covers 8% of the area, so the
    # sampler returns the whole image and the eval center crop is used instead.
    for i in range(5):
        got = weak.random_crop_window([1000, 10, 3], seed=[i, 1]).numpy().tolist()
        assert got == _expected_eval_window(1000, 10) == [496, 1, 8, 8]


def _window_for(seed, shape):
    crop_seed = tf.random.experimental.stateless_split(seed, num=2)[0]
    return weak.random_crop_window(shape, seed=crop_seed)


def test_weak_is_resized_window_of_the_jpeg_then_flipped():
    encoded = _jpeg(48, 64, seed=1)
    shape = tf.image.extract_jpeg_shape(encoded)
    flips = set()
    for i in range(12):
        seed = tf.constant([i, 3], tf.int64)
        got = weak.weak_from_jpeg(encoded, image_size=16, seed=seed).numpy()
        assert got.shape == (16, 16, 3) and got.dtype == np.uint8
        window = _window_for(seed, shape)
        expected = _resize_u8(tf.image.decode_and_crop_jpeg(encoded, window, channels=3), 16)
        if np.array_equal(got, expected):
            flips.add(False)
        else:
            np.testing.assert_array_equal(got, expected[:, ::-1])
            flips.add(True)
    assert flips == {False, True}


def test_fused_decode_window_is_the_same_region_as_full_decode():
    # libjpeg's partial decode upsamples chroma differently on the window's
    # border columns, so compare the interior exactly and the border loosely.
    encoded = _jpeg(48, 64, seed=6)
    full = tf.io.decode_jpeg(encoded, channels=3).numpy().astype(int)
    for i in range(10):
        y, x, h, w = window = weak.random_crop_window([48, 64, 3], seed=[i, 9]).numpy()
        fused = tf.image.decode_and_crop_jpeg(encoded, window, channels=3).numpy().astype(int)
        region = full[y:y + h, x:x + w]
        assert fused.shape == region.shape
        np.testing.assert_array_equal(fused[1:-1, 1:-1], region[1:-1, 1:-1])
        assert np.abs(fused - region).mean() < 2


def test_weak_without_flip_never_flips_and_float_without_saturation():
    encoded = _jpeg(30, 40, seed=2)
    shape = tf.image.extract_jpeg_shape(encoded)
    for i in range(6):
        seed = tf.constant([i, 5], tf.int64)
        got = weak.weak_from_jpeg(encoded, image_size=12, flip=False, seed=seed).numpy()
        crop = tf.image.decode_and_crop_jpeg(encoded, _window_for(seed, shape), channels=3)
        np.testing.assert_array_equal(got, _resize_u8(crop, 12))
    raw = weak.weak_from_jpeg(encoded, image_size=12, saturate_uint8=False)
    assert raw.dtype == tf.float32 and raw.shape == (12, 12, 3)


def test_weak_same_in_eager_and_inside_tf_data():
    encoded = _jpeg(40, 56, seed=3)
    seed = tf.constant([11, 2], tf.int64)
    eager = weak.weak_from_jpeg(encoded, image_size=20, seed=seed).numpy()
    ds = tf.data.Dataset.from_tensors(encoded).map(
        lambda e: weak.weak_from_jpeg(e, image_size=20, seed=seed))
    np.testing.assert_array_equal(next(iter(ds)).numpy(), eager)


def test_unseeded_weak_views_vary():
    encoded = _jpeg(48, 64, seed=4)
    views = {weak.weak_from_jpeg(encoded, image_size=8).numpy().tobytes() for _ in range(8)}
    assert len(views) > 1


@pytest.mark.parametrize("height,width", [(30, 40), (47, 33)])
def test_center_from_jpeg_matches_formula(height, width):
    encoded = _jpeg(height, width, seed=5)
    full = tf.io.decode_jpeg(encoded, channels=3)
    y, x, h, w = _expected_eval_window(height, width)
    got = weak.center_from_jpeg(encoded, image_size=16).numpy()
    np.testing.assert_array_equal(got, _resize_u8(full[y:y + h, x:x + w], 16))


def test_scale_and_center_maps_uint8_to_unit_interval():
    pixels = tf.constant([0, 1, 127, 128, 255], tf.uint8)
    got = weak.scale_and_center(pixels).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.array([0, 1, 127, 128, 255]) / 127.5 - 1, atol=1e-7)
    assert got[0] == -1.0 and got[-1] == 1.0
    assert weak.scale_and_center(pixels, tf.bfloat16).dtype == tf.bfloat16


@pytest.mark.parametrize("bad", [0, -3, 2.5, "224", True])
def test_bad_image_size_is_rejected(bad):
    with pytest.raises(ValueError, match="image_size"):
        weak.weak_from_jpeg(_jpeg(30, 40), image_size=bad)
    with pytest.raises(ValueError, match="image_size"):
        weak.center_from_jpeg(_jpeg(30, 40), image_size=bad)
