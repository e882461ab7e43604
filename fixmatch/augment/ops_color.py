"""Colour (point-wise and global-statistics) primitive ops on one uint8 [H, W, 3] image.

Each function takes the image and its *explicit* argument (a factor, a threshold, a number of bits),
never a level in [0, 1]; the level-to-argument tables of RandAugment and CTAugment live in
`registry.py`, because the two policies map the same level to different arguments.

Conventions follow the reference specification (section 4.2), which mirrors PIL:
- `blend(a, b, f) = clip_uint8(a + f * (b - a))` in float32, truncated towards zero when cast (as
  both PIL's `Image.blend` and the reference TF code do).
- Grayscale is PIL's ITU-R 601-2 luma in 16-bit fixed point, `(19595 R + 38470 G + 7471 B + 2^15) >> 16`,
  so Color/Contrast agree bit-for-bit with `ImageEnhance` on the degenerate image.

Speed: everything is vectorised over the three channels (no Python loops per channel, no per-channel
`tf.cond`), histograms come from one `tf.math.bincount` over `value + 256 * channel`, and look-up
tables (Equalize) are applied with a single `tf.gather`. These functions run once per image inside `tf.data`,
so a few elementwise passes over 150k values is the budget.
"""

import tensorflow as tf

_CHANNEL_OFFSETS = tf.constant([0, 256, 512], tf.int32)
_LUMA_WEIGHTS = tf.constant([19595, 38470, 7471], tf.int32)


def blend(image1, image2, factor):
  """`clip_uint8(image1 + factor * (image2 - image1))`; inputs uint8 or float, output uint8."""
  a = tf.cast(image1, tf.float32)
  b = tf.cast(image2, tf.float32)
  out = a + tf.cast(factor, tf.float32) * (b - a)
  return tf.cast(tf.clip_by_value(out, 0.0, 255.0), tf.uint8)


def grayscale(image):
  """PIL 'L' conversion as uint8 [H, W] (exact integer formula, rounded)."""
  weighted = tf.reduce_sum(tf.cast(image, tf.int32) * _LUMA_WEIGHTS, axis=-1)
  return tf.cast(tf.bitwise.right_shift(weighted + 32768, 16), tf.uint8)


def identity(image):
  return tf.identity(image)


def invert(image):
  return tf.constant(255, tf.uint8) - image


def solarize(image, threshold):
  """Inverts pixels >= threshold; the threshold saturates to uint8 (256 behaves like 255)."""
  t = tf.cast(tf.clip_by_value(tf.cast(threshold, tf.int32), 0, 255), tf.uint8)
  return tf.where(image < t, image, tf.constant(255, tf.uint8) - image)


def solarize_add(image, addition, threshold=128):
  """Adds `addition` (clipped to uint8) to pixels below `threshold`, keeps the others."""
  added = tf.clip_by_value(tf.cast(image, tf.int32) + tf.cast(addition, tf.int32), 0, 255)
  below = tf.cast(image, tf.int32) < tf.cast(threshold, tf.int32)
  return tf.where(below, tf.cast(added, tf.uint8), image)


def posterize(image, bits):
  """Keeps the top `bits` bits of every value (bits=0 gives black, as PIL and the formula do).

  The mask is computed in int32 on purpose: `tf.bitwise.right_shift` on uint8 clamps shifts of 8
  to 7, which would silently turn bits=0 into bits=1.
  """
  shift = 8 - tf.clip_by_value(tf.cast(bits, tf.int32), 0, 8)
  mask = tf.bitwise.bitwise_and(tf.bitwise.left_shift(255, shift), 255)
  return tf.bitwise.bitwise_and(image, tf.cast(mask, tf.uint8))


def autocontrast(image):
  """Per channel, linearly maps [min, max] onto [0, 255]; channels with max == min stay unchanged.

  Computed as `(x - lo) * 255 / (hi - lo)` so that x == hi lands exactly on 255 (the product is an
  exact integer and the division is correctly rounded), then truncated like PIL's `int()`.
  """
  x = tf.cast(image, tf.float32)
  lo = tf.reduce_min(x, axis=[0, 1])
  hi = tf.reduce_max(x, axis=[0, 1])
  spread = hi > lo
  lo = tf.where(spread, lo, 0.0)
  span = tf.where(spread, hi - lo, 255.0)
  out = (x - lo) * 255.0 / span
  return tf.cast(tf.clip_by_value(out, 0.0, 255.0), tf.uint8)


def equalize(image):
  """PIL-style per-channel histogram equalisation.

  step = (pixels - count of the channel's largest value) // 255; if step == 0 the channel is
  unchanged, else lut[v] = (step // 2 + sum(hist[:v])) // step, clipped to 255.
  """
  index = tf.cast(image, tf.int32) + _CHANNEL_OFFSETS
  hist = tf.reshape(
      tf.math.bincount(tf.reshape(index, [-1]), minlength=768, maxlength=768, dtype=tf.int32),
      [3, 256])
  top = tf.cast(tf.reduce_max(image, axis=[0, 1]), tf.int32)
  top_count = tf.gather(hist, top, batch_dims=1)
  step = (tf.reduce_sum(hist, axis=1) - top_count) // 255
  safe_step = tf.maximum(step, 1)[:, None]
  lut = (tf.cumsum(hist, axis=1, exclusive=True) + safe_step // 2) // safe_step
  lut = tf.where(step[:, None] > 0, tf.minimum(lut, 255), tf.range(256)[None, :])
  return tf.gather(tf.cast(tf.reshape(lut, [-1]), tf.uint8), index)


def brightness(image, factor):
  """Blend with black: factor 0 is black, 1 the original."""
  return tf.cast(tf.clip_by_value(tf.cast(image, tf.float32) * factor, 0.0, 255.0), tf.uint8)


def color(image, factor):
  """Blend with the grayscale image: factor 0 is gray, 1 the original."""
  gray = tf.cast(grayscale(image), tf.float32)[..., None]
  return blend(gray, image, factor)


def contrast(image, factor):
  """Blend with a constant image at the rounded mean gray level (PIL's ImageEnhance.Contrast)."""
  gray = tf.cast(grayscale(image), tf.int64)
  mean = tf.cast(tf.reduce_sum(gray), tf.float64) / tf.cast(tf.size(gray), tf.float64)
  level = tf.cast(tf.floor(mean + 0.5), tf.float32)
  return blend(level, image, factor)


def autocontrast_blend(image, factor):
  """blend(AutoContrast(x), x, factor): 0 is the full op, 1 the original."""
  return blend(autocontrast(image), image, factor)


def equalize_blend(image, factor):
  """blend(Equalize(x), x, factor): 0 is the full op, 1 the original."""
  return blend(equalize(image), image, factor)


def invert_blend(image, factor):
  """blend(Invert(x), x, factor): 0 is the full op, 1 the original."""
  return blend(invert(image), image, factor)
