"""Contracts of the op registry: shapes, dtypes, neutral levels, tf.data == eager, Pillow agreement."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from fixmatch.augment import ops_color, ops_filter, ops_geometric, registry

SIZE = 32


def _image(seed=0, size=SIZE, smooth=True):
  """Random RGB uint8 image; `smooth` gives natural-ish structure (ties in nearest sampling rarer)."""
  rng = np.random.default_rng(seed)
  if not smooth:
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
  coarse = rng.integers(0, 256, size=(size // 4 + 1, size // 4 + 1, 3)).astype(np.float32)
  fine = tf.image.resize(coarse[None], [size, size], method="bilinear")[0].numpy()
  return np.clip(fine + rng.normal(0, 10, fine.shape), 0, 255).astype(np.uint8)


def _low_contrast_image(seed=1):
  """Values squeezed into [60, 180) so AutoContrast/Equalize have something to do."""
  return (60 + _image(seed).astype(np.int32) * 120 // 256).astype(np.uint8)


ALL_OPS = ([("randaugment", name) for name in registry.RANDAUGMENT_NAMES]
           + [("cta", name) for name in registry.CTA_NAMES])
RANDOM_SIGN = {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}
GEOMETRIC = RANDOM_SIGN


def _op(policy, name):
  return registry.randaugment_op(name) if policy == "randaugment" else registry.cta_op(name)


# --------------------------------------------------------------------------------------------
# Registry structure and level tables.

def test_tables_follow_the_spec_order():
  assert registry.RANDAUGMENT_NAMES == (
      "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
      "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "SolarizeAdd",
      "Identity")
  assert registry.CTA_NAMES == (
      "AutoContrastBlend", "Blur", "Brightness", "Color", "Contrast", "EqualizeBlend",
      "InvertBlend", "Identity", "Posterize", "Rescale", "Rotate", "Sharpness", "ShearX", "ShearY",
      "Smooth", "Solarize", "SolarizeAdd", "TranslateX", "TranslateY")
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
  assert int(fns["Posterize"](level)[0]) == int(4 * k / 10)
  assert int(fns["Solarize"](level)[0]) == int(256 * k / 10)
  assert int(fns["SolarizeAdd"](level)[0]) == int(110 * k / 10)
  tf.random.set_seed(k)
  for name, scale in (("Rotate", 30), ("ShearX", 0.3), ("ShearY", 0.3), ("TranslateX", 100),
                      ("TranslateY", 100)):
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
    scale = {"Rotate": 30.0, "ShearX": 0.3, "ShearY": 0.3}.get(name, 100.0)
    primitive = registry.REGISTRY[name]
    for level, out in zip(levels, in_graph):
      candidates = [primitive(tf.constant(image), s * scale * level).numpy() for s in (1, -1)]
      assert any(np.array_equal(out.numpy(), c) for c in candidates), (name, level)
  else:
    for a, b in zip(eager, in_graph):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
def test_geometric_ops_only_move_pixels_or_fill_gray(name):
  image = _image(4, smooth=False)
  out = registry.REGISTRY[name](tf.constant(image), {"Rotate": 17.0}.get(name, 0.23 if "Shear"
                                                                         in name else 5.0)).numpy()
  source = {tuple(p) for p in image.reshape(-1, 3)} | {(128, 128, 128)}
  assert all(tuple(p) in source for p in out.reshape(-1, 3))
  assert (out == 128).all(axis=-1).any()  # something was moved out of the frame


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

def _pil(image):
  return Image.fromarray(image)


def test_autocontrast_matches_pillow():
  for seed in range(3):
    image = _low_contrast_image(seed)
    image[..., 2] = 77  # a flat channel stays unchanged
    ours = ops_color.autocontrast(tf.constant(image)).numpy().astype(int)
    theirs = np.asarray(ImageOps.autocontrast(_pil(image))).astype(int)
    assert np.abs(ours - theirs).max() <= 1
    assert (ours[..., 2] == 77).all() and ours[..., :2].min() == 0 and ours[..., :2].max() == 255


def test_equalize_matches_pillow_exactly():
  for image in (_low_contrast_image(2), _image(7, smooth=False), np.full((SIZE, SIZE, 3), 9, np.uint8)):
    ours = ops_color.equalize(tf.constant(image)).numpy()
    np.testing.assert_array_equal(ours, np.asarray(ImageOps.equalize(_pil(image))))


@pytest.mark.parametrize("bits", range(9))
def test_posterize_matches_pillow(bits):
  image = _image(8, smooth=False)
  np.testing.assert_array_equal(ops_color.posterize(tf.constant(image), bits).numpy(),
                                np.asarray(ImageOps.posterize(_pil(image), bits)))


@pytest.mark.parametrize("threshold", [0, 1, 77, 128, 200, 255])
def test_solarize_matches_pillow(threshold):
  image = _image(9, smooth=False)
  np.testing.assert_array_equal(ops_color.solarize(tf.constant(image), threshold).numpy(),
                                np.asarray(ImageOps.solarize(_pil(image), threshold)))


def test_solarize_threshold_saturates_to_uint8():
  image = np.array([[[0, 254, 255]]], np.uint8)
  np.testing.assert_array_equal(ops_color.solarize(tf.constant(image), 256).numpy(), [[[0, 254, 0]]])


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


# --------------------------------------------------------------------------------------------
# Exact geometric and filter conventions.

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


def test_translation_general_path_equals_the_kernel():
  # The gather used when the source positions are not one contiguous run, exercised directly.
  image = tf.constant(_image(21, size=40, smooth=False)[:29])
  for shift in (-7.5, 3.25, 40.0, -0.5):
    for axis, transform in ((1, [1, 0, shift, 0, 1, 0, 0, 0]), (0, [1, 0, 0, 0, 1, shift, 0, 0])):
      source = ops_geometric._source_index(image.shape[axis], shift)
      kernel = ops_geometric.warp(image, tf.constant(transform, tf.float32)).numpy()
      np.testing.assert_array_equal(
          ops_geometric._gather_positions(image, source, axis).numpy(), kernel)


@pytest.mark.parametrize("addition", [-300, -110, -1, 0, 1, 55, 110, 300])
@pytest.mark.parametrize("threshold", [0, 1, 128, 200, 256])
def test_solarize_add_matches_the_formula(addition, threshold):
  image = _image(26, smooth=False)
  x = image.astype(int)
  expected = np.where(x < min(threshold, 255), np.clip(x + addition, 0, 255), x)
  ours = ops_color.solarize_add(tf.constant(image), addition, threshold).numpy()
  np.testing.assert_array_equal(ours, expected)
