"""Contracts of the op registry: shapes, dtypes, neutral levels, tf.data == eager, Pillow agreement.

The geometric ops' own contracts (kernel agreement, gray fill, translations) are in
test_augment_geometric.py.
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import ImageEnhance, ImageFilter, ImageOps

from fixmatch.augment import ops_color, ops_filter, registry
from fixtures.augment_images import SIZE, low_contrast_image as _low_contrast_image, \
    pil as _pil, random_image as _image

ALL_OPS = ([("randaugment", name) for name in registry.RANDAUGMENT_NAMES]
           + [("cta", name) for name in registry.CTA_NAMES])
_RANDOM_SIGN_SCALE = {"Rotate": 30.0, "ShearX": 0.3, "ShearY": 0.3, "TranslateX": 100.0,
                      "TranslateY": 100.0}  # RandAugment's `scale * level`, random sign
RANDOM_SIGN = set(_RANDOM_SIGN_SCALE)


def _either_sign(name, image, level):
    """RandAugment's random-sign op at `level`: the primitive at +arg and at -arg (numpy)."""
    arg = _RANDOM_SIGN_SCALE[name] * level
    return [registry.REGISTRY[name](tf.constant(image), s * arg).numpy() for s in (1, -1)]


def _op(policy, name):
    return registry.randaugment_op(name) if policy == "randaugment" else registry.cta_op(name)


# --------------------------------------------------------------------------------------------
# Registry structure and level tables.

def test_tables_follow_the_spec_order():
    assert registry.RANDAUGMENT_NAMES == (
        "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color",
        "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
        "SolarizeAdd", "Identity")
    assert registry.CTA_NAMES == (
        "AutoContrastBlend", "Blur", "Brightness", "Color", "Contrast", "EqualizeBlend",
        "InvertBlend", "Identity", "Posterize", "Rescale", "Rotate", "Sharpness", "ShearX",
        "ShearY", "Smooth", "Solarize", "SolarizeAdd", "TranslateX", "TranslateY")
    assert set(registry.RANDAUGMENT_NAMES) | set(registry.CTA_NAMES) == set(registry.REGISTRY)


def test_unknown_op_name_is_reported():
    with pytest.raises(KeyError, match="'Cutout'"):
        registry.cta_op("Cutout")
    with pytest.raises(KeyError, match="'Blur'"):
        registry.randaugment_op("Blur")


@pytest.mark.parametrize("level", [0.0, 0.1, 0.3, 0.5, 0.7, 0.93, 0.999])
def test_cta_level_to_argument_table(level):
    args = {name: [float(a) for a in fn(tf.constant(level, tf.float32))]
            for name, fn in registry.CTA_OPS}
    for name in ("AutoContrastBlend", "EqualizeBlend", "InvertBlend", "Blur", "Smooth", "Rescale"):
        assert args[name] == pytest.approx([level])
    for name in ("Brightness", "Color", "Contrast", "Sharpness"):
        assert args[name] == pytest.approx([0.1 + 1.9 * level])
    assert args["Posterize"] == [1 + int(7.999 * level)]
    assert args["Rotate"] == pytest.approx([(2 * level - 1) * 45], abs=1e-4)
    assert args["ShearX"] == args["ShearY"] == pytest.approx([(2 * level - 1) * 0.3], abs=1e-6)
    assert args["TranslateX"] == args["TranslateY"] == pytest.approx([(2 * level - 1) * 100],
                                                                     abs=1e-4)
    assert args["Solarize"] == [int(256 * level)]
    assert args["SolarizeAdd"] == [int(110 * level)]
    assert args["Identity"] == []


@pytest.mark.parametrize("k", range(11))
def test_randaugment_level_to_argument_table(k):
    level = tf.constant(k, tf.float32) / 10.0
    fns = dict(registry.RANDAUGMENT_OPS)
    for name in ("Color", "Contrast", "Brightness", "Sharpness"):
        assert float(fns[name](level)[0]) == pytest.approx(0.1 + 1.8 * k / 10)
    # At least 1 bit: the reference's effective behaviour (its uint8 shift by 8 was clamped to 7).
    assert int(fns["Posterize"](level)[0]) == max(1, int(4 * k / 10))
    assert int(fns["Solarize"](level)[0]) == int(256 * k / 10)
    assert int(fns["SolarizeAdd"](level)[0]) == int(110 * k / 10)
    tf.random.set_seed(k)
    for name, scale in _RANDOM_SIGN_SCALE.items():
        values = {round(float(fns[name](level)[0]), 4) for _ in range(40)}
        assert values == {round(scale * k / 10, 4), round(-scale * k / 10, 4)} or k == 0


# --------------------------------------------------------------------------------------------
# Every op: shape, dtype, eager == tf.data.

@pytest.mark.parametrize("policy,name", ALL_OPS)
def test_op_shape_dtype_and_tf_data_equals_eager(policy, name):
    image = _image(3)
    op = _op(policy, name)
    levels = [0.0, 0.25, 0.5, 0.75, 0.999]
    eager = [op(tf.constant(image), level) for level in levels]
    for out in eager:
        assert out.dtype == tf.uint8 and out.shape == image.shape
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(levels)).map(
        lambda level: op(tf.constant(image), level))
    in_graph = list(ds)
    for out in in_graph:
        assert out.dtype == tf.uint8 and out.shape == image.shape
    if policy == "randaugment" and name in RANDOM_SIGN:
        # The sign is random: each result must be the primitive at +arg or at -arg.
        for level, out in zip(levels, in_graph):
            candidates = _either_sign(name, image, level)
            assert any(np.array_equal(out.numpy(), c) for c in candidates), (name, level)
    else:
        for a, b in zip(eager, in_graph):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("policy,name", [p for p in ALL_OPS
                                         if p[0] == "cta" or p[1] not in RANDOM_SIGN])
def test_tf_function_equals_eager_over_a_dense_level_sweep(policy, name):
    # Inside tf.function the full Grappler pipeline runs (tf.data runs a smaller one): constant
    # push-down once merged CTAugment's `(2 level - 1) * scale` with the ops' own constants and
    # flipped .5 ties (up to 108 pixels of this ShearX). 61 levels, the level a loop variable.
    image = tf.constant(_image(27, size=64, smooth=False))
    op = _op(policy, name)
    levels = tf.constant(np.linspace(0.0, 1.0, 61, dtype=np.float32))
    in_function = tf.function(
        lambda levels: tf.map_fn(lambda level: op(image, level), levels,
                                 fn_output_signature=tf.uint8), autograph=False)(levels).numpy()
    for level, out in zip(levels, in_function):
        np.testing.assert_array_equal(out, op(image, level).numpy(), err_msg=f"{name} {level}")


@pytest.mark.parametrize("table", [registry.CTA_OPS, registry.RANDAUGMENT_OPS],
                         ids=["cta", "randaugment"])
def test_indexed_dispatch_in_a_parallel_map_gives_each_element_its_own_op(table):
    # What the policies run: the op chosen by a tensor index, many elements in flight at once.
    # Each element (its own image, op and level) must get exactly that op's result.
    rng = np.random.default_rng(28)
    count = 4 * len(table)
    images = rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)
    indices = np.arange(count, dtype=np.int32) % len(table)
    levels = rng.uniform(0, 1, count).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, indices, levels)).map(
        lambda image, index, level: registry.apply_indexed(table, index, image, level),
        num_parallel_calls=8, deterministic=True)
    ops = registry.level_ops(table)
    for image, index, level, out in zip(images, indices, levels, ds.as_numpy_iterator()):
        name = table[index][0]
        if table is registry.RANDAUGMENT_OPS and name in RANDOM_SIGN:
            expected = _either_sign(name, image, level)
        else:
            expected = [ops[index](image, level).numpy()]
        assert any(np.array_equal(out, e) for e in expected), (name, level)


@pytest.mark.parametrize("name,arg", [
    ("Identity", ()), ("Brightness", (1.0,)), ("Color", (1.0,)), ("Contrast", (1.0,)),
    ("Sharpness", (1.0,)), ("Rotate", (0.0,)), ("ShearX", (0.0,)), ("ShearY", (0.0,)),
    ("TranslateX", (0.0,)), ("TranslateY", (0.0,)), ("Posterize", (8,)), ("SolarizeAdd", (0,)),
    ("AutoContrastBlend", (1.0,)), ("EqualizeBlend", (1.0,)), ("InvertBlend", (1.0,)),
    ("Blur", (0.0,)), ("Smooth", (0.0,)), ("Rescale", (0.0,))])
def test_identity_at_the_neutral_argument(name, arg):
    image = _image(5, smooth=False)
    out = registry.REGISTRY[name](tf.constant(image), *arg)
    np.testing.assert_array_equal(out.numpy(), image)


@pytest.mark.parametrize("policy,name,level", [
    ("randaugment", "Rotate", 0.0), ("randaugment", "TranslateX", 0.0),
    ("randaugment", "Color", 0.5), ("randaugment", "Sharpness", 0.5),
    ("randaugment", "SolarizeAdd", 0.0), ("randaugment", "Identity", 0.7),
    ("cta", "Rotate", 0.5), ("cta", "ShearY", 0.5), ("cta", "TranslateY", 0.5),
    ("cta", "Posterize", 0.95), ("cta", "InvertBlend", 1.0), ("cta", "Blur", 0.0),
    ("cta", "Rescale", 0.0), ("cta", "SolarizeAdd", 0.0)])
def test_identity_at_the_neutral_level(policy, name, level):
    image = _image(6, smooth=False)
    np.testing.assert_array_equal(_op(policy, name)(tf.constant(image), level).numpy(), image)


# --------------------------------------------------------------------------------------------
# Agreement with Pillow.

def test_autocontrast_matches_pillow():
    for seed in range(3):
        image = _low_contrast_image(seed)
        image[..., 2] = 77  # a flat channel stays unchanged
        ours = ops_color.autocontrast(tf.constant(image)).numpy().astype(int)
        theirs = np.asarray(ImageOps.autocontrast(_pil(image))).astype(int)
        assert np.abs(ours - theirs).max() <= 1
        assert (ours[..., 2] == 77).all()
        assert ours[..., :2].min() == 0 and ours[..., :2].max() == 255


def test_equalize_matches_pillow_exactly():
    for image in (_low_contrast_image(2), _image(7, smooth=False),
                  np.full((SIZE, SIZE, 3), 9, np.uint8)):
        ours = ops_color.equalize(tf.constant(image)).numpy()
        np.testing.assert_array_equal(ours, np.asarray(ImageOps.equalize(_pil(image))))


@pytest.mark.parametrize("bits", range(9))
def test_posterize_matches_pillow(bits):
    image = _image(8, smooth=False)
    # Pillow 13 refuses 0 bits; earlier Pillow kept none of them (a black image), as ours does.
    expected = (np.zeros_like(image) if bits == 0
                else np.asarray(ImageOps.posterize(_pil(image), bits)))
    np.testing.assert_array_equal(ops_color.posterize(tf.constant(image), bits).numpy(), expected)


@pytest.mark.parametrize("threshold", [0, 1, 77, 128, 200, 255])
def test_solarize_matches_pillow(threshold):
    image = _image(9, smooth=False)
    np.testing.assert_array_equal(ops_color.solarize(tf.constant(image), threshold).numpy(),
                                  np.asarray(ImageOps.solarize(_pil(image), threshold)))


def test_solarize_threshold_saturates_to_uint8():
    image = np.array([[[0, 254, 255]]], np.uint8)
    np.testing.assert_array_equal(ops_color.solarize(tf.constant(image), 256).numpy(),
                                  [[[0, 254, 0]]])


def test_solarize_add():
    image = np.array([[[0, 100, 127, 128, 250]]], np.uint8).reshape(1, 5, 1)
    out = ops_color.solarize_add(tf.constant(image), 110).numpy().ravel()
    np.testing.assert_array_equal(out, [110, 210, 237, 128, 250])


def test_invert_matches_pillow():
    image = _image(10, smooth=False)
    np.testing.assert_array_equal(ops_color.invert(tf.constant(image)).numpy(),
                                  np.asarray(ImageOps.invert(_pil(image))))


@pytest.mark.parametrize("name,enhancer", [("Brightness", ImageEnhance.Brightness),
                                           ("Color", ImageEnhance.Color),
                                           ("Contrast", ImageEnhance.Contrast),
                                           ("Sharpness", ImageEnhance.Sharpness)])
@pytest.mark.parametrize("factor", [0.1, 0.46, 1.0, 1.43, 2.0])
def test_enhancers_match_pillow(name, enhancer, factor):
    image = _image(11)
    ours = registry.REGISTRY[name](tf.constant(image), factor).numpy().astype(int)
    theirs = np.asarray(enhancer(_pil(image)).enhance(factor)).astype(int)
    # Pillow rounds its smoothing filter where the reference Sharpness truncates: off by <= 1.
    assert np.abs(ours - theirs).max() <= 1, name


@pytest.mark.parametrize("name,pil_filter", [("Smooth", ImageFilter.SMOOTH),
                                             ("Blur", ImageFilter.BLUR)])
def test_full_strength_filters_match_pillow_inside_the_border(name, pil_filter):
    image = _image(12)
    ours = registry.REGISTRY[name](tf.constant(image), 1.0).numpy().astype(int)
    theirs = np.asarray(_pil(image).filter(pil_filter)).astype(int)
    border = 1 if name == "Smooth" else 2
    inner = (slice(border, -border), slice(border, -border))
    assert np.abs(ours[inner] - theirs[inner]).max() <= 1
    # Zero ("same") padding darkens the border, unlike Pillow which keeps it.
    assert ours[0].mean() < image[0].mean()


# --------------------------------------------------------------------------------------------
# Exact blend and filter conventions.

def test_blend_conventions():
    image = _image(17)
    inverted = 255 - image
    np.testing.assert_array_equal(ops_color.invert_blend(tf.constant(image), 0.0).numpy(), inverted)
    half = ops_color.invert_blend(tf.constant(image), 0.5).numpy().astype(int)
    expected = np.clip(inverted + 0.5 * (image.astype(float) - inverted), 0, 255).astype(int)
    np.testing.assert_array_equal(half, expected)
    np.testing.assert_array_equal(ops_color.brightness(tf.constant(image), 0.0).numpy(), 0)


def test_sharpness_keeps_the_border():
    image = _image(18, smooth=False)
    out = ops_filter.sharpness(tf.constant(image), 0.0).numpy()
    np.testing.assert_array_equal(out[0], image[0])
    np.testing.assert_array_equal(out[:, -1], image[:, -1])
    assert not np.array_equal(out[1:-1, 1:-1], image[1:-1, 1:-1])


def test_ops_work_on_rectangular_images_in_tf_function():
    image = tf.constant(_image(19, size=40)[:24])

    @tf.function
    def run(index, level):
        return registry.apply_indexed(registry.CTA_OPS, index, image, level)

    for index in range(len(registry.CTA_OPS)):
        out = run(tf.constant(index), tf.constant(0.8))
        assert out.shape == (24, 40, 3) and out.dtype == tf.uint8


def _literal_blend(a, b, factor):
    """The spec's blend in float64: clip_uint8(a + f (b - a)), truncated."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.clip(a + factor * (b - a), 0, 255).astype(np.uint8).astype(int)


def _literal_filter(image, kernel):
    """'same' zero-padded correlation in float64 (the kernels are symmetric)."""
    k = np.asarray(kernel, np.float64)
    r = k.shape[0] // 2
    padded = np.pad(image.astype(np.float64), [(r, r), (r, r), (0, 0)])
    out = np.zeros(image.shape, np.float64)
    for dy in range(k.shape[0]):
        for dx in range(k.shape[1]):
            out += k[dy, dx] * padded[dy:dy + image.shape[0], dx:dx + image.shape[1]]
    return out


@pytest.mark.parametrize("factor", [0.0, 0.13, 0.5, 0.77, 1.0])
def test_folded_blends_equal_the_literal_spec_formula_within_one(factor):
    # The ops fold blend(op(x), x, f) into one affine map / LUT / kernel (see ops_color and
    # ops_filter); they must stay within one grey level of the formula computed literally.
    image = _low_contrast_image(24)
    x = tf.constant(image)
    smooth = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13.0
    ring = np.ones((5, 5))
    ring[1:4, 1:4] = 0
    literal = {
        "AutoContrastBlend": _literal_blend(
            np.asarray(ImageOps.autocontrast(_pil(image))), image, factor),
        "EqualizeBlend": _literal_blend(np.asarray(ImageOps.equalize(_pil(image))), image, factor),
        "InvertBlend": _literal_blend(255 - image, image, factor),
        "Smooth": _literal_blend(image, _literal_filter(image, smooth) + 0.5, factor),
        "Blur": _literal_blend(image, _literal_filter(image, ring / 16.0) + 0.5, factor),
    }
    for name, expected in literal.items():
        ours = registry.REGISTRY[name](x, factor).numpy().astype(int)
        assert np.abs(ours - expected).max() <= 1, name
        if factor == 1.0 and name.endswith("Blend") or factor == 0.0 and name in ("Blur", "Smooth"):
            np.testing.assert_array_equal(ours, image, err_msg=name)  # exactly neutral


@pytest.mark.parametrize("policy,name", ALL_OPS)
def test_unknown_image_size_gives_the_same_result(policy, name):
    # Static sizes (the pipelines' case) take shortcuts such as Python-float constants; an image
    # of unknown height and width must give exactly the same pixels.
    image = tf.constant(_image(25, size=40)[:27])
    op = _op(policy, name)
    dynamic = tf.function(op, input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                               tf.TensorSpec([], tf.float32)])
    for level in (0.0, 0.37, 0.81):
        tf.random.set_seed(7)
        expected = op(image, level).numpy()
        tf.random.set_seed(7)
        np.testing.assert_array_equal(dynamic(image, level).numpy(), expected, err_msg=str(level))


@pytest.mark.parametrize("addition", [-300, -110, -1, 0, 1, 55, 110, 300])
@pytest.mark.parametrize("threshold", [0, 1, 128, 200, 256])
def test_solarize_add_matches_the_formula(addition, threshold):
    image = _image(26, smooth=False)
    x = image.astype(int)
    expected = np.where(x < min(threshold, 255), np.clip(x + addition, 0, 255), x)
    ours = ops_color.solarize_add(tf.constant(image), addition, threshold).numpy()
    np.testing.assert_array_equal(ours, expected)
