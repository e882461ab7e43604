"""Neighbourhood-filter primitive ops (Sharpness, Blur, Smooth) on one uint8 [H, W, 3] image.

Kernels: Smooth/Sharpness [[1,1,1],[1,5,1],[1,1,1]] / 13; Blur a 5x5 ring of ones around a zero
3x3 interior, / 16.

Conventions (spec section 4.2), which differ between the ops on purpose:
- Sharpness(f): the smoothed image is computed on the valid interior only; the one-pixel border
  keeps the original values; result = blend(smoothed, x, f) (f=1 original).
- Blur(f) / Smooth(f): "same" convolution with zero padding, +0.5 for rounding (as PIL's filter),
  result = blend(x, filtered + 0.5, f): 0 is the original, 1 the fully filtered image.

Speed: a blend of x with a linear filter of x is itself a linear filter, so each op is a single
depthwise convolution with the blended kernel `f K + (1 - f) delta` (built from the factor on a
[k, k, 3, 1] tensor, not on the image), plus a bias and a cast: no separate filtered image, no
image-sized blend. Blur/Smooth stay inside [0, 255.5] for f in [0, 1], so they need no clip.
Sharpness truncates its smoothed image to uint8 before blending in the reference; the folded form
does not, so it may differ from the literal formula by one grey level (tests check within 1).
"""

import numpy as np
import tensorflow as tf

from fixmatch.augment.ops_color import _to_uint8, _unit


def _depthwise(taps, divisor):
  """A [k, k] kernel as a float32 numpy [k, k, 3, 1] depthwise filter (same on every channel)."""
  kernel = np.asarray(taps, np.float32) / divisor
  return np.repeat(kernel[:, :, None, None], 3, axis=2)


def _delta(size):
  kernel = np.zeros((size, size), np.float32)
  kernel[size // 2, size // 2] = 1.0
  return kernel


_SMOOTH = _depthwise([[1, 1, 1], [1, 5, 1], [1, 1, 1]], 13.0)
_BLUR = _depthwise([[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 0, 0, 0, 1],
                    [1, 1, 1, 1, 1]], 16.0)
_DELTA3 = _depthwise(_delta(3), 1.0)
_DELTA5 = _depthwise(_delta(5), 1.0)


def _convolve(image, kernel, padding):
  """Float depthwise convolution of a uint8 [H, W, 3] image with a [k, k, 3, 1] kernel."""
  x = tf.cast(image, tf.float32)[None]
  return tf.nn.depthwise_conv2d(x, kernel, strides=[1, 1, 1, 1], padding=padding)[0]


def _toward_filter(image, kernel, delta, strength):
  """blend(x, x (*) K + 0.5, f) = x (*) (f K + (1 - f) delta) + 0.5 f, 'same' zero padding."""
  f = _unit(strength)
  filtered = _convolve(image, f * kernel + (1.0 - f) * delta, "SAME")
  return _to_uint8(filtered + 0.5 * f, clip=False)


def sharpness(image, factor):
  """blend(smoothed-interior-with-original-border, x, factor); factor 1 is the original."""
  f = tf.cast(factor, tf.float32)
  interior = _convolve(image, (1.0 - f) * _SMOOTH + f * _DELTA3, "VALID")
  interior = _to_uint8(interior, clip=True)
  # Border rows/columns are unchanged (the degenerate image equals x there, so the blend is x).
  middle = tf.concat([image[1:-1, :1], interior, image[1:-1, -1:]], axis=1)
  return tf.concat([image[:1], middle, image[-1:]], axis=0)


def blur(image, strength):
  """blend(x, ring_blur(x) + 0.5, strength); strength (clamped to [0, 1]) 0 is the original."""
  return _toward_filter(image, _BLUR, _DELTA5, strength)


def smooth(image, strength):
  """blend(x, smooth(x) + 0.5, strength); strength (clamped to [0, 1]) 0 is the original."""
  return _toward_filter(image, _SMOOTH, _DELTA3, strength)
