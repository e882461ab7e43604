"""Geometric primitive ops (Rotate, ShearX/Y, TranslateX/Y, Rescale) on one uint8 [H, W, 3] image.

All warps are defined by `tf.raw_ops.ImageProjectiveTransformV3` (core TF, no tensorflow-addons)
with nearest-neighbour sampling, and Rotate/Shear run on it; TranslateX/Y compute the kernel's
exact source rows/columns and copy them instead (tested equal to the kernel's output on many
random shifts); RGB uint8 images are warped as one packed int32 channel (see `_warp`). The transform maps an *output* pixel (x, y) to the *input* location
((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1.

Gray fill. The reference appends a constant-1 channel, warps with zero fill, and paints gray
(128, 128, 128) wherever that channel became 0. With nearest sampling the extra channel is 0 exactly
when the rounded source location lies outside the image, which is exactly when the kernel's
CONSTANT fill mode emits `fill_value`; so warping with `fill_value=128` is the same result without
the extra channel, the concat and the select (tests/test_augment_ops.py checks the equivalence
against the trick computed literally with `warp`).
"""

import math
import sys

import numpy as np
import tensorflow as tf

GRAY = 128.0

# The fill pixel (128, 128, 128, 0) read as one native-endian int32. It has few enough significant
# bits to be exact as the float32 `fill_value` on little- and big-endian hosts alike.
_PACKED_GRAY = int(np.frombuffer(np.array([128, 128, 128, 0], np.uint8).tobytes(), np.int32)[0])
assert float(np.float32(_PACKED_GRAY)) == _PACKED_GRAY


def warp(image, transform, *, fill_value=GRAY):
  """Generic warp of a [H, W, C] image: nearest sampling, constant `fill_value` outside."""
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=image[None],
      transforms=tf.cast(transform, tf.float32)[None],
      output_shape=tf.shape(image)[:2],
      fill_value=fill_value,
      interpolation="NEAREST",
      fill_mode="CONSTANT")
  return out[0]


def _pack_rgb(image):
  """uint8 [H, W, 3] -> int32 [H, W, 1] whose native bytes are (R, G, B, 0)."""
  if sys.byteorder != "little":
    return tf.bitcast(tf.pad(image, [[0, 0], [0, 0], [0, 1]]), tf.int32)[..., None]
  # Arithmetic on contiguous channel planes: ~2x cheaper than padding the interleaved pixels.
  planes = tf.cast(tf.transpose(tf.reshape(image, [-1, 3])), tf.int32)
  packed = planes[0] + planes[1] * 256 + planes[2] * 65536
  return tf.reshape(packed, tf.shape(image)[:2])[..., None]


def _warp(image, transform):
  """Gray-filled warp; uint8 RGB images take the packed fast path.

  Packing: the kernel computes the source coordinate once per output *element*, so warping each
  pixel's 4 bytes (RGB + one zero byte) as a single int32 channel does a third of the coordinate
  work of warping 3 uint8 channels (~40% less CPU per op including packing and unpacking), and is
  bit-identical because nearest sampling copies whole pixels.
  """
  if image.dtype != tf.uint8 or image.shape[-1] != 3:
    return warp(image, transform)
  out = warp(_pack_rgb(image), transform, fill_value=float(_PACKED_GRAY))
  return tf.ensure_shape(tf.bitcast(out[..., 0], tf.uint8)[..., :3], image.shape)


def _affine(a0, a1, a2, b0, b1, b2):
  zero = tf.constant(0.0)
  return tf.stack([tf.cast(v, tf.float32) for v in (a0, a1, a2, b0, b1, b2)] + [zero, zero])


def rotate(image, degrees):
  """Rotates counter-clockwise (as PIL's Image.rotate) by `degrees` about the image centre."""
  radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
  height = tf.cast(tf.shape(image)[0], tf.float32)
  width = tf.cast(tf.shape(image)[1], tf.float32)
  cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
  cos, sin = tf.cos(radians), tf.sin(radians)
  # x_in = cos (x - cx) - sin (y - cy) + cx ; y_in = sin (x - cx) + cos (y - cy) + cy
  return _warp(image, _affine(cos, -sin, cx - cos * cx + sin * cy,
                              sin, cos, cy - sin * cx - cos * cy))


def shear_x(image, shear):
  """x_in = x + shear * y."""
  return _warp(image, _affine(1.0, shear, 0.0, 0.0, 1.0, 0.0))


def shear_y(image, shear):
  """y_in = shear * x + y."""
  return _warp(image, _affine(1.0, 0.0, 0.0, shear, 1.0, 0.0))


# Translations without the warp kernel. For the transform [1, 0, p, 0, 1, 0, 0, 0] the kernel
# computes x_in = (1 x + 0 y + p) / 1 = fl(x + p) (the products and the division are exact, so
# no FMA contraction can change it) and y_in = y; then `round` (half away from zero) and gray
# outside. x_in depends on the column only, so the whole warp is a column (or row) selection:
# `_source_index` reproduces the kernel's index per column in float32, and copying whole rows or
# row segments costs ~20-90 us per 224x224 image instead of ~500 us for pack + warp + unpack.


def _source_index(size, shift):
  """The warp kernel's source index of each output position 0..size-1 for x_in = fl(x + shift).

  int32 [size]; `size` (one past the end) where the kernel reads outside and fills gray.
  std::round(v) lies in [0, size - 1] exactly when -0.5 < v < size - 0.5; inside that range
  it is floor(v) + (frac(v) >= 0.5) (frac is exact in float32).
  """
  v = tf.range(size, dtype=tf.float32) + tf.cast(shift, tf.float32)
  floor = tf.floor(v)
  index = tf.cast(floor, tf.int32) + tf.cast(v - floor >= 0.5, tf.int32)
  inside = (v > -0.5) & (v < tf.cast(size, tf.float32) - 0.5)
  return tf.where(inside, index, size)


def _gray(shape):
  return tf.fill(shape, tf.constant(int(GRAY), tf.uint8))


def _gather_columns(image, source):
  """Columns `source` (int32 [W], W = gray) of a uint8 [H, W, 3] image: the general path."""
  padded = tf.concat([image, _gray([tf.shape(image)[0], 1, 3])], axis=1)
  return tf.gather(padded, source, axis=1)


def translate_x(image, pixels):
  """Shifts the content by -pixels along x (x_in = x + pixels); bit-identical to the warp.

  The source columns form one contiguous run [first, first + count) for every shift in
  practice, so the result is the concatenation gray | image[:, run] | gray (row-segment
  copies). A gather of columns covers the general case (e.g. float rounding that repeats or
  skips a column at a power of two), so the result is exact for any shift.
  """
  if image.dtype != tf.uint8 or image.shape[-1] != 3:
    return _warp(image, _affine(1.0, 0.0, pixels, 0.0, 1.0, 0.0))
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  source = _source_index(width, pixels)
  inside = source < width
  count = tf.reduce_sum(tf.cast(inside, tf.int32))
  first_out = tf.argmax(tf.cast(inside, tf.int32), output_type=tf.int32)  # 0 if none inside
  first_in = tf.minimum(source[first_out], width)
  positions = tf.range(width)
  contiguous = tf.reduce_all(
      tf.logical_or(tf.logical_not(inside), source - positions == first_in - first_out))

  def run():
    return tf.concat([_gray([height, first_out, 3]),
                      image[:, first_in:first_in + count],
                      _gray([height, width - first_out - count, 3])], axis=1)

  out = tf.cond(contiguous, run, lambda: _gather_columns(image, source))
  return tf.ensure_shape(out, image.shape)


def translate_y(image, pixels):
  """Shifts the content by -pixels along y (y_in = y + pixels); bit-identical to the warp.

  A gather of whole rows (contiguous W x 3 bytes each) from the image with one gray row
  appended.
  """
  if image.dtype != tf.uint8 or image.shape[-1] != 3:
    return _warp(image, _affine(1.0, 0.0, 0.0, 0.0, 1.0, pixels))
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  padded = tf.concat([image, _gray([1, width, 3])], axis=0)
  out = tf.gather(padded, _source_index(height, pixels), axis=0)
  return tf.ensure_shape(out, image.shape)


def rescale(image, level):
  """Drops the first floor(0.25 level H) rows and floor(0.25 level W) columns, bicubic back to H x W.

  The resize output is saturated to uint8 (clip, then truncate), as the reference.
  """
  shape = tf.shape(image)
  scale = 0.25 * tf.cast(level, tf.float32)
  top = tf.cast(scale * tf.cast(shape[0], tf.float32), tf.int32)
  left = tf.cast(scale * tf.cast(shape[1], tf.float32), tf.int32)
  resized = tf.image.resize(image[top:, left:], shape[:2], method="bicubic")
  out = tf.saturate_cast(resized, tf.uint8)
  return tf.ensure_shape(out, image.shape)
