"""Neighbourhood-filter primitive ops (Sharpness, Blur, Smooth) on one uint8 [H, W, 3] image.

Kernels: Smooth/Sharpness [[1,1,1],[1,5,1],[1,1,1]] / 13; Blur a 5x5 ring of ones around a zero
3x3 interior, / 16. They run as one float `depthwise_conv2d` (measured faster on CPU than summing
shifted slices, which copies strided views).

Conventions (spec section 4.2), which differ between the ops on purpose:
- Sharpness(f): the smoothed image is computed on the valid interior only and truncated to uint8;
  the one-pixel border keeps the original values; result = blend(smoothed, x, f) (f=1 original).
- Blur(f) / Smooth(f): "same" convolution with zero padding, +0.5 for rounding (as PIL's filter),
  result = blend(x, filtered + 0.5, f): 0 is the original, 1 the fully filtered image.
"""

import tensorflow as tf

from fixmatch.augment.ops_color import blend


def _depthwise_kernel(taps, divisor):
  kernel = tf.constant(taps, tf.float32) / divisor
  return tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])


_SMOOTH = _depthwise_kernel([[1, 1, 1], [1, 5, 1], [1, 1, 1]], 13.0)
_BLUR = _depthwise_kernel([[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 0, 0, 0, 1],
                           [1, 1, 1, 1, 1]], 16.0)


def _filter(image, kernel, padding):
  """Float depthwise convolution of a uint8 [H, W, 3] image (not rounded)."""
  x = tf.cast(image, tf.float32)[None]
  return tf.nn.depthwise_conv2d(x, kernel, strides=[1, 1, 1, 1], padding=padding)[0]


def sharpness(image, factor):
  """blend(smoothed-interior-with-original-border, x, factor); factor 1 is the original."""
  interior = _filter(image, _SMOOTH, "VALID")
  interior = tf.cast(tf.clip_by_value(interior, 0.0, 255.0), tf.uint8)
  out = blend(interior, image[1:-1, 1:-1], factor)
  # Border rows/columns are unchanged (the degenerate image equals x there, so the blend is x).
  middle = tf.concat([image[1:-1, :1], out, image[1:-1, -1:]], axis=1)
  return tf.concat([image[:1], middle, image[-1:]], axis=0)


def blur(image, strength):
  """blend(x, ring_blur(x) + 0.5, strength); strength 0 is the original."""
  return blend(image, _filter(image, _BLUR, "SAME") + 0.5, strength)


def smooth(image, strength):
  """blend(x, smooth(x) + 0.5, strength); strength 0 is the original."""
  return blend(image, _filter(image, _SMOOTH, "SAME") + 0.5, strength)
