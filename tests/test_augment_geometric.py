"""Contracts of the geometric ops: the reference warp kernel, gray fill, translations, Pillow."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from fixmatch.augment import ops_geometric, registry
from fixtures.augment_images import SIZE, pil as _pil, random_image as _image

GEOMETRIC = {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
def test_geometric_ops_only_move_pixels_or_fill_gray(name):
    image = _image(4, smooth=False)
    argument = {"Rotate": 17.0}.get(name, 0.23 if "Shear" in name else 5.0)
    out = registry.REGISTRY[name](tf.constant(image), argument).numpy()
    source = {tuple(p) for p in image.reshape(-1, 3)} | {(128, 128, 128)}
    assert all(tuple(p) in source for p in out.reshape(-1, 3))
    assert (out == 128).all(axis=-1).any()  # something was moved out of the frame


@pytest.mark.parametrize("degrees", [-30.0, -12.5, 8.0, 30.0, 45.0, 90.0])
def test_rotate_matches_pillow(degrees):
    image = _image(13, size=48)
    ours = ops_geometric.rotate(tf.constant(image), degrees).numpy().astype(int)
    theirs = np.asarray(_pil(image).rotate(degrees, resample=Image.NEAREST,
                                           fillcolor=(128, 128, 128))).astype(int)
    # Nearest-neighbour rounding ties may resolve differently on a few pixels.
    mismatched = (np.abs(ours - theirs).max(axis=-1) > 0).mean()
    assert mismatched < 0.01, mismatched
    assert np.abs(ours - theirs).mean() < 1.5


def test_gray_fill_equals_the_extra_channel_trick():
    image = _image(14, smooth=False)
    transforms = {  # the primitives' own transforms, written out for the literal reference trick
        "Rotate": None, "ShearX": [1, -0.3, 0, 0, 1, 0, 0, 0], "ShearY": [1, 0, 0, 0.2, 1, 0, 0, 0],
        "TranslateX": [1, 0, 7.5, 0, 1, 0, 0, 0], "TranslateY": [1, 0, 0, 0, 1, -11.0, 0, 0]}
    angle = np.deg2rad(23.0)
    c = (SIZE - 1) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    transforms["Rotate"] = [cos, -sin, c - cos * c + sin * c, sin, cos, c - sin * c - cos * c, 0, 0]
    args = {"Rotate": 23.0, "ShearX": -0.3, "ShearY": 0.2, "TranslateX": 7.5, "TranslateY": -11.0}
    for name, transform in transforms.items():
        ours = registry.REGISTRY[name](tf.constant(image), args[name]).numpy()
        # Reference trick: append a ones channel, warp with zero fill, paint gray where it became 0.
        with_ones = np.concatenate([image, np.ones_like(image[..., :1])], axis=-1)
        warped = ops_geometric.warp(tf.constant(with_ones), tf.constant(transform, tf.float32),
                                    fill_value=0.0).numpy()
        expected = np.where(warped[..., 3:] == 0, 128, warped[..., :3]).astype(np.uint8)
        assert (warped[..., 3] == 0).any(), name
        if name.startswith("Translate"):
            np.testing.assert_array_equal(ours, expected, err_msg=name)
        else:  # same coordinates up to float rounding at .5 ties (see ops_geometric's docstring)
            assert (ours != expected).any(axis=-1).mean() <= 0.005, name


def test_translate_and_shear_move_content_as_specified():
    image = _image(15, smooth=False)
    out = ops_geometric.translate_x(tf.constant(image), 5).numpy()
    np.testing.assert_array_equal(out[:, :-5], image[:, 5:])  # shifted by -p along x
    assert (out[:, -5:] == 128).all()
    out = ops_geometric.translate_y(tf.constant(image), -3).numpy()
    np.testing.assert_array_equal(out[3:], image[:-3])
    assert (out[:3] == 128).all()
    out = ops_geometric.shear_x(tf.constant(image), 0.25).numpy()
    for y in (0, 4, 8, 20):  # x_in = x + 0.25 y
        shift = int(np.round(0.25 * y))
        np.testing.assert_array_equal(out[y, :SIZE - shift], image[y, shift:])


def test_rescale_crops_top_left_then_resizes():
    image = _image(16)
    out = ops_geometric.rescale(tf.constant(image), 1.0).numpy()
    crop = image[8:, 8:].astype(np.float32)  # 0.25 * 32 rows and columns dropped
    expected = tf.saturate_cast(tf.image.resize(crop, [SIZE, SIZE], method="bicubic"), tf.uint8)
    np.testing.assert_array_equal(out, expected.numpy())


def test_translations_equal_the_warp_kernel_on_many_shifts():
    # TranslateX/Y copy the kernel's exact source columns/rows instead of warping: check them
    # against ImageProjectiveTransformV3 itself, including rounding ties and far-out shifts.
    rng = np.random.default_rng(20)
    image = tf.constant(_image(20, size=40, smooth=False)[:29])  # rectangular: 29 x 40
    ties = [0.5, -0.5, 1.5, -1.5, 12.5, -12.5, 28.5, -28.5, 39.5, -39.5, 0.0, -0.0, 40.0, -40.0,
            100.0, -100.0, float(np.nextafter(np.float32(12.5), np.float32(0))),
            float(np.nextafter(np.float32(-0.5), np.float32(0)))]
    for shift in ties + list(rng.uniform(-45, 45, 150)):
        shift = np.float32(shift)
        for name, transform in (("TranslateX", [1, 0, shift, 0, 1, 0, 0, 0]),
                                ("TranslateY", [1, 0, 0, 0, 1, shift, 0, 0])):
            ours = registry.REGISTRY[name](image, shift).numpy()
            kernel = ops_geometric.warp(image, tf.constant(transform, tf.float32)).numpy()
            np.testing.assert_array_equal(ours, kernel, err_msg=f"{name} {shift!r}")


@pytest.mark.parametrize("name", ["Rotate", "ShearX", "ShearY"])
def test_warps_equal_the_kernel_and_tf_data_equals_eager_on_many_arguments(name):
    # Rotate/Shear gather at coordinates computed in the kernel's operation order; float rounding
    # at exact .5 ties may differ from ImageProjectiveTransformV3 on a few pixels, but never
    # between eager and tf.data (Grappler must not re-associate the coordinate sums).
    image = tf.constant(_image(22, size=40, smooth=False)[:29])  # rectangular: 29 x 40
    # Evenly spaced arguments (many exact ties) and random ones (ties improbable).
    scale = 45.0 if name == "Rotate" else 0.3
    rng = np.random.default_rng(23)
    args = np.concatenate([np.linspace(-1, 1, 17), rng.uniform(-1, 1, 12)]) * scale
    args = args.astype(np.float32)
    op = registry.REGISTRY[name]
    in_graph = list(tf.data.Dataset.from_tensor_slices(args).map(lambda a: op(image, a)))
    height, width = 29, 40
    for i, (arg, graph_out) in enumerate(zip(args, in_graph)):
        ours = op(image, arg).numpy()
        np.testing.assert_array_equal(ours, graph_out.numpy(), err_msg=f"{name} {arg}")
        if name == "Rotate":
            r = np.deg2rad(arg)
            c, s = np.cos(r), np.sin(r)
            cx, cy = (width - 1) / 2, (height - 1) / 2
            transform = [c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy, 0, 0]
        elif name == "ShearX":
            transform = [1, arg, 0, 0, 1, 0, 0, 0]
        else:
            transform = [1, 0, 0, arg, 1, 0, 0, 0]
        kernel = ops_geometric.warp(image, tf.constant(transform, tf.float32)).numpy()
        # At an exact tie -0.5 the kernel rounds away from zero (outside), floor(v + 0.5) inside:
        # a few first-row/column pixels for "nice" arguments; elsewhere only float-rounding ties.
        limit = 0.02 if i < 17 else 0.002
        assert (ours != kernel).any(axis=-1).mean() <= limit, (name, arg)


def test_translation_general_path_equals_the_kernel():
    # The gather used when the source positions are not one contiguous run, exercised directly.
    image = tf.constant(_image(21, size=40, smooth=False)[:29])
    for shift in (-7.5, 3.25, 40.0, -0.5):
        for axis, transform in ((1, [1, 0, shift, 0, 1, 0, 0, 0]),
                                (0, [1, 0, 0, 0, 1, shift, 0, 0])):
            source = ops_geometric._source_index(image.shape[axis], shift)
            kernel = ops_geometric.warp(image, tf.constant(transform, tf.float32)).numpy()
            np.testing.assert_array_equal(
                ops_geometric._gather_positions(image, source, axis).numpy(), kernel)


