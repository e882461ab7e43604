"""Neighbourhood-filter primitive ops (Sharpness, Blur, Smooth) on one uint8 [H, W, 3] image.

Both kernels of the reference are sums of boxes, so they are computed with shifted slices instead of
a convolution (no kernel tiling, no NHWC batch dim, a handful of adds over the image):
- Smooth/Sharpness kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 = (box3x3 + 4 * centre) / 13.
- Blur kernel: 5x5 ring of ones around a zero 3x3 interior, / 16 = (box5x5 - box3x3) / 16.

Conventions (spec section 4.2), which differ between the ops on purpose:
- Sharpness(f): the smoothed image is computed on the valid interior only and truncated to uint8;
  the one-pixel border keeps the original values; result = blend(smoothed, x, f) (f=1 original).
- Blur(f) / Smooth(f): "same" convolution with zero padding, +0.5 for rounding (as PIL's filter),
  result = blend(x, filtered + 0.5, f): 0 is the original, 1 the fully filtered image.
"""

import tensorflow as tf

from fixmatch.augment.ops_color import blend


def _box_sum(padded, size):
  """Sum over every size x size window of a float [H + size - 1, W + size - 1, C] tensor."""
  rows = padded.shape[0] if padded.shape[0] is not None else tf.shape(padded)[0]
  cols = padded.shape[1] if padded.shape[1] is not None else tf.shape(padded)[1]
  out_rows, out_cols = rows - size + 1, cols - size + 1
  vertical = padded[0:out_rows]
  for i in range(1, size):
    vertical = vertical + padded[i:i + out_rows]
  horizontal = vertical[:, 0:out_cols]
  for j in range(1, size):
    horizontal = horizontal + vertical[:, j:j + out_cols]
  return horizontal


def _smooth_same(x):
  """SMOOTH kernel with zero padding, float [H, W, C] -> float [H, W, C] (not rounded)."""
  padded = tf.pad(x, [[1, 1], [1, 1], [0, 0]])
  return (_box_sum(padded, 3) + 4.0 * x) / 13.0


def _blur_same(x):
  """5x5 ring kernel with zero padding, float [H, W, C] -> float [H, W, C] (not rounded)."""
  padded = tf.pad(x, [[2, 2], [2, 2], [0, 0]])
  box5 = _box_sum(padded, 5)
  box3 = _box_sum(padded[1:-1, 1:-1], 3)
  return (box5 - box3) / 16.0


def sharpness(image, factor):
  """blend(smoothed-interior-with-original-border, x, factor); factor 1 is the original."""
  x = tf.cast(image, tf.float32)
  interior = (_box_sum(x, 3) + 4.0 * x[1:-1, 1:-1]) / 13.0
  interior = tf.cast(tf.clip_by_value(interior, 0.0, 255.0), tf.uint8)
  out = blend(interior, image[1:-1, 1:-1], factor)
  # Border rows/columns are unchanged (the degenerate image equals x there, so the blend is x).
  middle = tf.concat([image[1:-1, :1], out, image[1:-1, -1:]], axis=1)
  return tf.concat([image[:1], middle, image[-1:]], axis=0)


def blur(image, strength):
  """blend(x, ring_blur(x) + 0.5, strength); strength 0 is the original."""
  return blend(image, _blur_same(tf.cast(image, tf.float32)) + 0.5, strength)


def smooth(image, strength):
  """blend(x, smooth(x) + 0.5, strength); strength 0 is the original."""
  return blend(image, _smooth_same(tf.cast(image, tf.float32)) + 0.5, strength)
